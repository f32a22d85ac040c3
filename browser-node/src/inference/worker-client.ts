import type { EmbeddingModelRef, ModelRef } from '@synod/shared';
import type { Embedder } from './embedder.ts';
import type {
  Engine,
  EngineKind,
  GenerateRequest,
  GenerateResult,
  ModelSource,
  OnLoadProgress,
  PromptMeasure,
} from './engine.ts';
import { checkGenerateRequest, checkPromptInput, notLoaded, throwIfAborted } from './engine.ts';
import { InferenceError } from './errors.ts';
import type { EmbedderSpec, EngineSpec } from './factory.ts';
import type { WorkerRequest, WorkerResponse, WorkerResults } from './worker-protocol.ts';

type Pending = {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  onProgress: OnLoadProgress | undefined;
};

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export interface InferenceWorkerOptions {
  /**
   * Told once if the worker dies on its own (an uncaught error, or under Bun an exit: a WASM abort, a
   * `process.exit`), not when `terminate()` ends it.
   */
  onFailed?: (error: InferenceError) => void;
}

/**
 * One inference worker (a Bun/browser `Worker` running inference-worker.ts) and its request/response
 * bookkeeping. If the worker dies, every pending and later call fails with WORKER_FAILED.
 */
export class InferenceWorker {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  readonly #onFailed: ((error: InferenceError) => void) | undefined;
  #nextId = 1;
  #dead: InferenceError | null = null;

  constructor(
    url: URL = new URL('./inference-worker.ts', import.meta.url),
    options: InferenceWorkerOptions = {},
  ) {
    this.#onFailed = options.onFailed;
    this.#worker = new Worker(url, { type: 'module' });
    this.#worker.onmessage = (event: MessageEvent<WorkerResponse>) => this.#receive(event.data);
    this.#worker.onerror = (event: ErrorEvent) => {
      this.#died(new InferenceError('WORKER_FAILED', `the inference worker failed: ${event.message}`));
      event.preventDefault?.();
    };
    // Bun's: a worker that exited (process.exit, an abort) fires no error, and its calls waited forever.
    this.#worker.addEventListener('close', (event: Event) => {
      const code = (event as Event & { code?: unknown }).code;
      this.#died(
        new InferenceError(
          'WORKER_FAILED',
          `the inference worker exited (code ${String(code ?? 'unknown')})`,
        ),
      );
    });
  }

  /** Why the worker is gone (it died, or was terminated), or null while it runs. */
  get failed(): InferenceError | null {
    return this.#dead;
  }

  call<R extends DistributiveOmit<WorkerRequest, 'id'>>(
    request: R,
    onProgress?: OnLoadProgress,
  ): { id: number; result: Promise<WorkerResults[R['type']]> } {
    const id = this.#nextId++;
    if (this.#dead !== null) return { id, result: Promise.reject(this.#dead) };
    const result = new Promise<WorkerResults[R['type']]>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onProgress });
    });
    this.#worker.postMessage({ ...request, id } as WorkerRequest);
    return { id, result };
  }

  /** Stop the worker; pending calls fail with WORKER_FAILED. */
  terminate(): void {
    this.#worker.terminate();
    this.#fail(new InferenceError('WORKER_FAILED', 'the inference worker was terminated'));
  }

  #receive(message: WorkerResponse): void {
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    if (message.type === 'progress') {
      pending.onProgress?.(message.progress);
      return;
    }
    this.#pending.delete(message.id);
    if (message.type === 'result') pending.resolve(message.value);
    else pending.reject(InferenceError.fromJSON(message.error));
  }

  /** The worker died on its own: ended for good (an error may leave it running), and `onFailed` told. */
  #died(error: InferenceError): void {
    if (this.#dead !== null) return;
    this.#worker.terminate();
    this.#fail(error);
    this.#onFailed?.(error);
  }

  #fail(error: InferenceError): void {
    this.#dead ??= error;
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
  }
}

