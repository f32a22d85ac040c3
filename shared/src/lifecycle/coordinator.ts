import { compareStrings } from '../encoding/bytes.ts';
import { requiredAgreement } from '../frame/frame.ts';
import { LIMITS } from '../packets/limits.ts';
import { deriveRequestId } from '../packets/request-id.ts';
import {
  type AnyPacket,
  type Packet,
  type RequestBody,
  RequestBodySchema,
  type SealBody,
  type VerdictBody,
} from '../packets/schemas.ts';
import {
  byId,
  cancelTimer,
  checkNow,
  checkState,
  decide,
  driverError,
  finishDone,
  finishExpired,
  newBaseState,
  publish,
  rearm,
  receive,
  reject,
  requestIdOf,
  revealRoom,
  setTimer,
  settleOutgoing,
  takeTimer,
} from './common.ts';
import { DEFAULT_GRACE_MS } from './observer.ts';
import { rankedLast, ranksBefore, type SeatPolicy } from './seats.ts';
import type { BaseState, CoordinatorEvent, Effect, Received, TimerName, Transition } from './types.ts';

/**
 * The coordinator: the request's author (a relay, the chain watcher, or a requesting peer). It publishes
 * the request, collects commits, seals, collects reveals, computes and publishes the verdict, and
 * collects attestations.
 */
export interface CoordinatorConfig {
  /** Only commits from nodes this accepts count. Absent: every node may commit. */
  isEligible?: (requestId: string, nodeId: string) => boolean;
  /**
   * Seats for nodes without a record (see `SeatPolicy`). Absent: every eligible node may take any seat.
   */
  seats?: SeatPolicy;
  /** How long after the verdict attestations are collected. Default: frame.revealWindowMs. */
  attestationWindowMs?: number;
  /**
   * With re-embedded reveals (`PacketEvent.reembedded`): the largest Hamming distance between a
   * reveal's bits and the driver's that still agrees. Default 0.
   */
  noiseToleranceBits?: number;
}

export type CoordinatorPhase =
  /** collecting commits until maxCommits (early close) or the seal deadline */
  | 'collecting'
  /** sealed; collecting reveals until every member revealed or the reveal window closes */
  | 'sealed'
  /** verdict published; collecting attestations */
  | 'verdict'
  | 'finished';

export interface CoordinatorState extends BaseState {
  role: 'coordinator';
  phase: CoordinatorPhase;
  /** The request; `packet` is null until the signed packet is fed back. */
  request: { id: string; body: RequestBody; packet: Packet<'request'> | null };
  /** Valid commits, at most one per node; after the seal exactly the members' commits. */
  commits: Received<'commit'>[];
  /** Nodes that signed two different commitments (evidence emitted), sorted. */
  equivocators: string[];
  seal: { id: string; body: SealBody; packet: Packet<'seal'> | null } | null;
  /** Every reveal held for the verdict, members' and non-members', in arrival order. */
  reveals: Received<'reveal'>[];
  /** The reveal window closed but the signed request or seal has not been fed back yet. */
  verdictDue: boolean;
  verdict: { id: string; body: VerdictBody } | null;
  /** Attestations matching the verdict, one per node. */
  attestations: { nodeId: string; id: string }[];
  /**
   * Most seats nodes without a record may take in this request's seal (`SeatPolicy`), or null: no cap.
   * Absent in states stored before it existed, which means null.
   */
  unprovenSeats?: number | null;
  /**
   * Valid declines (one per node that never committed) while collecting, in arrival order. Absent in
   * states stored before declines existed, which means none.
   */
  declines?: Received<'decline'>[];
  /**
   * Reveal id -> the driver's re-embedding of that reveal's output (`PacketEvent.reembedded`), for the
   * verdict's EMBEDDING_DISAGREES check. Absent in states stored before re-embedding existed, and for
   * reveals fed without bits: those reveals are not re-checked (the verdict treats them as before).
   */
  reembedded?: Record<string, string>;
}

/**
 * Start coordinating `request` (a complete body, requestId derived, createdAt set by the caller).
 * Effects: persist, publish the request, arm the seal deadline. Throws LIFECYCLE_INVALID_EVENT when
 * the body is invalid or already past its seal deadline (caller bugs).
 */
