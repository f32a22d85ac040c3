/**
 * verifyTranscript: recompute a verdict from a transcript received from anywhere (a relay, the chain
 * history, a peer), trusting nothing in it.
 *
 * The checks run in stages; each stage reports every problem it finds (not just the first), and a
 * stage runs only when the ones before it passed, since later checks need their results:
 *   1. shape       `{v: 1, requestId, packets[]}` with no other field; at most 386 packets
 *                  (1 request + 128 commits + 1 seal + 256 reveals).            -> TRANSCRIPT_INVALID
 *   2. packets     every packet through `parseEnvelope` (envelope, version, body schema, unknown fields,
 *                  request-id derivation) and canonical encoding (ENCODING_INVALID for a lone surrogate);
 *                  only request/commit/seal/reveal types.                      -> TRANSCRIPT_INVALID
 *                  (each issue carries the packet-level code, e.g. PACKET_UNKNOWN_FIELD)
 *   3. signatures  EVERY signature, all at once (Promise.all), over `signedBytes`. -> PACKET_BAD_SIGNATURE
 *                  Signatures come before cross-packet checks: a packet its `from` did not sign is not
 *                  evidence of anything, and that is the most precise thing to say about it.
 *   4. composition canonical order and no duplicate ids; exactly one request and one seal, at most 128
 *                  commits and 256 reveals (as buildTranscript enforces); every packet
 *                  of the transcript's requestId; the seal signed by the coordinator (request.from) and
 *                  naming the request packet id; for every seal member, its commit packet present,
 *                  signed by that member, with the sealed commitment.         -> TRANSCRIPT_INVALID
 *   5. verdict     the root, then `computeVerdict` over (request, seal, reveals); compared with
 *                  `expectedRoot` (-> TRANSCRIPT_INVALID) and `expectedVerdictDigest`
 *                  (-> VERDICT_MISMATCH, with the recomputed verdict in the details).
 * Commits that the seal does not name, and reveals from nodes outside the seal, may be present: they
 * are evidence (the verdict rejects such reveals as NOT_SEALED); the size bound caps them.
 *
 * There are no clock checks: transcripts are verified long after the fact, so `createdAt` is only used
 * the way the verdict uses it (relative to the seal), never against a "now".
 *
 * The result is a value, not an exception: `{ ok: true, ... }` or `{ ok: false, error }` where `error`
 * is a SynodError whose `details.issues` lists every problem of the failing stage. A SynodError thrown
 * by `computeVerdict` itself (e.g. EMBEDDING_INVALID for malformed `reembedded` bits) is returned as the
 * error unchanged. Errors that are not SynodErrors (bugs) are not swallowed.
 */
import { computeVerdict, verdictDigest } from '../consensus/verdict.ts';
import { fromHex } from '../encoding/bytes.ts';
import { type ErrorCode, isSynodError, SynodError } from '../errors.ts';
import { defaultEd25519, type Ed25519Backend } from '../identity/ed25519.ts';
import { verifySignature } from '../identity/node-key.ts';
import { type PacketEncodings, packetEncodings, parseEnvelope } from '../packets/envelope.ts';
import { LIMITS } from '../packets/limits.ts';
import type { AnyPacket, Packet, RequestBody, Verdict } from '../packets/schemas.ts';
import { merkleLeafHash, merkleRoot } from './merkle.ts';
import {
  compareTranscriptEntries,
  isTranscriptType,
  TRANSCRIPT_LIMITS,
  TRANSCRIPT_TYPES,
  type Transcript,
  type TranscriptPacket,
} from './transcript.ts';

/**
 * The latest date a seal of `request` may carry and still verify (SEAL_LATE): its createdAt + maxTimeMs
 * + the default skew window, the margin the protocol leaves a seal timer that fires late.
 */
export function latestSealAt(request: Pick<RequestBody, 'createdAt' | 'frame'>): number {
  return request.createdAt + request.frame.maxTimeMs + LIMITS.defaultSkewMs;
}

export interface VerifyTranscriptOptions {
  /** Ed25519 back end; `defaultEd25519()` when absent. */
  backend?: Ed25519Backend;
  /** Verifier's own re-embeddings, passed to `computeVerdict` (see consensus/verdict.ts). */
  reembedded?: ReadonlyMap<string, string>;
  /** Noise tolerance for re-embeddings, passed to `computeVerdict`. */
  noiseToleranceBits?: number;
  /** The verdict digest someone claims for this transcript (a verdict packet, the chain). */
  expectedVerdictDigest?: string;
  /** The transcript root someone claims for this transcript. */
  expectedRoot?: string;
}