/**
 * An Engine whose model lives in a worker, whoever owns the worker: `generate()` is a message (the
 * caller's abort signal becomes an `abort` message), and `id`/`model` are what `load-engine` answered.
 * Subclasses own loading and the worker's life.
 */
export abstract class RemoteEngine implements Engine {
  abstract readonly kind: EngineKind;
  protected engineId: string;
  protected loadedModel: ModelRef | null = null;
  /** The model whose engine said it cannot measure prompts (each load answers anew). */
  #cannotMeasure: ModelRef | null = null;

  constructor(
    engineId: string,
    private readonly label: string,
  ) {
    this.engineId = engineId;
  }

  get id(): string {
    return this.engineId;
  }

  get model(): ModelRef | null {
    return this.loadedModel;
  }

  /** The worker the model is loaded in, or null. */
  protected abstract currentWorker(): InferenceWorker | null;
  abstract load(model: ModelSource, onProgress?: OnLoadProgress): Promise<void>;
  abstract unload(): Promise<void>;

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    checkGenerateRequest(request);
    const worker = this.currentWorker();
    if (worker === null || this.loadedModel === null) throw notLoaded(this.label);
    throwIfAborted(request.signal);
    const { signal, ...plain } = request;
    const { id, result } = worker.call({ type: 'generate', request: plain });
    const onAbort = () => worker.call({ type: 'abort', target: id }).result.catch(() => {});
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await result;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Answered by the worker while a generation runs (its messages are handled as they come). */
  async measurePrompt(request: Pick<GenerateRequest, 'prompt' | 'messages'>): Promise<PromptMeasure | null> {
    checkPromptInput(request);
    const worker = this.currentWorker();
    if (worker === null || this.loadedModel === null) throw notLoaded(this.label);
    if (this.#cannotMeasure === this.loadedModel) return null;
    const { prompt, messages } = request;
    const plain = prompt !== undefined ? { prompt } : messages !== undefined ? { messages } : {};
    const measure = await worker.call({ type: 'measure-prompt' as const, request: plain }).result;
    // The worker's engine does not measure: not asked again.
    if (measure === null) this.#cannotMeasure = this.loadedModel;
    return measure;
  }
}

/** An Embedder living in a worker, whoever owns the worker (see `RemoteEngine`). */
export abstract class RemoteEmbedder implements Embedder {
  protected loadedRef: EmbeddingModelRef | null = null;
  protected loadedDims = 0;

  constructor(private readonly label: string) {}

  get ref(): EmbeddingModelRef {
    if (this.loadedRef === null) throw notLoaded(this.label);
    return this.loadedRef;
  }

  get dims(): number {
    if (this.loadedRef === null) throw notLoaded(this.label);
    return this.loadedDims;
  }

  get loaded(): boolean {
    return this.loadedRef !== null;
  }

  protected abstract currentWorker(): InferenceWorker | null;
  abstract load(onProgress?: OnLoadProgress): Promise<void>;
  abstract unload(): Promise<void>;

  async embed(texts: string[]): Promise<Float32Array[]> {
    return this.#ready().call({ type: 'embed', texts }).result;
  }

  async embedBits(text: string): Promise<Uint8Array> {
    return this.#ready().call({ type: 'embed-bits', text }).result;
  }

  #ready(): InferenceWorker {
    const worker = this.currentWorker();
    if (worker === null || this.loadedRef === null) throw notLoaded(this.label);
    return worker;
  }
}

/**
 * An Engine whose model runs in its own worker: `generate()` awaits a message, so the calling thread's
 * event loop (packet intake, timers) stays free however long the generation takes. The worker starts
 * on `load()` and is terminated by `unload()`.
 */
export class WorkerEngine extends RemoteEngine {
  readonly kind: EngineKind;
  readonly #spec: EngineSpec;
  readonly #url: URL | undefined;
  #worker: InferenceWorker | null = null;

