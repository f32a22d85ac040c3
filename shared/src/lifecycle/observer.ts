import { memberRevealFault } from '../consensus/rejected-before-bits.ts';
import { claimedReembeddings, verdictDigest } from '../consensus/verdict.ts';
import { compareStrings } from '../encoding/bytes.ts';
import { isSynodError } from '../errors.ts';
import type { EmbeddingModelRef } from '../frame/frame.ts';
import { LIMITS } from '../packets/limits.ts';
import type { AnyPacket, Packet, RequestBody, SealMember, Verdict } from '../packets/schemas.ts';
import { attestOrCheck, claimsRestored } from './attest.ts';
import {
  byId,
  cancelTimer,
  decide,
  finishDone,
  finishExpired,
  rearm,
  receive,
  reject,
  requestIdOf,
  revealBytes,
  revealRoom,
  sealDateProblem,
  sealedCommits,
  setTimer,
  settleOutgoing,
  takeTimer,
  type VerdictResult,
} from './common.ts';
import type { AnyReceived, BaseState, Effect, Evidence, Received, TimerName } from './types.ts';

/** Reveals held per seal member: a second valid one (another createdAt) may be the one a verdict names. */
export const REVEALS_PER_MEMBER = 2;

/**
 * The observer core shared by the node and the follower: it holds the packets of one request as they
 * arrive, in any order, checks each against what it already holds, and verifies the coordinator's
 * verdict by recomputing it. Packets that arrive before what they depend on (a seal before its request,
 * a reveal or verdict before the seal) are held back in `deferred` and replayed when it comes, so the
 * outcome depends on which packets arrived, not on their order.
 */
export interface ObserverConfig {
  /** Commits (and seal members) from nodes this rejects are not counted. Absent: any node. */
  isEligible?: (requestId: string, nodeId: string) => boolean;
  /**
   * Whether the author of a request packet may coordinate it (e.g. a known relay or chain watcher).
   * A request packet from anyone else is rejected and a trusted one is waited for. Absent: any author.
   */
  trustsCoordinator?: (nodeId: string, request: RequestBody) => boolean;
  /** Slack on the coordinator's deadlines (network delay, clock skew). Default 5000 ms. */
  graceMs?: number;
  /** How long to wait for the request packet when created before it. Default LIMITS.defaultSkewMs. */
  requestWaitMs?: number;
  /** Publish an attestation when the verdict recomputes (node default true, follower default false). */
  attest?: boolean;
  /**
   * The embedder the driver checks a verdict's re-embedding claims with (`embed-claims`, answered with
   * `claims-embedded` or `claims-not-embedded`): with `attest`, a sealed member attests a verdict with
   * claims about other members' reveals only once each holds (attest.ts). Absent, or not the one the
   * frame pins (id and file hash; at least its bits): the claims are taken as given, as before.
   */
  claimsEmbedder?: EmbeddingModelRef;
  /**
   * How many bits a claim may be from the driver's embedding of the claimed text and hold (the
   * tolerance of `synod-verify --reembed`). Default 0: one embedder gives one text the same bits.
   */
  claimToleranceBits?: number;
}

export const DEFAULT_GRACE_MS = 5_000;

/** How far the held verdict has been checked. */
export type Verification = 'none' | 'digest' | 'recomputed' | 'mismatch';

export interface ObserverFields {
  request: Received<'request'> | null;
  /** Before the seal: up to two per node (the seal may name either); after it: the sealed ones. */
  commits: Received<'commit'>[];
  seal: Received<'seal'> | null;
  reveals: Received<'reveal'>[];
  verdict: Received<'verdict'> | null;
  verification: Verification;
  /** Attestations matching the held verdict, one per node. */
  attestations: { nodeId: string; id: string }[];
  /** Packets waiting for the request or the seal. */
  deferred: AnyReceived[];
  /** `<evidence kind>:<nodeId>` of every evidence emitted (each is emitted once), sorted. */
  accused: string[];
  /**
   * Waiting for the driver's embedding of the verdict's claimed texts (`embed-claims`) before attesting
   * it (attest.ts). Absent in states stored before claims were checked, which means false.
   */
  checkingClaims?: boolean;
}