/** Which check an issue comes from. */
export type TranscriptIssueCheck =
  | 'SHAPE'
  | 'TOO_MANY_PACKETS'
  | 'PACKET_INVALID'
  | 'NOT_A_TRANSCRIPT_TYPE'
  | 'BAD_SIGNATURE'
  | 'DUPLICATE_PACKET'
  | 'NOT_CANONICAL_ORDER'
  | 'REQUEST_COUNT'
  | 'SEAL_COUNT'
  | 'REQUEST_ID_MISMATCH'
  | 'SEAL_NOT_BY_COORDINATOR'
  | 'SEAL_WRONG_REQUEST'
  | 'SEAL_SIZE'
  | 'SEAL_BEFORE_REQUEST'
  | 'SEAL_LATE'
  | 'SEALED_COMMIT_MISSING'
  | 'SEALED_COMMIT_WRONG_SIGNER'
  | 'SEALED_COMMIT_WRONG_COMMITMENT'
  | 'ROOT_MISMATCH'
  | 'VERDICT_DIGEST_MISMATCH';

export interface TranscriptIssue {
  check: TranscriptIssueCheck;
  message: string;
  /** The packet-level error code, for issues raised by `parseEnvelope`. */
  code?: ErrorCode;
  /** Position in `packets`. */
  index?: number;
  packetId?: string;
  type?: string;
  from?: string;
  [key: string]: unknown;
}

export type TranscriptCheck =
  | {
      ok: true;
      verdict: Verdict;
      verdictDigest: string;
      root: string;
      requestId: string;
      /** The transcript as parsed (typed packets, canonical order). */
      transcript: Transcript;
    }
  | { ok: false; error: SynodError };

const SHAPE_KEYS = ['v', 'requestId', 'packets'] as const;

function fail(code: ErrorCode, message: string, issues: TranscriptIssue[], extra?: Record<string, unknown>) {
  return {
    ok: false as const,
    error: new SynodError(code, message, {
      details: { ...extra, issues },
      hint:
        code === 'PACKET_BAD_SIGNATURE'
          ? 'the listed packets were not signed by their `from`; the transcript cannot be trusted'
          : code === 'VERDICT_MISMATCH'
            ? 'the recomputed verdict is in details.verdict; compare it with the claimed one'
            : 'see details.issues for every problem found',
    }),
  };
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** Stage 1: the transcript object itself. */
function checkShape(input: unknown): TranscriptIssue[] | { requestId: string; packets: unknown[] } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return [{ check: 'SHAPE', message: 'a transcript is an object {v, requestId, packets}' }];
  }
  const record = input as Record<string, unknown>;
  const issues: TranscriptIssue[] = [];
  const unknown = Object.keys(record).filter((k) => !(SHAPE_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    issues.push({ check: 'SHAPE', message: `unknown field(s): ${unknown.join(', ')}`, keys: unknown });
  }
  if (record['v'] !== 1) issues.push({ check: 'SHAPE', message: 'v must be 1', v: record['v'] });
  if (typeof record['requestId'] !== 'string') {
    issues.push({ check: 'SHAPE', message: 'requestId must be a string' });
  }
  const packets = record['packets'];
  if (!Array.isArray(packets)) {
    issues.push({ check: 'SHAPE', message: 'packets must be an array' });
  } else if (packets.length > TRANSCRIPT_LIMITS.maxPackets) {
    issues.push({
      check: 'TOO_MANY_PACKETS',
      message: `${packets.length} packets exceed the bound of ${TRANSCRIPT_LIMITS.maxPackets}`,
      count: packets.length,
      limit: TRANSCRIPT_LIMITS.maxPackets,
    });
  }
  if (issues.length > 0) return issues;
  return { requestId: record['requestId'] as string, packets: packets as unknown[] };
}

/**
 * Stage 2: every packet, structurally, and its canonical encodings (one canonicalization serves its
 * signature check, its id and its Merkle leaf). A packet that parses but has no canonical bytes (a lone
 * surrogate, which JSON text can spell as `"\ud800"`) is an issue like any other: ENCODING_INVALID.
 */
