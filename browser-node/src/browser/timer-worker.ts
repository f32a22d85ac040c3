/**
 * The browser node's timer worker: a dedicated Worker that only runs `setTimeout` for the page, so the
 * node's heartbeats, resume delays and watchdog keep their pace in a hidden tab. Chrome throttles the
 * timers of a page hidden for 5 minutes to about one wake-up a minute ("intensive wake-up throttling");
 * timers in dedicated workers, and messages from workers, are not throttled that way.
 *
 *   page → worker   {id, ms}     arm timer `id` to fire in `ms` (0 or less, or not a number: at once)
 *   page → worker   {cancel: id} disarm it (nothing if it fired or is unknown)
 *   worker → page   {id}         timer `id` fired (once)
 *
 * It is kept apart from the inference worker, whose event loop a generation blocks for seconds. The
 * source is a plain classic script, loaded from a Blob URL (worker-scheduler.ts): nothing to build or
 * serve. Delays are capped at 2^31 - 1 ms (about 24.8 days), where `setTimeout` would overflow and fire at
 * once.
 */
export type TimerRequest = { id: number; ms: number } | { cancel: number };

export interface TimerFired {
  id: number;
}

/** Largest delay `setTimeout` takes without overflowing. */
export const MAX_TIMER_MS = 2_147_483_647;

export const TIMER_WORKER_SOURCE = `'use strict';
const timers = new Map();
self.onmessage = (event) => {
  const m = event.data;
  if (m === null || typeof m !== 'object') return;
  if (typeof m.cancel === 'number') {
    clearTimeout(timers.get(m.cancel));
    timers.delete(m.cancel);
    return;
  }
  const id = m.id;
  if (typeof id !== 'number' || timers.has(id)) return;
  const ms = typeof m.ms === 'number' && m.ms > 0 ? Math.min(m.ms, ${MAX_TIMER_MS}) : 0;
  timers.set(
    id,
    setTimeout(() => {
      timers.delete(id);
      self.postMessage({ id });
    }, ms),
  );
};
`;
