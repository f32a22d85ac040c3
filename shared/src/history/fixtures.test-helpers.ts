/**
 * Test fixtures of the history tests: real signed packets of complete request histories, built with
 * the protocol's own signing, request-id and commitment code, so every row the tests store is one the
 * edge could store.
 */
import { computeCommitment, outputDigest } from '../commitment/commitment.ts';
import { canonicalBytes } from '../encoding/canonical.ts';
import { sha256Hex } from '../encoding/hash.ts';
import { type Frame, resolveFrame } from '../frame/frame.ts';
import { NodeKey } from '../identity/node-key.ts';
import { packetId, signPacket } from '../packets/envelope.ts';
import { deriveRequestId } from '../packets/request-id.ts';
import {
  type ChatMessage,
  type ModelRef,
  type Origin,
  type Packet,
  type PacketType,
  type RequestBody,
  type Verdict,
  VerdictSchema,
} from '../packets/schemas.ts';
import type { StoredPacket } from './rows.ts';

export const T0 = 1_800_000_000_000;

export const LLAMA: ModelRef = { id: 'llama-3.2-1b-q4', fileHash: 'a1'.repeat(32) };
export const QWEN: ModelRef = { id: 'qwen2.5-0.5b-q8', fileHash: 'b2'.repeat(32) };

export const FRAME: Frame = resolveFrame({
  quorum: 3,
  maxCommits: 3,
  secDistance: 0.15,
  secPercentage: 0.6,
  embeddingModel: { id: 'use-lite-512', fileHash: 'c3'.repeat(32), bits: 64 },
});

/** Deterministic keys: seed byte `n` repeated. */
export function seedKey(n: number): Promise<NodeKey> {
  return NodeKey.fromSeed(new Uint8Array(32).fill(n));
}

export async function stored<T extends PacketType>(
  key: NodeKey,
  type: T,
  body: Packet<T>['body'],
): Promise<StoredPacket<T>> {
  const packet = await signPacket(key, type, body);
  return { id: packetId(packet), packet };
}

export interface RequestOptions {
  createdAt: number;
  models: string[];
  nonce: number;
  prompt?: string;
  messages?: ChatMessage[];
  origin?: Origin;
}

export async function requestPacket(relay: NodeKey, o: RequestOptions): Promise<StoredPacket<'request'>> {
  const content: Omit<RequestBody, 'requestId'> = {
    nonce: o.nonce.toString(16).padStart(32, '0'),
    ...(o.messages ? { messages: o.messages } : { prompt: o.prompt ?? 'What is the capital of France?' }),
    acceptedModels: o.models,
    params: { temperature: 0, maxTokens: 32, seed: 7 },
    frame: FRAME,
    origin: o.origin ?? { kind: 'http' },
    createdAt: o.createdAt,
  };
  return stored(relay, 'request', { requestId: deriveRequestId(content), ...content });
}

export interface Answer {
  key: NodeKey;
  output: string;
  bEmbedding: string;
  salt: string;
}

/**
 * A complete history of one accepted request: three sealed members (A and B agree, C is outside the
 * cluster), a fourth node D that committed too late to be sealed and revealed anyway (NOT_SEALED),
 * the coordinator's verdict and two attestations.
 */