function checkPackets(raw: readonly unknown[]): {
  issues: TranscriptIssue[];
  packets: TranscriptPacket[];
  encodings: PacketEncodings[];
} {
  const issues: TranscriptIssue[] = [];
  const packets: TranscriptPacket[] = [];
  const encodings: PacketEncodings[] = [];
  raw.forEach((item, index) => {
    let packet: AnyPacket;
    let encoded: PacketEncodings;
    try {
      packet = parseEnvelope(item);
      encoded = packetEncodings(packet);
      // A packet no node takes (nor signs): over the protocol's bound in its canonical wire form.
      if (encoded.wire.length > LIMITS.maxPacketBytes) {
        throw new SynodError(
          'PACKET_TOO_LARGE',
          `packet of ${encoded.wire.length} bytes exceeds ${LIMITS.maxPacketBytes}`,
          { details: { size: encoded.wire.length, limit: LIMITS.maxPacketBytes } },
        );
      }
    } catch (e) {
      if (!isSynodError(e)) throw e;
      issues.push({ check: 'PACKET_INVALID', code: e.code, message: e.message, index, details: e.details });
      return;
    }
    if (!isTranscriptType(packet.type)) {
      issues.push({
        check: 'NOT_A_TRANSCRIPT_TYPE',
        message: `a ${packet.type} packet is not part of a transcript (allowed: ${TRANSCRIPT_TYPES.join(', ')})`,
        index,
        type: packet.type,
        packetId: encoded.id,
      });
      return;
    }
    packets.push(packet as TranscriptPacket);
    encodings.push(encoded);
  });
  return { issues, packets, encodings };
}

/** Stage 3: every signature, concurrently; all failures listed. */
async function checkSignatures(
  packets: readonly TranscriptPacket[],
  encodings: readonly PacketEncodings[],
  backend: Ed25519Backend,
): Promise<TranscriptIssue[]> {
  const ids = encodings.map((e) => e.id);
  const results = await Promise.all(
    packets.map((p, i) =>
      verifySignature(p.from, (encodings[i] as PacketEncodings).signed, fromHex(p.sig), backend),
    ),
  );
  const issues: TranscriptIssue[] = [];
  results.forEach((ok, index) => {
    if (ok) return;
    const p = packets[index] as TranscriptPacket;
    issues.push({
      check: 'BAD_SIGNATURE',
      message: `signature of ${p.type} packet ${index} does not verify under its from key`,
      index,
      packetId: ids[index] as string,
      type: p.type,
      from: p.from,
    });
  });
  return issues;
}

interface Composition {
  request: Packet<'request'>;
  seal: Packet<'seal'>;
  sealId: string;
  reveals: { id: string; packet: Packet<'reveal'> }[];
}

