import { computeVerdict, verdictDigest } from '../consensus/verdict.ts';
import { compareStrings } from '../encoding/bytes.ts';
import { SynodError } from '../errors.ts';
import { encodePacket, packetId } from '../packets/envelope.ts';
import { LIMITS } from '../packets/limits.ts';
import {
  type AnyPacket,
  type BodyOf,
  type Packet,
  PROTOCOL_VERSION,
  type RequestBody,
  type Verdict,
} from '../packets/schemas.ts';
import { buildTranscript, transcriptRoot } from '../transcript/transcript.ts';
import { latestSealAt } from '../transcript/verify.ts';
import {
  type BaseState,
  type DoneReason,
  type Effect,
  type ExpireReason,
  type Outgoing,
  type PublishedType,
  type Received,
  type RejectCode,
  STATE_VERSION,
  TIMER_NAMES,
  type TimerName,
} from './types.ts';

/** Throw for a driver programming error (never for network input). */
export function driverError(message: string, details: Record<string, unknown> = {}, hint?: string): never {
  throw new SynodError(
    'LIFECYCLE_INVALID_EVENT',
    message,
    hint === undefined ? { details } : { details, hint },
  );
}

export function checkNow(now: unknown): void {
  if (typeof now !== 'number' || !Number.isSafeInteger(now) || now < 0) {
    driverError('event.now must be a non-negative integer (ms since the epoch)', { now });
  }
}

export function checkState(state: BaseState, role: BaseState['role']): void {
  if (state === null || typeof state !== 'object' || state.v !== STATE_VERSION || state.role !== role) {
    driverError(`not a ${role} state of version ${STATE_VERSION}`, {
      v: (state as { v?: unknown } | null)?.v,
      role: (state as { role?: unknown } | null)?.role,
    });
  }
}

/** The fields every machine's state starts with: no timers, nothing to publish, no outcome yet. */
export function newBaseState<R extends BaseState['role']>(
  role: R,
  self: string,
  requestId: string,
): BaseState & { role: R } {
  return { v: STATE_VERSION, role, self, requestId, timers: {}, outbox: [], outcome: null };
}

/** The id a packet signed by `self` will have: packet ids cover (v, type, from, body), not the signature. */
export function ownPacketId<T extends PublishedType>(self: string, type: T, body: BodyOf[T]): string {
  return packetId({ v: PROTOCOL_VERSION, type, from: self, body } as AnyPacket);
}

export function publish<T extends PublishedType>(
  s: BaseState,
  fx: Effect[],
  type: T,
  body: BodyOf[T],
): string {
  const id = ownPacketId(s.self, type, body);
  const out = { packetType: type, body, id } as Outgoing;
  s.outbox = [...s.outbox, out];
  fx.push({ kind: 'publish', ...out } as Effect);
  return id;
}

/** Remove the outbox entry a loopback packet answers; true when there was one. */
export function settleOutgoing(s: BaseState, id: string): boolean {
  const i = s.outbox.findIndex((o) => o.id === id);
  if (i < 0) return false;
  s.outbox = s.outbox.filter((_, j) => j !== i);
  return true;
}

export function setTimer(s: BaseState, fx: Effect[], name: TimerName, at: number): void {
  s.timers = { ...s.timers, [name]: at };
  fx.push({ kind: 'set-timer', name, at });
}

export function cancelTimer(s: BaseState, fx: Effect[], name: TimerName): void {
  if (s.timers[name] === undefined) return;
  const timers = { ...s.timers };
  delete timers[name];
  s.timers = timers;
  fx.push({ kind: 'cancel-timer', name });
}

/** Is this timer event for a timer that is armed? Consumes it (a timer fires once). */
export function takeTimer(s: BaseState, name: TimerName): boolean {
  if (!(TIMER_NAMES as readonly string[]).includes(name)) driverError(`unknown timer "${name}"`, { name });
  if (s.timers[name] === undefined) return false;
  const timers = { ...s.timers };
  delete timers[name];
  s.timers = timers;
  return true;
}

