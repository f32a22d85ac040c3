/**
 * Deterministic protocol fixtures: keys from fixed seeds, fixed clocks, fixed salts and fixed embedding
 * vectors, so that every packet (Ed25519 is deterministic) and every digest built from them is
 * reproducible byte for byte. Used by the golden-vector generator and by the transcript tests.
 *
 * Conventions:
 *   - seed i        = 32 bytes of value i (node keys; i in 1..255)
 *   - salt i        = 32 bytes of value 0x80 + i
 *   - nonces        = 16 bytes of value 0x11
 *   - vectors       = pseudo-random in [-1, 1) from sha256("synod-test-vector" ‖ label ‖ counter)
 *   - createdAt     = BASE_TIME + a fixed offset per packet (a reveal's copies 100 ms apart)
 */
import { computeCommitment } from '../src/commitment/commitment.ts';
import { quantize } from '../src/embedding/binary.ts';
import { concatBytes, toHex, utf8 } from '../src/encoding/bytes.ts';
import { sha256, sha256Hex } from '../src/encoding/hash.ts';
import { type EmbeddingModelRef, type Frame, resolveFrame } from '../src/frame/frame.ts';
import { NodeKey } from '../src/identity/node-key.ts';
import { packetId, signPacket } from '../src/packets/envelope.ts';
import { deriveRequestId } from '../src/packets/request-id.ts';
import type { ModelRef, Packet, RequestBody, SealMember } from '../src/packets/schemas.ts';

export const BASE_TIME = 1_700_000_000_000;

/** Every scenario's seal is dated here (5 s after its request). */
export const SEAL_TIME = BASE_TIME + 5_000;

/** A reveal's second, third… copy is signed this much later than the one before it. */
export const COPY_STEP_MS = 100;

export const EMBEDDER: EmbeddingModelRef = {
  id: 'use-lite-512',
  fileHash: sha256Hex(utf8('synod test-vectors embedder use-lite-512')),
  bits: 512,
};

export const MODEL: ModelRef = {
  id: 'llama-3.2-1b-instruct-q4f16_1',
  fileHash: sha256Hex(utf8('synod test-vectors model llama-3.2-1b-instruct-q4f16_1')),
};

export const OTHER_MODEL: ModelRef = {
  id: 'qwen2.5-0.5b-instruct-q4f16_1',
  fileHash: sha256Hex(utf8('synod test-vectors model qwen2.5-0.5b-instruct-q4f16_1')),
};

export const NONCE = '11'.repeat(16);

export function seedOf(i: number): Uint8Array {
  return new Uint8Array(32).fill(i);
}

export function saltOf(i: number): string {
  return toHex(new Uint8Array(32).fill(0x80 + i));
}

const keyCache = new Map<number, Promise<NodeKey>>();

export function keyOf(i: number): Promise<NodeKey> {
  let key = keyCache.get(i);
  if (key === undefined) {
    key = NodeKey.fromSeed(seedOf(i));
    keyCache.set(i, key);
  }
  return key;
}

/** A deterministic vector of `dims` values in [-1, 1), 2 bytes of sha256 output per value. */
export function fixedVector(label: string, dims = EMBEDDER.bits): number[] {
  const out: number[] = [];
  for (let block = 0; out.length < dims; block++) {
    const counter = new Uint8Array(4);
    new DataView(counter.buffer).setUint32(0, block, false);
    const digest = sha256(concatBytes(utf8('synod-test-vector'), utf8(label), counter));
    for (let k = 0; k + 1 < digest.length && out.length < dims; k += 2) {
      const u16 = ((digest[k] as number) << 8) | (digest[k + 1] as number);
      out.push(u16 / 32768 - 1);
    }
  }
  return out;
}

/** `vector` with the sign of `flips` dimensions flipped (the first `flips` of a fixed permutation). */
export function perturb(vector: readonly number[], flips: number, label: string): number[] {
  const order = fixedVector(`perturb:${label}`, vector.length)
    .map((key, index) => ({ key, index }))
    .sort((a, b) => a.key - b.key || a.index - b.index)
    .map((e) => e.index);
  const out = vector.slice();
  for (const i of order.slice(0, flips)) {
    const x = out[i] as number;
    out[i] = x === 0 ? 1 : -x;
  }
  return out;
}

