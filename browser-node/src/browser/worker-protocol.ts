import type { ModelSource } from '../inference/engine.ts';
import type { UseLiteOptions } from '../inference/use-lite.ts';
import type { WllamaOptions } from '../inference/wllama.ts';
import type { WorkerRequest } from '../inference/worker-protocol.ts';

/**
 * The browser inference worker speaks the node's worker protocol (`../inference/worker-protocol.ts`),
 * with browser engines in its load messages: wllama (llama.cpp in WASM) and USE Lite fetched from URLs.
 * Only plain data crosses the boundary (no custom `fetch`).
 */
export type BrowserEngineSpec = { kind: 'wllama'; options: Omit<WllamaOptions, 'fetch'> };
export type BrowserEmbedderSpec = {
  kind: 'use-lite';
  options: Omit<UseLiteOptions, 'fetch' | 'dir'> & { baseUrl: string; wasmPaths: string };
};

export type BrowserWorkerRequest =
  | Exclude<WorkerRequest, { type: 'load-engine' } | { type: 'load-embedder' }>
  | { type: 'load-engine'; id: number; spec: BrowserEngineSpec; model: ModelSource }
  | { type: 'load-embedder'; id: number; spec: BrowserEmbedderSpec };