export function reject(fx: Effect[], code: RejectCode, reason: string, packetId: string | null): void {
  fx.push({ kind: 'rejected', code, reason, packetId });
}

export function finishDone(s: BaseState, fx: Effect[], reason: DoneReason, now: number): void {
  clearTimers(s, fx);
  s.outcome = { kind: 'done', reason, at: now };
  fx.push({ kind: 'done', reason });
}

export function finishExpired(s: BaseState, fx: Effect[], reason: ExpireReason, now: number): void {
  clearTimers(s, fx);
  s.outcome = { kind: 'expired', reason, at: now };
  fx.push({ kind: 'expired', reason });
}

function clearTimers(s: BaseState, fx: Effect[]): void {
  for (const name of Object.keys(s.timers) as TimerName[]) cancelTimer(s, fx, name);
}

/**
 * After a restart: publish again whatever was not seen back signed (signing is deterministic and
 * packets are deduplicated by id, so a second publish is harmless), and list the timers that are
 * already due (in due order) for the caller to fire; the others are armed again.
 */
export function rearm(s: BaseState, fx: Effect[], now: number): TimerName[] {
  for (const out of s.outbox) fx.push({ kind: 'publish', ...out } as Effect);
  const due: [TimerName, number][] = [];
  for (const name of TIMER_NAMES) {
    const at = s.timers[name];
    if (at === undefined) continue;
    if (at <= now) due.push([name, at]);
    else fx.push({ kind: 'set-timer', name, at });
  }
  due.sort((a, b) => a[1] - b[1] || compareStrings(a[0], b[0]));
  return due.map(([name]) => name);
}

/** The requestId a packet is about; null for packets that are not about a request (heartbeats). */
export function requestIdOf(packet: AnyPacket): string | null {
  return packet.type === 'heartbeat' ? null : packet.body.requestId;
}

export function receive(packet: AnyPacket): Received {
  return { id: packetId(packet), packet };
}

export function byId(a: { id: string }, b: { id: string }): number {
  return compareStrings(a.id, b.id);
}

/**
 * Bytes of reveals from nodes outside the seal (`NOT_SEALED`) a coordinator holds for one request, each
 * counted as its packet's canonical encoding (`revealBytes`); observers hold twice as much, as they do
 * twice the count (`revealRoom`). Such reveals serve no honest purpose (a node reveals only to a seal
 * naming it): the coordinator holds some, within this budget, so its verdict cites them as evidence, and
 * observers hold them so they can recompute that verdict. The budget bounds what a flood of them under
 * fresh keys makes every machine hold (each may be about 256 KiB), beside the count bound of the verdict's
 * `rejected` entries. It is the coordinator's choice of what it holds, not a verdict rule: a transcript
 * holding more verifies as before.
 */
export const NON_MEMBER_REVEAL_BYTES = 1024 * 1024;

const revealSizes = new WeakMap<object, number>();

/** The size of a reveal as `NON_MEMBER_REVEAL_BYTES` counts it: its canonical encoding (the wire form). */
export function revealBytes(packet: Packet<'reveal'>): number {
  let n = revealSizes.get(packet);
  if (n === undefined) {
    n = encodePacket(packet).length;
    revealSizes.set(packet, n);
  }
  return n;
}

/**
 * May one more reveal, `packet`, be held, given the seal's members? A member may have two held (the
 * second shows the verdict a DUPLICATE_REVEAL), a non-member `perNonMember` (the coordinator holds one:
 * the verdict cites one reveal per non-member, so every reveal in its transcript is cited and an
 * observer can tell exactly which reveals the verdict was computed over). Non-members together get
 * what the members leave of the verdict's `rejected` bound (times `perNonMember`), and at most
 * `perNonMember` times `NON_MEMBER_REVEAL_BYTES` of them, so a flood of unsealed reveals under fresh keys
 * cannot make the verdict or transcript too large, nor the machine hold more than that budget of them.
 */