/** Stage 4: how the packets fit together. */
function checkComposition(
  requestId: string,
  packets: readonly TranscriptPacket[],
  ids: readonly string[],
): TranscriptIssue[] | Composition {
  const issues: TranscriptIssue[] = [];
  const byId = new Map<string, { index: number; packet: TranscriptPacket }>();
  packets.forEach((p, index) => {
    const id = ids[index] as string;
    if (byId.has(id)) {
      issues.push({
        check: 'DUPLICATE_PACKET',
        message: `packet ${index} repeats packet ${byId.get(id)?.index}`,
        index,
        packetId: id,
        type: p.type,
      });
    } else {
      byId.set(id, { index, packet: p });
    }
    const prev = packets[index - 1];
    if (
      prev !== undefined &&
      compareTranscriptEntries({ type: prev.type, id: ids[index - 1] as string }, { type: p.type, id }) > 0
    ) {
      issues.push({
        check: 'NOT_CANONICAL_ORDER',
        message: `packet ${index} sorts before packet ${index - 1} (order: type rank, then packet id)`,
        index,
        packetId: id,
        type: p.type,
      });
    }
    if (p.body.requestId !== requestId) {
      issues.push({
        check: 'REQUEST_ID_MISMATCH',
        message: `packet ${index} is for request ${p.body.requestId}, not ${requestId}`,
        index,
        packetId: id,
        type: p.type,
      });
    }
  });

  const indexed = packets.map((packet, index) => ({ packet, index, id: ids[index] as string }));
  const requests = indexed.filter((e) => e.packet.type === 'request');
  const seals = indexed.filter((e) => e.packet.type === 'seal');
  if (requests.length !== 1) {
    issues.push({
      check: 'REQUEST_COUNT',
      message: `a transcript has exactly one request packet, this one has ${requests.length}`,
      count: requests.length,
    });
  }
  if (seals.length !== 1) {
    issues.push({
      check: 'SEAL_COUNT',
      message: `a transcript has exactly one seal packet, this one has ${seals.length}`,
      count: seals.length,
    });
  }
  for (const [type, limit] of [
    ['commit', TRANSCRIPT_LIMITS.maxCommits],
    ['reveal', TRANSCRIPT_LIMITS.maxReveals],
  ] as const) {
    const count = indexed.filter((e) => e.packet.type === type).length;
    if (count > limit) {
      issues.push({
        check: 'TOO_MANY_PACKETS',
        message: `${count} ${type} packets exceed the bound of ${limit}`,
        type,
        count,
        limit,
      });
    }
  }
  const requestEntry = requests[0];
  const sealEntry = seals[0];
  if (requestEntry === undefined || sealEntry === undefined || requests.length + seals.length !== 2) {
    return issues;
  }
  const request = requestEntry.packet as Packet<'request'>;
  const seal = sealEntry.packet as Packet<'seal'>;

  if (seal.from !== request.from) {
    issues.push({
      check: 'SEAL_NOT_BY_COORDINATOR',
      message: 'the seal is not signed by the coordinator that signed the request',
      index: sealEntry.index,
      packetId: sealEntry.id,
      from: seal.from,
      coordinator: request.from,
    });
  }
  if (seal.body.requestPacketId !== requestEntry.id) {
    issues.push({
      check: 'SEAL_WRONG_REQUEST',
      message: 'the seal names another request packet',
      index: sealEntry.index,
      packetId: sealEntry.id,
      requestPacketId: seal.body.requestPacketId,
      expected: requestEntry.id,
    });
  }
  // The frame's rules of a seal: a coordinator seals at least `quorum` commits (with fewer it fails the
  // request) and at most `maxCommits` (early close). A seal outside them is no quorum: one sybil member
  // would otherwise make an accepted verdict.
  const { quorum, maxCommits } = request.body.frame;
  const size = seal.body.members.length;
  if (size < quorum || size > maxCommits) {
    issues.push({
      check: 'SEAL_SIZE',
      message: `the seal has ${size} members; the frame asks for ${quorum} to ${maxCommits}`,
      index: sealEntry.index,
      packetId: sealEntry.id,
      size,
      quorum,
      maxCommits,
    });
  }
  // Both are the coordinator's clock: a seal cannot come before the request it seals.
  if (seal.body.createdAt < request.body.createdAt) {
    issues.push({
      check: 'SEAL_BEFORE_REQUEST',
      message: 'the seal is dated before the request',
      index: sealEntry.index,
      packetId: sealEntry.id,
      sealCreatedAt: seal.body.createdAt,
      requestCreatedAt: request.body.createdAt,
    });
  }
  // A coordinator seals at maxTimeMs at the latest (a timer that fires late under load, so with the
  // skew window's tolerance): a seal far past it sealed commits the frame no longer allowed.
  const sealBy = latestSealAt(request.body);
  if (seal.body.createdAt > sealBy) {
    issues.push({
      check: 'SEAL_LATE',
      message: `the seal is dated ${seal.body.createdAt - request.body.createdAt} ms after the request, past its maxTimeMs and the skew window`,
      index: sealEntry.index,
      packetId: sealEntry.id,
      sealCreatedAt: seal.body.createdAt,
      latest: sealBy,
    });
  }
  for (const member of seal.body.members) {
    const commit = byId.get(member.commitId);
    if (commit === undefined || commit.packet.type !== 'commit') {
      issues.push({
        check: 'SEALED_COMMIT_MISSING',
        message: `the commit ${member.commitId} sealed for node ${member.nodeId} is not in the transcript`,
        packetId: member.commitId,
        nodeId: member.nodeId,
      });
      continue;
    }
    if (commit.packet.from !== member.nodeId) {
      issues.push({
        check: 'SEALED_COMMIT_WRONG_SIGNER',
        message: `the commit sealed for node ${member.nodeId} is signed by ${commit.packet.from}`,
        index: commit.index,
        packetId: member.commitId,
        from: commit.packet.from,
        nodeId: member.nodeId,
      });
    }
    if (commit.packet.body.commitment !== member.commitment) {
      issues.push({
        check: 'SEALED_COMMIT_WRONG_COMMITMENT',
        message: `the seal lists another commitment than node ${member.nodeId} committed to`,
        index: commit.index,
        packetId: member.commitId,
        nodeId: member.nodeId,
        sealed: member.commitment,
        committed: commit.packet.body.commitment,
      });
    }
  }
  if (issues.length > 0) return issues;
  return {
    request,
    seal,
    sealId: sealEntry.id,
    reveals: indexed
      .filter((e) => e.packet.type === 'reveal')
      .map((e) => ({ id: e.id, packet: e.packet as Packet<'reveal'> })),
  };
}

