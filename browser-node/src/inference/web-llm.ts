import type { InferenceParams, ModelRef } from '@synod/shared';
import {
  checkGenerateRequest,
  type Engine,
  type GenerateRequest,
  type GenerateResult,
  type ModelSource,
  notLoaded,
  type OnLoadProgress,
  rate,
  requireLocation,
  throwIfAborted,
} from './engine.ts';
import { asInferenceError, InferenceError } from './errors.ts';
import { canonicalManifest, type ManifestEntry, sha256Hex, verifyHash } from './hashing.ts';

// Types only: the web-llm bundle is imported lazily in load(), so this module loads anywhere.
type WebLlm = typeof import('@mlc-ai/web-llm');
type AppConfig = import('@mlc-ai/web-llm').AppConfig;
type ModelRecord = import('@mlc-ai/web-llm').ModelRecord;
type MLCEngine = import('@mlc-ai/web-llm').MLCEngineInterface;

/**
 * web-llm (MLC, WebGPU) for browser nodes with a GPU.
 *
 * - WebGPU is checked first: no `navigator.gpu` or no adapter is WEBGPU_UNAVAILABLE; a model that
 *   needs `shader-f16` (q4f16/q0f16 builds, or `required_features` naming it) on an adapter without
 *   that feature is SHADER_F16_UNSUPPORTED, before anything is downloaded. (SwiftShader, for example,
 *   lacks shader-f16; q4f32/q0f32 models pass this check.)
 * - The engine is created with a local `appConfig`: one model record pointing at the node's own model
 *   URL and model library URL, never the prebuilt list on the hub.
 * - web-llm fetches the model config and its compiled library before touching the GPU; when that fails
 *   the error is MODEL_FETCH_FAILED.
 *
 * File hash. An MLC model is a folder (`mlc-chat-config.json`, tokenizer files, `ndarray-cache.json`
 * and weight shards) plus a compiled model library. Its protocol hash is the canonical manifest hash
 * (hashing.ts) of the artifact list the operator pins in `artifacts`. web-llm verifies the config,
 * library and tokenizer it loads against those sha256s (its SRI `integrity` support); web-llm 0.2.86
 * has no per-shard integrity, so the shards are pinned through `ndarray-cache.json` (their names, sizes
 * and layout), not byte for byte.
 */
export interface WebLlmModelSpec {
  /** MLC model id, e.g. `Llama-3.2-1B-Instruct-q4f32_1-MLC`. */
  mlcModelId: string;
  /** URL of the compiled model library (`.wasm`), served by the node's origin or a pinned mirror. */
  modelLibUrl: string;
  /** sha256 of each artifact: `mlc-chat-config.json`, tokenizer files, `ndarray-cache.json`, and the library under its file name. */
  artifacts: ManifestEntry[];
  /** WebGPU features the model needs (shader-f16 is added for f16 builds). */
  requiredFeatures?: string[];
  /** Context window override. */
  contextWindowSize?: number;
}

/** Minimal views of the WebGPU objects the adapter check reads (so tests can pass a test double). */
export interface GpuAdapterLike {
  features: { has(feature: string): boolean };
}
export interface GpuLike {
  requestAdapter(options?: {
    powerPreference?: 'low-power' | 'high-performance';
  }): Promise<GpuAdapterLike | null>;
}

export const WEB_LLM_ENGINE_ID = 'web-llm@0.2.86';

/** Whether an MLC model needs the `shader-f16` WebGPU feature. */
export function needsShaderF16(spec: Pick<WebLlmModelSpec, 'mlcModelId' | 'requiredFeatures'>): boolean {
  return (
    (spec.requiredFeatures ?? []).includes('shader-f16') ||
    /(^|[-_])q\d+f16(_\d+)?($|[-_])/i.test(spec.mlcModelId)
  );
}

/** The protocol file hash of an MLC model: the manifest hash of its pinned artifacts. */
export async function webLlmFileHash(spec: Pick<WebLlmModelSpec, 'artifacts'>): Promise<string> {
  return sha256Hex(new TextEncoder().encode(canonicalManifest(spec.artifacts)));
}

