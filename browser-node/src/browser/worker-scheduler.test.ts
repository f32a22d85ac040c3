import { describe, expect, test } from 'bun:test';
import type { Scheduler } from '../node/scheduler.ts';
import { BrowserNodeError } from './errors.ts';
import { MAX_TIMER_MS, TIMER_WORKER_SOURCE, type TimerFired, type TimerRequest } from './timer-worker.ts';
import { type TimerWorkerLike, WorkerScheduler } from './worker-scheduler.ts';

/** A Worker double: records what the page posts; the test says when a timer fires or the worker fails. */
class FakeWorker implements TimerWorkerLike {
  readonly posted: TimerRequest[] = [];
  terminated = false;
  onmessage: ((event: MessageEvent<TimerFired>) => void) | null = null;
  onerror: ((event: ErrorEvent) => void) | null = null;
  onmessageerror: ((event: MessageEvent) => void) | null = null;

  postMessage(message: TimerRequest): void {
    if (this.terminated) throw new Error('posted to a terminated worker');
    this.posted.push(message);
  }

  terminate(): void {
    this.terminated = true;
  }

  /** The worker reports timer `id` fired. */
  fire(id: number): void {
    this.onmessage?.(new MessageEvent('message', { data: { id } }));
  }

  /** The worker fails (a script error, or it could not load). */
  crash(message: string): void {
    this.onerror?.(new ErrorEvent('error', { message, cancelable: true }));
  }

  /** Ids armed and not cancelled, in the order they were armed. */
  armed(): number[] {
    const cancelled = new Set(this.posted.flatMap((m) => ('cancel' in m ? [m.cancel] : [])));
    return this.posted.flatMap((m) => ('id' in m && !cancelled.has(m.id) ? [m.id] : []));
  }
}

/**
 * The real worker script (timer-worker.ts), run in this process against a fake `self`: its
 * `setTimeout` is Bun's, its messages reach the page asynchronously, as a Worker's do.
 */
class SourceWorker implements TimerWorkerLike {
  onmessage: ((event: MessageEvent<TimerFired>) => void) | null = null;
  onerror: ((event: ErrorEvent) => void) | null = null;
  onmessageerror: ((event: MessageEvent) => void) | null = null;
  readonly #self: { onmessage: ((event: { data: unknown }) => void) | null; postMessage(m: unknown): void };
  #terminated = false;