export function startCoordinator(
  config: CoordinatorConfig,
  input: { now: number; self: string; request: RequestBody },
): Transition<CoordinatorState> {
  checkNow(input.now);
  const parsed = RequestBodySchema.safeParse(input.request);
  if (!parsed.success) {
    driverError('the request body is invalid', { issues: parsed.error.issues.map((i) => i.message) });
  }
  const body = parsed.data;
  if (deriveRequestId(body) !== body.requestId) {
    driverError('requestId is not derived from the request content', { requestId: body.requestId });
  }
  const sealAt = body.createdAt + body.frame.maxTimeMs;
  if (input.now >= sealAt) {
    driverError('the request is already past its seal deadline', { now: input.now, sealAt });
  }
  const s: CoordinatorState = {
    ...newBaseState('coordinator', input.self, body.requestId),
    phase: 'collecting',
    request: { id: '', body, packet: null },
    commits: [],
    equivocators: [],
    seal: null,
    reveals: [],
    verdictDue: false,
    verdict: null,
    attestations: [],
    declines: [],
    unprovenSeats: config.seats?.applies(body)
      ? requiredAgreement(body.frame, body.frame.maxCommits) - 1
      : null,
  };
  const fx: Effect[] = [{ kind: 'persist', reason: 'request' }];
  s.request = { ...s.request, id: publish(s, fx, 'request', body) };
  setTimer(s, fx, 'seal-deadline', sealAt);
  return { state: s, effects: fx };
}

export function stepCoordinator(
  config: CoordinatorConfig,
  state: CoordinatorState,
  event: CoordinatorEvent,
): Transition<CoordinatorState> {
  checkState(state, 'coordinator');
  checkNow(event.now);
  const s = copy(state);
  const fx: Effect[] = [];
  switch (event.kind) {
    case 'packet':
      onPacket(config, s, fx, event.packet, event.now, event.reembedded);
      break;
    case 'timer':
      if (s.outcome === null && takeTimer(s, event.name)) onTimer(config, s, fx, event.name, event.now);
      break;
    case 'restored':
      if (s.outcome === null) {
        for (const name of rearm(s, fx, event.now)) {
          if (s.outcome === null && takeTimer(s, name)) onTimer(config, s, fx, name, event.now);
        }
      }
      break;
    default:
      driverError(`a coordinator does not take "${(event as { kind: string }).kind}" events`);
  }
  return { state: s, effects: fx };
}

function copy(s: CoordinatorState): CoordinatorState {
  return {
    ...s,
    timers: { ...s.timers },
    outbox: [...s.outbox],
    commits: [...s.commits],
    equivocators: [...s.equivocators],
    reveals: [...s.reveals],
    attestations: [...s.attestations],
    declines: [...(s.declines ?? [])],
    ...(s.reembedded === undefined ? {} : { reembedded: { ...s.reembedded } }),
  };
}

function onTimer(
  config: CoordinatorConfig,
  s: CoordinatorState,
  fx: Effect[],
  name: TimerName,
  now: number,
): void {
  switch (name) {
    case 'seal-deadline':
      if (s.phase !== 'collecting') return;
      // A seal smaller than maxCommits needs fewer agreeing members: nodes without a record that fit
      // the cap of a full seal may be too many for it, and the last to come are left out.
      trimUnproven(config, s);
      if (s.commits.length >= s.request.body.frame.quorum) {
        sealInTime(s, fx, now);
        return;
      }
      s.phase = 'finished';
      finishExpired(s, fx, 'quorum-not-met', now);
      return;
    case 'reveal-deadline':
      if (s.phase === 'sealed') closeReveals(config, s, fx, now);
      return;
    case 'attest-deadline':
      if (s.phase === 'verdict') finish(s, fx, 'attestation-window-closed', now);
      return;
    default:
      return;
  }
}

