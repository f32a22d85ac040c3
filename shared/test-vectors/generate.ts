/**
 * Generator of the golden vectors `v1.json`: `npx bun shared/test-vectors/generate.ts`.
 *
 * Every input is fixed (seeds, salts, nonces, clocks, embedding vectors; see fixtures.ts) and Ed25519
 * signatures are deterministic, so running it again rewrites the file byte for byte. The file format is
 * described in README.md; vectors.test.ts recomputes every value from the inputs in the file, and also
 * checks that this generator still reproduces the checked-in file exactly.
 *
 * The generator asserts what each scenario is meant to show (for example "accepted with 3 agreeing"),
 * so a change in the protocol code cannot quietly turn a vector into a self-consistent but wrong one.
 */
import { writeFileSync } from 'node:fs';
import { computeCommitment, outputDigest } from '../src/commitment/commitment.ts';
import { verdictDigest } from '../src/consensus/verdict.ts';
import { hamming, normalizedHamming, quantize } from '../src/embedding/binary.ts';
import { fromHex, toHex, utf8 } from '../src/encoding/bytes.ts';
import { canonicalJson } from '../src/encoding/canonical.ts';
import { domainTag, sha256Hex, taggedHash } from '../src/encoding/hash.ts';
import { distanceThresholdBits, requiredAgreement } from '../src/frame/frame.ts';
import { NodeKey } from '../src/identity/node-key.ts';
import { packetId, signedBytes, signPacket } from '../src/packets/envelope.ts';
import { deriveRequestId } from '../src/packets/request-id.ts';
import type { AnyPacket, BodyOf, PacketType, RequestBody, Verdict } from '../src/packets/schemas.ts';
import { inclusionProof, merkleLeaf, merkleLeafHash, merkleRoot } from '../src/transcript/merkle.ts';
import { buildTranscript, type Transcript, transcriptRoot } from '../src/transcript/transcript.ts';
import { verifyTranscript } from '../src/transcript/verify.ts';
import {
  AGREE_SPEC,
  BASE_TIME,
  buildScenario,
  CAPPED_SPEC,
  CHEATERS_SPEC,
  defaultFrame,
  EMBEDDER,
  embeddingHex,
  fixedVector,
  INVALID_FIRST_SPEC,
  INVALID_REVEALS_SPEC,
  keyOf,
  MODEL,
  NO_CONSENSUS_SPEC,
  NO_VALID_REVEAL_SPEC,
  NONCE,
  OTHER_MODEL,
  perturb,
  REEMBEDDED_SPEC,
  type Scenario,
  type ScenarioSpec,
  SEAL_TIME,
  saltOf,
  seedOf,
} from './fixtures.ts';

export const VECTORS_PATH = new URL('./v1.json', import.meta.url);

/** JSON texts: canonicalized after a standard JSON parse. */
const JCS_CASES: { name: string; json: string }[] = [
  {
    name: 'RFC 8785 section 3.2.2: numbers, string escapes, literals',
    json: '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
  },
  {
    name: 'RFC 8785 section 3.2.3: property sorting by UTF-16 code units',
    json: '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}',
  },
  {
    name: 'number forms: shortest round-trip, exponent from 1e21 and below 1e-6, -0 is 0',
    json: '[-0,0.0,1.0,100,1e2,1E+2,1e21,1e20,123456789012345680000,1e-6,1e-7,0.000001,-1.5e-10,0.1,0.30000000000000004,9007199254740993,5e-324,1.7976931348623157e308]',
  },
  {
    name: 'white space removed, nested objects sorted, arrays keep their order',
    json: ' { "b" : [ 3 , 1 , { "d" : true , "c" : null } ] , "a" : { } , "aa" : [ ] } ',
  },
  {
    name: 'strings: control characters escaped as \\u00XX except \\b \\f \\n \\r \\t; DEL, U+2028 and / are not escaped',
    json: '"\\u0000\\u0001\\u001f\\b\\f\\n\\r\\t\\u007f\\u2028\\u2029/\\"\\\\"',
  },
  {
    name: 'unicode is emitted as UTF-8, never escaped',
    json: '{"caf\\u00e9":"\\u00fcn\\u00efc\\u00f8d\\u00e9 \\u2713 \\ud83d\\ude00","\\u65e5\\u672c":"\\u8a9e"}',
  },
];

const JCS_INVALID: { name: string; json: string }[] = [
  { name: 'lone high surrogate', json: '"\\ud800"' },
  { name: 'lone low surrogate in a key', json: '{"\\udc00":1}' },
];

function hexOf(text: string): string {
  return toHex(utf8(text));
}

function jcsVectors() {
  return {
    jcs: JCS_CASES.map(({ name, json }) => {
      const canonical = canonicalJson(JSON.parse(json));
      return { name, json, canonical, utf8: hexOf(canonical), sha256: sha256Hex(utf8(canonical)) };
    }),
    jcsInvalid: JCS_INVALID.map(({ name, json }) => {
      try {
        canonicalJson(JSON.parse(json));
      } catch {
        return { name, json };
      }
      throw new Error(`JCS accepted an invalid value: ${name}`);
    }),
  };
}

