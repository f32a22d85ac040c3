import type { EmbeddingModelRef } from '@synod/shared';
import type { Embedder } from './embedder.ts';
import type { OnLoadProgress } from './engine.ts';
import { InferenceError, isInferenceError } from './errors.ts';

/** How the wait before a restart is kept: `setTimeout` by default, a test's own clock in tests. */
export interface RestartTimers {
  /** Run `fire` once after `ms`; the function returned cancels it. */
  after(ms: number, fire: () => void): () => void;
}

export interface RestartingEmbedderOptions {
  /**
   * A new embedder, not loaded yet, for the first load and for each restart. It calls `died` when its
   * worker dies on its own (`WorkerEmbedder`'s `onWorkerFailed`).
   */
  create(died: (error: InferenceError) => void): Embedder;
  /** The wait before the first restart after a death, doubled after each that fails. Default 1 s. */
  firstDelayMs?: number;
  /** The longest wait between two restarts. Default 60 s. */
  maxDelayMs?: number;
  /**
   * How long after its worker's death an embedding asked for while it is dead (or whose worker dies
   * under it) may wait for the restart before it fails WORKER_FAILED (one deadline for all of them); it then runs on the new worker (once: a text that kills
   * the new worker too fails). Default 0, failing at once. A relay re-embedding reveals and a node
   * embedding its outputs set a few seconds: a first restart takes about 1.3 s, and a reveal counted
   * without its re-embedding is one whose bits nobody checked.
   */
  waitWhileDownMs?: number;
  log?: (entry: Record<string, unknown>) => void;
  now?: () => number;
  timers?: RestartTimers;
}

/** While the embedder is down: since when, why, and the restarts tried since (each a new worker). */
export interface EmbedderDown {
  since: number;
  error: string;
  attempts: number;
}

/** The wait a relay's and a node's embedder give an embedding while a restart is under way. */
export const EMBEDDER_WAIT_WHILE_DOWN_MS = 5_000;

const SET_TIMEOUT: RestartTimers = {
  after(ms, fire) {
    const timer = setTimeout(fire, ms);
    return () => clearTimeout(timer);
  },
};

/**
 * An embedder that starts its worker again when it dies. A worker that crashed (out of memory, a WASM
 * abort) failed every later embedding WORKER_FAILED until the process was restarted; here its death
 * (told by the worker, or an embedding failing WORKER_FAILED) unloads it and, after a wait (1 s, doubled
 * after each restart that fails, at most 60 s, back to 1 s once an embedding works), a new embedder from
 * `create` loads the model in a new worker. One load at a time, in the worker: the caller's thread only
 * awaits a message. Meanwhile embeddings fail at once WORKER_FAILED (`down` says since when), as they
 * did with the dead worker. A death is logged `EMBEDDER_WORKER_DIED` (warn), a restart that failed
 * `EMBEDDER_RESTART_FAILED` (warn), the embedder back `EMBEDDER_RESTORED` (info). `unload()` unloads the
 * current worker and cancels a restart not yet run (one running is awaited and unloaded): nothing is
 * left after it.
 */
export class RestartingEmbedder implements Embedder {
  readonly #o: Required<Omit<RestartingEmbedderOptions, 'log'>> & Pick<RestartingEmbedderOptions, 'log'>;
  /** The embedder that works, or null: unloaded, or down until a restart loads a new one. */
  #current: Embedder | null = null;
  #ref: EmbeddingModelRef | null = null;
  #dims = 0;
  /** Bumped by each `load()` and `unload()`: a restart or a death from before is not this one's. */
  #epoch = 0;
  #down: EmbedderDown | null = null;
  #delayMs: number;
  #cancelWait: (() => void) | null = null;
  /** The first load under way (`load()`), if any (it never rejects). */
  #loading: Promise<void> | null = null;
  /** The restart loading now, if any (it never rejects). */
  #restarting: Promise<void> | null = null;
  /** Dead embedders being unloaded (their workers terminated). */
  readonly #retiring = new Set<Promise<void>>();
  #restarts = 0;
  #failedRestarts = 0;
  /** Embeddings waiting for a restart (`waitWhileDownMs`), each told whether the embedder came back. */
  readonly #upWaiters = new Set<(up: boolean) => void>();

