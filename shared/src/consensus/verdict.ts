/**
 * Consensus v1 (layer 4): the verdict of a request as a pure, synchronous, deterministic function of
 * `(request, seal, reveals)`. Any permutation of the same inputs yields a byte-identical verdict.
 *
 * Parameters, all exact integers (see frame.ts):
 *   bits          = request.frame.embeddingModel.bits
 *   thresholdBits = distanceThresholdBits(frame, bits)            floor(secDistance × bits)
 *   sealSize      = seal.members.length
 *   required      = requiredAgreement(frame, sealSize)            ceil(secPercentage × sealSize)
 *
 * 1. Inputs. The seal must close this request (same requestId, `requestPacketId` = packetId(request))
 *    and list each node once, else `SEAL_INVALID` is thrown: there is no verdict to form. Packet ids and
 *    signatures are the caller's (from verifyPacket) and are not recomputed. Reveals are deduplicated by
 *    packet id. Reveals whose requestId is not this request's (and packets that are not reveals) belong
 *    to no transcript of this request and are ignored entirely: they are not listed.
 *
 * 2. Validity. Each reveal gets the first failing check, in this fixed order, as its one reason:
 *      NOT_SEALED           `from` is not a seal member (commitment null);
 *      EMBEDDING_LENGTH     bEmbedding is not exactly bits/8 bytes of lowercase hex;
 *      MODEL_NOT_ACCEPTED   model.id is not in request.acceptedModels;
 *      COMMITMENT_MISMATCH  computeCommitment(requestId, from, model, output, bEmbedding, salt) is not
 *                           the sealed member's commitment (so a copier, who committed something else,
 *                           gains nothing: its commitment binds its own node id);
 *      REVEAL_LATE          createdAt > seal.createdAt + frame.revealWindowMs (the signed createdAt is
 *                           all consensus can see; intake enforces clock skew. An early reveal is not
 *                           rejected: clocks differ between nodes);
 *      EMBEDDING_DISAGREES  `reembedded` has bits for this reveal's output and they are more than
 *                           `noiseToleranceBits` (default 0) from the claimed bits. The bits for a
 *                           reveal's output are those of the member's reveal with the smallest id that
 *                           has an entry in `reembedded` and the same output (an embedding is a function
 *                           of the text: a member's reveals that pass the commitment all carry one
 *                           output, so one entry covers them all). Reveals without such an entry are
 *                           not re-checked.
 *
 * 3. One reveal per member. A member's *considered* reveal is its valid reveal with the smallest packet
 *    id (several valid reveals can only differ in createdAt and in finishReason, which no step reads:
 *    the commitment binds everything else) or,
 *    when none is valid, its reveal with the smallest packet id. Its other reveals are never counted;
 *    the one of them with the smallest id is listed as DUPLICATE_REVEAL as evidence, the rest are left
 *    to the transcript. A member with no reveal at all gets NOT_REVEALED (revealId null). So every
 *    sealed member has exactly one *outcome*: it is in `accepted`, or it has exactly one `rejected`
 *    entry whose reason is not DUPLICATE_REVEAL; in addition it may have one DUPLICATE_REVEAL entry.
 *    A member's `commitment` in any entry is the sealed one.
 *
 * 4. Cluster. For each valid considered reveal c, B(c) = {r valid : hamming(r, c) <= thresholdBits}
 *    (c included). The largest ball wins; ties go to the smallest commitment (lowercase hex, so string
 *    order is byte order). `centre` is that winning centre whenever there is a valid reveal, null
 *    otherwise, whatever the status.
 *      status 'accepted'      iff |B(centre)| >= required. Unrevealed and invalid members count against,
 *                             because required is taken from the seal size. `accepted` = B(centre);
 *                             every other valid reveal is OUTSIDE_CLUSTER.
 *      status 'no-consensus'  `accepted` = [] and `winner` = null; every valid reveal is listed as
 *                             OUTSIDE_CLUSTER (outside any accepted cluster), so the outcome accounting
 *                             of step 3 holds for every verdict. Read OUTSIDE_CLUSTER together with
 *                             `status`: under no-consensus it is not a fault of the node.
 *
 * 5. Winner (accepted only): the medoid of `accepted`, i.e. smallest sum of Hamming distances to the
 *    other accepted members; ties by the smallest hex of
 *    taggedHash('winner-tiebreak', utf8(requestId), commitment bytes). Never arrival order, never parseInt.
 *    `winner` carries that member's model, output and outputDigest(output).
 *
 * 6. Non-members. Each non-member node is listed at most once (NOT_SEALED, its smallest reveal id).
 *    Member entries are at most 2 × sealSize <= LIMITS.maxVerdictEntries; NOT_SEALED entries fill the
 *    remaining room in canonical order and the rest are left to the transcript, so a flood of
 *    unsealed reveals (free to make under fresh keys) cannot grow the verdict past its schema.
 *
 * 7. Order. `accepted` is sorted by commitment; `rejected` by nodeId, then revealId with null first.
 *
 * 8. Re-embedding claims. For every entry of `reembedded` that made a reveal EMBEDDING_DISAGREES, the
 *    verdict lists `{nodeId, revealId, bits}` (the entry's reveal id and bits) in `reembedded`, sorted by
 *    nodeId then revealId; the field is absent when there is none, so a verdict computed without
 *    re-embeddings, or where every re-embedding agreed, is byte for byte what it was before claims
 *    existed. `claimedReembeddings(verdict)` turns them back into a `reembedded` map: computeVerdict
 *    over the same reveals and that map, with tolerance 0, yields the same verdict whatever tolerance the
 *    author used (a claim is only listed when it is more than the tolerance, so at least 1 bit, away).
 *    So a verifier recomputes a re-embedding coordinator's verdict from the transcript and the verdict
 *    alone; whether its claims are the text's embedding only a re-embedding can tell.
 *
 * The verdict parses with VerdictSchema for every seal within LIMITS.maxSealMembers (the seal schema's
 * own bound). computeVerdict does not re-apply packet schemas, so benchmarks may use larger seals.
 *
 * Distances are computed once as an n×n matrix for the valid considered reveals; ball sizes and medoid
 * sums both read it. The work runs on the fastest HammingKernel the runtime has (embedding/kernel.ts:
 * WebAssembly when it loads, else plain JS); every kernel yields the same integers, so the verdict
 * never depends on which one ran.
 */