  constructor() {
    this.#self = {
      onmessage: null,
      postMessage: (m) =>
        queueMicrotask(() => {
          if (!this.#terminated) this.onmessage?.(new MessageEvent('message', { data: m as TimerFired }));
        }),
    };
    new Function('self', TIMER_WORKER_SOURCE)(this.#self);
  }

  postMessage(message: TimerRequest): void {
    const data = structuredClone(message);
    queueMicrotask(() => this.#self.onmessage?.({ data }));
  }

  terminate(): void {
    this.#terminated = true;
  }
}

/** A hand-driven page scheduler: its clock moves only when the test says, its timers are recorded. */
class ManualScheduler implements Scheduler {
  t = 1_000_000;
  readonly timers: Array<{ ms: number; fn: () => void; cancelled: boolean }> = [];

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): () => void {
    const timer = { ms, fn, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  /** Run every timer not cancelled (each once). */
  runAll(): void {
    for (const timer of this.timers.splice(0)) if (!timer.cancelled) timer.fn();
  }
}

/** Resolve when `n` callbacks have run (or fail after `ms`). */
function collect(n: number, ms = 5_000): { fired: number[]; done: Promise<void>; push(v: number): void } {
  const fired: number[] = [];
  let resolve = () => {};
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    setTimeout(() => rej(new Error(`only ${fired.length} of ${n} timers fired`)), ms);
  });
  return {
    fired,
    done,
    push(v) {
      fired.push(v);
      if (fired.length === n) resolve();
    },
  };
}

describe('WorkerScheduler: the protocol with the worker', () => {
  test('arms each timer with {id, ms}, runs its callback when {id} comes back, and only then', () => {
    const worker = new FakeWorker();
    const scheduler = new WorkerScheduler({ createWorker: () => worker, fallback: new ManualScheduler() });
    const ran: string[] = [];
    scheduler.after(250, () => ran.push('a'));
    scheduler.after(10, () => ran.push('b'));
    expect(worker.posted).toEqual([
      { id: 1, ms: 250 },
      { id: 2, ms: 10 },
    ]);
    expect(ran).toEqual([]);
    worker.fire(2);
    worker.fire(1);
    expect(ran).toEqual(['b', 'a']);
    // A timer fires once: a repeated or unknown {id} runs nothing.
    worker.fire(1);
    worker.fire(99);
    expect(ran).toEqual(['b', 'a']);
    expect(scheduler.pending).toBe(0);
    expect(scheduler.placement()).toEqual({ runsIn: 'worker', error: null });
  });

  test('cancel posts {cancel: id}; a {id} already on its way when cancelled runs nothing', () => {
    const worker = new FakeWorker();
    const scheduler = new WorkerScheduler({ createWorker: () => worker, fallback: new ManualScheduler() });
    let ran = 0;
    const cancel = scheduler.after(100, () => ran++);
    cancel();
    expect(worker.posted).toEqual([{ id: 1, ms: 100 }, { cancel: 1 }]);
    worker.fire(1);
    expect(ran).toBe(0);
    // Cancelling again, or after it fired, posts nothing.
    cancel();
    const cancelFired = scheduler.after(5, () => ran++);
    worker.fire(2);
    cancelFired();
    expect(ran).toBe(1);
    expect(worker.posted).toEqual([{ id: 1, ms: 100 }, { cancel: 1 }, { id: 2, ms: 5 }]);
  });

  test('ms of 0 or less, or not a number, is armed as 0 (at once, in the worker)', () => {
    const worker = new FakeWorker();
    const scheduler = new WorkerScheduler({ createWorker: () => worker, fallback: new ManualScheduler() });
    for (const ms of [0, -1, -60_000, Number.NaN]) scheduler.after(ms, () => {});
    expect(worker.posted).toEqual([
      { id: 1, ms: 0 },
      { id: 2, ms: 0 },
      { id: 3, ms: 0 },
      { id: 4, ms: 0 },
    ]);
  });

  test('messages not of the protocol are ignored', () => {
    const worker = new FakeWorker();
    const scheduler = new WorkerScheduler({ createWorker: () => worker, fallback: new ManualScheduler() });
    let ran = 0;
    scheduler.after(1, () => ran++);
    for (const data of [null, 'x', { id: '1' }, {}, [1]]) {
      worker.onmessage?.(new MessageEvent('message', { data: data as unknown as TimerFired }));
    }
    expect(ran).toBe(0);
    worker.fire(1);
    expect(ran).toBe(1);
  });
});

describe('WorkerScheduler with the real worker script', () => {
  test('timers fire in the order of their delays; ms <= 0 first, in the order armed', async () => {
    const scheduler = new WorkerScheduler({ createWorker: () => new SourceWorker() });
    const c = collect(6);
    scheduler.after(120, () => c.push(120));
    scheduler.after(60, () => c.push(60));
    scheduler.after(0, () => c.push(0));
    scheduler.after(-5, () => c.push(-5));
    scheduler.after(Number.NaN, () => c.push(-1));
    scheduler.after(180, () => c.push(180));
    await c.done;
    expect(c.fired).toEqual([0, -5, -1, 60, 120, 180]);
    expect(scheduler.pending).toBe(0);
  });

  test('a cancelled timer never fires, in the worker either', async () => {
    const scheduler = new WorkerScheduler({ createWorker: () => new SourceWorker() });
    const c = collect(1);
    let cancelledRan = false;
    const cancel = scheduler.after(20, () => {
      cancelledRan = true;
    });
    cancel();
    scheduler.after(60, () => c.push(60));
    await c.done;
    expect(cancelledRan).toBe(false);
    expect(scheduler.pending).toBe(0);
  });

  test('2,000 timers, half cancelled: each other fires exactly once, none is left', async () => {
    const scheduler = new WorkerScheduler({ createWorker: () => new SourceWorker() });
    const c = collect(1_000);
    const cancels: Array<() => void> = [];
    for (let i = 0; i < 2_000; i++) {
      const cancel = scheduler.after(i % 50, () => c.push(i));
      if (i % 2 === 1) cancels.push(cancel);
    }
    for (const cancel of cancels) cancel();
    await c.done;
    // Past the last delay, nothing more arrives.
    await Bun.sleep(80);
    expect(c.fired.length).toBe(1_000);
    expect(new Set(c.fired).size).toBe(1_000);
    expect(c.fired.every((i) => i % 2 === 0)).toBe(true);
    expect(scheduler.pending).toBe(0);
  });

  test('a delay past 2^31 - 1 ms is capped, not sent to setTimeout to overflow and fire at once', async () => {
    const seen: number[] = [];
    const realSetTimeout = globalThis.setTimeout;
    const self = { onmessage: null as ((event: { data: unknown }) => void) | null, postMessage() {} };
    const spy = ((fn: () => void, ms: number) => {
      seen.push(ms);
      return realSetTimeout(fn, 0);
    }) as unknown as typeof setTimeout;
    new Function('self', 'setTimeout', TIMER_WORKER_SOURCE)(self, spy);
    self.onmessage?.({ data: { id: 1, ms: 30 * 86_400_000 } });
    self.onmessage?.({ data: { id: 2, ms: 1_500 } });
    expect(seen).toEqual([MAX_TIMER_MS, 1_500]);
  });
});

describe('WorkerScheduler falls back to the page', () => {
  test('no worker to start: every timer runs on the fallback, and it says why', () => {
    const page = new ManualScheduler();
    const told: BrowserNodeError[] = [];
    const scheduler = new WorkerScheduler({
      createWorker: () => {
        throw new BrowserNodeError('TIMER_WORKER_UNAVAILABLE', 'this page has no Worker or no Blob URLs');
      },
      fallback: page,
      onFallback: (e) => told.push(e),
    });
    expect(scheduler.placement()).toEqual({
      runsIn: 'page',
      error: 'TIMER_WORKER_UNAVAILABLE: this page has no Worker or no Blob URLs',
    });
    expect(told.map((e) => e.code)).toEqual(['TIMER_WORKER_UNAVAILABLE']);
    let ran = 0;
    scheduler.after(40, () => ran++);
    const cancel = scheduler.after(50, () => ran++);
    cancel();
    expect(page.timers.map((t) => [t.ms, t.cancelled])).toEqual([
      [40, false],
      [50, true],
    ]);
    page.runAll();
    expect(ran).toBe(1);
    expect(scheduler.now()).toBe(page.t);
  });

  test('a constructor that throws anything (a SecurityError) is TIMER_WORKER_UNAVAILABLE', () => {
    const scheduler = new WorkerScheduler({
      createWorker: () => {
        throw new DOMException('the script may not be loaded', 'SecurityError');
      },
      fallback: new ManualScheduler(),
    });
    expect(scheduler.placement().runsIn).toBe('page');
    expect(scheduler.placement().error).toStartWith('TIMER_WORKER_UNAVAILABLE: ');
    expect(scheduler.placement().error).toContain('the script may not be loaded');
  });

  test('a worker error moves its armed timers to the page with the time they had left', () => {
    const worker = new FakeWorker();
    const page = new ManualScheduler();
    const told: BrowserNodeError[] = [];
    const scheduler = new WorkerScheduler({
      createWorker: () => worker,
      fallback: page,
      onFallback: (e) => told.push(e),
    });
    const ran: string[] = [];
    scheduler.after(10_000, () => ran.push('heartbeat'));
    const cancelResume = scheduler.after(3_000, () => ran.push('resume'));
    scheduler.after(-1, () => ran.push('now'));
    scheduler.after(1_000, () => ran.push('fired in the worker'));
    worker.fire(4);
    page.t += 2_500;
    worker.crash('out of memory');

    expect(worker.terminated).toBe(true);
    expect(told.map((e) => e.code)).toEqual(['TIMER_WORKER_FAILED']);
    expect(scheduler.placement()).toEqual({
      runsIn: 'page',
      error: 'TIMER_WORKER_FAILED: the timer worker failed: out of memory',
    });
    expect(page.timers.map((t) => t.ms)).toEqual([7_500, 500, -2_500]);
    expect(scheduler.pending).toBe(3);

    // A moved timer cancelled is cancelled on the page; a late message from the dead worker runs nothing.
    cancelResume();
    worker.onmessage?.(new MessageEvent('message', { data: { id: 1 } }));
    expect(ran).toEqual(['fired in the worker']);
    // Later timers go straight to the page.
    scheduler.after(200, () => ran.push('later'));
    expect(worker.posted.length).toBe(4);
    page.runAll();
    expect(ran).toEqual(['fired in the worker', 'heartbeat', 'now', 'later']);
    expect(scheduler.pending).toBe(0);
    // One error tells once.
    worker.crash('again');
    expect(told.length).toBe(1);
  });

  test('an unreadable message from the worker is a failure too', () => {
    const worker = new FakeWorker();
    const page = new ManualScheduler();
    const scheduler = new WorkerScheduler({ createWorker: () => worker, fallback: page });
    let ran = 0;
    scheduler.after(100, () => ran++);
    worker.onmessageerror?.(new MessageEvent('messageerror'));
    expect(scheduler.placement().error).toStartWith('TIMER_WORKER_FAILED: ');
    page.runAll();
    expect(ran).toBe(1);
  });

  test('close() stops the worker and keeps its timers, on the page', () => {
    const worker = new FakeWorker();
    const page = new ManualScheduler();
    const scheduler = new WorkerScheduler({ createWorker: () => worker, fallback: page });
    let ran = 0;
    scheduler.after(100, () => ran++);
    scheduler.close();
    expect(worker.terminated).toBe(true);
    expect(scheduler.placement()).toEqual({ runsIn: 'page', error: null });
    page.runAll();
    expect(ran).toBe(1);
  });
});
