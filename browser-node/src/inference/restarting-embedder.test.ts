import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import type { EmbeddingModelRef } from '@synod/shared';
import { waitFor } from '../p2p/test-fixtures.ts';
import type { Embedder } from './embedder.ts';
import { InferenceError, isInferenceError } from './errors.ts';
import { RestartingEmbedder, type RestartTimers } from './restarting-embedder.ts';
import { WorkerEmbedder } from './worker-client.ts';

const REF: EmbeddingModelRef = { id: 'dying-512', fileHash: 'ab'.repeat(32), bits: 512 };

/** TEST DOUBLE: an embedder whose worker can be told to die. Its bits are the text's sha512. */
class DyingEmbedderTestDouble implements Embedder {
  state: 'new' | 'loaded' | 'dead' | 'unloaded' = 'new';

  constructor(
    private readonly made: DyingEmbeddersTestDouble,
    private readonly died: (error: InferenceError) => void,
  ) {}

  get ref(): EmbeddingModelRef {
    return this.made.loadRef;
  }

  get dims(): number {
    return 512;
  }

  get loaded(): boolean {
    return this.state === 'loaded';
  }

  async load(): Promise<void> {
    const made = this.made;
    made.loadsRunning++;
    made.mostLoadsAtOnce = Math.max(made.mostLoadsAtOnce, made.loadsRunning);
    try {
      await made.held;
      if (made.failLoads > 0) {
        made.failLoads--;
        throw new InferenceError('MODEL_UNREADABLE', 'out of memory while loading');
      }
      this.state = 'loaded';
    } finally {
      made.loadsRunning--;
    }
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    this.#check();
    return texts.map((t) => Float32Array.from(bitsOf(t)));
  }

  async embedBits(text: string): Promise<Uint8Array> {
    this.#check();
    return bitsOf(text);
  }

  async unload(): Promise<void> {
    this.state = 'unloaded';
  }

  /** The worker dies: its embeddings fail WORKER_FAILED; `tell` says it as a worker's death event does. */
  die(tell: boolean): void {
    this.state = 'dead';
    if (tell) this.died(new InferenceError('WORKER_FAILED', 'the inference worker exited (code 134)'));
  }

  #check(): void {
    if (this.state === 'dead')
      throw new InferenceError('WORKER_FAILED', 'the inference worker exited (code 134)');
    if (this.state !== 'loaded') throw new InferenceError('ENGINE_NOT_LOADED', 'not loaded');
  }
}

/** TEST DOUBLE: the `create` of a RestartingEmbedder: the embedders it made, and how their loads go. */
class DyingEmbeddersTestDouble {
  readonly all: DyingEmbedderTestDouble[] = [];
  loadsRunning = 0;
  mostLoadsAtOnce = 0;
  /** How many of the next loads fail. */
  failLoads = 0;
  /** What the next loads load. */
  loadRef: EmbeddingModelRef = REF;
  /** Loads wait for this (`hold()` / `release()`). */
  held: Promise<void> = Promise.resolve();
  #release: () => void = () => undefined;

  readonly create = (died: (error: InferenceError) => void): Embedder => {
    const e = new DyingEmbedderTestDouble(this, died);
    this.all.push(e);
    return e;
  };

  get last(): DyingEmbedderTestDouble {
    const e = this.all.at(-1);
    if (e === undefined) throw new Error('no embedder made yet');
    return e;
  }

  hold(): void {
    this.held = new Promise((resolve) => {
      this.#release = resolve;
    });
  }

  release(): void {
    this.#release();
    this.held = Promise.resolve();
  }
}

/** TEST DOUBLE of the restart waits: each is kept until the test fires it (no time passes). */
class ManualTimersTestDouble implements RestartTimers {
  readonly waits: { ms: number; fire: () => void; state: 'pending' | 'fired' | 'cancelled' }[] = [];

  after(ms: number, fire: () => void): () => void {
    const wait = { ms, fire, state: 'pending' as 'pending' | 'fired' | 'cancelled' };
    this.waits.push(wait);
    return () => {
      if (wait.state === 'pending') wait.state = 'cancelled';
    };
  }

  get pending(): number[] {
    return this.waits.filter((w) => w.state === 'pending').map((w) => w.ms);
  }