import { outputDigest } from '../commitment/commitment.ts';
import { hamming, PackedMatrix } from '../embedding/binary.ts';
import { type HammingKernel, hammingKernel } from '../embedding/kernel.ts';
import { compareStrings, fromHex, toHex, tryFromHex, utf8 } from '../encoding/bytes.ts';
import { canonicalBytes, canonicalJson } from '../encoding/canonical.ts';
import { taggedHash } from '../encoding/hash.ts';
import { SynodError } from '../errors.ts';
import { distanceThresholdBits, requiredAgreement } from '../frame/frame.ts';
import { packetId } from '../packets/envelope.ts';
import { LIMITS } from '../packets/limits.ts';
import type { Packet, ReembeddingClaim, RejectReason, SealMember, Verdict } from '../packets/schemas.ts';
import { memberRevealFault } from './rejected-before-bits.ts';

export interface RevealInput {
  /** Packet id of the reveal (packetId(packet)). */
  id: string;
  packet: Packet<'reveal'>;
}

export interface ConsensusInput {
  request: Packet<'request'>;
  seal: Packet<'seal'>;
  /** Packet id of the seal. */
  sealId: string;
  /** Signatures already verified by the caller; any order; may hold non-members, duplicates, garbage. */
  reveals: readonly RevealInput[];
  /**
   * Reveal packet id -> packed bits (hex) of that reveal's output from a run of the frame's embedder
   * (the verifier's own, or a verdict's claims: `claimedReembeddings`). Covers the member's other reveals
   * with the same output (step 2).
   */
  reembedded?: ReadonlyMap<string, string>;
  /** With `reembedded`: largest Hamming distance between claimed and re-embedded bits. Default 0. */
  noiseToleranceBits?: number;
}

type VerdictRejection = Verdict['rejected'][number];
type MemberRef = Verdict['accepted'][number];

/** A reveal after the validity checks of step 2. */
interface CheckedReveal {
  id: string;
  packet: Packet<'reveal'>;
  /** Null when valid. */
  reason: RejectReason | null;
  /** Decoded claimed bits, set once the length check has passed. */
  bytes: Uint8Array | null;
}

interface MemberState {
  member: SealMember;
  reveals: CheckedReveal[];
  /** The member's reveals before the checks of step 2. */
  received: RevealInput[];
}