  constructor(options: RestartingEmbedderOptions) {
    const firstDelayMs = options.firstDelayMs ?? 1_000;
    const maxDelayMs = options.maxDelayMs ?? 60_000;
    const waitWhileDownMs = options.waitWhileDownMs ?? 0;
    if (!(waitWhileDownMs >= 0 && Number.isFinite(waitWhileDownMs))) {
      throw new InferenceError('INFERENCE_INVALID_INPUT', `waitWhileDownMs must be a finite number >= 0`, {
        details: { waitWhileDownMs },
      });
    }
    if (!(firstDelayMs > 0) || !(maxDelayMs >= firstDelayMs)) {
      throw new InferenceError(
        'INFERENCE_INVALID_INPUT',
        `restart delays must be positive, the longest at least the first (first ${firstDelayMs} ms, longest ${maxDelayMs} ms)`,
        { details: { firstDelayMs, maxDelayMs } },
      );
    }
    this.#o = {
      create: options.create,
      firstDelayMs,
      maxDelayMs,
      waitWhileDownMs,
      now: options.now ?? Date.now,
      timers: options.timers ?? SET_TIMEOUT,
      ...(options.log === undefined ? {} : { log: options.log }),
    };
    this.#delayMs = firstDelayMs;
  }

  /** The embedder as its first load named it; kept while it is down (a restart loads the same). */
  get ref(): EmbeddingModelRef {
    if (this.#ref === null) throw notLoaded();
    return this.#ref;
  }

  get dims(): number {
    if (this.#ref === null) throw notLoaded();
    return this.#dims;
  }

  /** From `load()` to `unload()`, down or not. */
  get loaded(): boolean {
    return this.#ref !== null;
  }

  /** While the worker is dead and not yet replaced: since when, why, restarts tried; else null. */
  get down(): EmbedderDown | null {
    return this.#down && { ...this.#down };
  }

  /** Workers started again after one died, whose model loaded. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Restarts whose load failed (each tried again after a longer wait). */
  get failedRestarts(): number {
    return this.#failedRestarts;
  }

  /**
   * Load the model in a new embedder (after unloading any). A first load that fails throws, and no
   * restart follows: only a worker that died after loading is started again.
   */
  async load(onProgress?: OnLoadProgress): Promise<void> {
    // This load's epoch is the one its own unload starts: an unload() called while that one runs ends it.
    const unloading = this.unload();
    const epoch = this.#epoch;
    await unloading;
    if (epoch !== this.#epoch) {
      throw new InferenceError('INFERENCE_ABORTED', 'the embedder was unloaded while it loaded');
    }
    const first: Embedder = this.#o.create((error) => this.#died(first, error));
    const run = (async () => {
      await first.load(onProgress);
      if (epoch !== this.#epoch) {
        await first.unload();
        throw new InferenceError('INFERENCE_ABORTED', 'the embedder was unloaded while it loaded');
      }
      this.#ref = first.ref;
      this.#dims = first.dims;
      this.#current = first;
    })();
    // `unload()` awaits it, its worker unloaded when it was called meanwhile: one model loaded at a time.
    const tracked = run.catch(() => undefined);
    this.#loading = tracked;
    try {
      await run;
    } finally {
      if (this.#loading === tracked) this.#loading = null;
    }
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    return this.#use((e) => e.embed(texts));
  }

  async embedBits(text: string): Promise<Uint8Array> {
    return this.#use((e) => e.embedBits(text));
  }

  /** Unload the current embedder; a restart waiting is cancelled, one loading is awaited and unloaded. */
  async unload(): Promise<void> {
    this.#epoch++;
    this.#cancelWait?.();
    this.#cancelWait = null;
    const current = this.#current;
    this.#current = null;
    this.#ref = null;
    this.#down = null;
    this.#delayMs = this.#o.firstDelayMs;
    this.#wake(false);
    try {
      // A worker that died before its close was handled rejects the unload: it is gone either way, and a
      // relay stopping must go on to release its key.
      await current?.unload().catch(() => undefined);
    } finally {
      await this.#loading;
      await this.#restarting;
      await Promise.all(this.#retiring);
    }
  }

  async #use<T>(run: (embedder: Embedder) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const current = this.#current ?? ((await this.#whenUp()) ? this.#current : null);
      if (current === null) throw this.#unavailable();
      try {
        const result = await run(current);
        // It works: the next death waits the first delay again.
        if (current === this.#current) this.#delayMs = this.#o.firstDelayMs;
        return result;
      } catch (e) {
        if (!isInferenceError(e, 'WORKER_FAILED')) throw e;
        this.#died(current, e);
        // Its worker died under it: once more on the next one, if it comes within the wait.
        if (attempt > 0 || this.#o.waitWhileDownMs === 0) throw e;
      }
    }
  }

  /**
   * Whether the embedder is up, or comes back within `waitWhileDownMs` of its worker's death: one
   * deadline for every embedding of that spell, so a queue of them waits 5 s in all, not 5 s each (false
   * at once when unloaded, or once the deadline passed).
   */
  #whenUp(): Promise<boolean> {
    if (this.#current !== null) return Promise.resolve(true);
    const down = this.#down;
    if (down === null || this.#o.waitWhileDownMs === 0) return Promise.resolve(false);
    const left = down.since + this.#o.waitWhileDownMs - this.#o.now();
    if (left <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      let cancel: () => void = () => undefined;
      const told = (up: boolean) => {
        if (!this.#upWaiters.delete(told)) return;
        cancel();
        resolve(up);
      };
      this.#upWaiters.add(told);
      cancel = this.#o.timers.after(left, () => told(false));
    });
  }

  /** Tell the embeddings waiting for a restart whether the embedder is back. */
  #wake(up: boolean): void {
    for (const told of [...this.#upWaiters]) told(up);
  }

  /** `embedder`'s worker died: if it is the current one, unload it and start a restart's wait. */
  #died(embedder: Embedder, error: InferenceError): void {
    if (embedder !== this.#current) return;
    this.#current = null;
    this.#down = { since: this.#o.now(), error: error.message, attempts: 0 };
    this.#retire(embedder);
    const retryInMs = this.#wait();
    this.#o.log?.({
      level: 'warn',
      msg: "the embedder's worker died: a new one loads the model after a wait, and embeddings fail until then",
      code: 'EMBEDDER_WORKER_DIED',
      embedder: this.#ref?.id,
      err: error.message,
      retryInMs,
    });
  }

  /** Unload a dead embedder (its worker is terminated); `unload()` awaits it. */
  #retire(embedder: Embedder): void {
    const retiring: Promise<void> = embedder
      .unload()
      .catch(() => undefined)
      .finally(() => this.#retiring.delete(retiring));
    this.#retiring.add(retiring);
  }

  /** Start the wait before the next restart; the next wait is twice as long (at most the longest). */
  #wait(): number {
    const ms = this.#delayMs;
    this.#delayMs = Math.min(ms * 2, this.#o.maxDelayMs);
    const epoch = this.#epoch;
    this.#cancelWait = this.#o.timers.after(ms, () => {
      this.#cancelWait = null;
      if (epoch !== this.#epoch) return;
      const restarting = this.#restart(epoch).finally(() => {
        if (this.#restarting === restarting) this.#restarting = null;
      });
      this.#restarting = restarting;
    });
    return ms;
  }

  async #restart(epoch: number): Promise<void> {
    const down = this.#down;
    if (down === null) return;
    down.attempts++;
    const next: Embedder = this.#o.create((error) => this.#died(next, error));
    let failure: string | null = null;
    try {
      await next.load();
      const want = this.#ref;
      const got = next.ref;
      if (want !== null && (got.id !== want.id || got.fileHash !== want.fileHash || got.bits !== want.bits)) {
        failure = `the new worker loaded ${got.id} (${got.bits} bits, ${got.fileHash}), not ${want.id} (${want.bits} bits, ${want.fileHash})`;
      }
    } catch (e) {
      failure = e instanceof Error ? e.message : String(e);
    }
    if (epoch !== this.#epoch || failure !== null) {
      // Unloaded meanwhile, or not the embedder it was: the new worker goes too.
      await next.unload().catch(() => undefined);
    }
    if (epoch !== this.#epoch) return;
    if (failure !== null) {
      this.#failedRestarts++;
      down.error = failure;
      const retryInMs = this.#wait();
      this.#o.log?.({
        level: 'warn',
        msg: 'starting the embedder again failed: tried again after a longer wait',
        code: 'EMBEDDER_RESTART_FAILED',
        embedder: this.#ref?.id,
        attempt: down.attempts,
        err: failure,
        retryInMs,
      });
      return;
    }
    this.#current = next;
    this.#down = null;
    this.#restarts++;
    this.#wake(true);
    this.#o.log?.({
      level: 'info',
      msg: 'the embedder works again: a new worker loaded the model',
      code: 'EMBEDDER_RESTORED',
      embedder: next.ref.id,
      downForMs: this.#o.now() - down.since,
      attempts: down.attempts,
      restarts: this.#restarts,
    });
  }

  /** Why an embedding cannot run now: unloaded, or down until a restart works. */
  #unavailable(): InferenceError {
    const down = this.#down;
    if (down === null) return notLoaded();
    return new InferenceError(
      'WORKER_FAILED',
      `the embedder's worker died (${down.error}): a new one is being started`,
      {
        details: { since: down.since, attempts: down.attempts },
        hint: 'embeddings work again once a new worker has loaded the model (logged EMBEDDER_RESTORED)',
      },
    );
  }
}

function notLoaded(): InferenceError {
  return new InferenceError('ENGINE_NOT_LOADED', 'the restarting embedder is not loaded: call load() first');
}