export function embeddingHex(vector: readonly number[], bits = EMBEDDER.bits): string {
  return toHex(quantize(vector, bits));
}

export function defaultFrame(overrides: Partial<Frame> = {}): Frame {
  return resolveFrame({
    embeddingModel: EMBEDDER,
    quorum: 3,
    maxCommits: 5,
    secDistance: 0.15,
    secPercentage: 0.6,
    maxTimeMs: 30_000,
    revealWindowMs: 10_000,
    ...overrides,
  });
}

export function requestBody(options: {
  prompt: string;
  frame?: Frame;
  createdAt?: number;
  acceptedModels?: string[];
}): RequestBody {
  const content = {
    nonce: NONCE,
    prompt: options.prompt,
    acceptedModels: options.acceptedModels ?? [MODEL.id],
    params: { temperature: 0, maxTokens: 256, seed: 42 },
    frame: options.frame ?? defaultFrame(),
    origin: { kind: 'http' as const },
    createdAt: options.createdAt ?? BASE_TIME,
  };
  return { requestId: deriveRequestId(content), ...content };
}

/** How a sealed member behaves at reveal time. */
export type RevealBehaviour =
  | { kind: 'honest' }
  /** Reveals nothing (its `extraReveals` aside). */
  | { kind: 'withhold' }
  /** Reveals (and signs) another output than the one it committed to. */
  | { kind: 'tampered'; output: string }
  /** Reveals what it committed to, 1 ms (and more) after the seal's reveal window closed. */
  | { kind: 'late' };

export interface MemberSpec {
  seed: number;
  output: string;
  /** The (unquantized) embedding of `output`. */
  vector: readonly number[];
  /** Default MODEL; a model outside the request's acceptedModels makes its reveal MODEL_NOT_ACCEPTED. */
  model?: ModelRef;
  /**
   * Bits it embeds at, commits to and reveals; default the frame's. Any other number makes its reveal
   * EMBEDDING_LENGTH (an embedder with another Matryoshka prefix), although it opens its commitment.
   */
  embeddingBits?: number;
  reveal?: RevealBehaviour;
  /** Reveals it signs, each COPY_STEP_MS after the one before (same content); default 1. */
  copies?: number;
  /** Further reveals it signs beside those of `reveal` and `copies`. */
  extraReveals?: readonly ExtraReveal[];
  /**
   * The embedding a verifier gets when it embeds `output` again (its bits are the scenario's
   * `reembedded` input for each of this member's reveals); absent: the verifier has no bits for them.
   */
  reembedded?: readonly number[];
}

/**
 * A further reveal of a member: its committed output (or `output`, then COMMITMENT_MISMATCH), signed at
 * `BASE_TIME + atMs` (REVEAL_LATE after `SEAL_TIME + revealWindowMs`). `atMs` is what orders its packet
 * id against the member's other reveals; scenarios that rely on that order assert it.
 */
export interface ExtraReveal {
  atMs: number;
  output?: string;
}

/** A node that reveals without having been sealed. */
export interface OutsiderSpec {
  seed: number;
  output: string;
  vector: readonly number[];
  /** Reveals it signs, each COPY_STEP_MS after the one before; default 1. */
  copies?: number;
}

export interface ScenarioSpec {
  name: string;
  coordinatorSeed: number;
  prompt: string;
  frame?: Frame;
  members: readonly MemberSpec[];
  outsiders?: readonly OutsiderSpec[];
  /** Set: the scenario has a second verdict, with the members' `reembedded` bits, at this tolerance. */
  noiseToleranceBits?: number;
}

export interface Scenario {
  spec: ScenarioSpec;
  request: Packet<'request'>;
  requestPacketId: string;
  commits: Packet<'commit'>[];
  seal: Packet<'seal'>;
  sealId: string;
  reveals: Packet<'reveal'>[];
  /** Reveal packet id -> the verifier's re-embedded bits (hex), for members with `reembedded`. */
  reembedded: Map<string, string>;
  /** Every packet, in construction order (not canonical order). */
  packets: (Packet<'request'> | Packet<'commit'> | Packet<'seal'> | Packet<'reveal'>)[];
}