function hashVectors() {
  const sha256 = ['', hexOf('abc'), hexOf('synod'), '00'.repeat(64)].map((data) => ({
    data,
    digest: sha256Hex(fromHex(data)),
  }));
  const cases: { purpose: string; parts: string[] }[] = [
    { purpose: 'test', parts: [] },
    { purpose: 'test', parts: ['00', 'ff'] },
    { purpose: 'test', parts: ['00ff'] },
    { purpose: 'merkle-leaf', parts: [hexOf('hello')] },
    { purpose: 'merkle-node', parts: ['01'.repeat(32), '02'.repeat(32)] },
    { purpose: 'verdict', parts: [hexOf('{}')] },
    { purpose: 'request-id', parts: [hexOf('{"a":1}')] },
    { purpose: 'winner-tiebreak', parts: [hexOf('8453:0x' + 'ab'.repeat(20) + ':42'), 'cd'.repeat(32)] },
    { purpose: 'packet/commit', parts: [hexOf('{}')] },
  ];
  const taggedHashes = cases.map(({ purpose, parts }) => ({
    purpose,
    parts,
    domainTag: toHex(domainTag(purpose)),
    digest: toHex(taggedHash(purpose, ...parts.map((p) => fromHex(p)))),
  }));
  return { sha256, taggedHashes };
}

async function nodeIdVectors() {
  const seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 255];
  return Promise.all(
    seeds.map(async (i) => ({ seed: toHex(seedOf(i)), nodeId: (await NodeKey.fromSeed(seedOf(i))).nodeId })),
  );
}

const CHAIN_ORIGIN = {
  kind: 'chain' as const,
  chainId: 8453,
  contract: `0x${'ab'.repeat(20)}`,
  requestNo: '42',
  txHash: `0x${'cd'.repeat(32)}`,
  blockNumber: 12_345_678,
};

function withoutRequestId(body: RequestBody): Omit<RequestBody, 'requestId'> {
  const { requestId: _id, ...rest } = body;
  return rest;
}

function requestBodies(): { name: string; body: RequestBody }[] {
  const frame = defaultFrame();
  const base = {
    nonce: NONCE,
    acceptedModels: [MODEL.id, OTHER_MODEL.id],
    params: { temperature: 0.7, maxTokens: 128, seed: 7, topP: 0.9, topK: 40 },
    frame,
    createdAt: BASE_TIME,
  };
  const make = (name: string, content: Omit<RequestBody, 'requestId'>) => ({
    name,
    body: { requestId: deriveRequestId(content), ...content } as RequestBody,
  });
  return [
    make('http origin, prompt', { ...base, prompt: 'Say hello.', origin: { kind: 'http' } }),
    make('peer origin, messages', {
      ...base,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Grüß dich! 👋' },
      ],
      params: { temperature: 0, maxTokens: 1 },
      origin: { kind: 'peer' },
    }),
    make('chain origin: requestId is chainId:contract:requestNo', {
      ...base,
      prompt: 'What is 2 + 2?',
      origin: CHAIN_ORIGIN,
    }),
  ];
}

function requestIdVectors() {
  return requestBodies().map(({ name, body }) => ({
    name,
    body: withoutRequestId(body),
    requestId: body.requestId,
  }));
}

async function commitmentVectors() {
  const requestId = requestBodies()[0]?.body.requestId as string;
  const nodeId = (await keyOf(2)).nodeId;
  const inputs = [
    {
      requestId,
      nodeId,
      model: MODEL,
      output: 'The capital of France is Paris.',
      bEmbedding: embeddingHex(fixedVector('answer:paris')),
      salt: saltOf(2),
    },
    {
      requestId: `8453:0x${'ab'.repeat(20)}:42`,
      nodeId,
      model: OTHER_MODEL,
      output: '',
      bEmbedding: '00',
      salt: '00'.repeat(32),
    },
    {
      requestId,
      nodeId,
      model: MODEL,
      output: 'ünïcødé ✓ 😀',
      bEmbedding: 'ff'.repeat(64),
      salt: 'ff'.repeat(32),
    },
  ];
  return inputs.map((input) => ({
    input,
    outputDigest: outputDigest(input.output),
    commitment: computeCommitment(input),
  }));
}

