/**
 * The browser node's inference worker: one Web Worker hosting the engine (wllama: GGUF models in
 * llama.cpp compiled to WASM) and the embedder (USE Lite on the tfjs WASM backend), so generation and
 * embedding never run on the page's thread: the tab, its packet intake and its timers stay responsive.
 *
 * It answers the node's worker protocol (see ../inference/worker-protocol.ts) with the browser specs of
 * ./worker-protocol.ts. Every byte it loads comes from URLs the page's server hands it (the GGUF, the
 * USE Lite files, wllama's and tfjs's WASM): nothing is fetched from a CDN or a model hub.
 */
import { InferenceError } from '../inference/errors.ts';
import { UseLiteEmbedder } from '../inference/use-lite.ts';
import { WllamaEngine } from '../inference/wllama.ts';
import { serveInferenceWorker, type WorkerScope } from '../inference/worker-host.ts';
import type { BrowserEmbedderSpec, BrowserEngineSpec } from './worker-protocol.ts';

declare const self: WorkerScope<BrowserEngineSpec, BrowserEmbedderSpec>;

serveInferenceWorker<BrowserEngineSpec, BrowserEmbedderSpec>(self, {
  engine(spec) {
    if (spec.kind !== 'wllama') {
      throw new InferenceError('ENGINE_UNAVAILABLE', `the browser worker has no engine ${String(spec.kind)}`);
    }
    return new WllamaEngine(spec.options);
  },
  embedder(spec) {
    if (spec.kind !== 'use-lite') {
      throw new InferenceError(
        'ENGINE_UNAVAILABLE',
        `the browser worker has no embedder ${String(spec.kind)}`,
      );
    }
    return new UseLiteEmbedder(spec.options);
  },
});
