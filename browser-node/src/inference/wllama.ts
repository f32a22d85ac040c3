import type { InferenceParams, ModelRef } from '@synod/shared';
// The built ESM entry: the package root's `main` names an index.js that is not published (only the
// TypeScript source is), so both types and the runtime import use esm/index.js.
import type {
  AssetsPathConfig,
  LoadModelParams,
  RawCompletionParams,
  Wllama,
} from '@wllama/wllama/esm/index.js';
import {
  checkGenerateRequest,
  type Engine,
  type GenerateRequest,
  type GenerateResult,
  type ModelSource,
  notLoaded,
  type OnLoadProgress,
  rate,
  renderMessagesAsText,
  requireLocation,
  throwIfAborted,
} from './engine.ts';
import { asInferenceError, InferenceError } from './errors.ts';
import { fetchBytes, sha256Hex, verifyHash } from './hashing.ts';

/**
 * wllama (llama.cpp compiled to WebAssembly) for browser nodes: GGUF models on the CPU in a tab.
 *
 * Measured in headless Chromium with stories260K: greedy output identical, character for character, to
 * node-llama-cpp's; seeded sampling reproducible within wllama (not across engines); about 1,000
 * tokens/s single-threaded.
 *
 * Gotchas handled here:
 * - wllama 3 needs JSPI and Memory64; without them it would load a compat build from a CDN. The CDN
 *   fallback is switched off (`setCompat(null)`), and a browser without JSPI gets ENGINE_UNAVAILABLE.
 * - A `seed` given at model load overrides every per-request seed, so no seed is ever passed at load;
 *   each request carries its own.
 * - The GPU layer count is set to 0 explicitly (CPU) unless `gpuLayers` is given.
 * - Multi-threading needs a cross-origin-isolated page (COOP/COEP) and an explicit thread count;
 *   `threads` defaults to 1.
 * - The model is fetched once from a URL the node serves, its sha256 checked, then handed to wllama as
 *   a Blob: the bytes loaded are the bytes hashed.
 */
export interface WllamaOptions {
  /** URL of `wllama.wasm` (from `@wllama/wllama/esm/wasm/wllama.wasm`, served by the node's origin). */
  wasmUrl: string;
  /** Threads (default 1; more needs a cross-origin-isolated page). */
  threads?: number;
  /** Context size in tokens (default 2048). */
  contextSize?: number;
  /** Layers offloaded to WebGPU (default 0: CPU only). */
  gpuLayers?: number;
  fetch?: typeof fetch;
}

export const WLLAMA_ENGINE_ID = 'wllama@3.8.1';

/** wllama's asset paths: every build resolves to the one local WASM file (never a CDN). */
export function wllamaAssetPaths(options: Pick<WllamaOptions, 'wasmUrl'>): AssetsPathConfig {
  return { default: options.wasmUrl, 'single-thread/wllama.wasm': options.wasmUrl };
}

/** Load parameters: no seed (it would override per-request seeds), GPU layers explicit. */
export function wllamaLoadParams(options: WllamaOptions): LoadModelParams {
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', 'threads must be a positive integer', {
      details: { threads },
    });
  }
  return {
    n_ctx: options.contextSize ?? 2048,
    n_threads: threads,
    n_gpu_layers: options.gpuLayers ?? 0,
  };
}

/**
 * Sampling parameters for one completion. Greedy (`temperature: 0`) is `temp: 0` with `top_k: 1`, which
 * llama.cpp's sampler chain reduces to argmax.
 */
export function wllamaCompletionParams(prompt: string, params: InferenceParams): RawCompletionParams {
  const greedy = params.temperature === 0;
  return {
    prompt,
    max_tokens: params.maxTokens,
    temp: params.temperature,
    ...(greedy ? { top_k: 1 } : params.topK === undefined ? {} : { top_k: params.topK }),
    ...(!greedy && params.topP !== undefined ? { top_p: params.topP } : {}),
    ...(params.seed === undefined ? {} : { seed: params.seed }),
  };
}

/** JSPI (WebAssembly.Suspending) is what wllama 3's main build needs besides Memory64. */
export function hasJspi(global: { WebAssembly?: unknown } = globalThis): boolean {
  const wasm = global.WebAssembly as { Suspending?: unknown } | undefined;
  return typeof wasm?.Suspending === 'function';
}

export class WllamaEngine implements Engine {
  readonly id = WLLAMA_ENGINE_ID;
  readonly kind = 'wllama' as const;
  readonly #options: WllamaOptions;
  #wllama: Wllama | null = null;
  #ref: ModelRef | null = null;

  constructor(options: WllamaOptions) {
    this.#options = options;
    wllamaLoadParams(options);
  }

  get model(): ModelRef | null {
    return this.#ref;
  }

  async load(source: ModelSource, onProgress?: OnLoadProgress): Promise<void> {
    const url = requireLocation(source, 'url', 'wllama');
    await this.unload();
    if (!hasJspi()) {
      throw new InferenceError(
        'ENGINE_UNAVAILABLE',
        'wllama needs WebAssembly JSPI, which this browser lacks',
        {
          hint: 'use a current Chromium, or serve the node headless with node-llama-cpp',
        },
      );
    }
    const bytes = await fetchBytes(url, {
      ...(this.#options.fetch === undefined ? {} : { fetch: this.#options.fetch }),
      ...(onProgress === undefined ? {} : { onProgress }),
    });
    const actual = await sha256Hex(bytes);
    onProgress?.({ loaded: bytes.length, total: bytes.length, phase: 'hash' });
    verifyHash(source.id, source.fileHash, actual, url);
    try {
      const { Wllama: WllamaClass } = await import('@wllama/wllama/esm/index.js');
      const wllama = new WllamaClass(wllamaAssetPaths(this.#options), { suppressNativeLog: true });
      wllama.setCompat(null);
      onProgress?.({ loaded: 0, total: 1, phase: 'load' });
      await wllama.loadModel([new Blob([bytes as Uint8Array<ArrayBuffer>])], wllamaLoadParams(this.#options));
      this.#wllama = wllama;
    } catch (cause) {
      throw asInferenceError(cause, 'ENGINE_UNAVAILABLE', `wllama could not load ${source.id}`);
    }
    this.#ref = { id: source.id, fileHash: actual };
    onProgress?.({ loaded: 1, total: 1, phase: 'ready' });
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    checkGenerateRequest(request);
    const wllama = this.#wllama;
    if (wllama === null) throw notLoaded('wllama engine');
    throwIfAborted(request.signal);
    // Base GGUFs (no chat template) get the plain rendering every engine shares.
    const prompt = request.prompt ?? renderMessagesAsText(request.messages ?? []);
    const started = performance.now();
    try {
      const out = await wllama.createCompletion({
        ...wllamaCompletionParams(prompt, request.params),
        ...(request.signal === undefined ? {} : { abortSignal: request.signal }),
        stream: false,
      });
      const choice = out.choices[0];
      const tokens = out.usage.completion_tokens;
      return {
        text: choice?.text ?? '',
        tokens,
        tokensPerSecond: rate(tokens, performance.now() - started),
        finishReason: choice?.finish_reason === 'length' ? 'length' : 'stop',
      };
    } catch (cause) {
      if (request.signal?.aborted) {
        throw new InferenceError('INFERENCE_ABORTED', 'the generation was aborted', { cause });
      }
      throw asInferenceError(cause, 'INFERENCE_FAILED', 'wllama generation failed');
    }
  }

  async unload(): Promise<void> {
    const wllama = this.#wllama;
    this.#wllama = null;
    this.#ref = null;
    if (wllama !== null) await wllama.exit();
  }
}