/** A member whose considered reveal is valid: a row of the clustering. */
interface Candidate {
  nodeId: string;
  commitment: string;
  reveal: CheckedReveal;
  bytes: Uint8Array;
}

export function computeVerdict(input: ConsensusInput): Verdict {
  const request = input.request.body;
  const seal = input.seal.body;
  const frame = request.frame;
  const requestId = request.requestId;

  if (seal.requestId !== requestId) {
    throw new SynodError('SEAL_INVALID', 'the seal closes a different request', {
      details: { sealRequestId: seal.requestId, requestId },
    });
  }
  const requestPacketId = packetId(input.request);
  if (seal.requestPacketId !== requestPacketId) {
    throw new SynodError('SEAL_INVALID', 'the seal names a different request packet', {
      details: { sealRequestPacketId: seal.requestPacketId, requestPacketId },
      hint: 'pass the request packet whose packet id the seal carries',
    });
  }

  const bits = frame.embeddingModel.bits;
  const byteLength = bits / 8;
  const thresholdBits = distanceThresholdBits(frame, bits);
  const sealSize = seal.members.length;
  const required = requiredAgreement(frame, sealSize);
  const reembedded = input.reembedded;
  const tolerance = input.noiseToleranceBits ?? 0;
  if (!Number.isInteger(tolerance) || tolerance < 0) {
    throw new SynodError('EMBEDDING_INVALID', `noiseToleranceBits must be a whole number >= 0`, {
      details: { noiseToleranceBits: tolerance },
    });
  }

  const members = new Map<string, MemberState>();
  for (const member of seal.members) {
    if (members.has(member.nodeId)) {
      throw new SynodError('SEAL_INVALID', 'the seal lists a node twice', {
        details: { nodeId: member.nodeId },
      });
    }
    members.set(member.nodeId, { member, reveals: [], received: [] });
  }

  // Step 1: one reveal per packet id, for this request only.
  const byId = new Map<string, RevealInput>();
  for (const r of input.reveals) {
    if (r.packet.type !== 'reveal' || r.packet.body.requestId !== requestId) continue;
    const seen = byId.get(r.id);
    // Equal ids mean equal packets when ids are honest; if a caller mixes them up, still pick by content.
    if (
      seen === undefined ||
      (seen.packet !== r.packet && canonicalJson(r.packet) < canonicalJson(seen.packet))
    ) {
      byId.set(r.id, r);
    }
  }

  // Step 2: validity. Non-members are kept aside, one (smallest id) per node.
  const nonMembers = new Map<string, string>();
  for (const r of byId.values()) {
    const state = members.get(r.packet.from);
    if (state === undefined) {
      const seen = nonMembers.get(r.packet.from);
      if (seen === undefined || r.id < seen) nonMembers.set(r.packet.from, r.id);
      continue;
    }
    state.received.push(r);
  }
  /** Re-embedding claims made by the checks, by the id of the entry they come from. */
  const claims = new Map<string, ReembeddingClaim>();
  for (const state of members.values()) {
    const own = reembedded === undefined ? null : ownBits(state.received, reembedded);
    for (const { id, packet } of state.received) {
      state.reveals.push(checkReveal(id, packet, state.member, own?.get(packet.body.output)));
    }
  }

  function checkReveal(
    id: string,
    packet: Packet<'reveal'>,
    member: SealMember,
    own: { id: string; bits: string } | undefined,
  ): CheckedReveal {
    const checked: CheckedReveal = {
      id,
      packet,
      reason: memberRevealFault(request, seal, member, packet),
      bytes: null,
    };
    if (checked.reason === 'EMBEDDING_LENGTH') return checked;
    // Bits of the frame's length, checked just now.
    const bytes = tryFromHex(packet.body.bEmbedding, byteLength) as Uint8Array;
    checked.bytes = bytes;
    if (checked.reason === null && own !== undefined) {
      const ownBytes = tryFromHex(own.bits, byteLength);
      if (ownBytes === null) {
        throw new SynodError(
          'EMBEDDING_INVALID',
          `re-embedded bits for reveal ${own.id} are not ${bits} bits`,
          {
            details: { revealId: own.id, bits },
          },
        );
      }
      if (hamming(bytes, ownBytes) > tolerance) {
        checked.reason = 'EMBEDDING_DISAGREES';
        claims.set(own.id, { nodeId: packet.from, revealId: own.id, bits: own.bits });
      }
    }
    return checked;
  }

  // Step 3: one considered reveal per member.
  const rejected: VerdictRejection[] = [];
  const candidates: Candidate[] = [];
  for (const { member, reveals } of members.values()) {
    const { nodeId, commitment } = member;
    if (reveals.length === 0) {
      rejected.push({ nodeId, commitment, revealId: null, reason: 'NOT_REVEALED' });
      continue;
    }
    let considered: CheckedReveal | undefined;
    for (const r of reveals) {
      if (considered === undefined || isBetterConsidered(r, considered)) considered = r;
    }
    const chosen = considered as CheckedReveal;
    let duplicate: CheckedReveal | undefined;
    for (const r of reveals) {
      if (r !== chosen && (duplicate === undefined || r.id < duplicate.id)) duplicate = r;
    }
    if (duplicate !== undefined) {
      rejected.push({ nodeId, commitment, revealId: duplicate.id, reason: 'DUPLICATE_REVEAL' });
    }
    if (chosen.reason !== null) {
      rejected.push({ nodeId, commitment, revealId: chosen.id, reason: chosen.reason });
    } else {
      candidates.push({ nodeId, commitment, reveal: chosen, bytes: chosen.bytes as Uint8Array });
    }
  }

  // Step 4: cluster the valid considered reveals, rows in commitment order.
  candidates.sort(compareCandidates);
  let status: Verdict['status'] = 'no-consensus';
  let centre: MemberRef | null = null;
  let winner: Verdict['winner'] = null;
  const accepted: MemberRef[] = [];
  if (candidates.length > 0) {
    const matrix = new PackedMatrix(candidates.map((c) => c.bytes));
    const clustering = clusterByHamming(
      matrix,
      thresholdBits,
      candidates.map((c) => c.commitment),
      requestId,
    );
    const c = candidates[clustering.centre] as Candidate;
    centre = { nodeId: c.nodeId, commitment: c.commitment };
    const inBall = new Uint8Array(candidates.length);
    if (clustering.ball.length >= required) {
      status = 'accepted';
      for (const i of clustering.ball) inBall[i] = 1;
      const w = candidates[clustering.medoid] as Candidate;
      const body = w.reveal.packet.body;
      winner = {
        nodeId: w.nodeId,
        commitment: w.commitment,
        model: { id: body.model.id, fileHash: body.model.fileHash },
        output: body.output,
        outputDigest: outputDigest(body.output),
      };
    }
    candidates.forEach((cand, i) => {
      if (inBall[i] === 1) accepted.push({ nodeId: cand.nodeId, commitment: cand.commitment });
      else {
        rejected.push({
          nodeId: cand.nodeId,
          commitment: cand.commitment,
          revealId: cand.reveal.id,
          reason: 'OUTSIDE_CLUSTER',
        });
      }
    });
  }

  // Step 6: non-members, one per node, in canonical order, into the room that is left.
  const room = Math.max(0, LIMITS.maxVerdictEntries - rejected.length);
  const unsealed = [...nonMembers].sort(([a], [b]) => compareStrings(a, b));
  for (const [nodeId, revealId] of unsealed.slice(0, room)) {
    rejected.push({ nodeId, commitment: null, revealId, reason: 'NOT_SEALED' });
  }

  // Step 7: canonical order. `accepted` is already in commitment order (candidates are sorted).
  rejected.sort(compareRejections);
  const claimed = [...claims.values()].sort(
    (a, b) => compareStrings(a.nodeId, b.nodeId) || compareStrings(a.revealId, b.revealId),
  );

  return {
    v: 1,
    requestId,
    sealId: input.sealId,
    status,
    bits,
    thresholdBits,
    sealSize,
    required,
    centre,
    accepted,
    winner,
    rejected,
    ...(claimed.length > 0 ? { reembedded: claimed } : {}),
  };
}