function onPacket(
  config: CoordinatorConfig,
  s: CoordinatorState,
  fx: Effect[],
  packet: AnyPacket,
  now: number,
  reembedded?: string,
): void {
  const rec = receive(packet);
  const rid = requestIdOf(packet);
  if (rid === null) {
    reject(fx, 'UNEXPECTED_TYPE', `a ${packet.type} packet is not part of a request`, rec.id);
    return;
  }
  if (rid !== s.requestId) {
    reject(fx, 'REQUEST_MISMATCH', `packet is for request ${rid}`, rec.id);
    return;
  }
  if (packet.from === s.self && onOwnPacket(config, s, fx, rec, now)) return;
  if (s.outcome !== null) {
    reject(fx, 'FINISHED', `the coordinator has ${s.outcome.kind}`, rec.id);
    return;
  }
  switch (rec.packet.type) {
    case 'request':
      reject(fx, 'DUPLICATE_REQUEST', 'this coordinator authored the request', rec.id);
      return;
    case 'commit':
      onCommit(config, s, fx, rec as Received<'commit'>, now);
      return;
    case 'seal':
    case 'verdict':
      reject(fx, 'NOT_COORDINATOR', `a ${rec.packet.type} from a node other than the coordinator`, rec.id);
      return;
    case 'reveal':
      onReveal(config, s, fx, rec as Received<'reveal'>, now, reembedded);
      return;
    case 'attestation':
      onAttestation(s, fx, rec as Received<'attestation'>, now);
      return;
    case 'decline':
      onDecline(config, s, fx, rec as Received<'decline'>, now);
      return;
    default:
      reject(fx, 'UNEXPECTED_TYPE', `a ${rec.packet.type} packet is not part of a request`, rec.id);
      return;
  }
}

/** A packet this coordinator signed: the loopback of one of its publishes. True when handled. */
function onOwnPacket(
  config: CoordinatorConfig,
  s: CoordinatorState,
  fx: Effect[],
  rec: Received,
  now: number,
): boolean {
  const settled = settleOutgoing(s, rec.id);
  if (rec.id === s.request.id) {
    if (s.request.packet === null) s.request = { ...s.request, packet: rec.packet as Packet<'request'> };
  } else if (s.seal !== null && rec.id === s.seal.id) {
    if (s.seal.packet === null) s.seal = { ...s.seal, packet: rec.packet as Packet<'seal'> };
  } else if (!(s.verdict !== null && rec.id === s.verdict.id) && !settled) {
    // Not one of ours: this key may also run a node on its own request; handle it like anyone's.
    return false;
  }
  if (s.verdictDue && s.outcome === null) closeReveals(config, s, fx, now);
  return true;
}

function onCommit(
  config: CoordinatorConfig,
  s: CoordinatorState,
  fx: Effect[],
  rec: Received<'commit'>,
  now: number,
): void {
  const from = rec.packet.from;
  const held = s.commits.find((c) => c.packet.from === from);
  if (held?.id === rec.id) return; // duplicate delivery
  if (held && held.packet.body.commitment !== rec.packet.body.commitment) {
    doubleCommit(s, fx, held, rec);
    if (s.phase === 'collecting') {
      // An equivocating node frees its place: it will not be sealed.
      s.commits = s.commits.filter((c) => c.packet.from !== from);
      reject(fx, 'DOUBLE_COMMIT', 'a second, different commitment from this node; it is excluded', rec.id);
      return;
    }
    reject(fx, 'DOUBLE_COMMIT', 'a second, different commitment from a sealed member', rec.id);
    return;
  }
  if (s.phase !== 'collecting') {
    reject(fx, 'COMMIT_AFTER_SEAL', 'the request is already sealed', rec.id);
    return;
  }
  if (s.equivocators.includes(from)) {
    reject(fx, 'EQUIVOCATOR', 'this node signed two different commitments for this request', rec.id);
    return;
  }
  if (held) {
    reject(fx, 'DUPLICATE_COMMIT', 'this node has already committed', rec.id);
    return;
  }
  if ((s.declines ?? []).some((d) => d.packet.from === from)) {
    reject(fx, 'DECLINE_CONFLICT', 'this node declined the request', rec.id);
    return;
  }
  if (config.isEligible && !config.isEligible(s.requestId, from)) {
    reject(fx, 'NOT_ELIGIBLE', 'this node is not eligible for the request', rec.id);
    return;
  }
  const seats = s.unprovenSeats ?? null;
  const policy = config.seats;
  if (seats !== null && policy && !policy.isProven(from)) {
    const seated = s.commits.filter((c) => !policy.isProven(c.packet.from));
    if (seated.length >= seats) {
      // Not first come, first served (see `SeatPolicy`): the seated one that ranks last gives way to a
      // node that ranks before it.
      const last =
        seats === 0
          ? undefined
          : rankedLast(
              policy,
              s.requestId,
              seated.map((c) => c.packet.from),
            );
      if (last === undefined || !ranksBefore(policy, s.requestId, from, last)) {
        reject(fx, 'UNPROVEN_SEATS_FULL', 'every seat for a node without a record is taken', rec.id);
        return;
      }
      const displaced = seated.find((c) => c.packet.from === last) as Received<'commit'>;
      s.commits = s.commits.filter((c) => c.id !== displaced.id);
      reject(
        fx,
        'UNPROVEN_SEATS_FULL',
        'its seat went to a node without a record that ranks before it (further toward a record, or by lot)',
        displaced.id,
      );
    }
  }
  s.commits = [...s.commits, rec];
  if (s.commits.length >= s.request.body.frame.maxCommits) sealInTime(s, fx, now); // early close
}