export async function buildScenario(spec: ScenarioSpec): Promise<Scenario> {
  const coordinator = await keyOf(spec.coordinatorSeed);
  const request = await signPacket(
    coordinator,
    'request',
    requestBody(
      spec.frame === undefined ? { prompt: spec.prompt } : { prompt: spec.prompt, frame: spec.frame },
    ),
  );
  const requestId = request.body.requestId;
  const requestPacketId = packetId(request);
  const frame = request.body.frame;
  const bits = frame.embeddingModel.bits;

  const commits: Packet<'commit'>[] = [];
  const reveals: Packet<'reveal'>[] = [];
  const reembedded = new Map<string, string>();
  const members: SealMember[] = [];
  for (const [k, m] of spec.members.entries()) {
    const key = await keyOf(m.seed);
    const model = m.model ?? MODEL;
    const bEmbedding = embeddingHex(m.vector, m.embeddingBits ?? bits);
    const salt = saltOf(m.seed);
    const commitment = computeCommitment({
      requestId,
      nodeId: key.nodeId,
      model,
      output: m.output,
      bEmbedding,
      salt,
    });
    const commit = await signPacket(key, 'commit', {
      requestId,
      commitment,
      createdAt: BASE_TIME + 1_000 + k,
    });
    commits.push(commit);
    members.push({ nodeId: key.nodeId, commitment, commitId: packetId(commit) });
    const behaviour = m.reveal ?? { kind: 'honest' };
    const output = behaviour.kind === 'tampered' ? behaviour.output : m.output;
    const revealAt =
      behaviour.kind === 'late' ? SEAL_TIME + frame.revealWindowMs + 1 + k : BASE_TIME + 6_000 + k;
    const copies = behaviour.kind === 'withhold' ? 0 : (m.copies ?? 1);
    for (let c = 0; c < copies; c++) {
      reveals.push(
        await signPacket(key, 'reveal', {
          requestId,
          output,
          bEmbedding,
          model,
          salt,
          createdAt: revealAt + c * COPY_STEP_MS,
        }),
      );
    }
    for (const extra of m.extraReveals ?? []) {
      reveals.push(
        await signPacket(key, 'reveal', {
          requestId,
          output: extra.output ?? m.output,
          bEmbedding,
          model,
          salt,
          createdAt: BASE_TIME + extra.atMs,
        }),
      );
    }
    if (m.reembedded !== undefined) {
      const own = embeddingHex(m.reembedded, bits);
      for (const r of reveals.filter((p) => p.from === key.nodeId)) reembedded.set(packetId(r), own);
    }
  }
  members.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  const seal = await signPacket(coordinator, 'seal', {
    requestId,
    requestPacketId,
    members,
    createdAt: SEAL_TIME,
  });
  for (const [k, o] of (spec.outsiders ?? []).entries()) {
    const key = await keyOf(o.seed);
    for (let c = 0; c < (o.copies ?? 1); c++) {
      reveals.push(
        await signPacket(key, 'reveal', {
          requestId,
          output: o.output,
          bEmbedding: embeddingHex(o.vector, bits),
          model: MODEL,
          salt: saltOf(o.seed),
          createdAt: BASE_TIME + 7_000 + k + c * COPY_STEP_MS,
        }),
      );
    }
  }
  return {
    spec,
    request,
    requestPacketId,
    commits,
    seal,
    sealId: packetId(seal),
    reveals,
    reembedded,
    packets: [request, ...commits, seal, ...reveals],
  };
}

const PARIS = fixedVector('answer:paris');