function embeddingVectors() {
  const small: { name: string; vector: number[]; bits: number }[] = [
    { name: 'sign bits, most significant bit first', vector: [1, -1, 0.5, -0.5, 0, 2, -3, 1e-9], bits: 8 },
    {
      name: 'zero is 0; 16 dimensions',
      vector: [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0],
      bits: 16,
    },
    {
      name: 'Matryoshka prefix: the first 8 of 16 dimensions',
      vector: [1, 1, 1, 1, -1, -1, -1, -1, 1, -1, 1, -1, 1, -1, 1, -1],
      bits: 8,
    },
    {
      name: '512 fixed dimensions (fixedVector("answer:paris"))',
      vector: fixedVector('answer:paris'),
      bits: 512,
    },
    {
      name: '256-bit Matryoshka prefix of the same vector',
      vector: fixedVector('answer:paris'),
      bits: 256,
    },
  ];
  const quantizeVectors = small.map(({ name, vector, bits }) => ({
    name,
    vector,
    bits,
    packed: toHex(quantize(vector, bits)),
  }));
  const paris = fixedVector('answer:paris');
  const pairs: [string, string][] = [
    ['00', '00'],
    ['00', 'ff'],
    ['a5', '5a'],
    ['0123456789abcdef', 'fedcba9876543210'],
    ['8000000001', '0000000080'],
    [embeddingHex(paris), embeddingHex(perturb(paris, 8, 'n2'))],
    [embeddingHex(paris), embeddingHex(fixedVector('answer:bananas'))],
  ];
  const hammingVectors = pairs.map(([a, b]) => ({
    a,
    b,
    distance: hamming(fromHex(a), fromHex(b)),
    normalized: normalizedHamming(fromHex(a), fromHex(b)),
  }));
  return { quantize: quantizeVectors, hamming: hammingVectors };
}

function frameVectors() {
  const thresholds = [
    { secDistance: 0.15, bits: 512 },
    { secDistance: 0.1, bits: 256 },
    { secDistance: 0, bits: 512 },
    { secDistance: 0.5, bits: 512 },
    { secDistance: 0.333333, bits: 8192 },
    { secDistance: 0.000001, bits: 8 },
  ].map((c) => ({ ...c, thresholdBits: distanceThresholdBits(c, c.bits) }));
  const required = [
    { secPercentage: 0.6, sealSize: 5 },
    { secPercentage: 0.75, sealSize: 4 },
    { secPercentage: 0.5, sealSize: 4 },
    { secPercentage: 1, sealSize: 7 },
    { secPercentage: 0.666667, sealSize: 3 },
    { secPercentage: 0.000001, sealSize: 1 },
    { secPercentage: 0.51, sealSize: 128 },
  ].map((c) => ({ ...c, required: requiredAgreement(c, c.sealSize) }));
  return { thresholds, required };
}

async function packetVector<T extends PacketType>(name: string, seed: number, type: T, body: BodyOf[T]) {
  const key = await keyOf(seed);
  const packet = await signPacket(key, type, body);
  return {
    name,
    seed: toHex(seedOf(seed)),
    type,
    from: key.nodeId,
    body: packet.body,
    signedBytes: toHex(signedBytes(packet.v, packet.type, packet.from, packet.body)),
    packetId: packetId(packet),
    sig: packet.sig,
    envelope: packet,
    encoded: canonicalJson(packet),
    merkleLeaf: merkleLeaf(packet as AnyPacket),
  };
}

async function packetVectors(
  agree: Scenario,
  agreeVerdict: { verdict: Verdict; digest: string; root: string },
) {
  const chain = requestBodies()[2]?.body as RequestBody;
  const commit = agree.commits[0];
  const reveal = agree.reveals[0];
  if (commit === undefined || reveal === undefined) throw new Error('scenario without commits or reveals');
  return [
    await packetVector('request (http origin)', 1, 'request', agree.request.body),
    await packetVector('request (chain origin)', 1, 'request', chain),
    await packetVector('commit', 2, 'commit', commit.body),
    await packetVector('seal', 1, 'seal', agree.seal.body),
    await packetVector('reveal', 2, 'reveal', reveal.body),
    await packetVector('verdict', 1, 'verdict', {
      requestId: agree.request.body.requestId,
      verdict: agreeVerdict.verdict,
      verdictDigest: agreeVerdict.digest,
      transcriptRoot: agreeVerdict.root,
      createdAt: BASE_TIME + 17_000,
    }),
    await packetVector('attestation', 3, 'attestation', {
      requestId: agree.request.body.requestId,
      verdictDigest: agreeVerdict.digest,
      transcriptRoot: agreeVerdict.root,
      createdAt: BASE_TIME + 18_000,
    }),
    await packetVector('heartbeat', 2, 'heartbeat', {
      role: 'node',
      software: 'synod-node/0.1.0',
      models: [{ id: MODEL.id, fileHash: MODEL.fileHash, engine: 'webllm', tokensPerSecond: 42.5 }],
      embedders: [{ ...EMBEDDER, embeddingsPerSecond: 120 }],
      capacity: { queued: 1, maxQueue: 8 },
      addresses: ['/dns4/node.example/tcp/443/wss'],
      createdAt: BASE_TIME + 500,
    }),
    await packetVector('heartbeat (serving named coordinators only)', 3, 'heartbeat', {
      role: 'node',
      software: 'synod-node/0.1.0',
      models: [{ id: MODEL.id, fileHash: MODEL.fileHash, engine: 'node-llama-cpp', tokensPerSecond: 700 }],
      embedders: [{ ...EMBEDDER, embeddingsPerSecond: 80 }],
      capacity: { queued: 0, maxQueue: 64 },
      addresses: [],
      createdAt: BASE_TIME + 600,
      coordinators: [(await keyOf(1)).nodeId],
    }),
    await packetVector("reveal (with the engine's token counts)", 2, 'reveal', {
      ...reveal.body,
      usage: { completionTokens: 12, promptTokens: 7 },
    }),
    await packetVector('decline', 3, 'decline', {
      requestId: agree.request.body.requestId,
      requestPacketId: packetId(agree.request),
      model: MODEL,
      reason: 'context-exceeded',
      promptTokens: 6_015,
      contextTokens: 2_048,
      createdAt: BASE_TIME + 300,
    }),
  ];
}

