import type { EmbeddingModelRef, ModelRef } from '@synod/shared';
import type { Embedder } from '../inference/embedder.ts';
import {
  checkGenerateRequest,
  type Engine,
  type GenerateRequest,
  type GenerateResult,
  type ModelSource,
  notLoaded,
  type OnLoadProgress,
  throwIfAborted,
} from '../inference/engine.ts';
import { InferenceWorker } from '../inference/worker-client.ts';
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

export class WorkerHostedEngine implements Engine {
  readonly kind = 'wllama' as const;
  readonly #worker: InferenceWorker;
  #id = 'wllama';
  #model: ModelRef | null = null;
  #spec: BrowserEngineSpec | null = null;

  constructor(worker: InferenceWorker) {
    this.#worker = worker;
  }

  get id(): string {
    return this.#id;
  }

  get model(): ModelRef | null {
    return this.#model;
  }

  /** Give the engine's settings before `load()` (WASM URL, threads, GPU layers). */
  configure(spec: BrowserEngineSpec): this {
    this.#spec = spec;
    return this;
  }

  async load(model: ModelSource, onProgress?: OnLoadProgress): Promise<void> {
    if (this.#spec === null) throw new TypeError('configure() the engine before load()');
    this.#model = null;
    const loaded = await this.#worker.call(
      {
        type: 'load-engine',
        spec: asWireSpec<Extract<WorkerRequest, { type: 'load-engine' }>['spec']>(this.#spec),
        model,
      },
      onProgress,
    ).result;
    this.#id = loaded.engineId;
    this.#model = loaded.model;
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    checkGenerateRequest(request);
    if (this.#model === null) throw notLoaded('wllama engine (worker)');
    throwIfAborted(request.signal);
    const { signal, ...plain } = request;
    const { id, result } = this.#worker.call({ type: 'generate', request: plain });
    const onAbort = () => this.#worker.call({ type: 'abort', target: id }).result.catch(() => {});
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await result;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async unload(): Promise<void> {
    if (this.#model === null) return;
    this.#model = null;
    await this.#worker.call({ type: 'unload-engine' }).result;
  }
}

export class WorkerHostedEmbedder implements Embedder {
  readonly #worker: InferenceWorker;
  #ref: EmbeddingModelRef | null = null;
  #dims = 0;
  #spec: BrowserEmbedderSpec | null = null;

  constructor(worker: InferenceWorker) {
    this.#worker = worker;
  }

  get ref(): EmbeddingModelRef {
    if (this.#ref === null) throw notLoaded('use-lite embedder (worker)');
    return this.#ref;
  }

  get dims(): number {
    if (this.#ref === null) throw notLoaded('use-lite embedder (worker)');
    return this.#dims;
  }

  get loaded(): boolean {
    return this.#ref !== null;
  }

  configure(spec: BrowserEmbedderSpec): this {
    this.#spec = spec;
    return this;
  }

  async load(onProgress?: OnLoadProgress): Promise<void> {
    if (this.#spec === null) throw new TypeError('configure() the embedder before load()');
    this.#ref = null;
    const loaded = await this.#worker.call(
      {
        type: 'load-embedder',
        spec: asWireSpec<Extract<WorkerRequest, { type: 'load-embedder' }>['spec']>(this.#spec),
      },
      onProgress,
    ).result;
    this.#ref = loaded.ref;
    this.#dims = loaded.dims;
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    if (this.#ref === null) throw notLoaded('use-lite embedder (worker)');
    return this.#worker.call({ type: 'embed', texts }).result;
  }

  async embedBits(text: string): Promise<Uint8Array> {
    if (this.#ref === null) throw notLoaded('use-lite embedder (worker)');
    return this.#worker.call({ type: 'embed-bits', text }).result;
  }

  async unload(): Promise<void> {
    if (this.#ref === null) return;
    this.#ref = null;
    await this.#worker.call({ type: 'unload-embedder' }).result;
  }
}