/**
 * Step 2's re-embedded bits of a member's reveals, by output: for each output, the entry of the
 * member's reveal with the smallest id that has one.
 */
function ownBits(
  received: readonly RevealInput[],
  reembedded: ReadonlyMap<string, string>,
): Map<string, { id: string; bits: string }> {
  const out = new Map<string, { id: string; bits: string }>();
  for (const { id, packet } of received) {
    const bits = reembedded.get(id);
    if (bits === undefined) continue;
    const seen = out.get(packet.body.output);
    if (seen === undefined || id < seen.id) out.set(packet.body.output, { id, bits });
  }
  return out;
}

/**
 * A verdict's re-embedding claims (step 8) as the `reembedded` input that recomputes it: reveal id ->
 * bits. Empty for a verdict without claims.
 */
export function claimedReembeddings(verdict: Pick<Verdict, 'reembedded'>): Map<string, string> {
  return new Map((verdict.reembedded ?? []).map((c) => [c.revealId, c.bits]));
}

/** hex taggedHash('verdict', JCS(verdict)): what attestations sign and what goes on-chain. */
export function verdictDigest(verdict: Verdict): string {
  return toHex(taggedHash('verdict', canonicalBytes(verdict)));
}

/** Medoid tie-break key: hex taggedHash('winner-tiebreak', utf8(requestId), commitment bytes). */
export function winnerTiebreak(requestId: string, commitment: string): string {
  return toHex(taggedHash('winner-tiebreak', utf8(requestId), fromHex(commitment)));
}