function merkleVectors() {
  return [1, 2, 3, 4, 5, 7, 8, 9].map((n) => {
    const leafData = Array.from({ length: n }, (_, i) => hexOf(`leaf ${i}`));
    const leaves = leafData.map((d) => merkleLeafHash(fromHex(d)));
    return {
      leafData,
      leaves,
      root: merkleRoot(leaves),
      proofs: leaves.map((_, i) => inclusionProof(leaves, i)),
    };
  });
}

/** What a verdict of a scenario must be. */
interface VerdictExpectation {
  status: Verdict['status'];
  accepted: number;
  /** Every `rejected` reason, sorted. */
  reasons: string[];
}

interface ScenarioExpectation extends VerdictExpectation {
  description: string;
  /** What else the scenario is meant to show, as problems (none when it still shows it). */
  shows?: (verdict: Verdict, reveals: readonly RevealOf[]) => string[];
  /** The verdict with the re-embedded bits (scenarios whose spec sets `noiseToleranceBits`). */
  reembedded?: VerdictExpectation & {
    /** Problems of `withBits` (and of how it differs from `withoutBits`, the transcript's verdict). */
    shows: (withBits: Verdict, withoutBits: Verdict, reveals: readonly RevealOf[]) => string[];
  };
}

interface RevealOf {
  id: string;
  from: string;
  createdAt: number;
  /** Whether it reveals the output its author committed to (always true of a node outside the seal). */
  committed: boolean;
  /** Hamming distance from its bits to the verifier's re-embedded ones; null when there are none. */
  reembedded: number | null;
}

const times = (n: number, reason: string): string[] => Array<string>(n).fill(reason);

/** Every node's reveal ids, smallest first. */
function revealIdsByNode(reveals: readonly RevealOf[]): Map<string, string[]> {
  const byNode = new Map<string, string[]>();
  for (const r of reveals) byNode.set(r.from, [...(byNode.get(r.from) ?? []), r.id]);
  for (const ids of byNode.values()) ids.sort();
  return byNode;
}

/**
 * Rule 2 (one reveal per member): a member with several reveals has one outcome and one
 * DUPLICATE_REVEAL entry, and its reveals after the second smallest id are listed nowhere.
 */
function duplicateProblems(verdict: Verdict, reveals: readonly RevealOf[]): string[] {
  const problems: string[] = [];
  for (const [nodeId, ids] of revealIdsByNode(reveals)) {
    const entries = verdict.rejected.filter((r) => r.nodeId === nodeId);
    const duplicates = entries.filter((r) => r.reason === 'DUPLICATE_REVEAL');
    if (entries.some((r) => r.reason === 'NOT_SEALED') || ids.length < 2) continue;
    if (duplicates.length !== 1) problems.push(`${nodeId}: ${duplicates.length} DUPLICATE_REVEAL entries`);
    const listed = entries.map((r) => r.revealId);
    if (listed.length + (verdict.accepted.some((a) => a.nodeId === nodeId) ? 1 : 0) !== 2) {
      problems.push(`${nodeId}: ${ids.length} reveals but not one outcome and one duplicate`);
    }
    if (ids.slice(2).some((id) => listed.includes(id))) problems.push(`${nodeId}: a third reveal is listed`);
  }
  return problems;
}

/** Rule 2: a member's entry other than DUPLICATE_REVEAL is on its smallest reveal id (none is valid). */
function smallestIdProblems(verdict: Verdict, reveals: readonly RevealOf[]): string[] {
  const byNode = revealIdsByNode(reveals);
  return verdict.rejected.flatMap((r) => {
    const ids = byNode.get(r.nodeId) ?? [];
    return r.reason !== 'DUPLICATE_REVEAL' && ids.length > 1 && r.revealId !== ids[0]
      ? [`${r.nodeId}: ${r.reason} is not on its smallest reveal id`]
      : [];
  });
}

