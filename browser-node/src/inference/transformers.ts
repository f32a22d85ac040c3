import type { EmbeddingModelRef, ModelRef } from '@synod/shared';
import { checkBits, defaultBits, type Embedder, packBits } from './embedder.ts';
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
  throwIfAborted,
} from './engine.ts';
import { asInferenceError, InferenceError } from './errors.ts';
import { fetchBytes, manifestHash, verifyHash } from './hashing.ts';

/**
 * transformers.js (`@huggingface/transformers` 4.x, ONNX Runtime) adapters: a feature-extraction
 * Embedder (mean pooling, then L2 normalization) and a text-generation Engine.
 *
 * Models are folders in the transformers.js layout (`config.json`, `tokenizer.json`, `onnx/*.onnx`).
 * Nothing is ever fetched from the hub: `env.allowRemoteModels = false` and `env.localModelPath` points
 * at the folder's parent (a directory under Bun/Node, a URL in a browser).
 *
 * Devices. Under Bun and Node the package's Node build runs ONNX Runtime natively
 * (`onnxruntime-node`, whose prebuilt linux-x64 binary is in node_modules): devices `cpu`, `cuda`,
 * `webgpu`; it has no `wasm` device, so `wasm` maps to `cpu` there. In a browser the web build runs
 * onnxruntime-web: devices `wasm` and `webgpu`; `auto` picks WebGPU when `navigator.gpu` has an adapter,
 * else WASM. Give `wasmPaths` in a browser: by default onnxruntime-web takes its WASM from a CDN.
 * Bit-identity: onnxruntime-web's WASM gives the same floats in Node and browsers; native
 * onnxruntime-node can differ in the last bits, which a verifier's per-model noise tolerance absorbs.
 *
 * File hash: the canonical manifest hash of the model folder (see hashing.ts), as ModelsDir computes it.
 */
export type TransformersDevice = 'auto' | 'cpu' | 'wasm' | 'webgpu';
export type TransformersDtype = 'fp32' | 'fp16' | 'q8' | 'q4';

export interface TransformersModelLocation {
  /** Model id as the protocol names it (also the folder name). */
  id: string;
  /** Headless: the model folder on disk. */
  path?: string;
  /**
   * Browser: URL of the folder (served by the node's own origin). With `files`, the listed files are
   * fetched and hashed before loading.
   */
  url?: string;
  /** Browser: every file of the folder, relative to it (the listing that the manifest hash covers). */
  files?: string[];
  /** Expected folder hash; MODEL_HASH_MISMATCH on a difference. */
  fileHash?: string;
}

export interface TransformersOptions {
  device?: TransformersDevice;
  dtype?: TransformersDtype;
  /** Browser: where onnxruntime-web's `.wasm`/`.mjs` files are served. */
  wasmPaths?: string;
}

type Transformers = typeof import('@huggingface/transformers');

/** The device a runtime can use for a requested one. */
export function resolveDevice(
  requested: TransformersDevice,
  runtime: { node: boolean; webgpu: boolean },
): 'cpu' | 'wasm' | 'webgpu' {
  if (requested === 'webgpu') return 'webgpu';
  if (requested === 'auto') return runtime.webgpu ? 'webgpu' : runtime.node ? 'cpu' : 'wasm';
  if (runtime.node) return 'cpu';
  return requested === 'cpu' ? 'wasm' : requested;
}