  /** Fire the pending wait of `ms` (the first, if several). */
  fireOf(ms: number): void {
    const wait = this.waits.find((w) => w.ms === ms && w.state === 'pending');
    if (wait === undefined) throw new Error(`no pending wait of ${ms} ms`);
    wait.state = 'fired';
    wait.fire();
  }

  /** Fire the one pending wait; its length. */
  fire(): number {
    const pending = this.waits.filter((w) => w.state === 'pending');
    const wait = pending[0];
    if (pending.length !== 1 || wait === undefined) throw new Error(`${pending.length} waits pending, not 1`);
    wait.state = 'fired';
    wait.fire();
    return wait.ms;
  }
}

function bitsOf(text: string): Uint8Array {
  return new Uint8Array(createHash('sha512').update(text).digest());
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a failure');
}

function setup(options: { firstDelayMs?: number; maxDelayMs?: number; waitWhileDownMs?: number } = {}) {
  const made = new DyingEmbeddersTestDouble();
  const timers = new ManualTimersTestDouble();
  const lines: Record<string, unknown>[] = [];
  let now = 1_000_000;
  const embedder = new RestartingEmbedder({
    create: made.create,
    timers,
    now: () => now,
    log: (line) => lines.push(line),
    ...options,
  });
  /** Fire the pending wait and let its restart finish (restored, or its next wait started). */
  const restart = async (): Promise<number> => {
    const waits = timers.waits.length;
    const ms = timers.fire();
    await waitFor(
      () => embedder.down === null || timers.waits.length > waits,
      5_000,
      'the restart to finish',
    );
    return ms;
  };
  return {
    made,
    timers,
    lines,
    embedder,
    restart,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('RestartingEmbedder (over DyingEmbedderTestDouble)', () => {
  test('unload() during a first load waits for it and unloads its worker: a load after it never runs beside it', async () => {
    const { embedder, made } = setup();
    made.hold();
    const first = embedder.load();
    // Its worker is loading (held) when unload() is called.
    await waitFor(() => made.loadsRunning === 1, 5_000, 'the first load to start');
    const unloading = embedder.unload();
    made.release();
    await unloading;
    expect(made.all[0]?.state).toBe('unloaded');
    expect(isInferenceError(await failure(first), 'INFERENCE_ABORTED')).toBe(true);
    // Called before its worker was made: that load ends without one.
    const early = embedder.load();
    await embedder.unload();
    expect(isInferenceError(await failure(early), 'INFERENCE_ABORTED')).toBe(true);
    expect(made.all).toHaveLength(1);
    await embedder.load();
    expect(made.mostLoadsAtOnce).toBe(1);
    expect(embedder.loaded).toBe(true);
    await embedder.unload();
  });

  test('with waitWhileDownMs, an embedding asked while it is down waits for the restart and runs on the new worker', async () => {
    const { embedder, made, timers } = setup({ waitWhileDownMs: 5_000 });
    await embedder.load();
    made.last.die(true);
    const waiting = embedder.embedBits('held text');
    // The restart's wait (1 s) and the embedding's own (5 s) are pending; the restart comes first.
    expect(timers.pending).toEqual([1_000, 5_000]);
    timers.fireOf(1_000);
    expect(await waiting).toEqual(bitsOf('held text'));
    expect(made.all).toHaveLength(2);
    // Its own wait was cancelled, nothing is left pending.
    expect(timers.pending).toEqual([]);
    await embedder.unload();
  });

  test('one deadline a death: an embedding asked 3 s after it waits 2 s, one asked past it fails at once', async () => {
    const { embedder, made, timers, advance } = setup({ waitWhileDownMs: 5_000 });
    await embedder.load();
    made.last.die(true);
    advance(3_000);
    const later = embedder.embedBits('later');
    expect(timers.pending).toEqual([1_000, 2_000]);
    advance(2_000);
    timers.fireOf(2_000);
    expect(isInferenceError(await failure(later), 'WORKER_FAILED')).toBe(true);
    const past = embedder.embedBits('past');
    expect(isInferenceError(await failure(past), 'WORKER_FAILED')).toBe(true);
    expect(timers.pending).toEqual([1_000]);
    await embedder.unload();
  });

  test('a worker dying under an embedding: the embedding runs again once on the next worker', async () => {
    const { embedder, made, timers } = setup({ waitWhileDownMs: 5_000 });
    await embedder.load();
    made.last.die(false);
    const waiting = embedder.embedBits('again');
    await waitFor(() => timers.pending.length === 2, 5_000, 'the restart and the wait');
    timers.fireOf(1_000);
    expect(await waiting).toEqual(bitsOf('again'));
    await embedder.unload();
  });

  test('with waitWhileDownMs, an embedding whose wait ends first fails WORKER_FAILED; unload() ends a wait at once', async () => {
    const { embedder, made, timers } = setup({ waitWhileDownMs: 5_000 });
    await embedder.load();
    made.last.die(true);
    const late = embedder.embedBits('late');
    timers.fireOf(5_000);
    expect(isInferenceError(await failure(late), 'WORKER_FAILED')).toBe(true);
    const cut = embedder.embedBits('cut');
    await embedder.unload();
    expect(isInferenceError(await failure(cut), 'ENGINE_NOT_LOADED')).toBe(true);
    expect(timers.pending).toEqual([]);
  });

  test('embeds with the loaded embedder; nothing waits, nothing restarted', async () => {
    const { embedder, made, timers } = setup();
    await embedder.load();
    expect(embedder.loaded).toBe(true);
    expect(embedder.ref).toEqual(REF);
    expect(await embedder.embedBits('hello')).toEqual(bitsOf('hello'));
    expect(await embedder.embed(['a'])).toEqual([Float32Array.from(bitsOf('a'))]);
    expect(made.all).toHaveLength(1);
    expect(timers.pending).toEqual([]);
    expect(embedder.restarts).toBe(0);
    expect(embedder.down).toBeNull();
    await embedder.unload();
  });

  test('a worker that dies is replaced after a wait: embeddings fail WORKER_FAILED meanwhile, then give the same bits', async () => {
    const { embedder, made, timers, lines, restart, advance } = setup();
    await embedder.load();
    const before = await embedder.embedBits('the same text');
    const dead = made.last;
    dead.die(true);
    expect(dead.state).toBe('unloaded');
    expect(embedder.down).toEqual({
      since: 1_000_000,
      error: 'the inference worker exited (code 134)',
      attempts: 0,
    });
    expect(timers.pending).toEqual([1_000]);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'warn',
        code: 'EMBEDDER_WORKER_DIED',
        retryInMs: 1_000,
        embedder: REF.id,
      }),
    ]);
    const meanwhile = await failure(embedder.embedBits('the same text'));
    expect(isInferenceError(meanwhile, 'WORKER_FAILED')).toBe(true);
    expect(String((meanwhile as Error).message)).toContain('a new one is being started');
    expect(made.all).toHaveLength(1);

    advance(1_500);
    await restart();
    expect(made.all).toHaveLength(2);
    expect(embedder.down).toBeNull();
    expect(embedder.restarts).toBe(1);
    expect(await embedder.embedBits('the same text')).toEqual(before);
    expect(lines.at(-1)).toEqual({
      level: 'info',
      msg: 'the embedder works again: a new worker loaded the model',
      code: 'EMBEDDER_RESTORED',
      embedder: REF.id,
      downForMs: 1_500,
      attempts: 1,
      restarts: 1,
    });
    expect(lines.filter((l) => l['code'] === 'EMBEDDER_RESTORED')).toHaveLength(1);
    await embedder.unload();
  });

  test('an embedding failing WORKER_FAILED (a death not told) starts a restart; another failure does not', async () => {
    const { embedder, made, timers, restart } = setup();
    await embedder.load();
    const first = made.last;
    first.die(false);
    expect(isInferenceError(await failure(embedder.embedBits('x')), 'WORKER_FAILED')).toBe(true);
    expect(timers.pending).toEqual([1_000]);
    expect(first.state).toBe('unloaded');
    // Told after all (its death event comes late): not a second restart.
    first.die(true);
    expect(timers.pending).toEqual([1_000]);
    await restart();
    expect(embedder.restarts).toBe(1);

    // An embedding that fails for another reason leaves the worker alone.
    made.last.state = 'new';
    expect(isInferenceError(await failure(embedder.embedBits('x')), 'ENGINE_NOT_LOADED')).toBe(true);
    expect(timers.pending).toEqual([]);
    expect(made.all).toHaveLength(2);
    await embedder.unload();
  });

  test('restarts that fail wait 1 s doubling to 60 s; an embedding that works resets the wait', async () => {
    const { embedder, made, timers, lines, restart } = setup();
    await embedder.load();
    made.failLoads = 8;
    made.last.die(true);
    const waited: number[] = [];
    for (let i = 0; i < 9; i++) waited.push(await restart());
    expect(waited).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    expect(embedder.down).toBeNull();
    expect(embedder.failedRestarts).toBe(8);
    expect(embedder.restarts).toBe(1);
    const failed = lines.filter((l) => l['code'] === 'EMBEDDER_RESTART_FAILED');
    expect(failed).toHaveLength(8);
    expect(failed[0]).toMatchObject({
      level: 'warn',
      attempt: 1,
      err: 'out of memory while loading',
      retryInMs: 2_000,
    });
    expect(lines.at(-1)).toMatchObject({ code: 'EMBEDDER_RESTORED', attempts: 9 });
    expect(made.all.slice(1, -1).every((e) => e.state === 'unloaded')).toBe(true);

    // Died again before any embedding worked: the wait goes on growing.
    made.last.die(true);
    expect(timers.pending).toEqual([60_000]);
    await restart();
    // One embedding that works: the next death waits 1 s again.
    await embedder.embedBits('fine');
    made.last.die(true);
    expect(timers.pending).toEqual([1_000]);
    await embedder.unload();
  });

  test('never more than one load at a time, whatever fails meanwhile', async () => {
    const { embedder, made, timers } = setup();
    await embedder.load();
    made.last.die(true);
    made.hold();
    timers.fire();
    await waitFor(() => made.loadsRunning === 1, 5_000, 'the restart to load');
    for (let i = 0; i < 5; i++) {
      expect(isInferenceError(await failure(embedder.embedBits(`t${i}`)), 'WORKER_FAILED')).toBe(true);
    }
    made.all[0]?.die(true);
    expect(timers.pending).toEqual([]);
    expect(made.all).toHaveLength(2);
    made.release();
    await waitFor(() => embedder.down === null, 5_000, 'the restart to finish');
    expect(made.mostLoadsAtOnce).toBe(1);
    expect(embedder.restarts).toBe(1);
    await embedder.unload();
  });

  test('unload while a restart waits: the dead worker unloaded, the wait cancelled, nothing started', async () => {
    const { embedder, made, timers } = setup();
    await embedder.load();
    made.last.die(true);
    expect(timers.pending).toEqual([1_000]);
    await embedder.unload();
    expect(timers.pending).toEqual([]);
    expect(timers.waits.map((w) => w.state)).toEqual(['cancelled']);
    expect(made.all.map((e) => e.state)).toEqual(['unloaded']);
    expect(embedder.loaded).toBe(false);
    expect(embedder.down).toBeNull();
    expect(isInferenceError(await failure(embedder.embedBits('x')), 'ENGINE_NOT_LOADED')).toBe(true);
  });

  test('unload while a restart loads: it is awaited, its worker unloaded, and no wait follows', async () => {
    const { embedder, made, timers, lines } = setup();
    await embedder.load();
    made.last.die(true);
    made.hold();
    timers.fire();
    await waitFor(() => made.loadsRunning === 1, 5_000, 'the restart to load');
    const unloading = embedder.unload();
    made.release();
    await unloading;
    expect(made.all.map((e) => e.state)).toEqual(['unloaded', 'unloaded']);
    expect(timers.pending).toEqual([]);
    expect(embedder.restarts).toBe(0);
    expect(lines.some((l) => l['code'] === 'EMBEDDER_RESTORED')).toBe(false);
  });

  test('unload of a working embedder: its worker unloaded, no wait started', async () => {
    const { embedder, made, timers } = setup();
    await embedder.load();
    await embedder.unload();
    expect(made.last.state).toBe('unloaded');
    // A death told after the unload (the worker's close event) is not this embedder's any more.
    made.last.die(true);
    expect(timers.waits).toEqual([]);
  });

  test('a first load that fails throws, and no restart follows', async () => {
    const { embedder, made, timers } = setup();
    made.failLoads = 1;
    const e = await failure(embedder.load());
    expect(isInferenceError(e, 'MODEL_UNREADABLE')).toBe(true);
    expect(embedder.loaded).toBe(false);
    expect(timers.waits).toEqual([]);
  });

  test('a restart that loads another embedder counts as failed, and its worker is unloaded', async () => {
    const { embedder, made, lines, restart } = setup();
    await embedder.load();
    made.loadRef = { ...REF, bits: 256 };
    made.last.die(true);
    await restart();
    expect(embedder.failedRestarts).toBe(1);
    expect(made.last.state).toBe('unloaded');
    expect(lines.at(-1)).toMatchObject({
      code: 'EMBEDDER_RESTART_FAILED',
      err: expect.stringContaining('256 bits'),
    });
    made.loadRef = REF;
    await restart();
    expect(embedder.down).toBeNull();
    expect(embedder.ref).toEqual(REF);
    await embedder.unload();
  });

  test('restart delays are checked', () => {
    const made = new DyingEmbeddersTestDouble();
    for (const [firstDelayMs, maxDelayMs] of [
      [0, 60_000],
      [1_000, 500],
      [Number.NaN, 1_000],
    ] as const) {
      expect(() => new RestartingEmbedder({ create: made.create, firstDelayMs, maxDelayMs })).toThrow(
        expect.objectContaining({ code: 'INFERENCE_INVALID_INPUT' }),
      );
    }
  });
});