/** The members with exactly two reveals, each pair as [smaller id, larger id]. */
function revealPairs(reveals: readonly RevealOf[]): [RevealOf, RevealOf][] {
  const byNode = new Map<string, RevealOf[]>();
  for (const r of reveals) byNode.set(r.from, [...(byNode.get(r.from) ?? []), r]);
  return [...byNode.values()].flatMap((rs) => {
    const [a, b] = [...rs].sort((x, y) => (x.id < y.id ? -1 : 1));
    return rs.length === 2 && a !== undefined && b !== undefined ? [[a, b] as [RevealOf, RevealOf]] : [];
  });
}

const CAP_OUTSIDERS = CAPPED_SPEC.outsiders?.length ?? 0;

const EXPECTATIONS: Record<string, ScenarioExpectation> = {
  [AGREE_SPEC.name]: {
    description:
      '5 sealed nodes, secPercentage 0.6 (3 required), secDistance 0.15 (76 of 512 bits): 3 agree, 1 answers ' +
      'something unrelated (OUTSIDE_CLUSTER), 1 never reveals (NOT_REVEALED). Accepted.',
    status: 'accepted',
    accepted: 3,
    reasons: ['NOT_REVEALED', 'OUTSIDE_CLUSTER'],
  },
  [NO_CONSENSUS_SPEC.name]: {
    description:
      '5 sealed nodes, 3 required: 2 agree, 2 unrelated answers, 1 silent. The largest ball has 2: no consensus.',
    status: 'no-consensus',
    accepted: 0,
    reasons: ['NOT_REVEALED', 'OUTSIDE_CLUSTER', 'OUTSIDE_CLUSTER', 'OUTSIDE_CLUSTER', 'OUTSIDE_CLUSTER'],
  },
  [CHEATERS_SPEC.name]: {
    description:
      '4 sealed nodes, secPercentage 0.75 (3 required): 3 agree, 1 reveals (and signs) another output than it ' +
      'committed to (COMMITMENT_MISMATCH), and a node outside the seal reveals (NOT_SEALED). Accepted.',
    status: 'accepted',
    accepted: 3,
    reasons: ['COMMITMENT_MISMATCH', 'NOT_SEALED'],
  },
  [INVALID_REVEALS_SPEC.name]: {
    description:
      '6 sealed nodes, secPercentage 0.5 (3 required): 3 agree, one of them revealing three times (one ' +
      'DUPLICATE_REVEAL, the third copy left to the transcript). Three reveals open their commitments but ' +
      'are invalid: an unaccepted model (MODEL_NOT_ACCEPTED), a 256-bit embedding in a 512-bit frame ' +
      '(EMBEDDING_LENGTH), and two reveals after the window (REVEAL_LATE on the smaller packet id, ' +
      'DUPLICATE_REVEAL on the other). Accepted with the 3; the invalid members count against.',
    status: 'accepted',
    accepted: 3,
    reasons: [
      'DUPLICATE_REVEAL',
      'DUPLICATE_REVEAL',
      'EMBEDDING_LENGTH',
      'MODEL_NOT_ACCEPTED',
      'REVEAL_LATE',
    ],
    shows: (verdict, reveals) => {
      const problems = [...duplicateProblems(verdict, reveals), ...smallestIdProblems(verdict, reveals)];
      const byNode = revealIdsByNode(reveals);
      const deadline = SEAL_TIME + (INVALID_REVEALS_SPEC.frame?.revealWindowMs ?? 0);
      const late = reveals.filter((r) => r.createdAt > deadline);
      if (late.length !== 2) problems.push(`${late.length} reveals after the window, not 2`);
      if (byNode.size !== 6 || reveals.length !== 9) problems.push('not 9 reveals of 6 members');
      return problems;
    },
  },
  [CAPPED_SPEC.name]: {
    description:
      `128 sealed nodes (the most a seal holds), secPercentage 0.6 (77 required): 3 agree and reveal twice ` +
      `each, 125 never reveal, and ${CAP_OUTSIDERS} nodes outside the seal reveal (one of them twice). The ` +
      `members take 131 entries of rejected (125 NOT_REVEALED, 3 OUTSIDE_CLUSTER, 3 DUPLICATE_REVEAL), so ` +
      `rejected stops at 256 with ${CAP_OUTSIDERS - 1} NOT_SEALED: the outside node with the largest node ` +
      'id is left to the transcript. No consensus.',
    status: 'no-consensus',
    accepted: 0,
    reasons: [
      ...times(125, 'NOT_REVEALED'),
      ...times(3, 'OUTSIDE_CLUSTER'),
      ...times(3, 'DUPLICATE_REVEAL'),
      ...times(CAP_OUTSIDERS - 1, 'NOT_SEALED'),
    ].sort(),
    shows: (verdict, reveals) => {
      const problems = duplicateProblems(verdict, reveals);
      if (verdict.rejected.length !== 256) problems.push(`${verdict.rejected.length} rejected entries`);
      if (verdict.sealSize !== 128) problems.push(`a seal of ${verdict.sealSize}`);
      const members = new Set(verdict.rejected.filter((r) => r.commitment !== null).map((r) => r.nodeId));
      const byNode = revealIdsByNode(reveals);
      const outside = [...byNode.keys()].filter((n) => !members.has(n)).sort();
      if (outside.length !== CAP_OUTSIDERS) problems.push(`${outside.length} nodes outside the seal`);
      const listed = verdict.rejected.filter((r) => r.reason === 'NOT_SEALED');
      if (listed.map((r) => r.nodeId).join() !== outside.slice(0, -1).join()) {
        problems.push('NOT_SEALED is not every outside node but the one with the largest id');
      }
      if (!listed.every((r) => r.revealId === byNode.get(r.nodeId)?.[0])) {
        problems.push("a NOT_SEALED entry is not its node's smallest reveal id");
      }
      if (!outside.slice(0, -1).some((n) => (byNode.get(n)?.length ?? 0) > 1)) {
        problems.push('no listed outside node reveals twice');
      }
      if (reveals.length > 256) problems.push(`${reveals.length} reveals: more than a transcript holds`);
      return problems;
    },
  },
  [INVALID_FIRST_SPEC.name]: {
    description:
      '3 sealed nodes, secPercentage 1 (3 required), all 3 agree. Two of them also sign a reveal of another ' +
      "output than they committed to (invalid): for one its packet id is smaller than its valid reveal's, " +
      'for the other larger. Either way the valid reveal is the considered one and counts, and the invalid ' +
      'one is its DUPLICATE_REVEAL (not COMMITMENT_MISMATCH). Accepted with all 3.',
    status: 'accepted',
    accepted: 3,
    reasons: ['DUPLICATE_REVEAL', 'DUPLICATE_REVEAL'],
    shows: (verdict, reveals) => {
      const problems = duplicateProblems(verdict, reveals);
      const pairs = revealPairs(reveals);
      const orders = pairs.map(([smaller, larger]) => {
        const invalid = smaller.committed ? larger : smaller;
        const entries = verdict.rejected.filter((r) => r.nodeId === smaller.from);
        if (smaller.committed === larger.committed) problems.push(`${smaller.from}: not one invalid reveal`);
        if (entries.length !== 1 || entries[0]?.revealId !== invalid.id) {
          problems.push(`${smaller.from}: its invalid reveal is not its one entry`);
        }
        if (!verdict.accepted.some((a) => a.nodeId === smaller.from)) {
          problems.push(`${smaller.from}: not accepted`);
        }
        return smaller.committed ? 'valid first' : 'invalid first';
      });
      if (orders.sort().join() !== 'invalid first,valid first') {
        problems.push(`members with two reveals: ${orders.join()}, not one in each order`);
      }
      return problems;
    },
  },
  [NO_VALID_REVEAL_SPEC.name]: {
    description:
      '4 sealed nodes, secPercentage 0.6 (3 required), and no valid reveal. One member reveals another output ' +
      'than it committed to in the window and its committed output after it, another the other way round, ' +
      'each pair in the opposite packet id order: the smaller id is the considered reveal (COMMITMENT_MISMATCH ' +
      'for the first, REVEAL_LATE for the second), the other its DUPLICATE_REVEAL. One reveals an ' +
      'unaccepted model (MODEL_NOT_ACCEPTED), one never reveals (NOT_REVEALED), and a node outside the seal ' +
      'reveals (NOT_SEALED). No candidate: centre null, no consensus.',
    status: 'no-consensus',
    accepted: 0,
    reasons: [
      'COMMITMENT_MISMATCH',
      'DUPLICATE_REVEAL',
      'DUPLICATE_REVEAL',
      'MODEL_NOT_ACCEPTED',
      'NOT_REVEALED',
      'NOT_SEALED',
      'REVEAL_LATE',
    ],
    shows: (verdict, reveals) => {
      const problems = [...duplicateProblems(verdict, reveals), ...smallestIdProblems(verdict, reveals)];
      if (verdict.centre !== null || verdict.winner !== null) problems.push('a centre or a winner');
      const deadline = SEAL_TIME + (NO_VALID_REVEAL_SPEC.frame ?? defaultFrame()).revealWindowMs;
      const listed = revealPairs(reveals).map(([smaller, larger]) => {
        const reason = verdict.rejected.find((r) => r.revealId === smaller.id)?.reason;
        const lateFirst = smaller.createdAt > deadline;
        if (lateFirst === larger.createdAt > deadline || smaller.committed !== lateFirst) {
          problems.push(`${smaller.from}: not one tampered reveal in the window and one late`);
        }
        return `${lateFirst ? 'late' : 'tampered'} first: ${reason}`;
      });
      if (listed.sort().join() !== 'late first: REVEAL_LATE,tampered first: COMMITMENT_MISMATCH') {
        problems.push(`members with two reveals: ${listed.join()}`);
      }
      return problems;
    },
  },
  [REEMBEDDED_SPEC.name]: {
    description:
      '5 sealed nodes, secPercentage 0.6 (3 required), verified from the transcript alone (verdict) and with ' +
      "a verifier's re-embedded bits at a noise tolerance of 4 bits (reembedded.verdict). Re-embedded bits " +
      '2 bits from the claimed ones are within the tolerance, 4 bits are at it (not more than it: the reveal ' +
      'passes), 5 bits are beyond it (EMBEDDING_DISAGREES). That member claims the central bits: without ' +
      're-embedding it is the winner. A member without re-embedded bits is not re-checked and makes the ' +
      'quorum of 3; a late reveal whose re-embedding is another answer is REVEAL_LATE, the earlier check. ' +
      'Accepted both ways, with 4 and with 3.',
    status: 'accepted',
    accepted: 4,
    reasons: ['REVEAL_LATE'],
    reembedded: {
      status: 'accepted',
      accepted: 3,
      reasons: ['EMBEDDING_DISAGREES', 'REVEAL_LATE'],
      shows: (withBits, withoutBits, reveals) => {
        const problems: string[] = [];
        const tolerance = REEMBEDDED_SPEC.noiseToleranceBits ?? 0;
        const deadline = SEAL_TIME + (REEMBEDDED_SPEC.frame ?? defaultFrame()).revealWindowMs;
        const outcome = (r: RevealOf, verdict: Verdict): string =>
          verdict.accepted.some((a) => a.nodeId === r.from)
            ? 'accepted'
            : (verdict.rejected.find((x) => x.revealId === r.id)?.reason ?? 'unlisted');
        // In the window: one reveal each 2 bits within, at and 1 bit beyond the tolerance, one without bits.
        const inWindow = reveals
          .filter((r) => r.createdAt <= deadline)
          .map((r) => {
            const off = r.reembedded === null ? null : r.reembedded - tolerance;
            return `${off === null ? 'no bits' : `tolerance ${off < 0 ? '' : '+'}${off}`}: ${outcome(r, withBits)}`;
          })
          .sort();
        const wanted = [
          'no bits: accepted',
          'tolerance +0: accepted',
          'tolerance +1: EMBEDDING_DISAGREES',
          'tolerance -2: accepted',
        ];
        if (inWindow.join() !== wanted.join()) problems.push(`in the window: ${inWindow.join('; ')}`);
        const late = reveals.filter((r) => r.createdAt > deadline);
        if (
          late.length !== 1 ||
          !late.every((r) => (r.reembedded ?? 0) > tolerance && outcome(r, withBits) === 'REVEAL_LATE')
        ) {
          problems.push('not one late reveal, beyond the tolerance, listed REVEAL_LATE');
        }
        const disagrees = withBits.rejected.find((x) => x.reason === 'EMBEDDING_DISAGREES');
        if (withoutBits.winner?.nodeId !== disagrees?.nodeId) {
          problems.push('the reveal beyond the tolerance is not the winner without re-embedding');
        }
        return problems;
      },
    },
  },
};