/** 5 sealed nodes: 3 agree (small perturbations of one vector), 1 garbage, 1 never reveals. */
export const AGREE_SPEC: ScenarioSpec = {
  name: 'three-agree-one-garbage-one-silent',
  coordinatorSeed: 1,
  prompt: 'What is the capital of France? Answer in one sentence.',
  members: [
    { seed: 2, output: 'The capital of France is Paris.', vector: perturb(PARIS, 8, 'n2') },
    { seed: 3, output: 'Paris is the capital of France.', vector: perturb(PARIS, 16, 'n3') },
    { seed: 4, output: "France's capital city is Paris.", vector: perturb(PARIS, 24, 'n4') },
    {
      seed: 5,
      output: 'Bananas are an excellent source of potassium.',
      vector: fixedVector('answer:bananas'),
    },
    {
      seed: 6,
      output: 'The capital of France is Paris.',
      vector: perturb(PARIS, 4, 'n6'),
      reveal: { kind: 'withhold' },
    },
  ],
};

/** 5 sealed nodes: 2 agree, 2 unrelated answers, 1 silent: the largest ball (2) is below ceil(0.6 × 5). */
export const NO_CONSENSUS_SPEC: ScenarioSpec = {
  name: 'no-consensus',
  coordinatorSeed: 1,
  prompt: 'Write a haiku about the sea.',
  members: [
    { seed: 2, output: 'Waves fold into foam', vector: perturb(fixedVector('answer:sea'), 10, 'n2') },
    { seed: 3, output: 'Waves folding to foam', vector: perturb(fixedVector('answer:sea'), 20, 'n3') },
    { seed: 4, output: 'Salt wind, grey water', vector: fixedVector('answer:wind') },
    { seed: 5, output: 'The moon pulls the tide', vector: fixedVector('answer:moon') },
    {
      seed: 6,
      output: 'Waves fold into foam',
      vector: fixedVector('answer:sea'),
      reveal: { kind: 'withhold' },
    },
  ],
};

/**
 * 4 sealed nodes: 3 agree, 1 reveals another output than it committed to (COMMITMENT_MISMATCH), and a
 * node outside the seal reveals too (NOT_SEALED).
 */
export const CHEATERS_SPEC: ScenarioSpec = {
  name: 'tampered-reveal-and-outsider',
  coordinatorSeed: 1,
  prompt: 'Name the largest planet of the solar system.',
  frame: defaultFrame({ quorum: 3, maxCommits: 4, secPercentage: 0.75 }),
  members: [
    { seed: 2, output: 'Jupiter.', vector: perturb(fixedVector('answer:jupiter'), 6, 'n2') },
    {
      seed: 3,
      output: 'Jupiter is the largest planet.',
      vector: perturb(fixedVector('answer:jupiter'), 12, 'n3'),
    },
    {
      seed: 4,
      output: 'The largest planet is Jupiter.',
      vector: perturb(fixedVector('answer:jupiter'), 18, 'n4'),
    },
    {
      seed: 5,
      output: 'Jupiter',
      vector: fixedVector('answer:jupiter'),
      reveal: { kind: 'tampered', output: 'Saturn' },
    },
  ],
  outsiders: [{ seed: 7, output: 'Jupiter!', vector: fixedVector('answer:jupiter') }],
};

const BOILING = fixedVector('answer:boiling');

/**
 * 6 sealed nodes, 3 required: 3 agree (one of them reveals three times: one DUPLICATE_REVEAL, the third
 * copy left to the transcript), and three reveals are invalid although each opens its commitment: an
 * unaccepted model (MODEL_NOT_ACCEPTED), a 256-bit embedding in a 512-bit frame (EMBEDDING_LENGTH), and
 * two reveals after the window (REVEAL_LATE for the smaller id, DUPLICATE_REVEAL for the other).
 */
export const INVALID_REVEALS_SPEC: ScenarioSpec = {
  name: 'invalid-and-duplicate-reveals',
  coordinatorSeed: 1,
  prompt: 'At what temperature does water boil at sea level, in degrees Celsius?',
  frame: defaultFrame({ quorum: 3, maxCommits: 6, secPercentage: 0.5 }),
  members: [
    {
      seed: 2,
      output: 'Water boils at 100 degrees Celsius at sea level.',
      vector: perturb(BOILING, 6, 'n2'),
      copies: 3,
    },
    { seed: 3, output: '100 °C.', vector: perturb(BOILING, 12, 'n3') },
    { seed: 4, output: 'At sea level water boils at 100 °C.', vector: perturb(BOILING, 18, 'n4') },
    {
      seed: 5,
      output: 'One hundred degrees Celsius.',
      vector: perturb(BOILING, 10, 'n5'),
      model: OTHER_MODEL,
    },
    {
      seed: 6,
      output: 'It boils at 100 degrees Celsius.',
      vector: perturb(BOILING, 8, 'n6'),
      embeddingBits: 256,
    },
    {
      seed: 7,
      output: 'Water boils at 100 °C.',
      vector: perturb(BOILING, 14, 'n7'),
      reveal: { kind: 'late' },
      copies: 2,
    },
  ],
};