export interface Clustering {
  /** Row of the centre with the largest ball (ties: smallest commitment); -1 when there are no rows. */
  centre: number;
  /** Rows within thresholdBits of the centre (the centre included), ascending. */
  ball: number[];
  /** Row of the medoid of `ball` (ties: smallest winnerTiebreak); -1 when there are no rows. */
  medoid: number;
}

/**
 * Steps 4 and 5 over packed bit rows: largest Hamming ball and its medoid. `commitments[i]` is row i's
 * commitment (centre tie-break, and with `requestId` the medoid tie-break). Row order never matters
 * unless two rows carry the same commitment, which valid reveals cannot (commitments bind node ids).
 */
export function clusterByHamming(
  matrix: PackedMatrix,
  thresholdBits: number,
  commitments: readonly string[],
  requestId: string,
  kernel: HammingKernel = hammingKernel(),
): Clustering {
  const n = matrix.rows;
  if (commitments.length !== n) {
    throw new SynodError('EMBEDDING_INVALID', `${n} rows but ${commitments.length} commitments`);
  }
  if (n === 0) return { centre: -1, ball: [], medoid: -1 };
  const balls = kernel.balls(matrix);

  const sizes = balls.ballSizes(thresholdBits);
  let centre = 0;
  let best = -1;
  for (let i = 0; i < n; i++) {
    const size = sizes[i] as number;
    if (size > best || (size === best && (commitments[i] as string) < (commitments[centre] as string))) {
      best = size;
      centre = i;
    }
  }

  const ball = balls.ball(centre, thresholdBits);

  const sums = balls.sumsWithin(ball);
  let minSum = Number.POSITIVE_INFINITY;
  let tied: number[] = [];
  ball.forEach((i, k) => {
    const sum = sums[k] as number;
    if (sum < minSum) {
      minSum = sum;
      tied = [i];
    } else if (sum === minSum) {
      tied.push(i);
    }
  });
  let medoid = tied[0] as number;
  if (tied.length > 1) {
    let bestKey = winnerTiebreak(requestId, commitments[medoid] as string);
    for (let t = 1; t < tied.length; t++) {
      const i = tied[t] as number;
      const key = winnerTiebreak(requestId, commitments[i] as string);
      if (key < bestKey) {
        bestKey = key;
        medoid = i;
      }
    }
  }
  return { centre, ball, medoid };
}

/** Is `a` a better considered reveal than `b`: valid first, then smallest packet id. */
function isBetterConsidered(a: CheckedReveal, b: CheckedReveal): boolean {
  if ((a.reason === null) !== (b.reason === null)) return a.reason === null;
  return a.id < b.id;
}

function compareCandidates(a: Candidate, b: Candidate): number {
  return compareStrings(a.commitment, b.commitment) || compareStrings(a.nodeId, b.nodeId);
}

function compareRejections(a: VerdictRejection, b: VerdictRejection): number {
  const byNode = compareStrings(a.nodeId, b.nodeId);
  if (byNode !== 0) return byNode;
  if (a.revealId === b.revealId) return 0;
  if (a.revealId === null) return -1;
  if (b.revealId === null) return 1;
  return compareStrings(a.revealId, b.revealId);
}