/** sha256 hex as an SRI string (`sha256-<base64>`). */
export function sriFromHex(hex: string): string {
  if (!/^[0-9a-f]{64}$/.test(hex))
    throw new InferenceError('INFERENCE_INVALID_INPUT', `not a sha256 hex: ${hex}`);
  let bin = '';
  for (let i = 0; i < 64; i += 2) bin += String.fromCharCode(Number.parseInt(hex.slice(i, i + 2), 16));
  return `sha256-${btoa(bin)}`;
}

/** The one-model appConfig web-llm is created with (no prebuilt hub list). */
export function webLlmAppConfig(spec: WebLlmModelSpec, modelUrl: string): AppConfig {
  const byPath = new Map(spec.artifacts.map((a) => [a.path, a.sha256]));
  const libName = new URL(spec.modelLibUrl, 'http://x/').pathname.split('/').pop() ?? '';
  const config = byPath.get('mlc-chat-config.json');
  const lib = byPath.get(libName);
  const tokenizer: Record<string, string> = {};
  for (const [path, sha] of byPath) if (/^tokenizer/.test(path)) tokenizer[path] = sriFromHex(sha);
  const features = new Set(spec.requiredFeatures ?? []);
  if (needsShaderF16(spec)) features.add('shader-f16');
  const record: ModelRecord = {
    model: modelUrl,
    model_id: spec.mlcModelId,
    model_lib: spec.modelLibUrl,
    ...(features.size > 0 ? { required_features: [...features].sort() } : {}),
    ...(spec.contextWindowSize === undefined
      ? {}
      : { overrides: { context_window_size: spec.contextWindowSize } }),
    integrity: {
      ...(config === undefined ? {} : { config: sriFromHex(config) }),
      ...(lib === undefined ? {} : { model_lib: sriFromHex(lib) }),
      ...(Object.keys(tokenizer).length > 0 ? { tokenizer } : {}),
      onFailure: 'error',
    },
  };
  return { model_list: [record] };
}

/** WEBGPU_UNAVAILABLE or SHADER_F16_UNSUPPORTED unless the GPU can run the model; returns the adapter. */
export async function checkWebGpu(gpu: GpuLike | undefined, needsF16: boolean): Promise<GpuAdapterLike> {
  if (gpu === undefined) {
    throw new InferenceError('WEBGPU_UNAVAILABLE', 'this browser has no WebGPU (navigator.gpu is missing)', {
      hint: 'use wllama (WASM) on this machine',
    });
  }
  let adapter: GpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (cause) {
    throw asInferenceError(cause, 'WEBGPU_UNAVAILABLE', 'requesting a WebGPU adapter failed');
  }
  if (adapter === null) {
    throw new InferenceError('WEBGPU_UNAVAILABLE', 'WebGPU returned no adapter', {
      hint: 'use wllama (WASM)',
    });
  }
  if (needsF16 && !adapter.features.has('shader-f16')) {
    throw new InferenceError(
      'SHADER_F16_UNSUPPORTED',
      'this GPU adapter lacks shader-f16, which the model needs',
      {
        hint: 'serve a q4f32/q0f32 build of the model, or use wllama',
      },
    );
  }
  return adapter;
}

/** web-llm's OpenAI-style sampling for one request. Greedy is temperature 0 with top_p 1. */
export function webLlmSampling(params: InferenceParams): {
  max_tokens: number;
  temperature: number;
  top_p: number;
  seed?: number;
} {
  return {
    max_tokens: params.maxTokens,
    temperature: params.temperature,
    top_p: params.temperature === 0 ? 1 : (params.topP ?? 1),
    ...(params.seed === undefined ? {} : { seed: params.seed }),
  };
}

function isFetchFailure(error: unknown): boolean {
  const text = error instanceof Error ? `${error.name} ${error.message}` : String(error);
  return /fetch|network|404|not found|Failed to load|NetworkError|load failed|Cache/i.test(text);
}

export interface WebLlmOptions {
  spec: WebLlmModelSpec;
  /** The GPU to use (default `navigator.gpu`). */
  gpu?: GpuLike;
}