/**
 * A node says it cannot run the request (`decline`). Counted while collecting, once per node, from an
 * eligible node that has not committed, for this very request packet and one of its models. The request
 * ends `declined` as soon as the declines held could stand for a seal (`declinedBy`) while fewer than
 * quorum commits are held: a node can send a decline as freely as a commit, and faster (it runs nothing),
 * so no fewer could end a request that others might still answer.
 */
function onDecline(
  config: CoordinatorConfig,
  s: CoordinatorState,
  fx: Effect[],
  rec: Received<'decline'>,
  now: number,
): void {
  const from = rec.packet.from;
  const body = rec.packet.body;
  const declines = s.declines ?? [];
  if (declines.some((d) => d.id === rec.id)) return; // duplicate delivery
  if (s.phase !== 'collecting') {
    reject(fx, 'DECLINE_CONFLICT', 'the request is already sealed', rec.id);
    return;
  }
  if (body.requestPacketId !== s.request.id) {
    reject(fx, 'DECLINE_INVALID', 'it declines another request packet', rec.id);
    return;
  }
  if (!s.request.body.acceptedModels.includes(body.model.id)) {
    reject(fx, 'DECLINE_INVALID', `the request does not accept model ${body.model.id}`, rec.id);
    return;
  }
  if (declines.some((d) => d.packet.from === from)) {
    reject(fx, 'DUPLICATE_DECLINE', 'this node has already declined', rec.id);
    return;
  }
  if (s.commits.some((c) => c.packet.from === from) || s.equivocators.includes(from)) {
    reject(fx, 'DECLINE_CONFLICT', 'this node committed to the request', rec.id);
    return;
  }
  if (config.isEligible && !config.isEligible(s.requestId, from)) {
    reject(fx, 'NOT_ELIGIBLE', 'this node is not eligible for the request', rec.id);
    return;
  }
  if (declines.length >= LIMITS.maxSealMembers) {
    reject(fx, 'LIMIT', 'no room for another decline', rec.id);
    return;
  }
  s.declines = [...declines, rec];
  if (s.commits.length < s.request.body.frame.quorum && declinedBy(config, s)) {
    s.phase = 'finished';
    finishExpired(s, fx, 'declined', now);
  }
}

/**
 * The declines held that count toward ending the request, as a seal would seat their nodes: all of them,
 * or where the request's seat policy applies (`unprovenSeats`), every proven node's and as many others as
 * the cap seats and its deadline trim (`trimUnproven`) leaves: fewer than the counted set would need to
 * agree. So declines that end a request include a proven node's wherever a verdict would, and a party's
 * fresh keys can end a request by declining it only where they could have answered it.
 */
export function trustedDeclines(config: CoordinatorConfig, s: CoordinatorState): Received<'decline'>[] {
  const declines = s.declines ?? [];
  const seats = s.unprovenSeats ?? null;
  const policy = config.seats;
  if (seats === null || policy === undefined) return declines;
  const proven = declines.filter((d) => policy.isProven(d.packet.from));
  const others = declines.filter((d) => !policy.isProven(d.packet.from));
  let unproven = Math.min(others.length, seats);
  const frame = s.request.body.frame;
  while (unproven > 0 && unproven >= requiredAgreement(frame, proven.length + unproven)) unproven--;
  return [...proven, ...others.slice(0, unproven)];
}

/**
 * Whether the declines held end the request: at least quorum of them count (`trustedDeclines`), and they
 * name every model the request accepts. A request some of whose models were not declined is left to
 * their nodes' commits (a decline comes in milliseconds, a commit after an inference), or its deadline.
 */
export function declinedBy(config: CoordinatorConfig, s: CoordinatorState): boolean {
  const counted = trustedDeclines(config, s);
  if (counted.length < s.request.body.frame.quorum) return false;
  const named = new Set(counted.map((d) => d.packet.body.model.id));
  return s.request.body.acceptedModels.every((m) => named.has(m));
}