export type ObserverState = BaseState & ObserverFields;

/** Role callbacks, run synchronously inside a step. */
export interface ObserverHooks<S extends ObserverState> {
  /** The request was accepted (after replaying what waited for it, so a seal may already be held). */
  onRequest(s: S, fx: Effect[], now: number): void;
  /** The seal was accepted (before replaying what waited for it). */
  onSeal(s: S, fx: Effect[], now: number): void;
}

/** Deferred packets held at most (the verdict's own bound: more would not fit one transcript). */
export const MAX_DEFERRED = LIMITS.maxVerdictEntries;
/** Room in `deferred` that only seals and verdicts may use. */
const RESERVED = 32;
/**
 * Bytes of reveals held in `deferred` (reveals that came before the seal, `revealBytes` each): before
 * the seal no one can tell a member's reveal from anyone's, and the count bound alone let 224 reveals of
 * about 256 KiB wait there. A member's reveal refused for want of room comes again: a node publishes its
 * reveal again while it holds no verdict.
 */
export const MAX_DEFERRED_REVEAL_BYTES = 8 * 1024 * 1024;
/** Commits held before the seal, from all nodes together. */
export const MAX_OPEN_COMMITS = 2 * LIMITS.maxSealMembers;

export function emptyObserverFields(): ObserverFields {
  return {
    request: null,
    commits: [],
    seal: null,
    reveals: [],
    verdict: null,
    verification: 'none',
    attestations: [],
    deferred: [],
    accused: [],
  };
}

export function copyObserverFields<S extends ObserverState>(s: S): S {
  return {
    ...s,
    timers: { ...s.timers },
    outbox: [...s.outbox],
    commits: [...s.commits],
    reveals: [...s.reveals],
    attestations: [...s.attestations],
    deferred: [...s.deferred],
    accused: [...s.accused],
  };
}

export function startObserver(s: ObserverState, fx: Effect[], config: ObserverConfig, now: number): void {
  setTimer(s, fx, 'request-wait', now + (config.requestWaitMs ?? LIMITS.defaultSkewMs));
}

const grace = (config: ObserverConfig) => config.graceMs ?? DEFAULT_GRACE_MS;

/** A packet event. */
export function observerPacket<S extends ObserverState>(
  config: ObserverConfig,
  hooks: ObserverHooks<S>,
  s: S,
  fx: Effect[],
  packet: AnyPacket,
  now: number,
): void {
  const rec = receive(packet) as AnyReceived;
  const rid = requestIdOf(packet);
  if (rid === null) {
    reject(fx, 'UNEXPECTED_TYPE', `a ${packet.type} packet is not part of a request`, rec.id);
    return;
  }
  if (rid !== s.requestId) {
    reject(fx, 'REQUEST_MISMATCH', `packet is for request ${rid}`, rec.id);
    return;
  }
  const own = packet.from === s.self && settleOutgoing(s, rec.id);
  if (s.outcome !== null) {
    if (!own) reject(fx, 'FINISHED', `this machine has ${s.outcome.kind}`, rec.id);
    return;
  }
  observe(config, hooks, s, fx, rec, now);
}

/** A timer event for one of the observer's timers; true when it was one. */
export function observerTimer(s: ObserverState, fx: Effect[], name: TimerName, now: number): boolean {
  switch (name) {
    case 'request-wait':
      if (s.request === null) finishExpired(s, fx, 'request-missing', now);
      return true;
    case 'seal-wait':
      if (s.seal === null) finishExpired(s, fx, 'not-sealed', now);
      return true;
    case 'verdict-wait':
      if (s.verdict === null) finishExpired(s, fx, 'no-verdict', now);
      return true;
    case 'verify-wait':
      if (s.verification === 'digest') finishDone(s, fx, 'unverified', now);
      return true;
    default:
      return false;
  }
}

