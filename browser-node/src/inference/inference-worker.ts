/**
 * The inference worker: hosts at most one engine and one embedder off the main thread, so that
 * generation and embedding (tfjs and ONNX WASM kernels run synchronously) never block packet intake.
 * Start it with `new Worker(new URL('./inference-worker.ts', import.meta.url))` (worker-client.ts does).
 */
import type { Embedder } from './embedder.ts';
import type { Engine } from './engine.ts';
import { asInferenceError, InferenceError } from './errors.ts';
import { createEmbedder, createEngine } from './factory.ts';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.ts';

declare const self: {
  postMessage(message: WorkerResponse): void;
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
};

let engine: Engine | null = null;
let embedder: Embedder | null = null;
const running = new Map<number, AbortController>();

function post(message: WorkerResponse): void {
  self.postMessage(message);
}

function needEngine(): Engine {
  if (engine === null) throw new InferenceError('ENGINE_NOT_LOADED', 'the worker has no engine loaded');
  return engine;
}

function needEmbedder(): Embedder {
  if (embedder === null) throw new InferenceError('ENGINE_NOT_LOADED', 'the worker has no embedder loaded');
  return embedder;
}

async function handle(msg: WorkerRequest): Promise<unknown> {
  const progress = (p: Parameters<NonNullable<Parameters<Engine['load']>[1]>>[0]) =>
    post({ type: 'progress', id: msg.id, progress: p });
  switch (msg.type) {
    case 'load-engine': {
      await engine?.unload();
      engine = null;
      const created = createEngine(msg.spec);
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
      const created = createEmbedder(msg.spec);
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
  }
}

self.onmessage = (event) => {
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