function verdictProblems(verdict: Verdict, expected: VerdictExpectation): string[] {
  const reasons = verdict.rejected.map((r) => r.reason).sort();
  return verdict.status !== expected.status ||
    verdict.accepted.length !== expected.accepted ||
    canonicalJson(reasons) !== canonicalJson(expected.reasons)
    ? [`status ${verdict.status}, ${verdict.accepted.length} accepted, rejected ${reasons.join()}`]
    : [];
}

/**
 * Hamming distance between every two reveals' embeddings; null for two of different lengths (an
 * EMBEDDING_LENGTH reveal), between which no distance is defined.
 */
export function revealDistances(embeddings: readonly string[]): (number | null)[][] {
  return embeddings.map((a) =>
    embeddings.map((b) => (a.length === b.length ? hamming(fromHex(a), fromHex(b)) : null)),
  );
}

async function scenarioVector(spec: ScenarioSpec) {
  const scenario = await buildScenario(spec);
  // Built from the packets in reverse construction order: the transcript does not depend on it.
  const transcript: Transcript = buildTranscript([...scenario.packets].reverse());
  const check = await verifyTranscript(transcript);
  if (!check.ok) throw new Error(`scenario ${spec.name} does not verify: ${check.error.message}`);
  const expected = EXPECTATIONS[spec.name];
  if (expected === undefined) throw new Error(`scenario ${spec.name} has no expectation`);
  const committedOutput = new Map(scenario.commits.map((c, k) => [c.from, spec.members[k]?.output]));
  const revealsOf = transcript.packets.flatMap((p): RevealOf[] => {
    if (p.type !== 'reveal') return [];
    const id = packetId(p);
    const own = scenario.reembedded.get(id);
    return [
      {
        id,
        from: p.from,
        createdAt: p.body.createdAt,
        committed: (committedOutput.get(p.from) ?? p.body.output) === p.body.output,
        reembedded: own === undefined ? null : hamming(fromHex(p.body.bEmbedding), fromHex(own)),
      },
    ];
  });
  const problems = [
    ...verdictProblems(check.verdict, expected),
    ...(expected.shows?.(check.verdict, revealsOf) ?? []),
  ];
  const reembedded = await reembeddedVector(spec, scenario, transcript, revealsOf);
  if (reembedded !== undefined) {
    if (expected.reembedded === undefined) problems.push('no expectation of the re-embedded verdict');
    else {
      problems.push(
        ...verdictProblems(reembedded.verdict, expected.reembedded).map((p) => `re-embedded: ${p}`),
        ...expected.reembedded.shows(reembedded.verdict, check.verdict, revealsOf),
      );
    }
  } else if (expected.reembedded !== undefined) problems.push('no re-embedded verdict');
  if (problems.length > 0) {
    throw new Error(`scenario ${spec.name} no longer shows what it is meant to: ${canonicalJson(problems)}`);
  }
  const root = transcriptRoot(transcript);
  const seeds = [
    spec.coordinatorSeed,
    ...spec.members.map((m) => m.seed),
    ...(spec.outsiders ?? []).map((o) => o.seed),
  ];
  const nodes = await Promise.all(
    seeds.map(async (seed, i) => ({
      role: i === 0 ? 'coordinator' : i <= spec.members.length ? 'member' : 'outsider',
      seed: toHex(seedOf(seed)),
      nodeId: (await keyOf(seed)).nodeId,
    })),
  );
  const reveals = transcript.packets.filter((p) => p.type === 'reveal');
  return {
    name: spec.name,
    description: expected.description,
    nodes,
    transcript,
    packetIds: transcript.packets.map((p) => packetId(p)),
    leaves: transcript.packets.map((p) => merkleLeaf(p)),
    root,
    revealDistances: revealDistances(reveals.map((r) => r.body.bEmbedding)),
    verdict: check.verdict,
    verdictJcs: canonicalJson(check.verdict),
    verdictDigest: verdictDigest(check.verdict),
    ...(reembedded === undefined ? {} : { reembedded }),
  };
}

