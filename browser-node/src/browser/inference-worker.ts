/**
 * The browser node's inference worker: one Web Worker hosting the engine (wllama: GGUF models in
 * llama.cpp compiled to WASM) and the embedder (USE Lite on the tfjs WASM backend), so generation and
 * embedding never run on the page's thread: the tab, its packet intake and its timers stay responsive.
 *
 * It answers the node's worker protocol (see ../inference/worker-protocol.ts) with the browser specs of
 * ./worker-protocol.ts. Every byte it loads comes from URLs the page's server hands it (the GGUF, the
 * USE Lite files, wllama's and tfjs's WASM): nothing is fetched from a CDN or a model hub.
 */
import type { Embedder } from '../inference/embedder.ts';
import type { Engine, LoadProgress } from '../inference/engine.ts';
import { asInferenceError, InferenceError } from '../inference/errors.ts';
import { UseLiteEmbedder } from '../inference/use-lite.ts';
import { WllamaEngine } from '../inference/wllama.ts';
import type { WorkerResponse } from '../inference/worker-protocol.ts';
import type { BrowserWorkerRequest } from './worker-protocol.ts';

declare const self: {
  postMessage(message: WorkerResponse): void;
  onmessage: ((event: MessageEvent<BrowserWorkerRequest>) => void) | null;
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

async function handle(msg: BrowserWorkerRequest): Promise<unknown> {
  const progress = (p: LoadProgress) => post({ type: 'progress', id: msg.id, progress: p });
  switch (msg.type) {
    case 'load-engine': {
      await engine?.unload();
      engine = null;
      if (msg.spec.kind !== 'wllama') {
        throw new InferenceError('ENGINE_UNAVAILABLE', `the browser worker has no engine ${msg.spec.kind}`);
      }
      const created = new WllamaEngine(msg.spec.options);
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
      if (msg.spec.kind !== 'use-lite') {
        throw new InferenceError('ENGINE_UNAVAILABLE', `the browser worker has no embedder ${msg.spec.kind}`);
      }
      const created = new UseLiteEmbedder(msg.spec.options);
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