/** Seeds of the capped scenario: coordinator 1, members 2-129, outsiders 130-255 (every seed in 1-255). */
const CAP_MEMBERS = 128;
const CAP_REVEALING = 3;
const CAP_FIRST_OUTSIDER = 2 + CAP_MEMBERS;
const CAP_OUTSIDERS = 256 - CAP_FIRST_OUTSIDER;
const TIDE = fixedVector('answer:tide');

/**
 * The 256-entry cap on `rejected`. 128 sealed (the seal's maximum), 77 required; 3 members reveal twice
 * each and agree, 125 never reveal: 125 NOT_REVEALED + 3 OUTSIDE_CLUSTER + 3 DUPLICATE_REVEAL = 131
 * member entries, so only 125 of the 126 nodes outside the seal that reveal (one of them twice) are
 * listed as NOT_SEALED; the one with the largest node id is left to the transcript. No consensus.
 */
export const CAPPED_SPEC: ScenarioSpec = {
  name: 'unsealed-flood-capped-at-256',
  coordinatorSeed: 1,
  prompt: 'What makes the tides rise and fall?',
  frame: defaultFrame({ quorum: 64, maxCommits: CAP_MEMBERS, secPercentage: 0.6 }),
  members: Array.from({ length: CAP_MEMBERS }, (_, i): MemberSpec => {
    const seed = 2 + i;
    if (i >= CAP_REVEALING) {
      return { seed, output: 'The moon.', vector: TIDE, reveal: { kind: 'withhold' } };
    }
    return {
      seed,
      output: 'The pull of the moon (and the sun) on the oceans.',
      vector: perturb(TIDE, 4 * (i + 1), `n${seed}`),
      copies: 2,
    };
  }),
  outsiders: Array.from({ length: CAP_OUTSIDERS }, (_, i): OutsiderSpec => {
    const seed = CAP_FIRST_OUTSIDER + i;
    return {
      seed,
      output: `Unsealed answer ${seed}.`,
      vector: fixedVector(`answer:unsealed:${seed}`),
      ...(i === 0 ? { copies: 2 } : {}),
    };
  }),
};

const GOLD = fixedVector('answer:gold');

/**
 * 3 sealed nodes, all 3 required: each agrees, and two of them also sign a reveal of another output
 * than they committed to (invalid: COMMITMENT_MISMATCH). Node 2's invalid reveal has the smaller packet
 * id (although signed later), node 3's the larger; in both orders the valid reveal is the considered one
 * and the invalid one is the DUPLICATE_REVEAL. The `atMs` values are chosen for those id orders (the
 * generator and the tests assert them): a verifier that took node 2's smallest id would lose the quorum.
 */
export const INVALID_FIRST_SPEC: ScenarioSpec = {
  name: 'invalid-reveal-before-valid',
  coordinatorSeed: 1,
  prompt: 'What is the chemical symbol of gold?',
  frame: defaultFrame({ quorum: 3, maxCommits: 3, secPercentage: 1 }),
  members: [
    {
      seed: 2,
      output: 'Au.',
      vector: perturb(GOLD, 6, 'n2'),
      extraReveals: [{ atMs: 6_500, output: 'Ag.' }],
    },
    {
      seed: 3,
      output: 'The symbol of gold is Au.',
      vector: perturb(GOLD, 12, 'n3'),
      extraReveals: [{ atMs: 6_505, output: 'Ag' }],
    },
    { seed: 4, output: 'Gold is Au.', vector: perturb(GOLD, 18, 'n4') },
  ],
};

const EVEREST = fixedVector('answer:everest');

