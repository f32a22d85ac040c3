import { realScheduler, type Scheduler } from '../node/scheduler.ts';
import { BrowserNodeError } from './errors.ts';
import { TIMER_WORKER_SOURCE, type TimerFired, type TimerRequest } from './timer-worker.ts';

/** What the scheduler needs of a Worker (a test gives a double). */
export interface TimerWorkerLike {
  postMessage(message: TimerRequest): void;
  terminate(): void;
  onmessage: ((event: MessageEvent<TimerFired>) => void) | null;
  onerror: ((event: ErrorEvent) => void) | null;
  onmessageerror: ((event: MessageEvent) => void) | null;
}

export interface WorkerSchedulerOptions {
  /** Start the timer worker; throwing means the page has none. Default: `startTimerWorker`. */
  createWorker?: () => TimerWorkerLike;
  /** Where timers run without a worker, and the clock. Default `realScheduler` (page timers, Date.now). */
  fallback?: Scheduler;
  /** Told once, when the timers move to the page (the worker could not start, or failed). */
  onFallback?: (error: BrowserNodeError) => void;
}

/** Where the timers run now, and why on the page when a worker was wanted (`CODE: message`). */
export interface TimerPlacement {
  runsIn: 'worker' | 'page';
  error: string | null;
}

interface Pending {
  fn: () => void;
  due: number;
  /** Set once the timer moved to the fallback: cancels it there. */
  moved: (() => void) | null;
}

/**
 * The timer worker (timer-worker.ts) from a Blob URL, a classic script: nothing to bundle or serve. The
 * URL is revoked at once (the Worker constructor has already resolved it). Throws TIMER_WORKER_UNAVAILABLE
 * when the page has no Worker or Blob URLs, or the constructor refuses. A Content-Security-Policy that
 * refuses `blob:` workers is, in Chromium, an error event after the Worker is made (TIMER_WORKER_FAILED).
 */
export function startTimerWorker(): TimerWorkerLike {
  if (typeof Worker === 'undefined' || typeof URL.createObjectURL !== 'function') {
    throw new BrowserNodeError('TIMER_WORKER_UNAVAILABLE', 'this page has no Worker or no Blob URLs');
  }
  const url = URL.createObjectURL(new Blob([TIMER_WORKER_SOURCE], { type: 'text/javascript' }));
  try {
    return new Worker(url, { name: 'synod-timers' });
  } catch (e) {
    throw new BrowserNodeError('TIMER_WORKER_UNAVAILABLE', `the timer worker did not start: ${String(e)}`, {
      cause: e,
    });
  } finally {
    URL.revokeObjectURL(url);
  }
}

/**
 * A `Scheduler` whose timers run in a dedicated worker: the page posts `{id, ms}` (or `{cancel: id}`),
 * the worker's `setTimeout` fires and posts `{id}` back, and the callback runs on the page as that
 * message's task, which a hidden tab's timer throttling does not delay. `now()` is the fallback's clock
 * (Date.now by default).
 *
 * Without a worker (none in this context, or refused), timers run on the fallback from the start; if the
 * worker fails later, the timers it held move to the fallback with the time they had left, and so do
 * later ones. Either way `placement()` says so, and `onFallback` is told once. `close()` stops the worker
 * and moves its timers likewise, so no callback is ever lost.
 */
export class WorkerScheduler implements Scheduler {
  readonly #fallback: Scheduler;
  readonly #onFallback: ((error: BrowserNodeError) => void) | undefined;
  readonly #pending = new Map<number, Pending>();
  #worker: TimerWorkerLike | null = null;
  #error: BrowserNodeError | null = null;
  #nextId = 1;

  constructor(options: WorkerSchedulerOptions = {}) {
    this.#fallback = options.fallback ?? realScheduler;
    this.#onFallback = options.onFallback;
    let worker: TimerWorkerLike;
    try {
      worker = (options.createWorker ?? startTimerWorker)();
    } catch (e) {
      this.#moveToPage(
        e instanceof BrowserNodeError
          ? e
          : new BrowserNodeError('TIMER_WORKER_UNAVAILABLE', `the timer worker did not start: ${String(e)}`, {
              cause: e,
            }),
      );
      return;
    }
    this.#worker = worker;
    worker.onmessage = (event) => this.#fired(event.data);
    worker.onerror = (event) => {
      event.preventDefault?.();
      this.#fail(`the timer worker failed: ${event.message || 'it could not load or threw'}`);
    };
    worker.onmessageerror = () => this.#fail('a message from the timer worker could not be read');
  }

  now(): number {
    return this.#fallback.now();
  }

  after(ms: number, fn: () => void): () => void {
    const worker = this.#worker;
    if (worker === null) return this.#fallback.after(ms, fn);
    // biome-ignore lint/complexity/useMathMinMax: NaN must become 0 too (Math.max would keep it).
    const delay = ms > 0 ? ms : 0;
    const id = this.#nextId++;
    const entry: Pending = { fn, due: this.now() + delay, moved: null };
    this.#pending.set(id, entry);
    worker.postMessage({ id, ms: delay });
    return () => {
      if (this.#pending.get(id) !== entry) return;
      this.#pending.delete(id);
      if (entry.moved !== null) entry.moved();
      else this.#worker?.postMessage({ cancel: id });
    };
  }

  /** Timers armed and not fired or cancelled yet, in the worker or moved from it. */
  get pending(): number {
    return this.#pending.size;
  }

  placement(): TimerPlacement {
    return {
      runsIn: this.#worker === null ? 'page' : 'worker',
      error: this.#error === null ? null : `${this.#error.code}: ${this.#error.message}`,
    };
  }

  /** Stop the worker; timers still armed (and later ones) run on the fallback. */
  close(): void {
    const worker = this.#worker;
    if (worker === null) return;
    this.#worker = null;
    worker.terminate();
    this.#moveTimers();
  }

  #fired(message: TimerFired | null | undefined): void {
    if (message === null || typeof message !== 'object' || typeof message.id !== 'number') return;
    const entry = this.#pending.get(message.id);
    // Cancelled while its message was on the way, or already moved to the fallback.
    if (entry === undefined || entry.moved !== null) return;
    this.#pending.delete(message.id);
    entry.fn();
  }

  #fail(message: string): void {
    const worker = this.#worker;
    if (worker === null) return;
    this.#worker = null;
    worker.terminate();
    this.#moveTimers();
    this.#moveToPage(new BrowserNodeError('TIMER_WORKER_FAILED', message));
  }

  #moveToPage(error: BrowserNodeError): void {
    this.#error = error;
    this.#onFallback?.(error);
  }

  #moveTimers(): void {
    const now = this.now();
    for (const [id, entry] of this.#pending) {
      if (entry.moved !== null) continue;
      entry.moved = this.#fallback.after(entry.due - now, () => {
        if (this.#pending.get(id) !== entry) return;
        this.#pending.delete(id);
        entry.fn();
      });
    }
  }
}