/**
 * Re-derive the verdict of a transcript and check everything that supports it. See the file header for
 * the stages and the error code each reports.
 */
export async function verifyTranscript(
  input: unknown,
  options: VerifyTranscriptOptions = {},
): Promise<TranscriptCheck> {
  const shape = checkShape(input);
  if (Array.isArray(shape)) return fail('TRANSCRIPT_INVALID', 'the transcript is malformed', shape);
  const { requestId } = shape;

  const { issues: packetIssues, packets, encodings } = checkPackets(shape.packets);
  if (packetIssues.length > 0) {
    return fail(
      'TRANSCRIPT_INVALID',
      `${plural(packetIssues.length, 'packet')} of the transcript ${packetIssues.length === 1 ? 'is' : 'are'} invalid`,
      packetIssues,
      { requestId },
    );
  }
  const ids = encodings.map((e) => e.id);

  const backend = options.backend ?? (await defaultEd25519());
  const badSignatures = await checkSignatures(packets, encodings, backend);
  if (badSignatures.length > 0) {
    return fail(
      'PACKET_BAD_SIGNATURE',
      `${plural(badSignatures.length, 'signature')} in the transcript ${badSignatures.length === 1 ? 'does' : 'do'} not verify`,
      badSignatures,
      { requestId },
    );
  }

  const composed = checkComposition(requestId, packets, ids);
  if (Array.isArray(composed)) {
    return fail(
      'TRANSCRIPT_INVALID',
      `the transcript is inconsistent (${plural(composed.length, 'issue')})`,
      composed,
      { requestId },
    );
  }

  const root = merkleRoot(encodings.map((e) => merkleLeafHash(e.wire)));
  let verdict: Verdict;
  try {
    verdict = computeVerdict({
      request: composed.request,
      seal: composed.seal,
      sealId: composed.sealId,
      reveals: composed.reveals,
      ...(options.reembedded === undefined ? {} : { reembedded: options.reembedded }),
      ...(options.noiseToleranceBits === undefined ? {} : { noiseToleranceBits: options.noiseToleranceBits }),
    });
  } catch (e) {
    if (isSynodError(e)) return { ok: false, error: e };
    throw e;
  }
  const digest = verdictDigest(verdict);

  const mismatches: TranscriptIssue[] = [];
  if (options.expectedRoot !== undefined && options.expectedRoot !== root) {
    mismatches.push({
      check: 'ROOT_MISMATCH',
      message: 'the transcript root differs from the expected root',
      expected: options.expectedRoot,
      actual: root,
    });
  }
  if (options.expectedVerdictDigest !== undefined && options.expectedVerdictDigest !== digest) {
    mismatches.push({
      check: 'VERDICT_DIGEST_MISMATCH',
      message: 'the recomputed verdict digest differs from the expected digest',
      expected: options.expectedVerdictDigest,
      actual: digest,
    });
  }
  if (mismatches.length > 0) {
    const rootWrong = mismatches.some((m) => m.check === 'ROOT_MISMATCH');
    return fail(
      rootWrong ? 'TRANSCRIPT_INVALID' : 'VERDICT_MISMATCH',
      rootWrong
        ? 'the transcript is not the one the expected root commits to'
        : 'the transcript yields another verdict than expected',
      mismatches,
      { requestId, root, verdictDigest: digest, verdict },
    );
  }

  return {
    ok: true,
    verdict,
    verdictDigest: digest,
    root,
    requestId,
    transcript: { v: 1, requestId, packets },
  };
}