/** The second verdict of a scenario, by a verifier that embeds the outputs again (see README.md). */
interface ReembeddedVector {
  noiseToleranceBits: number;
  /** The verifier's bits per reveal id, in transcript order; a reveal without an entry has none. */
  reveals: { revealId: string; bits: string; distance: number }[];
  verdict: Verdict;
  verdictJcs: string;
  verdictDigest: string;
}

async function reembeddedVector(
  spec: ScenarioSpec,
  scenario: Scenario,
  transcript: Transcript,
  revealsOf: readonly RevealOf[],
): Promise<ReembeddedVector | undefined> {
  const noiseToleranceBits = spec.noiseToleranceBits;
  if (noiseToleranceBits === undefined) return undefined;
  const check = await verifyTranscript(transcript, { reembedded: scenario.reembedded, noiseToleranceBits });
  if (!check.ok) throw new Error(`scenario ${spec.name} does not verify re-embedded: ${check.error.message}`);
  return {
    noiseToleranceBits,
    reveals: revealsOf.flatMap((r) => {
      const bits = scenario.reembedded.get(r.id);
      return bits === undefined || r.reembedded === null
        ? []
        : [{ revealId: r.id, bits, distance: r.reembedded }];
    }),
    verdict: check.verdict,
    verdictJcs: canonicalJson(check.verdict),
    verdictDigest: verdictDigest(check.verdict),
  };
}