/**
 * After a restart: publish the outbox again, re-arm timers, fire the overdue ones via `fire`, and ask
 * again for a check of the verdict's claims that was under way.
 */
export function observerRestored(
  config: ObserverConfig,
  s: ObserverState,
  fx: Effect[],
  now: number,
  fire: (name: TimerName) => void,
) {
  if (s.outcome !== null) return;
  for (const name of rearm(s, fx, now)) {
    if (s.outcome === null && takeTimer(s, name)) fire(name);
  }
  claimsRestored(config, s, fx, now);
}

function observe<S extends ObserverState>(
  config: ObserverConfig,
  hooks: ObserverHooks<S>,
  s: S,
  fx: Effect[],
  rec: AnyReceived,
  now: number,
): void {
  switch (rec.packet.type) {
    case 'request':
      onRequest(config, hooks, s, fx, rec as Received<'request'>, now);
      return;
    case 'commit':
      onCommit(config, s, fx, rec as Received<'commit'>, now);
      return;
    case 'seal':
      onSeal(config, hooks, s, fx, rec as Received<'seal'>, now);
      return;
    case 'reveal':
      onReveal(config, s, fx, rec as Received<'reveal'>, now);
      return;
    case 'verdict':
      onVerdict(config, s, fx, rec as Received<'verdict'>, now);
      return;
    case 'attestation':
      onAttestation(s, fx, rec as Received<'attestation'>);
      return;
    case 'decline':
      // Another node cannot run the request: only its coordinator counts declines (they are not part of
      // a verdict's transcript); a node or follower goes on as it would without it.
      return;
    default:
      reject(fx, 'UNEXPECTED_TYPE', `a ${rec.packet.type} packet is not part of a request`, rec.id);
      return;
  }
}

function defer(s: ObserverState, fx: Effect[], rec: AnyReceived): void {
  if (s.deferred.some((d) => d.id === rec.id)) return;
  // Seals and verdicts (a handful from the coordinator) keep room that a flood of early reveals or
  // attestations cannot take.
  const room =
    rec.packet.type === 'seal' || rec.packet.type === 'verdict' ? MAX_DEFERRED : MAX_DEFERRED - RESERVED;
  if (s.deferred.length >= room || (rec.packet.type === 'reveal' && !deferredRevealRoom(s, rec.packet))) {
    reject(fx, 'BUFFER_FULL', `no room to hold a ${rec.packet.type} until it can be checked`, rec.id);
    return;
  }
  s.deferred = [...s.deferred, rec];
}

/** Whether `deferred` has room for one more reveal, `packet`, within `MAX_DEFERRED_REVEAL_BYTES`. */
function deferredRevealRoom(s: ObserverState, packet: Packet<'reveal'>): boolean {
  let bytes = revealBytes(packet);
  for (const d of s.deferred) if (d.packet.type === 'reveal') bytes += revealBytes(d.packet);
  return bytes <= MAX_DEFERRED_REVEAL_BYTES;
}

function replay<S extends ObserverState>(
  config: ObserverConfig,
  hooks: ObserverHooks<S>,
  s: S,
  fx: Effect[],
  now: number,
): void {
  const pending = s.deferred;
  s.deferred = [];
  for (const rec of pending) {
    if (s.outcome !== null) return;
    observe(config, hooks, s, fx, rec, now);
  }
}

/** Record that evidence of `kind` against `nodeId` is emitted now; false if it already was. */
function accuse(s: ObserverState, kind: Evidence['kind'], nodeId: string): boolean {
  const key = `${kind}:${nodeId}`;
  if (s.accused.includes(key)) return false;
  s.accused = [...s.accused, key].sort(compareStrings);
  return true;
}