/**
 * 4 sealed nodes, 3 required, and no valid reveal: node 2 reveals another output than it committed to
 * in the window and its committed one after it; node 4 the other way round, each pair in the opposite
 * packet id order (so the smaller id gives COMMITMENT_MISMATCH for node 2, REVEAL_LATE for node 4, the
 * other is the DUPLICATE_REVEAL); node 3 reveals an unaccepted model (MODEL_NOT_ACCEPTED), node 5 nothing
 * (NOT_REVEALED). A node outside the seal reveals a well-formed answer (NOT_SEALED), which is no
 * candidate. No candidate: `centre` null, no-consensus.
 */
export const NO_VALID_REVEAL_SPEC: ScenarioSpec = {
  name: 'no-valid-reveal',
  coordinatorSeed: 1,
  prompt: 'How high is Mount Everest, in metres?',
  members: [
    {
      seed: 2,
      output: '8,849 m.',
      vector: perturb(EVEREST, 6, 'n2'),
      reveal: { kind: 'tampered', output: '9,000 m.' },
      extraReveals: [{ atMs: 15_500 }],
    },
    { seed: 3, output: 'About 8,849 metres.', vector: perturb(EVEREST, 12, 'n3'), model: OTHER_MODEL },
    {
      seed: 4,
      output: 'Mount Everest is 8,849 m high.',
      vector: perturb(EVEREST, 18, 'n4'),
      reveal: { kind: 'late' },
      extraReveals: [{ atMs: 6_501, output: 'It is 8,000 m high.' }],
    },
    {
      seed: 5,
      output: '8,849 metres.',
      vector: perturb(EVEREST, 8, 'n5'),
      reveal: { kind: 'withhold' },
    },
  ],
  outsiders: [{ seed: 7, output: '8,849 m', vector: perturb(EVEREST, 4, 'o7') }],
};

const HAMLET = fixedVector('answer:hamlet');

/** The tolerance of REEMBEDDED_SPEC: its members' re-embeddings are 2, 4 (= it) and 5 bits off. */
export const REEMBED_TOLERANCE_BITS = 4;

/**
 * 5 sealed nodes, 3 required, verified twice: from the transcript alone, and with a verifier's own
 * re-embedding of each output at a tolerance of 4 bits. Node 2's bits are 2 bits from its re-embedding
 * (within), node 3's 4 (at the tolerance: not more than it, so it passes), node 4's 5 (beyond:
 * EMBEDDING_DISAGREES). Node 4 claims the bits at the centre of the answers, so without re-embedding it
 * is the winner. Node 5 has no re-embedded bits (not re-checked); it makes the quorum of 3. Node 6
 * reveals late, and its re-embedding is another answer altogether: REVEAL_LATE comes first.
 */
export const REEMBEDDED_SPEC: ScenarioSpec = {
  name: 'reembedded-disagrees',
  coordinatorSeed: 1,
  prompt: 'Who wrote Hamlet?',
  noiseToleranceBits: REEMBED_TOLERANCE_BITS,
  members: [
    {
      seed: 2,
      output: 'Shakespeare wrote Hamlet.',
      vector: perturb(HAMLET, 6, 'n2'),
      reembedded: perturb(perturb(HAMLET, 6, 'n2'), 2, 'reembed:n2'),
    },
    {
      seed: 3,
      output: 'William Shakespeare.',
      vector: perturb(HAMLET, 12, 'n3'),
      reembedded: perturb(perturb(HAMLET, 12, 'n3'), REEMBED_TOLERANCE_BITS, 'reembed:n3'),
    },
    {
      seed: 4,
      output: 'Hamlet was written by William Shakespeare.',
      vector: HAMLET,
      reembedded: perturb(HAMLET, REEMBED_TOLERANCE_BITS + 1, 'reembed:n4'),
    },
    { seed: 5, output: 'Hamlet is by Shakespeare.', vector: perturb(HAMLET, 8, 'n5') },
    {
      seed: 6,
      output: 'Shakespeare, around 1600.',
      vector: perturb(HAMLET, 10, 'n6'),
      reveal: { kind: 'late' },
      reembedded: fixedVector('answer:reembed:n6'),
    },
  ],
};
