/**
 * Test helpers for consensus (never imported by production code): real Ed25519 keys from deterministic
 * seeds, real signed request, commit, seal and reveal packets, real commitments. A scenario is a
 * request sealed with one member per node spec; each member commits to its own output and bits and
 * (unless told not to) reveals them honestly.
 */
import { computeCommitment } from '../commitment/commitment.ts';
import { toHex, utf8 } from '../encoding/bytes.ts';
import { sha256, sha256Hex } from '../encoding/hash.ts';
import { type Frame, resolveFrame } from '../frame/frame.ts';
import { NodeKey } from '../identity/node-key.ts';
import { packetId, signPacket } from '../packets/envelope.ts';
import { deriveRequestId } from '../packets/request-id.ts';
import type { ModelRef, Packet, RequestBody, RevealBody, Verdict } from '../packets/schemas.ts';
import { seededRandom } from '../seeded-random.ts';
import type { ConsensusInput, RevealInput } from './verdict.ts';

export const T0 = 1_700_000_000_000;
export const SEAL_AT = T0 + 2_000;
export const REVEAL_AT = T0 + 3_000;

export const LLM: ModelRef = { id: 'stories260K', fileHash: sha256Hex(utf8('stories260K weights')) };
export const OTHER_LLM: ModelRef = { id: 'tinyllama-1.1b', fileHash: sha256Hex(utf8('tinyllama weights')) };
export const EMBEDDER = { id: 'test-embedder', fileHash: sha256Hex(utf8('test-embedder weights')) };

const keys = new Map<string, Promise<NodeKey>>();

/** The key whose seed is sha256("synod-test/" + label): same label, same key, every run. */
export function testKey(label: string): Promise<NodeKey> {
  let key = keys.get(label);
  if (key === undefined) {
    key = NodeKey.fromSeed(sha256(utf8(`synod-test/${label}`)));
    keys.set(label, key);
  }
  return key;
}

export function testSalt(label: string): string {
  return sha256Hex(utf8(`synod-test/salt/${label}`));
}

export async function signReveal(key: NodeKey, body: RevealBody): Promise<RevealInput> {
  const packet = await signPacket(key, 'reveal', body);
  return { id: packetId(packet), packet };
}

export interface NodeSpec {
  output: string;
  /** Packed bits; the frame's bit count unless the test wants a wrong length. */
  bits: Uint8Array;
  model?: ModelRef;
  /** Default true. */
  reveals?: boolean;
  revealAt?: number;
}

export interface ScenarioOptions {
  bits: number;
  nodes: readonly NodeSpec[];
  frame?: Partial<Omit<Frame, 'embeddingModel'>>;
  acceptedModels?: string[];
  /** Distinguishes keys, salts and the request nonce between scenarios. */
  label?: string;
}

export interface ScenarioNode {
  index: number;
  key: NodeKey;
  nodeId: string;
  commitment: string;
  commitId: string;
  /** The body this node committed to (createdAt = its reveal time). */
  revealBody: RevealBody;
  /** Its honest reveal, or null when it does not reveal. */
  reveal: RevealInput | null;
}

export interface Scenario {
  request: Packet<'request'>;
  requestPacketId: string;
  seal: Packet<'seal'>;
  sealId: string;
  frame: Frame;
  /** In spec order (not seal order). */
  nodes: ScenarioNode[];
  /** The honest reveals of the revealing nodes, in spec order. */
  reveals: RevealInput[];
  input(reveals?: readonly RevealInput[], extra?: Partial<ConsensusInput>): ConsensusInput;
}

export async function buildRequest(
  label: string,
  bits: number,
  frame: Partial<Omit<Frame, 'embeddingModel'>> = {},
  acceptedModels: string[] = [LLM.id],
): Promise<Packet<'request'>> {
  const content: Omit<RequestBody, 'requestId'> = {
    nonce: sha256Hex(utf8(`synod-test/nonce/${label}`)).slice(0, 32),
    prompt: 'What is the capital of France?',
    acceptedModels,
    params: { temperature: 0, maxTokens: 64 },
    frame: resolveFrame({ ...frame, embeddingModel: { ...EMBEDDER, bits } }),
    origin: { kind: 'http' },
    createdAt: T0,
  };
  const coordinator = await testKey(`${label}/coordinator`);
  return signPacket(coordinator, 'request', { ...content, requestId: deriveRequestId(content) });
}

export async function buildScenario(options: ScenarioOptions): Promise<Scenario> {
  const label = options.label ?? 'scenario';
  const request = await buildRequest(label, options.bits, options.frame, options.acceptedModels);
  const requestId = request.body.requestId;
  const requestPacketId = packetId(request);

  const nodes: ScenarioNode[] = [];
  for (const [index, spec] of options.nodes.entries()) {
    const key = await testKey(`${label}/node/${index}`);
    const revealBody: RevealBody = {
      requestId,
      output: spec.output,
      bEmbedding: toHex(spec.bits),
      model: spec.model ?? LLM,
      salt: testSalt(`${label}/${index}`),
      createdAt: spec.revealAt ?? REVEAL_AT,
    };
    const commitment = computeCommitment({ ...revealBody, nodeId: key.nodeId });
    const commit = await signPacket(key, 'commit', { requestId, commitment, createdAt: T0 + 1_000 });
    const reveal = spec.reveals === false ? null : await signReveal(key, revealBody);
    nodes.push({
      index,
      key,
      nodeId: key.nodeId,
      commitment,
      commitId: packetId(commit),
      revealBody,
      reveal,
    });
  }

  const members = nodes
    .map((n) => ({ nodeId: n.nodeId, commitment: n.commitment, commitId: n.commitId }))
    .sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
  const coordinator = await testKey(`${label}/coordinator`);
  const seal = await signPacket(coordinator, 'seal', {
    requestId,
    requestPacketId,
    members,
    createdAt: SEAL_AT,
  });
  const sealId = packetId(seal);
  const reveals = nodes.flatMap((n) => (n.reveal === null ? [] : [n.reveal]));

  return {
    request,
    requestPacketId,
    seal,
    sealId,
    frame: request.body.frame,
    nodes,
    reveals,
    input: (rs = reveals, extra = {}) => ({ request, seal, sealId, reveals: rs, ...extra }),
  };
}

/** A deterministic PRNG for vectors in example tests. */
export const prng = seededRandom;

export function randomBits(bits: number, random: () => number): Uint8Array {
  const out = new Uint8Array(bits / 8);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(random() * 256);
  return out;
}

/** A copy of `packed` with the given bit positions inverted (same bit order as embedding/binary.ts). */
export function flipBits(packed: Uint8Array, positions: Iterable<number>): Uint8Array {
  const out = packed.slice();
  for (const i of positions) out[i >> 3] = (out[i >> 3] as number) ^ (0x80 >> (i & 7));
  return out;
}

/** Positions [from, from + count). */
export function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + i);
}

export type Outcome = 'accepted' | Verdict['rejected'][number]['reason'];

/** A sealed member's one outcome (step 3 of verdict.ts), or undefined if the verdict has none. */
export function outcomeOf(verdict: Verdict, nodeId: string): Outcome | undefined {
  if (verdict.accepted.some((a) => a.nodeId === nodeId)) return 'accepted';
  return verdict.rejected.find((r) => r.nodeId === nodeId && r.reason !== 'DUPLICATE_REVEAL')?.reason;
}
