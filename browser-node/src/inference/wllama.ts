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
  completionText,
  type Engine,
  type GenerateRequest,
  type GenerateResult,
  ggufContextSize,
  type ModelSource,
  notLoaded,
  type OnLoadProgress,
  promptTooLong,
  rate,
  requireLocation,
  throwIfAborted,
} from './engine.ts';
import { asInferenceError, InferenceError } from './errors.ts';
import { fetchBytes, sha256Hex, verifyHash } from './hashing.ts';

/**
 * wllama (llama.cpp compiled to WebAssembly) for browser nodes: GGUF models on the CPU in a tab.
 *
 * Greedy output is byte-identical to node-llama-cpp's (LlamaCppEngine) because both follow the GGUF
 * engines' canonical rule (`completionText` in engine.ts), which is what wllama's code does natively:
 * it runs llama.cpp's server, whose completion tokenizes the prompt as `llama_tokenize(text,
 * add_special = true, parse_special = true)` and returns the generated pieces concatenated. Messages
 * are rendered by `renderMessagesAsText` and completed as raw text (wllama's chat completion would
 * apply a template node-llama-cpp does not). Checked in headless Chromium on varied prompts
 * (tests/browser-node.test.ts). Seeded sampling is reproducible within wllama, not across engines.
 * About 1,000 tokens/s single-threaded with stories260K.
 *
 * Gotchas handled here:
 * - wllama 3 needs JSPI and Memory64; without them it would load a compat build from a CDN. The CDN
 *   fallback is switched off (`setCompat(null)`), and a browser without JSPI gets ENGINE_UNAVAILABLE.
 * - A `seed` given at model load overrides every per-request seed, so no seed is ever passed at load;
 *   each request carries its own.
 * - The GPU layer count is set to 0 explicitly (CPU) unless `gpuLayers` is given. 0 also keeps wllama
 *   from probing WebGPU at all (it hides `navigator.gpu` from its worker).
 * - The prompt cache is off (`cache_prompt: false`): every request evaluates its whole prompt from an
 *   empty context, as node-llama-cpp does, so no earlier request can shift a result.
 * - The context is capped at the model's training context, as node-llama-cpp's is (the model is loaded
 *   again, smaller, when the GGUF's training context is below the requested size), so both stop at the
 *   same token when the context fills.
 * - Multi-threading needs a cross-origin-isolated page (COOP/COEP) and an explicit thread count;
 *   `threads` defaults to 1.
 * - The model is fetched once from a URL the node serves, its sha256 checked, then handed to wllama as
 *   a Blob: the bytes loaded are the bytes hashed.
 *
 * WebGPU: wllama 3.8.1's one build has llama.cpp's WebGPU backend compiled in, and that backend needs
 * an adapter with `shader-f16`. Where the adapter lacks it (the SwiftShader adapter that headless
 * Chromium gives with --enable-unsafe-webgpu), the backend registers no device and every layer runs on
 * the CPU whatever `gpuLayers` says, silently; forced past that check, the device request is refused
 * ("Unsupported feature: shader-f16") and llama.cpp aborts the load. So no WebGPU output could be
 * compared with node-llama-cpp's, and verdicts compare outputs: browser nodes stay on the CPU
 * (tests/browser-wllama-gpu.test.ts).
 */
export interface WllamaOptions {
  /** URL of `wllama.wasm` (from `@wllama/wllama/esm/wasm/wllama.wasm`, served by the node's origin). */
  wasmUrl: string;
  /** Threads (default 1; more needs a cross-origin-isolated page). */
  threads?: number;
  /** Context size in tokens (default: min(2048, the model's training context); as node-llama-cpp's). */
  contextSize?: number;
  /**
   * Layers offloaded to WebGPU (default 0: CPU only). Above 0 it needs an adapter with `shader-f16`, and
   * falls back to the CPU silently without one; GPU output is not checked against the headless nodes'.
   */
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

/** wllama's raw completion parameters, plus the server field its type does not list. */
export type WllamaCompletionParams = RawCompletionParams & { cache_prompt: boolean };

/**
 * Sampling parameters for one completion. Greedy (`temperature: 0`) is `temp: 0` with `top_k: 1`, which
 * llama.cpp's sampler chain reduces to argmax. The prompt cache is off (each prompt evaluated whole).
 */
export function wllamaCompletionParams(prompt: string, params: InferenceParams): WllamaCompletionParams {
  const greedy = params.temperature === 0;
  return {
    prompt,
    cache_prompt: false,
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
      const blob = new Blob([bytes as Uint8Array<ArrayBuffer>]);
      const start = async (params: LoadModelParams): Promise<Wllama> => {
        const wllama = new WllamaClass(wllamaAssetPaths(this.#options), { suppressNativeLog: true });
        wllama.setCompat(null);
        await wllama.loadModel([blob], params);
        return wllama;
      };
      onProgress?.({ loaded: 0, total: 1, phase: 'load' });
      const params = wllamaLoadParams(this.#options);
      let wllama = await start(params);
      // The training context is only known once loaded: load again when it is below the requested size.
      const nCtx = ggufContextSize(params.n_ctx, wllama.getLoadedContextInfo().n_ctx_train);
      if (nCtx !== params.n_ctx) {
        await wllama.exit();
        wllama = await start({ ...params, n_ctx: nCtx });
      }
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
    const prompt = completionText(request);
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
        promptTokens: out.usage.prompt_tokens,
        tokensPerSecond: rate(tokens, performance.now() - started),
        finishReason: choice?.finish_reason === 'length' ? 'length' : 'stop',
      };
    } catch (cause) {
      if (request.signal?.aborted) {
        throw new InferenceError('INFERENCE_ABORTED', 'the generation was aborted', { cause });
      }
      // llama.cpp's server: "request (N tokens) exceeds the available context size (M tokens), …".
      const tooLong = /\((\d+) tokens\) exceeds the available context size \((\d+) tokens\)/.exec(
        cause instanceof Error ? cause.message : String(cause),
      );
      if (tooLong !== null) throw promptTooLong(Number(tooLong[1]), Number(tooLong[2]));
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