  constructor(spec: EngineSpec, options: { workerUrl?: URL } = {}) {
    super(spec.kind, 'worker engine');
    this.#spec = spec;
    this.kind = spec.kind;
    this.#url = options.workerUrl;
  }

  protected currentWorker(): InferenceWorker | null {
    return this.#worker;
  }

  /** Why its worker died, once it has (every generation then fails WORKER_FAILED); else null. */
  get failed(): InferenceError | null {
    return this.#worker?.failed ?? null;
  }

  async load(model: ModelSource, onProgress?: OnLoadProgress): Promise<void> {
    await this.unload();
    const [worker, loaded] = await startWorker(this.#url, 'unload-engine', (w) =>
      w.call({ type: 'load-engine', spec: this.#spec, model }, onProgress),
    );
    this.#worker = worker;
    this.engineId = loaded.engineId;
    this.loadedModel = loaded.model;
  }

  async unload(): Promise<void> {
    const worker = this.#worker;
    this.#worker = null;
    this.loadedModel = null;
    await stopWorker(worker, 'unload-engine');
  }
}

export interface WorkerEmbedderOptions {
  /** The worker script; default inference-worker.ts beside this file. */
  workerUrl?: URL;
  /**
   * Told once if the worker of a loaded embedder dies on its own (not on `unload()`): its embeddings
   * fail WORKER_FAILED from then on, until `load()` starts a new one (`RestartingEmbedder` does).
   */
  onWorkerFailed?: (error: InferenceError) => void;
}

/** An Embedder running in its own worker (tfjs/ONNX WASM kernels would otherwise block the thread). */
export class WorkerEmbedder extends RemoteEmbedder {
  readonly #spec: EmbedderSpec;
  readonly #url: URL | undefined;
  readonly #onWorkerFailed: ((error: InferenceError) => void) | undefined;
  #worker: InferenceWorker | null = null;

  constructor(spec: EmbedderSpec, options: WorkerEmbedderOptions = {}) {
    super('worker embedder');
    this.#spec = spec;
    this.#url = options.workerUrl;
    this.#onWorkerFailed = options.onWorkerFailed;
  }

  protected currentWorker(): InferenceWorker | null {
    return this.#worker;
  }

  async load(onProgress?: OnLoadProgress): Promise<void> {
    await this.unload();
    const [worker, loaded] = await startWorker(
      this.#url,
      'unload-embedder',
      (w) => w.call({ type: 'load-embedder', spec: this.#spec }, onProgress),
      // Only the loaded worker's death is told: one dying as it loads fails the load instead.
      (w, error) => {
        if (this.#worker === w) this.#onWorkerFailed?.(error);
      },
    );
    this.#worker = worker;
    this.loadedRef = loaded.ref;
    this.loadedDims = loaded.dims;
  }

  async unload(): Promise<void> {
    const worker = this.#worker;
    this.#worker = null;
    this.loadedRef = null;
    await stopWorker(worker, 'unload-embedder');
  }
}

type UnloadType = 'unload-engine' | 'unload-embedder';

/** Start a worker of its own and load into it; a failed load unloads and terminates it. */
async function startWorker<T>(
  url: URL | undefined,
  unload: UnloadType,
  load: (worker: InferenceWorker) => { result: Promise<T> },
  onFailed?: (worker: InferenceWorker, error: InferenceError) => void,
): Promise<[InferenceWorker, T]> {
  const worker: InferenceWorker = new InferenceWorker(
    url,
    onFailed === undefined ? {} : { onFailed: (error) => onFailed(worker, error) },
  );
  try {
    return [worker, await load(worker).result];
  } catch (error) {
    await stopWorker(worker, unload).catch(() => undefined);
    throw error;
  }
}

/** Unload what a worker of its own holds, then terminate it (even if the unload failed). */
async function stopWorker(worker: InferenceWorker | null, unload: UnloadType): Promise<void> {
  if (worker === null) return;
  try {
    await worker.call({ type: unload }).result;
  } finally {
    worker.terminate();
  }
}