function onRequest<S extends ObserverState>(
  config: ObserverConfig,
  hooks: ObserverHooks<S>,
  s: S,
  fx: Effect[],
  rec: Received<'request'>,
  now: number,
): void {
  if (s.request !== null) {
    if (s.request.id !== rec.id)
      reject(fx, 'DUPLICATE_REQUEST', 'another request packet is already held', rec.id);
    return;
  }
  if (config.trustsCoordinator && !config.trustsCoordinator(rec.packet.from, rec.packet.body)) {
    reject(fx, 'NOT_COORDINATOR', 'the author of this request packet is not trusted to coordinate', rec.id);
    return;
  }
  s.request = rec;
  const frame = rec.packet.body.frame;
  cancelTimer(s, fx, 'request-wait');
  setTimer(s, fx, 'seal-wait', rec.packet.body.createdAt + frame.maxTimeMs + grace(config));
  replay(config, hooks, s, fx, now);
  if (s.outcome === null) hooks.onRequest(s, fx, now);
}

function onCommit(
  config: ObserverConfig,
  s: ObserverState,
  fx: Effect[],
  rec: Received<'commit'>,
  now: number,
) {
  if (s.commits.some((c) => c.id === rec.id)) return; // duplicate delivery
  const from = rec.packet.from;
  const held = s.commits.filter((c) => c.packet.from === from);
  const other = held.find((c) => c.packet.body.commitment !== rec.packet.body.commitment);
  if (other) {
    if (accuse(s, 'double-commit', from)) {
      const [a, b] = [other, rec].sort(byId) as [Received<'commit'>, Received<'commit'>];
      fx.push({
        kind: 'evidence',
        evidence: { kind: 'double-commit', nodeId: from, packets: [a.packet, b.packet] },
      });
    }
  }
  if (s.seal !== null) {
    const member = s.seal.packet.body.members.find((m) => m.commitId === rec.id);
    if (member === undefined) {
      reject(fx, other ? 'DOUBLE_COMMIT' : 'COMMIT_AFTER_SEAL', 'this commit is not sealed', rec.id);
      return;
    }
    s.commits = [...s.commits, rec]; // a sealed commit that arrived late: the transcript needs it
    if (s.verification === 'digest') checkVerdict(config, s, fx, now, false);
    return;
  }
  if (config.isEligible && !config.isEligible(s.requestId, from)) {
    reject(fx, 'NOT_ELIGIBLE', 'this node is not eligible for the request', rec.id);
    return;
  }
  if (held.length >= 2 || s.commits.length >= MAX_OPEN_COMMITS) {
    reject(fx, 'LIMIT', 'no room for another commit', rec.id);
    return;
  }
  s.commits = [...s.commits, rec];
}

function onSeal<S extends ObserverState>(
  config: ObserverConfig,
  hooks: ObserverHooks<S>,
  s: S,
  fx: Effect[],
  rec: Received<'seal'>,
  now: number,
): void {
  if (s.request === null) {
    defer(s, fx, rec);
    return;
  }
  const coordinator = s.request.packet.from;
  if (rec.packet.from !== coordinator) {
    reject(fx, 'NOT_COORDINATOR', 'a seal not signed by the request author', rec.id);
    return;
  }
  if (s.seal !== null) {
    if (s.seal.id === rec.id) return;
    if (accuse(s, 'double-seal', coordinator)) {
      const [a, b] = [s.seal, rec].sort(byId) as [Received<'seal'>, Received<'seal'>];
      fx.push({
        kind: 'evidence',
        evidence: { kind: 'double-seal', nodeId: coordinator, packets: [a.packet, b.packet] },
      });
    }
    reject(fx, 'DOUBLE_SEAL', 'the coordinator signed a second, different seal', rec.id);
    return;
  }
  const problem = sealProblem(config, s, rec);
  if (problem !== null) {
    reject(fx, 'SEAL_INVALID', problem, rec.id);
    return;
  }
  s.seal = rec;
  const sealed = new Set(rec.packet.body.members.map((m) => m.commitId));
  s.commits = s.commits.filter((c) => sealed.has(c.id));
  cancelTimer(s, fx, 'seal-wait');
  const frame = s.request.packet.body.frame;
  setTimer(s, fx, 'verdict-wait', rec.packet.body.createdAt + frame.revealWindowMs + grace(config));
  hooks.onSeal(s, fx, now);
  replay(config, hooks, s, fx, now);
}