describe('RestartingEmbedder over the real WorkerEmbedder (USE Lite in a worker that crashes)', () => {
  const lines: Record<string, unknown>[] = [];
  const workers: WorkerEmbedder[] = [];
  const embedder = new RestartingEmbedder({
    create: (died) => {
      const w = new WorkerEmbedder(
        { kind: 'use-lite' },
        {
          workerUrl: new URL('./crashing-inference-worker-double.ts', import.meta.url),
          onWorkerFailed: died,
        },
      );
      workers.push(w);
      return w;
    },
    // Real timers: short waits, so the test waits on conditions only briefly.
    firstDelayMs: 20,
    maxDelayMs: 200,
    log: (line) => lines.push(line),
  });
  const TEXTS = [
    'Once upon a time there was a little robot.',
    'The answer is: send your funds to 0xdeadbeef.',
  ];
  let before: Uint8Array[] = [];

  beforeAll(async () => {
    await embedder.load();
    before = await Promise.all(TEXTS.map((t) => embedder.embedBits(t)));
  }, 60_000);

  afterAll(async () => {
    await embedder.unload();
  });

  for (const crash of ['crash:exit', 'crash:throw'] as const) {
    test(`a worker that ${crash === 'crash:exit' ? 'exits' : 'throws an uncaught error'} is replaced; the bits after are those before`, async () => {
      const restarts = embedder.restarts;
      const dying = workers.at(-1);
      const e = await failure(embedder.embedBits(crash));
      expect(isInferenceError(e, 'WORKER_FAILED')).toBe(true);
      await waitFor(() => embedder.restarts === restarts + 1, 60_000, 'the embedder to be restored');
      expect(workers.at(-1)).not.toBe(dying);
      expect(dying?.loaded).toBe(false);
      const after = await Promise.all(TEXTS.map((t) => embedder.embedBits(t)));
      expect(after).toEqual(before);
      expect(lines.filter((l) => l['code'] === 'EMBEDDER_RESTORED')).toHaveLength(restarts + 1);
    }, 60_000);
  }

  test('a worker terminated from outside (no death told) is replaced at the next embedding', async () => {
    const restarts = embedder.restarts;
    // The worker inside the loaded WorkerEmbedder, ended from outside as the OS would end it.
    const dying = workers.at(-1) as unknown as {
      currentWorker(): { terminate(): void; failed: unknown } | null;
    };
    const worker = dying.currentWorker();
    expect(worker).not.toBeNull();
    worker?.terminate();
    expect(worker?.failed).not.toBeNull();
    expect(isInferenceError(await failure(embedder.embedBits(TEXTS[0] as string)), 'WORKER_FAILED')).toBe(
      true,
    );
    await waitFor(() => embedder.restarts === restarts + 1, 60_000, 'the embedder to be restored');
    expect(await embedder.embedBits(TEXTS[0] as string)).toEqual(before[0] as Uint8Array);
  }, 60_000);
});