export class WebLlmEngine implements Engine {
  readonly id = WEB_LLM_ENGINE_ID;
  readonly kind = 'web-llm' as const;
  readonly #options: WebLlmOptions;
  #engine: MLCEngine | null = null;
  #ref: ModelRef | null = null;

  constructor(options: WebLlmOptions) {
    this.#options = options;
  }

  get model(): ModelRef | null {
    return this.#ref;
  }

  async load(source: ModelSource, onProgress?: OnLoadProgress): Promise<void> {
    const url = requireLocation(source, 'url', 'web-llm');
    await this.unload();
    const { spec } = this.#options;
    const fileHash = await webLlmFileHash(spec);
    verifyHash(source.id, source.fileHash, fileHash);
    const gpu =
      this.#options.gpu ??
      (globalThis.navigator as unknown as { gpu?: GpuLike } | undefined)?.gpu ??
      undefined;
    await checkWebGpu(gpu, needsShaderF16(spec));
    let lib: WebLlm;
    try {
      lib = await import('@mlc-ai/web-llm');
    } catch (cause) {
      throw asInferenceError(cause, 'ENGINE_UNAVAILABLE', 'web-llm cannot be imported');
    }
    try {
      this.#engine = await lib.CreateMLCEngine(spec.mlcModelId, {
        appConfig: webLlmAppConfig(spec, url),
        initProgressCallback: (r) => onProgress?.({ loaded: r.progress, total: 1, phase: 'load' }),
      });
    } catch (cause) {
      if (cause instanceof Error && cause.name === 'ShaderF16SupportError') {
        throw new InferenceError('SHADER_F16_UNSUPPORTED', cause.message, { cause });
      }
      if (isFetchFailure(cause)) {
        throw asInferenceError(cause, 'MODEL_FETCH_FAILED', `web-llm could not fetch ${spec.mlcModelId}`, {
          url: url,
          modelLibUrl: spec.modelLibUrl,
        });
      }
      throw asInferenceError(cause, 'ENGINE_UNAVAILABLE', `web-llm could not load ${spec.mlcModelId}`);
    }
    this.#ref = { id: source.id, fileHash };
    onProgress?.({ loaded: 1, total: 1, phase: 'ready' });
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    checkGenerateRequest(request);
    const engine = this.#engine;
    if (engine === null) throw notLoaded('web-llm engine');
    throwIfAborted(request.signal);
    const onAbort = () => engine.interruptGenerate();
    request.signal?.addEventListener('abort', onAbort, { once: true });
    const started = performance.now();
    try {
      const sampling = webLlmSampling(request.params);
      let text: string;
      let tokens: number;
      let promptTokens: number | undefined;
      let finish: string | null | undefined;
      if (request.prompt !== undefined) {
        const out = await engine.completions.create({ prompt: request.prompt, stream: false, ...sampling });
        text = out.choices[0]?.text ?? '';
        tokens = out.usage?.completion_tokens ?? 0;
        promptTokens = out.usage?.prompt_tokens;
        finish = out.choices[0]?.finish_reason;
      } else {
        const out = await engine.chat.completions.create({
          messages: request.messages ?? [],
          stream: false,
          ...sampling,
        });
        text = out.choices[0]?.message.content ?? '';
        tokens = out.usage?.completion_tokens ?? 0;
        promptTokens = out.usage?.prompt_tokens;
        finish = out.choices[0]?.finish_reason;
      }
      if (request.signal?.aborted || finish === 'abort') {
        throw new InferenceError('INFERENCE_ABORTED', 'the generation was aborted');
      }
      await engine.resetChat();
      return {
        text,
        tokens,
        ...(promptTokens === undefined ? {} : { promptTokens }),
        tokensPerSecond: rate(tokens, performance.now() - started),
        finishReason: finish === 'length' ? 'length' : 'stop',
      };
    } catch (cause) {
      throw asInferenceError(cause, 'INFERENCE_FAILED', 'web-llm generation failed');
    } finally {
      request.signal?.removeEventListener('abort', onAbort);
    }
  }

  async unload(): Promise<void> {
    const engine = this.#engine;
    this.#engine = null;
    this.#ref = null;
    if (engine !== null) await engine.unload();
  }
}
