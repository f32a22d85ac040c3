import type { Embedder } from './embedder.ts';
import type { Engine, LoadProgress, ModelSource } from './engine.ts';
import { asInferenceError, InferenceError } from './errors.ts';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.ts';

/**
 * The inference worker's message loop, shared by the headless worker (inference-worker.ts: every
 * engine and embedder of factory.ts) and the browser worker (../browser/inference-worker.ts: wllama and
 * USE Lite). Only how an engine or embedder is built from its spec differs; the protocol
 * (worker-protocol.ts), one engine and one embedder at a time, aborts and typed errors are here.
 */
type LoadRequests<ES, BS> =
  | { type: 'load-engine'; id: number; spec: ES; model: ModelSource }
  | { type: 'load-embedder'; id: number; spec: BS };

export type HostedRequest<ES, BS> =
  | Exclude<WorkerRequest, { type: 'load-engine' } | { type: 'load-embedder' }>
  | LoadRequests<ES, BS>;

export interface WorkerFactories<ES, BS> {
  engine(spec: ES): Engine;
  embedder(spec: BS): Embedder;
}

/** The worker's global scope, as the message loop uses it. */
export interface WorkerScope<ES, BS> {
  postMessage(message: WorkerResponse): void;
  onmessage: ((event: MessageEvent<HostedRequest<ES, BS>>) => void) | null;
}

export function serveInferenceWorker<ES, BS>(
  scope: WorkerScope<ES, BS>,
  factories: WorkerFactories<ES, BS>,
): void {
  let engine: Engine | null = null;
  let embedder: Embedder | null = null;
  const running = new Map<number, AbortController>();
  const post = (message: WorkerResponse) => scope.postMessage(message);

  const needEngine = (): Engine => {
    if (engine === null) throw new InferenceError('ENGINE_NOT_LOADED', 'the worker has no engine loaded');
    return engine;
  };
  const needEmbedder = (): Embedder => {
    if (embedder === null) throw new InferenceError('ENGINE_NOT_LOADED', 'the worker has no embedder loaded');
    return embedder;
  };

  async function handle(msg: HostedRequest<ES, BS>): Promise<unknown> {
    const progress = (p: LoadProgress) => post({ type: 'progress', id: msg.id, progress: p });
    switch (msg.type) {
      case 'load-engine': {
        await engine?.unload();
        engine = null;
        const created = factories.engine(msg.spec);
        await created.load(msg.model, progress);
        engine = created;
        return { engineId: created.id, model: created.model };
      }
      case 'generate': {
        const ac = new AbortController();
        running.set(msg.id, ac);
        try {
          return await needEngine().generate({ ...msg.request, signal: ac.signal });
        } finally {
          running.delete(msg.id);
        }
      }
      case 'measure-prompt': {
        const loaded = needEngine();
        return loaded.measurePrompt === undefined ? null : await loaded.measurePrompt(msg.request);
      }
      case 'abort':
        running.get(msg.target)?.abort();
        return null;
      case 'unload-engine':
        await engine?.unload();
        engine = null;
        return null;
      case 'load-embedder': {
        await embedder?.unload();
        embedder = null;
        const created = factories.embedder(msg.spec);
        await created.load(progress);
        embedder = created;
        return { ref: created.ref, dims: created.dims };
      }
      case 'embed':
        return needEmbedder().embed(msg.texts);
      case 'embed-bits':
        return needEmbedder().embedBits(msg.text);
      case 'unload-embedder':
        await embedder?.unload();
        embedder = null;
        return null;
      default:
        throw new InferenceError(
          'INFERENCE_INVALID_INPUT',
          `the worker has no message type ${String((msg as { type?: unknown }).type)}`,
        );
    }
  }

  scope.onmessage = (event) => {
    const msg = event.data;
    handle(msg).then(
      (value) => post({ type: 'result', id: msg.id, value: value as never }),
      (error: unknown) =>
        post({
          type: 'error',
          id: msg.id,
          error: asInferenceError(error, 'INFERENCE_FAILED', `worker ${msg.type} failed`).toJSON(),
        }),
    );
  };
}