function sealProblem(config: ObserverConfig, s: ObserverState, rec: Received<'seal'>): string | null {
  const request = s.request as Received<'request'>;
  const { frame } = request.packet.body;
  const { members, requestPacketId } = rec.packet.body;
  if (requestPacketId !== request.id) return 'the seal names a different request packet';
  if (members.length < frame.quorum) return `the seal has ${members.length} members, fewer than the quorum`;
  if (members.length > frame.maxCommits)
    return `the seal has ${members.length} members, more than maxCommits`;
  // A seal no transcript verification accepts: revealing to it, or attesting a verdict over it, would
  // stand behind a transcript every verifier rejects.
  const date = sealDateProblem(request.packet.body, rec.packet.body.createdAt);
  if (date !== null) return date;
  if (config.isEligible) {
    const bad = members.find((m) => !config.isEligible?.(s.requestId, m.nodeId));
    if (bad) return `the seal lists ineligible node ${bad.nodeId}`;
  }
  return null;
}

function onReveal(
  config: ObserverConfig,
  s: ObserverState,
  fx: Effect[],
  rec: Received<'reveal'>,
  now: number,
) {
  if (s.seal === null) {
    defer(s, fx, rec);
    return;
  }
  if (s.reveals.some((r) => r.id === rec.id)) return;
  const members = new Set(s.seal.packet.body.members.map((m) => m.nodeId));
  if (!revealRoom(s.reveals, members, rec.packet, REVEALS_PER_MEMBER)) {
    reject(fx, 'LIMIT', 'no room for another reveal from this node', rec.id);
    return;
  }
  s.reveals = [...s.reveals, rec];
  if (s.verification === 'digest') checkVerdict(config, s, fx, now, false);
}

function onVerdict(
  config: ObserverConfig,
  s: ObserverState,
  fx: Effect[],
  rec: Received<'verdict'>,
  now: number,
) {
  // Checked before it waits for the seal, too: only the coordinator's verdicts may take room there.
  if (s.request !== null && rec.packet.from !== s.request.packet.from) {
    reject(fx, 'NOT_COORDINATOR', 'a verdict not signed by the request author', rec.id);
    return;
  }
  if (s.request === null || s.seal === null) {
    defer(s, fx, rec);
    return;
  }
  const coordinator = s.request.packet.from;
  const body = rec.packet.body;
  if (s.verdict !== null) {
    if (s.verdict.id === rec.id) return;
    if (
      s.verdict.packet.body.verdictDigest !== body.verdictDigest &&
      accuse(s, 'double-verdict', coordinator)
    ) {
      const [a, b] = [s.verdict, rec].sort(byId) as [Received<'verdict'>, Received<'verdict'>];
      fx.push({
        kind: 'evidence',
        evidence: { kind: 'double-verdict', nodeId: coordinator, packets: [a.packet, b.packet] },
      });
    }
    reject(fx, 'DOUBLE_VERDICT', 'a second verdict packet', rec.id);
    return;
  }
  if (body.verdict.requestId !== s.requestId || body.verdict.sealId !== s.seal.id) {
    reject(fx, 'VERDICT_INVALID', 'the verdict is about another request or seal', rec.id);
    return;
  }
  if (verdictDigest(body.verdict) !== body.verdictDigest) {
    if (accuse(s, 'invalid-verdict', coordinator)) {
      fx.push({
        kind: 'evidence',
        evidence: { kind: 'invalid-verdict', nodeId: coordinator, reason: 'digest', packets: [rec.packet] },
      });
    }
    reject(fx, 'VERDICT_INVALID', 'verdictDigest is not the digest of the verdict', rec.id);
    return;
  }
  s.verdict = rec;
  cancelTimer(s, fx, 'verdict-wait');
  checkVerdict(config, s, fx, now, true);
  if (s.outcome === null) replay(config, noHooks, s, fx, now); // attestations that waited for it
}

const noHooks: ObserverHooks<ObserverState> = { onRequest() {}, onSeal() {} };