function doubleCommit(s: CoordinatorState, fx: Effect[], a: Received<'commit'>, b: Received<'commit'>): void {
  const from = a.packet.from;
  if (s.equivocators.includes(from)) return;
  s.equivocators = [...s.equivocators, from].sort(compareStrings);
  const [x, y] = [a, b].sort(byId) as [Received<'commit'>, Received<'commit'>];
  fx.push({
    kind: 'evidence',
    evidence: { kind: 'double-commit', nodeId: from, packets: [x.packet, y.packet] },
  });
}

/**
 * Leave out nodes without a record, the one ranked last first (`rankedLast`), until fewer of them remain
 * than the seal's members would need to agree (`requiredAgreement` of the seal's own size): no accepted
 * verdict without a proven node. Only where the request's seat policy applies.
 */
function trimUnproven(config: CoordinatorConfig, s: CoordinatorState): void {
  const policy = config.seats;
  if ((s.unprovenSeats ?? null) === null || policy === undefined) return;
  const frame = s.request.body.frame;
  let commits = s.commits;
  for (;;) {
    const unproven = commits.filter((c) => !policy.isProven(c.packet.from));
    if (unproven.length === 0 || unproven.length < requiredAgreement(frame, commits.length)) break;
    const last = rankedLast(
      policy,
      s.requestId,
      unproven.map((c) => c.packet.from),
    );
    commits = commits.filter((c) => c.packet.from !== last);
  }
  s.commits = commits;
}

/**
 * The latest a coordinator seals `request`: maxTimeMs and the nodes' grace (`DEFAULT_GRACE_MS`, 5 s)
 * after its createdAt. Nodes stop waiting for a seal then and drop what they committed: a later seal
 * (one a verifier still takes, up to the skew window, 120 s) would name members that can no longer
 * reveal, and count them NOT_REVEALED (withheld) for the coordinator's own lateness.
 */
export function sealBy(request: Pick<RequestBody, 'createdAt' | 'frame'>): number {
  return request.createdAt + request.frame.maxTimeMs + DEFAULT_GRACE_MS;
}

/**
 * Seal now, unless now is past `sealBy` (a timer that fired late, a restart after the deadline): the
 * request then expires as one that had no quorum by its deadline. A seal is never dated before its
 * request (a clock set back): nodes would refuse it (SEAL_BEFORE_REQUEST).
 */
function sealInTime(s: CoordinatorState, fx: Effect[], now: number): void {
  const request = s.request.body;
  if (now <= sealBy(request)) {
    seal(s, fx, Math.max(now, request.createdAt));
    return;
  }
  s.phase = 'finished';
  finishExpired(s, fx, 'quorum-not-met', now);
}

function seal(s: CoordinatorState, fx: Effect[], now: number): void {
  const members = [...s.commits]
    .sort((a, b) => compareStrings(a.packet.from, b.packet.from))
    .map((c) => ({ nodeId: c.packet.from, commitment: c.packet.body.commitment, commitId: c.id }));
  const body: SealBody = { requestId: s.requestId, requestPacketId: s.request.id, members, createdAt: now };
  cancelTimer(s, fx, 'seal-deadline');
  s.phase = 'sealed';
  fx.push({ kind: 'persist', reason: 'seal' });
  s.seal = { id: publish(s, fx, 'seal', body), body, packet: null };
  setTimer(s, fx, 'reveal-deadline', now + s.request.body.frame.revealWindowMs);
}

function onReveal(
  config: CoordinatorConfig,
  s: CoordinatorState,
  fx: Effect[],
  rec: Received<'reveal'>,
  now: number,
  reembedded?: string,
): void {
  if (s.reveals.some((r) => r.id === rec.id)) {
    // A duplicate delivery; it may bring the bits of a reveal held without them (a driver re-embedding
    // the reveals of a state restored from before re-embedding existed).
    if (reembedded !== undefined && s.phase === 'sealed' && s.reembedded?.[rec.id] === undefined) {
      setReembedded(s, rec.id, reembedded);
    }
    return;
  }
  if (s.phase === 'collecting' || s.seal === null) {
    reject(fx, 'REVEAL_BEFORE_SEAL', 'a reveal before the seal breaks the protocol', rec.id);
    return;
  }
  if (s.phase !== 'sealed') {
    reject(fx, 'REVEAL_AFTER_VERDICT', 'the verdict is already computed', rec.id);
    return;
  }
  const members = new Set(s.seal.body.members.map((m) => m.nodeId));
  if (!revealRoom(s.reveals, members, rec.packet, 1)) {
    reject(fx, 'LIMIT', 'no room for another reveal from this node', rec.id);
    return;
  }
  s.reveals = [...s.reveals, rec];
  if (reembedded !== undefined) setReembedded(s, rec.id, reembedded);
  const revealed = new Set(s.reveals.map((r) => r.packet.from));
  if ([...members].every((m) => revealed.has(m))) closeReveals(config, s, fx, now); // early verdict
}

