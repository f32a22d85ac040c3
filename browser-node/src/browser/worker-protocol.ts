import type { UseLiteOptions } from '../inference/use-lite.ts';
import type { WllamaOptions } from '../inference/wllama.ts';
import type { HostedRequest } from '../inference/worker-host.ts';

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

/** What the browser worker receives: the shared protocol with the browser specs in its load messages. */
export type BrowserWorkerRequest = HostedRequest<BrowserEngineSpec, BrowserEmbedderSpec>;