export function revealRoom(
  reveals: readonly Received<'reveal'>[],
  members: ReadonlySet<string>,
  packet: Packet<'reveal'>,
  perNonMember: number,
): boolean {
  const from = packet.from;
  const fromSender = reveals.filter((r) => r.packet.from === from).length;
  if (members.has(from)) return fromSender < 2;
  if (fromSender >= perNonMember) return false;
  const nonMembers = reveals.filter((r) => !members.has(r.packet.from));
  if (nonMembers.length >= perNonMember * Math.max(0, LIMITS.maxVerdictEntries - 2 * members.size)) {
    return false;
  }
  let bytes = revealBytes(packet);
  for (const r of nonMembers) bytes += revealBytes(r.packet);
  return bytes <= perNonMember * NON_MEMBER_REVEAL_BYTES;
}

/**
 * Why a seal of `request` dated `sealCreatedAt` would not verify (`verifyTranscript`:
 * SEAL_BEFORE_REQUEST, SEAL_LATE), or null when its date is one a seal may carry.
 */
export function sealDateProblem(request: RequestBody, sealCreatedAt: number): string | null {
  if (sealCreatedAt < request.createdAt) return 'the seal is dated before the request';
  const latest = latestSealAt(request);
  if (sealCreatedAt > latest) {
    return `the seal is dated ${sealCreatedAt - latest} ms past maxTimeMs and the skew window`;
  }
  return null;
}

export interface VerdictResult {
  verdict: Verdict;
  digest: string;
  transcriptRoot: string;
  /** The transcript's packets, in the order given to `buildTranscript`. */
  packets: AnyPacket[];
}

/**
 * The verdict and transcript root of a sealed request: consensus/verdict over (request, seal, reveals)
 * and the re-embeddings given (a coordinator's own, or a verdict's claims: `claimedReembeddings`),
 * transcript over request + the sealed members' commits + seal + reveals. Reveals are passed sorted by
 * packet id; both functions are order-independent, the sort only makes the call itself deterministic.
 */
export function decide(
  request: Received<'request'>,
  commits: readonly Received<'commit'>[],
  seal: Received<'seal'>,
  reveals: readonly Received<'reveal'>[],
  reembedding: { reembedded?: ReadonlyMap<string, string>; noiseToleranceBits?: number } = {},
): VerdictResult {
  const sortedReveals = [...reveals].sort(byId);
  const verdict = computeVerdict({
    request: request.packet,
    seal: seal.packet,
    sealId: seal.id,
    reveals: sortedReveals,
    ...(reembedding.reembedded === undefined || reembedding.reembedded.size === 0
      ? {}
      : { reembedded: reembedding.reembedded }),
    ...(reembedding.noiseToleranceBits === undefined
      ? {}
      : { noiseToleranceBits: reembedding.noiseToleranceBits }),
  });
  const packets: AnyPacket[] = [
    request.packet,
    ...[...commits].sort(byId).map((c) => c.packet),
    seal.packet,
    ...sortedReveals.map((r) => r.packet),
  ];
  return {
    verdict,
    digest: verdictDigest(verdict),
    transcriptRoot: transcriptRoot(buildTranscript(packets)),
    packets,
  };
}

/** The sealed members' commits among `commits`, and the commitIds not (correctly) among them. */
export function sealedCommits(
  seal: Packet<'seal'>,
  commits: readonly Received<'commit'>[],
): { commits: Received<'commit'>[]; missing: string[] } {
  const byCommitId = new Map(commits.map((c) => [c.id, c]));
  const found: Received<'commit'>[] = [];
  const missing: string[] = [];
  for (const m of seal.body.members) {
    const c = byCommitId.get(m.commitId);
    // A commit listed under another node or commitment is not this member's commit.
    if (c && c.packet.from === m.nodeId && c.packet.body.commitment === m.commitment) found.push(c);
    else missing.push(m.commitId);
  }
  return { commits: found, missing };
}