function isNodeRuntime(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

async function hasWebGpu(): Promise<boolean> {
  const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } } | undefined)?.gpu;
  if (gpu === undefined) return false;
  try {
    return (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

interface Prepared {
  lib: Transformers;
  modelName: string;
  fileHash: string;
  device: 'cpu' | 'wasm' | 'webgpu';
}

/** Hash and locate a model folder, and point transformers.js at it with remote models off. */
async function prepare(
  location: TransformersModelLocation,
  options: TransformersOptions,
  onProgress?: OnLoadProgress,
): Promise<Prepared> {
  let fileHash: string;
  let parent: string;
  let modelName: string;
  if (location.path !== undefined) {
    const { basename, dirname, resolve } = await import('node:path');
    // Node-only (fs, streams): the browser bundle aliases it to an empty module (see
    // ../browser/build.ts), and this branch never runs in a browser.
    const { sha256Folder } = await import('./models-dir.ts');
    const abs = resolve(location.path);
    let manifest: string;
    try {
      ({ fileHash, manifest } = await sha256Folder(abs, undefined, onProgress));
    } catch (cause) {
      throw asInferenceError(cause, 'MODEL_NOT_FOUND', `model ${location.id} is not at ${abs}`);
    }
    checkLayout(
      location.id,
      manifest
        .split('\n')
        .filter(Boolean)
        .map((line) => line.slice(66)),
    );
    parent = `${dirname(abs)}/`;
    modelName = basename(abs);
  } else if (location.url !== undefined) {
    const url = location.url.replace(/\/+$/, '');
    if (location.files === undefined || location.files.length === 0) {
      throw new InferenceError('INFERENCE_INVALID_INPUT', 'a model loaded by URL needs its file listing', {
        details: { id: location.id },
        hint: 'pass `files` (every file of the folder) so its hash can be checked',
      });
    }
    checkLayout(location.id, location.files);
    const files: Array<{ path: string; bytes: Uint8Array }> = [];
    for (const [i, path] of location.files.entries()) {
      files.push({ path, bytes: await fetchBytes(`${url}/${path}`) });
      onProgress?.({ loaded: i + 1, total: location.files.length, phase: 'fetch' });
    }
    fileHash = await manifestHash(files);
    const cut = url.lastIndexOf('/');
    parent = `${url.slice(0, cut + 1)}`;
    modelName = url.slice(cut + 1);
    // transformers.js 4.x checks which files a local model has (tokenizer_config.json decides whether
    // a pipeline gets a tokenizer) only when `localModelPath` is not a full URL: with one, every file
    // "does not exist" and feature extraction fails with `this.tokenizer is not a function`. On the
    // page's own origin, give the path alone; fetch resolves it against the page.
    const here = (globalThis as { location?: { origin?: string } }).location?.origin;
    if (here !== undefined && parent.startsWith(`${here}/`)) parent = parent.slice(here.length);
  } else {
    throw new InferenceError('INFERENCE_INVALID_INPUT', 'give the model folder as `path` or `url`', {
      details: { id: location.id },
    });
  }
  if (location.fileHash !== undefined) verifyHash(location.id, location.fileHash, fileHash);

  let lib: Transformers;
  try {
    lib = await import('@huggingface/transformers');
  } catch (cause) {
    throw asInferenceError(
      cause,
      'ENGINE_UNAVAILABLE',
      'transformers.js cannot be imported',
      {},
      'install the dependencies again (npm install in the project)',
    );
  }
  lib.env.allowRemoteModels = false;
  lib.env.allowLocalModels = true;
  lib.env.localModelPath = parent;
  const onnxWasm = lib.env.backends.onnx.wasm;
  if (options.wasmPaths !== undefined && onnxWasm !== undefined) onnxWasm.wasmPaths = options.wasmPaths;
  const device = resolveDevice(options.device ?? 'auto', {
    node: isNodeRuntime(),
    webgpu: await hasWebGpu(),
  });
  return { lib, modelName, fileHash, device };
}

/** MODEL_NOT_FOUND unless a folder has the transformers.js layout: config, tokenizer, an ONNX graph. */
export function checkLayout(id: string, files: readonly string[]): void {
  const missing = ['config.json', 'tokenizer.json'].filter((f) => !files.includes(f));
  if (!files.some((f) => f.startsWith('onnx/') && f.endsWith('.onnx'))) missing.push('onnx/*.onnx');
  if (missing.length > 0) {
    throw new InferenceError('MODEL_NOT_FOUND', `model ${id} lacks ${missing.join(', ')}`, {
      details: { id, missing },
      hint: 'a transformers.js model folder holds config.json, tokenizer.json and onnx/model*.onnx',
    });
  }
}

function loadError(cause: unknown, id: string, task: string): InferenceError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  if (/not found locally|file was not found|ENOENT|Could not locate file/i.test(reason)) {
    return new InferenceError('MODEL_NOT_FOUND', `model ${id} has no ${task} files: ${reason}`, {
      details: { id, task },
      hint: 'put the model folder (config.json, tokenizer.json, onnx/) in the models directory',
      cause,
    });
  }
  if (/Unsupported model type|Unsupported device/i.test(reason)) {
    return new InferenceError(
      'ENGINE_UNAVAILABLE',
      `transformers.js cannot run ${id} for ${task}: ${reason}`,
      {
        details: { id, task },
        hint:
          task === 'text-generation'
            ? `${id} is not a text-generation model transformers.js runs: pick a causal language model (--model), or a GGUF one with --engine llama-cpp`
            : `${id} is not a model transformers.js runs for ${task}: pick another`,
        cause,
      },
    );
  }
  return asInferenceError(cause, 'INFERENCE_FAILED', `transformers.js could not load ${id}`, { task });
}

// ---------------------------------------------------------------------------------------------------

type FeatureExtractor = Awaited<
  ReturnType<typeof import('@huggingface/transformers').pipeline<'feature-extraction'>>
>;

export interface TransformersEmbedderOptions extends TransformersOptions {
  model: TransformersModelLocation;
  /** Bits kept after sign quantization (default: the largest multiple of 8 within the dimensions). */
  bits?: number;
}

export class TransformersEmbedder implements Embedder {
  readonly #options: TransformersEmbedderOptions;
  #extractor: FeatureExtractor | null = null;
  #ref: EmbeddingModelRef | null = null;
  #dims = 0;
  #device: string | null = null;

  constructor(options: TransformersEmbedderOptions) {
    this.#options = options;
  }

  get ref(): EmbeddingModelRef {
    if (this.#ref === null) throw notLoaded('transformers.js embedder');
    return this.#ref;
  }

  get dims(): number {
    if (this.#ref === null) throw notLoaded('transformers.js embedder');
    return this.#dims;
  }

  get loaded(): boolean {
    return this.#extractor !== null;
  }

  /** The ONNX Runtime device in use after load(). */
  get device(): string | null {
    return this.#device;
  }

  async load(onProgress?: OnLoadProgress): Promise<void> {
    await this.unload();
    const { model } = this.#options;
    const { lib, modelName, fileHash, device } = await prepare(model, this.#options, onProgress);
    let extractor: FeatureExtractor;
    try {
      onProgress?.({ loaded: 0, total: 1, phase: 'load' });
      extractor = await lib.pipeline('feature-extraction', modelName, {
        device,
        dtype: this.#options.dtype ?? 'fp32',
      });
    } catch (cause) {
      throw loadError(cause, model.id, 'feature-extraction');
    }
    try {
      const probe = await extractor('probe', { pooling: 'mean', normalize: true });
      const dims = probe.dims.at(-1) ?? 0;
      const bits = checkBits(this.#options.bits ?? defaultBits(dims), dims, model.id);
      this.#extractor = extractor;
      this.#dims = dims;
      this.#device = device;
      this.#ref = { id: model.id, fileHash, bits };
    } catch (cause) {
      await extractor.dispose();
      throw asInferenceError(cause, 'INFERENCE_FAILED', `model ${model.id} failed its first embedding`);
    }
    onProgress?.({ loaded: 1, total: 1, phase: 'ready' });
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    const extractor = this.#extractor;
    if (extractor === null) throw notLoaded('transformers.js embedder');
    const out: Float32Array[] = [];
    try {
      // One text at a time, always (see embedder.ts): padding in a batch changes the last float bits.
      for (const text of texts) {
        const tensor = await extractor(text, { pooling: 'mean', normalize: true });
        out.push(Float32Array.from(tensor.data as Float32Array));
        tensor.dispose();
      }
    } catch (cause) {
      throw asInferenceError(cause, 'INFERENCE_FAILED', 'transformers.js embedding failed');
    }
    return out;
  }

  async embedBits(text: string): Promise<Uint8Array> {
    const [vector] = await this.embed([text]);
    return packBits(vector as Float32Array, this.ref.bits);
  }

  async unload(): Promise<void> {
    const extractor = this.#extractor;
    this.#extractor = null;
    this.#ref = null;
    this.#device = null;
    if (extractor !== null) await extractor.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------

type Tokenizer = Awaited<ReturnType<Transformers['AutoTokenizer']['from_pretrained']>>;
type CausalLM = Awaited<ReturnType<Transformers['AutoModelForCausalLM']['from_pretrained']>>;

export interface TransformersEngineOptions extends TransformersOptions {
  /** Browser: the folder's file listing (see TransformersModelLocation.files). */
  files?: string[];
}

/**
 * Text generation with a causal LM in the transformers.js layout. Greedy decoding is deterministic.
 * transformers.js has no seeded sampler, so a request with `temperature > 0` and a `seed` is refused
 * (INFERENCE_INVALID_INPUT) rather than answered unreproducibly; unseeded sampling is allowed.
 */
export class TransformersEngine implements Engine {
  readonly id = 'transformers.js@4';
  readonly kind = 'transformers' as const;
  readonly #options: TransformersEngineOptions;
  #tokenizer: Tokenizer | null = null;
  #model: CausalLM | null = null;
  #ref: ModelRef | null = null;

  constructor(options: TransformersEngineOptions = {}) {
    this.#options = options;
  }

  get model(): ModelRef | null {
    return this.#ref;
  }

  async load(source: ModelSource, onProgress?: OnLoadProgress): Promise<void> {
    await this.unload();
    const location: TransformersModelLocation = {
      id: source.id,
      fileHash: source.fileHash,
      ...(source.path === undefined ? {} : { path: source.path }),
      ...(source.url === undefined ? {} : { url: source.url }),
      ...(this.#options.files === undefined ? {} : { files: this.#options.files }),
    };
    const { lib, modelName, fileHash, device } = await prepare(location, this.#options, onProgress);
    try {
      onProgress?.({ loaded: 0, total: 1, phase: 'load' });
      this.#tokenizer = await lib.AutoTokenizer.from_pretrained(modelName);
      this.#model = await lib.AutoModelForCausalLM.from_pretrained(modelName, {
        device,
        dtype: this.#options.dtype ?? 'fp32',
      });
    } catch (cause) {
      await this.unload();
      throw loadError(cause, source.id, 'text-generation');
    }
    this.#ref = { id: source.id, fileHash };
    onProgress?.({ loaded: 1, total: 1, phase: 'ready' });
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    checkGenerateRequest(request);
    const tokenizer = this.#tokenizer;
    const model = this.#model;
    if (tokenizer === null || model === null) throw notLoaded('transformers.js engine');
    throwIfAborted(request.signal);
    const { params } = request;
    if (params.temperature > 0 && params.seed !== undefined) {
      throw new InferenceError('INFERENCE_INVALID_INPUT', 'transformers.js cannot honour a sampling seed', {
        hint: 'use temperature 0, or an engine with seeded sampling (llama-cpp, wllama)',
      });
    }
    const prompt =
      request.prompt ??
      (tokenizer.chat_template
        ? (tokenizer.apply_chat_template(request.messages ?? [], {
            tokenize: false,
            add_generation_prompt: true,
          }) as string)
        : renderMessagesAsText(request.messages ?? []));
    const started = performance.now();
    try {
      const inputs = tokenizer(prompt);
      const inputLength = inputs.input_ids.dims.at(-1) ?? 0;
      const output = (await model.generate({
        ...inputs,
        max_new_tokens: params.maxTokens,
        do_sample: params.temperature > 0,
        ...(params.temperature > 0 ? { temperature: params.temperature } : {}),
        ...(params.topK === undefined ? {} : { top_k: params.topK }),
        ...(params.topP === undefined ? {} : { top_p: params.topP }),
      })) as { dims: number[]; tolist(): bigint[][] };
      throwIfAborted(request.signal);
      const ids = (output.tolist()[0] ?? []).slice(inputLength);
      const text = tokenizer.decode(ids, { skip_special_tokens: true });
      return {
        text,
        tokens: ids.length,
        promptTokens: inputLength,
        tokensPerSecond: rate(ids.length, performance.now() - started),
        finishReason: ids.length >= params.maxTokens ? 'length' : 'stop',
      };
    } catch (cause) {
      throw asInferenceError(cause, 'INFERENCE_FAILED', 'transformers.js generation failed');
    }
  }

  async unload(): Promise<void> {
    const model = this.#model;
    this.#model = null;
    this.#tokenizer = null;
    this.#ref = null;
    if (model !== null) await model.dispose();
  }
}