/** The reveal phase is over: compute and publish the verdict, once the signed request and seal are back. */
function closeReveals(config: CoordinatorConfig, s: CoordinatorState, fx: Effect[], now: number): void {
  cancelTimer(s, fx, 'reveal-deadline');
  if (s.seal === null) driverError('closeReveals without a seal');
  if (s.request.packet === null || s.seal.packet === null) {
    // The driver has not fed back the signed request or seal yet; finish when it does.
    s.verdictDue = true;
    return;
  }
  s.verdictDue = false;
  const result = decide(
    { id: s.request.id, packet: s.request.packet },
    s.commits,
    { id: s.seal.id, packet: s.seal.packet },
    s.reveals,
    {
      reembedded: new Map(Object.entries(s.reembedded ?? {})),
      ...(config.noiseToleranceBits === undefined ? {} : { noiseToleranceBits: config.noiseToleranceBits }),
    },
  );
  const body: VerdictBody = {
    requestId: s.requestId,
    verdict: result.verdict,
    verdictDigest: result.digest,
    transcriptRoot: result.transcriptRoot,
    createdAt: now,
  };
  s.phase = 'verdict';
  fx.push({
    kind: 'verdict',
    verdict: result.verdict,
    digest: result.digest,
    transcriptRoot: result.transcriptRoot,
    check: 'computed',
  });
  fx.push({ kind: 'persist', reason: 'verdict' });
  s.verdict = { id: publish(s, fx, 'verdict', body), body };
  const window = config.attestationWindowMs ?? s.request.body.frame.revealWindowMs;
  setTimer(s, fx, 'attest-deadline', now + window);
}

/**
 * Keep the driver's bits for a held reveal, when they are packed bits of the frame's size: anything else
 * is a driver bug (an embedder that is not the frame's), and a verdict cannot be formed from it.
 */
function setReembedded(s: CoordinatorState, revealId: string, bits: string): void {
  const hexChars = s.request.body.frame.embeddingModel.bits / 4;
  if (bits.length !== hexChars || !/^[0-9a-f]*$/.test(bits)) {
    driverError(`re-embedded bits must be ${hexChars} lowercase hex characters`, { revealId });
  }
  s.reembedded = { ...(s.reembedded ?? {}), [revealId]: bits };
}

function onAttestation(s: CoordinatorState, fx: Effect[], rec: Received<'attestation'>, now: number): void {
  if (s.verdict === null) {
    reject(fx, 'ATTESTATION_BEFORE_VERDICT', 'no verdict has been published yet', rec.id);
    return;
  }
  const from = rec.packet.from;
  if (s.attestations.some((a) => a.id === rec.id || a.nodeId === from)) return; // duplicate
  const { verdictDigest, transcriptRoot } = rec.packet.body;
  if (verdictDigest !== s.verdict.body.verdictDigest || transcriptRoot !== s.verdict.body.transcriptRoot) {
    reject(fx, 'ATTESTATION_MISMATCH', 'attests a different verdict digest or transcript root', rec.id);
    return;
  }
  s.attestations = [...s.attestations, { nodeId: from, id: rec.id }];
  const attested = new Set(s.attestations.map((a) => a.nodeId));
  const members = (s.seal?.body.members ?? []).map((m) => m.nodeId).filter((m) => m !== s.self);
  if (members.every((m) => attested.has(m))) finish(s, fx, 'all-attested', now);
}

function finish(
  s: CoordinatorState,
  fx: Effect[],
  reason: 'all-attested' | 'attestation-window-closed',
  now: number,
) {
  s.phase = 'finished';
  finishDone(s, fx, reason, now);
}