function onAttestation(s: ObserverState, fx: Effect[], rec: Received<'attestation'>): void {
  if (s.verdict === null) {
    defer(s, fx, rec);
    return;
  }
  const from = rec.packet.from;
  if (s.attestations.some((a) => a.id === rec.id || a.nodeId === from)) return;
  const { verdictDigest: digest, transcriptRoot } = rec.packet.body;
  const held = s.verdict.packet.body;
  if (digest !== held.verdictDigest || transcriptRoot !== held.transcriptRoot) {
    reject(fx, 'ATTESTATION_MISMATCH', 'attests a different verdict digest or transcript root', rec.id);
    return;
  }
  s.attestations = [...s.attestations, { nodeId: from, id: rec.id }];
}

/**
 * Recompute the held verdict from the held packets. `first` on the verdict's arrival, later again on
 * each reveal or commit that may complete the transcript.
 */
function checkVerdict(
  config: ObserverConfig,
  s: ObserverState,
  fx: Effect[],
  now: number,
  first: boolean,
): void {
  const verdict = s.verdict as Received<'verdict'>;
  const body = verdict.packet.body;
  const outcome = recompute(s);
  const report = (check: 'recomputed' | 'digest') =>
    fx.push({
      kind: 'verdict',
      verdict: body.verdict,
      digest: body.verdictDigest,
      transcriptRoot: body.transcriptRoot,
      check,
    });
  switch (outcome.kind) {
    case 'incomplete':
      if (first) {
        s.verification = 'digest';
        report('digest');
        setTimer(s, fx, 'verify-wait', now + grace(config));
      }
      return;
    case 'match':
      // Reported on arrival, and again when a verdict first checked by digest only is upgraded by the
      // packets that completed its transcript, so drivers learn of the stronger check.
      if (first || s.verification !== 'recomputed') report('recomputed');
      s.verification = 'recomputed';
      // A verdict that claims this node's own bits are not its text's embedding: the node made those bits
      // from its text, so the claim is false here (or the coordinator's embedder is not bit-identical to
      // its own): it does not co-sign it. Its outcome says the rejection; nothing else changes.
      if (!config.attest || body.verdict.reembedded?.some((c) => c.nodeId === s.self)) {
        finishDone(s, fx, 'verified', now);
        return;
      }
      // Claims about other members' reveals are checked first when this machine can (attest.ts).
      attestOrCheck(config, s, fx, now);
      return;
    case 'mismatch': {
      s.verification = 'mismatch';
      const coordinator = verdict.packet.from;
      if (outcome.provable && accuse(s, 'invalid-verdict', coordinator)) {
        fx.push({
          kind: 'evidence',
          evidence: {
            kind: 'invalid-verdict',
            nodeId: coordinator,
            reason: 'recomputed',
            packets: [...outcome.result.packets, verdict.packet],
          },
        });
      }
      reject(fx, 'VERDICT_MISMATCH', outcome.reason, verdict.id);
      finishDone(s, fx, 'verdict-mismatch', now);
      return;
    }
  }
}

type Recomputed =
  | { kind: 'incomplete' }
  | { kind: 'match'; result: VerdictResult }
  | { kind: 'mismatch'; reason: string; provable: true; result: VerdictResult }
  | { kind: 'mismatch'; reason: string; provable: false };

