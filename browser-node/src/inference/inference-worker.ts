/**
 * The inference worker: hosts at most one engine and one embedder off the main thread, so that
 * generation and embedding (tfjs and ONNX WASM kernels run synchronously) never block packet intake.
 * Start it with `new Worker(new URL('./inference-worker.ts', import.meta.url))` (worker-client.ts does).
 */
import type { EmbedderSpec, EngineSpec } from './factory.ts';
import { createEmbedder, createEngine } from './factory.ts';
import { serveInferenceWorker, type WorkerScope } from './worker-host.ts';

declare const self: WorkerScope<EngineSpec, EmbedderSpec>;

serveInferenceWorker<EngineSpec, EmbedderSpec>(self, { engine: createEngine, embedder: createEmbedder });
