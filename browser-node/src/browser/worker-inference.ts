import type { ModelSource, OnLoadProgress } from '../inference/engine.ts';
import { InferenceWorker, RemoteEmbedder, RemoteEngine } from '../inference/worker-client.ts';
import type { WorkerRequest } from '../inference/worker-protocol.ts';
import type { BrowserEmbedderSpec, BrowserEngineSpec } from './worker-protocol.ts';

/**
 * The page's side of the browser inference worker (./inference-worker.ts): one Web Worker, one engine
 * and one embedder in it, seen from the page as an `Engine` and an `Embedder` (what `InferenceQueue`
 * takes). Every call is a message; the page's thread never runs a kernel. If the worker dies, every
 * pending and later call fails with WORKER_FAILED.
 */
export class WorkerInference {
  readonly worker: InferenceWorker;
  readonly engine: WorkerHostedEngine;
  readonly embedder: WorkerHostedEmbedder;

  constructor(workerUrl: string | URL) {
    this.worker = new InferenceWorker(new URL(workerUrl, globalThis.location?.href));
    this.engine = new WorkerHostedEngine(this.worker);
    this.embedder = new WorkerHostedEmbedder(this.worker);
  }

  terminate(): void {
    this.worker.terminate();
  }
}

/**
 * The worker protocol's load messages carry the node's headless specs; the browser worker reads
 * browser specs in the same slot (./worker-protocol.ts). This is the one place that crossing is typed.
 */
function asWireSpec<T>(spec: BrowserEngineSpec | BrowserEmbedderSpec): T {
  return spec as unknown as T;
}

export class WorkerHostedEngine extends RemoteEngine {
  readonly kind = 'wllama' as const;
  readonly #worker: InferenceWorker;
  #spec: BrowserEngineSpec | null = null;

  constructor(worker: InferenceWorker) {
    super('wllama', 'wllama engine (worker)');
    this.#worker = worker;
  }

  protected currentWorker(): InferenceWorker {
    return this.#worker;
  }

  /** Give the engine's settings before `load()` (WASM URL, threads, GPU layers). */
  configure(spec: BrowserEngineSpec): this {
    this.#spec = spec;
    return this;
  }

  async load(model: ModelSource, onProgress?: OnLoadProgress): Promise<void> {
    if (this.#spec === null) throw new TypeError('configure() the engine before load()');
    this.loadedModel = null;
    const loaded = await this.#worker.call(
      {
        type: 'load-engine',
        spec: asWireSpec<Extract<WorkerRequest, { type: 'load-engine' }>['spec']>(this.#spec),
        model,
      },
      onProgress,
    ).result;
    this.engineId = loaded.engineId;
    this.loadedModel = loaded.model;
  }

  async unload(): Promise<void> {
    if (this.loadedModel === null) return;
    this.loadedModel = null;
    await this.#worker.call({ type: 'unload-engine' }).result;
  }
}

export class WorkerHostedEmbedder extends RemoteEmbedder {
  readonly #worker: InferenceWorker;
  #spec: BrowserEmbedderSpec | null = null;

  constructor(worker: InferenceWorker) {
    super('use-lite embedder (worker)');
    this.#worker = worker;
  }

  protected currentWorker(): InferenceWorker {
    return this.#worker;
  }

  configure(spec: BrowserEmbedderSpec): this {
    this.#spec = spec;
    return this;
  }

  async load(onProgress?: OnLoadProgress): Promise<void> {
    if (this.#spec === null) throw new TypeError('configure() the embedder before load()');
    this.loadedRef = null;
    const loaded = await this.#worker.call(
      {
        type: 'load-embedder',
        spec: asWireSpec<Extract<WorkerRequest, { type: 'load-embedder' }>['spec']>(this.#spec),
      },
      onProgress,
    ).result;
    this.loadedRef = loaded.ref;
    this.loadedDims = loaded.dims;
  }

  async unload(): Promise<void> {
    if (this.loadedRef === null) return;
    this.loadedRef = null;
    await this.#worker.call({ type: 'unload-embedder' }).result;
  }
}