function recompute(s: ObserverState): Recomputed {
  const request = s.request as Received<'request'>;
  const seal = s.seal as Received<'seal'>;
  const body = (s.verdict as Received<'verdict'>).packet.body;
  const { commits, missing } = sealedCommits(seal.packet, s.commits);
  if (missing.length > 0) return { kind: 'incomplete' };
  const selection = selectReveals(body.verdict, request, seal, s.reveals);
  if (selection === null) return { kind: 'incomplete' };
  let result: VerdictResult;
  try {
    // A re-embedding coordinator's claims (consensus/verdict.ts, step 8) are part of its verdict: the
    // recomputation takes them as they are; whether they are the texts' embeddings is not checked here.
    result = decide(request, commits, seal, selection.reveals, {
      reembedded: claimedReembeddings(body.verdict),
    });
  } catch (error) {
    if (!isSynodError(error)) throw error;
    return {
      kind: 'mismatch',
      reason: `the transcript does not recompute: ${error.message}`,
      provable: false,
    };
  }
  if (result.digest !== body.verdictDigest) {
    // Provable only when the packets the verdict was computed over are known exactly.
    return selection.exact
      ? { kind: 'mismatch', reason: 'the recomputed verdict differs', provable: true, result }
      : { kind: 'mismatch', reason: 'the recomputed verdict differs', provable: false };
  }
  if (result.transcriptRoot !== body.transcriptRoot) {
    // The verdict recomputes, but not its root: the reveals counted for accepted members (their ids
    // are not in the verdict) are not the coordinator's. Any of them may have signed several valid
    // reveals (they differ only in createdAt) and the coordinator counted one this machine never got:
    // that is no mismatch, only a transcript not complete here (verify-wait ends it `unverified`).
    return { kind: 'incomplete' };
  }
  return { kind: 'match', result };
}

/**
 * The reveals the verdict says it was computed over, among those held. Every reveal in a coordinator's
 * transcript is named by the verdict (see consensus/verdict.ts, steps 3 and 6, and `revealRoom`):
 * rejected entries cite their reveal id; an accepted member's considered reveal is its valid reveal
 * with the smallest id. Null when one of them is not held yet (or is known not to be: an accepted
 * member's valid DUPLICATE_REVEAL has a smaller id than any of its reveals held). `exact` is false when
 * an accepted member has several valid reveals held (they differ only in createdAt), so the pick may not
 * be the coordinator's: then a differing result is not proof against the coordinator.
 */
export function selectReveals(
  verdict: Verdict,
  request: Received<'request'>,
  seal: Received<'seal'>,
  reveals: readonly Received<'reveal'>[],
): { reveals: Received<'reveal'>[]; exact: boolean } | null {
  const held = new Map(reveals.map((r) => [r.id, r]));
  const cited = new Set<string>();
  for (const r of verdict.rejected) if (r.revealId !== null) cited.add(r.revealId);
  // A re-embedding claim names the reveal whose bits it gives (not always a listed one).
  for (const c of verdict.reembedded ?? []) cited.add(c.revealId);
  const out: Received<'reveal'>[] = [];
  for (const id of cited) {
    const r = held.get(id);
    if (r === undefined) return null;
    out.push(r);
  }
  let exact = true;
  const members = new Map(seal.packet.body.members.map((m) => [m.nodeId, m]));
  for (const a of verdict.accepted) {
    const member = members.get(a.nodeId);
    if (member === undefined) continue; // a false claim: the recomputation will differ
    const valid = reveals
      .filter(
        (r) => r.packet.from === a.nodeId && !cited.has(r.id) && isValidReveal(r, member, request, seal),
      )
      .sort(byId);
    if (valid.length === 0) return null;
    const chosen = valid[0] as Received<'reveal'>;
    // The coordinator counted the smallest valid reveal it held, and its DUPLICATE_REVEAL entry names
    // another one it held: a valid duplicate with a smaller id than every candidate here means the
    // counted one is not held here (the recomputation would name another duplicate).
    const duplicateId = verdict.rejected.find(
      (r) => r.nodeId === a.nodeId && r.reason === 'DUPLICATE_REVEAL',
    )?.revealId;
    const duplicate = duplicateId ? held.get(duplicateId) : undefined;
    if (duplicate && duplicate.id < chosen.id && isValidReveal(duplicate, member, request, seal)) return null;
    if (valid.length > 1) exact = false;
    out.push(chosen);
  }
  return { reveals: out, exact };
}

/** The validity checks of consensus/verdict.ts step 2 (without re-embedding): the verdict's own. */
function isValidReveal(
  r: Received<'reveal'>,
  member: SealMember,
  request: Received<'request'>,
  seal: Received<'seal'>,
): boolean {
  return memberRevealFault(request.packet.body, seal.packet.body, member, r.packet) === null;
}
