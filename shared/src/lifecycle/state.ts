import { driverError, finishExpired } from './common.ts';
import type { LifecycleState } from './status.ts';
import { type Effect, type ExpireReason, STATE_VERSION, type Transition } from './types.ts';

/**
 * Machine state is plain JSON data (strings, numbers, booleans, null, arrays, plain objects: no Maps,
 * no class instances, no undefined), so a driver can store it after every step and resume it after a
 * restart: `restoreState(serializeState(s))` deep-equals `s`. A driver stores `durableState(s)`, which
 * leaves out reveals a machine does not need to resume. After restoring, feed
 * `{kind: 'restored', now}` so the machine re-arms its timers, publishes again what was not seen back
 * signed, and fires (or expires on) deadlines that passed while it was down.
 */
export function serializeState(state: LifecycleState): string {
  return JSON.stringify(state);
}

/**
 * What a driver stores of `state` so that it can resume it: the state less the reveals nothing needs to
 * resume safely, those of nodes outside the seal (at most `NON_MEMBER_REVEAL_BYTES`, observers twice)
 * and those waiting in an observer's `deferred` for the seal (at most `MAX_DEFERRED_REVEAL_BYTES`). A
 * step that only took one of them in then leaves this unchanged, and the driver writes nothing (each of
 * them used to rewrite the whole state, every reveal held included: a flood of n wrote n²/2 reveals).
 * Resuming without them is safe: a coordinator judges whatever reveals it holds (a relay gives it back
 * what its history kept, `restoreWith`), a member publishes its reveal again while it holds no verdict,
 * and an observer missing a non-member reveal its verdict cites ends `unverified`, not `mismatch`.
 * The input is not changed; a state holding none of them is returned as is.
 */
export function durableState(state: LifecycleState): LifecycleState {
  const members = state.role === 'coordinator' ? state.seal?.body.members : state.seal?.packet.body.members;
  const sealed = members ? new Set(members.map((m) => m.nodeId)) : null;
  const reveals = sealed ? state.reveals.filter((r) => sealed.has(r.packet.from)) : state.reveals;
  if (state.role === 'coordinator') {
    return reveals.length === state.reveals.length ? state : { ...state, reveals };
  }
  const deferred = state.deferred.filter((d) => d.packet.type !== 'reveal');
  if (reveals.length === state.reveals.length && deferred.length === state.deferred.length) return state;
  return { ...state, reveals, deferred };
}

/**
 * Parse a stored state. Checks the envelope (version, role, request id); the contents are the
 * driver's own earlier output. Throws LIFECYCLE_INVALID_EVENT for anything else.
 */
export function restoreState(text: string): LifecycleState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    driverError('stored lifecycle state is not JSON', { cause: String(cause) });
  }
  const s = value as Partial<LifecycleState> | null;
  if (
    s === null ||
    typeof s !== 'object' ||
    s.v !== STATE_VERSION ||
    (s.role !== 'coordinator' && s.role !== 'node' && s.role !== 'follower') ||
    typeof s.requestId !== 'string' ||
    typeof s.self !== 'string' ||
    typeof s.timers !== 'object' ||
    !Array.isArray(s.outbox)
  ) {
    driverError('stored lifecycle state has an unknown shape or version', {
      v: s?.v,
      role: s?.role,
      supported: STATE_VERSION,
    });
  }
  return s as LifecycleState;
}

/**
 * End an open machine from outside its own events: its timers cancelled, its outcome `expired` with
 * `reason`, as its own deadlines would. For a driver that finds a machine nothing can step again (its
 * timers lost to a failed write, say). A machine already finished is returned unchanged, with no effect.
 * Pure: a new state, the input untouched.
 */
export function expireState(
  state: LifecycleState,
  reason: ExpireReason,
  now: number,
): Transition<LifecycleState> {
  if (state.outcome !== null) return { state, effects: [] };
  const s = structuredClone(state);
  if (s.role === 'coordinator') s.phase = 'finished';
  const fx: Effect[] = [];
  finishExpired(s, fx, reason, now);
  return { state: s, effects: fx };
}