export async function acceptedHistory(relay: NodeKey, createdAt: number, nonce: number) {
  const [a, b, c, d] = await Promise.all([seedKey(1), seedKey(2), seedKey(3), seedKey(4)]);
  const request = await requestPacket(relay, { createdAt, models: [LLAMA.id, QWEN.id], nonce });
  const requestId = request.packet.body.requestId;
  const answers: Answer[] = [
    { key: a, output: 'Paris', bEmbedding: 'f0f0f0f0f0f0f0f0', salt: '11'.repeat(32) },
    { key: b, output: 'Paris.', bEmbedding: 'f0f0f0f0f0f0f0f1', salt: '22'.repeat(32) },
    { key: c, output: 'Lyon', bEmbedding: '0f0f0f0f0f0f0f0f', salt: '33'.repeat(32) },
    { key: d, output: 'Paris', bEmbedding: 'f0f0f0f0f0f0f0f0', salt: '44'.repeat(32) },
  ];
  const commitment = (x: Answer) =>
    computeCommitment({ requestId, nodeId: x.key.nodeId, model: LLAMA, ...x });
  const commits = await Promise.all(
    answers.map((x, i) =>
      stored(x.key, 'commit', { requestId, commitment: commitment(x), createdAt: createdAt + 100 + i * 10 }),
    ),
  );
  const sealed = commits.slice(0, 3);
  const seal = await stored(relay, 'seal', {
    requestId,
    requestPacketId: request.id,
    members: sealed
      .map((cp) => ({ nodeId: cp.packet.from, commitment: cp.packet.body.commitment, commitId: cp.id }))
      .sort((x, y) => (x.nodeId < y.nodeId ? -1 : 1)),
    createdAt: createdAt + 200,
  });
  const reveals = await Promise.all(
    answers.map((x, i) =>
      stored(x.key, 'reveal', {
        requestId,
        output: x.output,
        bEmbedding: x.bEmbedding,
        model: LLAMA,
        salt: x.salt,
        createdAt: createdAt + 300 + i * 10,
      }),
    ),
  );
  const [ra, rb, rc, rd] = reveals as [
    StoredPacket<'reveal'>,
    StoredPacket<'reveal'>,
    StoredPacket<'reveal'>,
    StoredPacket<'reveal'>,
  ];
  const ref = (x: Answer) => ({ nodeId: x.key.nodeId, commitment: commitment(x) });
  const [xa, xb, xc, xd] = answers as [Answer, Answer, Answer, Answer];
  const verdict: Verdict = VerdictSchema.parse({
    v: 1,
    requestId,
    sealId: seal.id,
    status: 'accepted',
    bits: 64,
    thresholdBits: 9,
    sealSize: 3,
    required: 2,
    centre: ref(xa),
    accepted: [ref(xa), ref(xb)],
    winner: { ...ref(xa), model: LLAMA, output: xa.output, outputDigest: outputDigest(xa.output) },
    rejected: [
      { ...ref(xc), revealId: rc.id, reason: 'OUTSIDE_CLUSTER' },
      { nodeId: xd.key.nodeId, commitment: null, revealId: rd.id, reason: 'NOT_SEALED' },
    ],
  });
  const verdictDigest = sha256Hex(canonicalBytes(verdict));
  const transcriptRoot = sha256Hex(canonicalBytes([request.id, ...commits.map((x) => x.id), seal.id]));
  const verdictPacket = await stored(relay, 'verdict', {
    requestId,
    verdict,
    verdictDigest,
    transcriptRoot,
    createdAt: createdAt + 400,
  });
  const attestations = await Promise.all(
    [b, c].map((k, i) =>
      stored(k, 'attestation', { requestId, verdictDigest, transcriptRoot, createdAt: createdAt + 500 + i }),
    ),
  );
  return {
    keys: { a, b, c, d },
    request,
    commits,
    seal,
    reveals: [ra, rb, rc, rd],
    verdict: verdictPacket,
    attestations,
  };
}

export type AcceptedHistory = Awaited<ReturnType<typeof acceptedHistory>>;

/** A no-consensus verdict over a seal of three, where one member never revealed. */
export function noConsensusVerdict(
  requestId: string,
  members: { nodeId: string; commitment: string }[],
): Verdict {
  const [m0, m1, m2] = members as [
    { nodeId: string; commitment: string },
    { nodeId: string; commitment: string },
    { nodeId: string; commitment: string },
  ];
  return VerdictSchema.parse({
    v: 1,
    requestId,
    sealId: 'e5'.repeat(32),
    status: 'no-consensus',
    bits: 64,
    thresholdBits: 9,
    sealSize: 3,
    required: 2,
    centre: null,
    accepted: [],
    winner: null,
    rejected: [
      { ...m0, revealId: 'd1'.repeat(32), reason: 'OUTSIDE_CLUSTER' },
      { ...m1, revealId: 'd2'.repeat(32), reason: 'COMMITMENT_MISMATCH' },
      { ...m2, revealId: null, reason: 'NOT_REVEALED' },
    ],
  });
}
