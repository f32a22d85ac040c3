import { driverError, finishExpired } from './common.ts';
import type { LifecycleState } from './status.ts';
import { type Effect, type ExpireReason, STATE_VERSION, type Transition } from './types.ts';

/**
 * Machine state is plain JSON data (strings, numbers, booleans, null, arrays, plain objects: no Maps,
 * no class instances, no undefined), so a driver can store it after every step and resume it after a
 * restart: `restoreState(serializeState(s))` deep-equals `s`. After restoring, feed
 * `{kind: 'restored', now}` so the machine re-arms its timers, publishes again what was not seen back
 * signed, and fires (or expires on) deadlines that passed while it was down.
 */
export function serializeState(state: LifecycleState): string {
  return JSON.stringify(state);
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