export async function generateVectors() {
  const scenarios = [];
  for (const spec of [
    AGREE_SPEC,
    NO_CONSENSUS_SPEC,
    CHEATERS_SPEC,
    INVALID_REVEALS_SPEC,
    CAPPED_SPEC,
    INVALID_FIRST_SPEC,
    NO_VALID_REVEAL_SPEC,
    REEMBEDDED_SPEC,
  ])
    scenarios.push(await scenarioVector(spec));
  const agreeVector = scenarios[0];
  if (agreeVector === undefined) throw new Error('no scenarios');
  const agree = await buildScenario(AGREE_SPEC);
  return {
    format: 'synod-test-vectors',
    version: 1,
    generator: 'shared/test-vectors/generate.ts',
    readme: 'shared/test-vectors/README.md',
    ...jcsVectors(),
    ...hashVectors(),
    nodeIds: await nodeIdVectors(),
    requestIds: requestIdVectors(),
    commitments: await commitmentVectors(),
    embeddings: embeddingVectors(),
    frame: frameVectors(),
    packets: await packetVectors(agree, {
      verdict: agreeVector.verdict,
      digest: agreeVector.verdictDigest,
      root: agreeVector.root,
    }),
    merkle: merkleVectors(),
    scenarios,
  };
}

export type Vectors = Awaited<ReturnType<typeof generateVectors>>;

/** The file text: two-space JSON and a final newline (what biome's JSON formatter keeps as is). */
export function renderVectors(vectors: Vectors): string {
  return `${JSON.stringify(vectors, null, 2)}\n`;
}

if (import.meta.main) {
  const text = renderVectors(await generateVectors());
  writeFileSync(VECTORS_PATH, text);
  console.log(`wrote ${VECTORS_PATH.pathname} (${text.length} bytes)`);
}
