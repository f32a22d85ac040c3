/**
 * The node's clock and timers, injected so tests and the simulator can drive time. The protocol core
 * never reads a clock: the driver passes `now()` into every event.
 */
export interface Scheduler {
  now(): number;
  /** Run `fn` after `ms` (0 or less: as soon as possible). Returns a cancel function. */
  after(ms: number, fn: () => void): () => void;
}

/**
 * Date.now and the host's setTimeout. On a page these are the page's timers, which a browser throttles
 * in a hidden tab; the browser node runs its timers in a worker instead (browser/worker-scheduler.ts).
 */
export const realScheduler: Scheduler = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(t);
  },
};
