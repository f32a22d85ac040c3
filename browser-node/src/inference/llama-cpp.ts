import { createRequire } from 'node:module';
import type { ModelRef } from '@synod/shared';
import type { Llama, LlamaContext, LlamaModel, Token } from 'node-llama-cpp';
import {
  checkGenerateRequest,
  checkPromptInput,
  completionText,
  type Engine,
  type FinishReason,
  type GenerateRequest,
  type GenerateResult,
  ggufContextSize,
  type ModelSource,
  notLoaded,
  type OnLoadProgress,
  type PromptMeasure,
  promptTooLong,
  rate,
  requireLocation,
  throwIfAborted,
} from './engine.ts';
import { asInferenceError, InferenceError } from './errors.ts';
import { sha256File, verifyHash } from './models-dir.ts';

/**
 * node-llama-cpp (llama.cpp, native) for headless nodes under Bun or Node: GGUF models on the CPU.
 *
 * It only ever uses the prebuilt binary shipped in `@node-llama-cpp/<platform>` (`build: 'never'`,
 * `skipDownload: true`): it never compiles llama.cpp nor downloads anything. When the binary for this
 * platform (and GPU backend) is missing, load() throws ENGINE_UNAVAILABLE.
 *
 * On the CPU by default (`gpu: 'off'`). A GPU box serves with `gpu: 'cuda' | 'vulkan' | 'metal'` (that
 * backend's prebuilt binary, `@node-llama-cpp/<platform>-<backend>`, and a device it can see, or
 * ENGINE_UNAVAILABLE) or `'auto'` (the first backend with a device, else the CPU); the model's layers are
 * offloaded (`gpuLayers`, all by default) and the engine's id names the backend
 * (`node-llama-cpp@3.22.1+vulkan`), as heartbeats advertise it. GPU kernels are not the CPU's: greedy
 * output agrees with the CPU's token for token for a while, not for ever (stories260K on Vulkan's CPU
 * device, lavapipe: the same first 200 tokens on every prompt tried, a different token within 500 on
 * one), so a quorum mixing backends agrees through its embeddings, not byte for byte.
 *
 * `threads: 1` by default: on a 2-core machine one thread was several times faster than two for small
 * models (measured: about 3,000 tokens/s for stories260K with `sequence.evaluate`, `npm run bench:node`).
 *
 * Text in and text out follow the GGUF engines' canonical rule (`completionText` in engine.ts), which
 * wllama follows too, so that both give byte-identical greedy output: prompts and messages (rendered by
 * `renderMessagesAsText`, never through a chat template) are completed as raw text, tokenized as
 * llama.cpp's `llama_tokenize(text, add_special = true, parse_special = true)`, and the output is the
 * generated tokens' pieces, leading space included.
 */
/** Where the model runs: the CPU (`off`), a named GPU backend, or the first backend with a device. */
export type LlamaGpu = 'off' | 'auto' | 'cuda' | 'vulkan' | 'metal';
export const LLAMA_GPUS: readonly LlamaGpu[] = ['off', 'auto', 'cuda', 'vulkan', 'metal'];

export interface LlamaCppOptions {
  /** CPU threads for generation (default 1). */
  threads?: number;
  /** Context size in tokens (default: min(2048, the model's training context); as wllama's). */
  contextSize?: number;
  /** GPU backend (default `off`: the CPU). */
  gpu?: LlamaGpu;
  /** Layers offloaded to the GPU when one is used (default `max`: all that fit). */
  gpuLayers?: number | 'max';
}

export const LLAMA_CPP_ENGINE_ID = 'node-llama-cpp@3.22.1';

/** The GPU backend a loaded engine runs on, and the devices it sees. */
export interface LlamaBackend {
  gpu: Exclude<LlamaGpu, 'off' | 'auto'>;
  devices: string[];
}

export class LlamaCppEngine implements Engine {
  readonly kind = 'llama-cpp' as const;
  readonly #options: LlamaCppOptions;
  #backend: LlamaBackend | null = null;
  #llama: Llama | null = null;
  #model: LlamaModel | null = null;
  #context: LlamaContext | null = null;
  #ref: ModelRef | null = null;
  #busy = false;
  /** The generation running now: `unload` aborts it and waits for it before freeing the context. */
  #inflight: { abort: AbortController; done: Promise<unknown> } | null = null;

  constructor(options: LlamaCppOptions = {}) {
    this.#options = options;
  }

  /** `node-llama-cpp@<version>`, with `+<backend>` when it runs on a GPU. */
  get id(): string {
    return this.#backend === null ? LLAMA_CPP_ENGINE_ID : `${LLAMA_CPP_ENGINE_ID}+${this.#backend.gpu}`;
  }

  /** The GPU backend the loaded model runs on, or null (the CPU, or nothing loaded). */
  get backend(): LlamaBackend | null {
    return this.#backend;
  }

  get model(): ModelRef | null {
    return this.#ref;
  }

  async load(source: ModelSource, onProgress?: OnLoadProgress): Promise<void> {
    const path = requireLocation(
      source,
      'path',
      'node-llama-cpp',
      'resolve the model with ModelsDir (which can download it) and pass its path',
    );
    await this.unload();
    const actual = await sha256File(path, onProgress);
    verifyHash(source.id, source.fileHash, actual, path);

    let lib: typeof import('node-llama-cpp');
    try {
      lib = await import('node-llama-cpp');
    } catch (cause) {
      throw asInferenceError(
        cause,
        'ENGINE_UNAVAILABLE',
        'node-llama-cpp cannot be imported',
        {},
        'install the dependencies again (npm install in the project), or run a transformers.js model with --engine transformers',
      );
    }
    const gpu = this.#options.gpu ?? 'off';
    try {
      this.#llama = await lib.getLlama({
        gpu: gpu === 'off' ? false : gpu,
        build: 'never',
        skipDownload: true,
        usePrebuiltBinaries: true,
        progressLogs: false,
        logLevel: lib.LlamaLogLevel.error,
        maxThreads: this.#options.threads ?? 1,
      });
    } catch (cause) {
      throw binaryUnavailable(cause, gpu);
    }
    try {
      this.#backend = await backendOf(this.#llama, gpu);
    } catch (e) {
      await this.unload();
      throw e;
    }
    try {
      onProgress?.({ loaded: 0, total: 1, phase: 'load' });
      this.#model = await this.#llama.loadModel({
        modelPath: path,
        gpuLayers: this.#backend === null ? 0 : (this.#options.gpuLayers ?? 'max'),
        onLoadProgress: (p: number) => onProgress?.({ loaded: p, total: 1, phase: 'load' }),
      });
      // No layer offloaded (`--gpu-layers 0`): the model runs on the CPU, and the id says so.
      if (this.#model.gpuLayers === 0) this.#backend = null;
      this.#context = await this.#model.createContext({
        contextSize: ggufContextSize(this.#options.contextSize, this.#model.trainContextSize),
        threads: this.#options.threads ?? 1,
        sequences: 1,
      });
    } catch (cause) {
      await this.unload();
      throw asInferenceError(cause, 'INFERENCE_FAILED', `llama.cpp could not load ${source.id}`, {
        path: path,
      });
    }
    this.#ref = { id: source.id, fileHash: actual };
    onProgress?.({ loaded: 1, total: 1, phase: 'ready' });
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    checkGenerateRequest(request);
    const model = this.#model;
    const context = this.#context;
    if (model === null || context === null) throw notLoaded('llama-cpp engine');
    throwIfAborted(request.signal);
    if (this.#busy) {
      throw new InferenceError('INFERENCE_FAILED', 'llama-cpp engine runs one generation at a time', {
        hint: 'queue jobs through InferenceQueue',
      });
    }
    this.#busy = true;
    const abort = new AbortController();
    const signal = request.signal ? AbortSignal.any([request.signal, abort.signal]) : abort.signal;
    const done = this.#generate(model, context, { ...request, signal }).finally(() => {
      this.#busy = false;
      this.#inflight = null;
    });
    this.#inflight = { abort, done };
    return done;
  }

  /**
   * The token ids the model is given for a raw text prompt, BOS included: llama.cpp's
   * `llama_tokenize(text, add_special = true, parse_special = true)`, as wllama's server code does it
   * (see `completionText` in engine.ts). node-llama-cpp's `tokenize(text, true)` is llama.cpp's tokenizer
   * with `add_special = false`, dummy-prefix space included; BOS and EOS are added here from the
   * model's own `add_bos` / `add_eos` flags. (LlamaCompletion is not used: it tokenizes with
   * "trimLeadingSpace", which drops the dummy prefix, and its detokenized text drops the first
   * generated token's leading space; both made it disagree with wllama.)
   */
  promptTokens(text: string): number[] {
    const model = this.#model;
    if (model === null) throw notLoaded('llama-cpp engine');
    return inputTokens(model, text);
  }

  /** The prompt tokenized as `generate` does it (the vocabulary only: a generation may be running). */
  async measurePrompt(request: Pick<GenerateRequest, 'prompt' | 'messages'>): Promise<PromptMeasure> {
    checkPromptInput(request);
    const model = this.#model;
    const context = this.#context;
    if (model === null || context === null) throw notLoaded('llama-cpp engine');
    return {
      promptTokens: inputTokens(model, completionText(request)).length,
      contextSize: context.contextSize,
    };
  }

  async #generate(
    model: LlamaModel,
    context: LlamaContext,
    request: GenerateRequest,
  ): Promise<GenerateResult> {
    const sequence = context.getSequence();
    const { params } = request;
    const started = performance.now();
    // Sampled tokens, the end-of-generation token included (llama.cpp's count).
    let tokens = 0;
    try {
      const input = inputTokens(model, completionText(request));
      const contextSize = context.contextSize;
      // llama.cpp's server refuses a prompt that fills the whole context (no room for a new token).
      if (input.length >= contextSize) throw promptTooLong(input.length, contextSize);
      const generated: Token[] = [];
      let finishReason: FinishReason = 'length';
      const evaluation = sequence.evaluate(input, {
        temperature: params.temperature,
        ...(params.seed === undefined ? {} : { seed: params.seed }),
        ...(params.topP === undefined ? {} : { topP: params.topP }),
        ...(params.topK === undefined ? {} : { topK: params.topK }),
        yieldEogToken: true,
      });
      for await (const token of evaluation) {
        if (request.signal?.aborted) break;
        tokens++;
        if (model.isEogToken(token)) {
          finishReason = 'stop';
          break;
        }
        generated.push(token);
        // maxTokens reached, or the context is full (the next token could not be evaluated).
        if (tokens >= params.maxTokens || input.length + tokens >= contextSize) break;
      }
      const elapsed = performance.now() - started;
      if (request.signal?.aborted) {
        throw new InferenceError('INFERENCE_ABORTED', 'the generation was aborted', { details: { tokens } });
      }
      return {
        text: continuation(model, input, generated),
        tokens,
        promptTokens: input.length,
        tokensPerSecond: rate(tokens, elapsed),
        finishReason,
      };
    } catch (cause) {
      if (request.signal?.aborted && !(cause instanceof InferenceError)) {
        throw new InferenceError('INFERENCE_ABORTED', 'the generation was aborted', { cause });
      }
      throw asInferenceError(cause, 'INFERENCE_FAILED', 'llama.cpp generation failed');
    } finally {
      // Every generation starts from an empty context: no state leaks from one request into the next.
      await sequence.clearHistory();
      sequence.dispose();
    }
  }

  /** Free the model; a generation still running is aborted (INFERENCE_ABORTED) and awaited first. */
  async unload(): Promise<void> {
    const inflight = this.#inflight;
    if (inflight) {
      inflight.abort.abort();
      await inflight.done.catch(() => undefined);
    }
    this.#ref = null;
    this.#backend = null;
    const context = this.#context;
    const model = this.#model;
    const llama = this.#llama;
    this.#context = null;
    this.#model = null;
    this.#llama = null;
    if (context && !context.disposed) await context.dispose();
    if (model && !model.disposed) await model.dispose();
    if (llama && !llama.disposed) await llama.dispose();
  }

  /** Whether native resources are held (for tests and diagnostics). */
  get holdsResources(): boolean {
    return this.#llama !== null || this.#model !== null || this.#context !== null;
  }
}

/**
 * ENGINE_UNAVAILABLE for a llama.cpp binary that did not load: not installed (the package to install),
 * or, for a GPU backend, installed but unable to run here (node-llama-cpp tries it in a process of its
 * own first: without the GPU's driver, or a device it may use, it does not run).
 */
function binaryUnavailable(cause: unknown, gpu: LlamaGpu): InferenceError {
  const platform = `${process.platform}-${process.arch}`;
  const named = gpu !== 'off' && gpu !== 'auto';
  const binary = named ? `${platform}-${gpu}` : platform;
  const installed = (() => {
    try {
      createRequire(import.meta.url).resolve(`@node-llama-cpp/${binary}/package.json`);
      return true;
    } catch {
      return false;
    }
  })();
  if (named && installed) {
    return asInferenceError(
      cause,
      'ENGINE_UNAVAILABLE',
      `llama.cpp's ${gpu} binary cannot run here`,
      { platform, gpu },
      `install the GPU's ${gpu} driver (and check that a device is visible), or serve with --gpu auto or --gpu off`,
    );
  }
  return asInferenceError(
    cause,
    'ENGINE_UNAVAILABLE',
    named ? `no usable prebuilt llama.cpp binary for ${gpu}` : 'no usable prebuilt llama.cpp binary',
    { platform, gpu },
    `install node-llama-cpp's prebuilt binary for this machine (npm install @node-llama-cpp/${binary})` +
      (gpu === 'off' ? ', or run a transformers.js model with --engine transformers' : ''),
  );
}

/**
 * The GPU backend a llama.cpp binary loaded for `gpu` runs on: null on the CPU (`off`, or `auto` finding
 * no device). A backend asked by name that is not the one loaded (node-llama-cpp falls back to another
 * on a platform without it: Metal on Linux loads Vulkan), or that sees no device, is ENGINE_UNAVAILABLE:
 * a node told to use its GPU does not serve from the CPU unsaid.
 */
async function backendOf(llama: Llama, gpu: LlamaGpu): Promise<LlamaBackend | null> {
  if (gpu === 'off') return null;
  const loaded = llama.gpu;
  const devices = loaded === false ? [] : await llama.getGpuDeviceNames();
  if (gpu === 'auto') return loaded === false || devices.length === 0 ? null : { gpu: loaded, devices };
  if (loaded !== gpu) {
    throw new InferenceError('ENGINE_UNAVAILABLE', `llama.cpp cannot use ${gpu} on this machine`, {
      details: { gpu, platform: `${process.platform}-${process.arch}`, loaded },
      hint: `serve with --gpu auto (the first backend with a device), or ${loaded === false ? '--gpu off' : `--gpu ${loaded}`}`,
    });
  }
  if (devices.length === 0) {
    throw new InferenceError('ENGINE_UNAVAILABLE', `llama.cpp sees no ${gpu} device`, {
      details: { gpu },
      hint:
        gpu === 'vulkan'
          ? "install the GPU's Vulkan driver (llama.cpp hides CPU Vulkan devices such as lavapipe unless GGML_VK_VISIBLE_DEVICES names them), or serve with --gpu off"
          : `install the GPU's ${gpu} driver, or serve with --gpu off`,
    });
  }
  return { gpu, devices };
}

/** BOS (when the model's `add_bos` says so), the text tokenized with special-token parsing, EOS (`add_eos`). */
function inputTokens(model: LlamaModel, text: string): Token[] {
  const { bos, eos, shouldPrependBosToken, shouldAppendEosToken } = model.tokens;
  return [
    ...(shouldPrependBosToken && bos !== null ? [bos] : []),
    ...model.tokenize(text, true),
    ...(shouldAppendEosToken && eos !== null ? [eos] : []),
  ];
}

/**
 * The generated tokens' pieces concatenated, as llama.cpp's server streams them. llama.cpp's
 * detokenizer strips the dummy-prefix space of the first token it is given, so the tokens are
 * detokenized after the prompt's (whose first token, usually BOS, takes that strip) and the prompt's
 * text is cut off.
 */
function continuation(model: LlamaModel, input: readonly Token[], generated: readonly Token[]): string {
  if (generated.length === 0) return '';
  const before = model.detokenize(input);
  const all = model.detokenize([...input, ...generated]);
  return all.startsWith(before) ? all.slice(before.length) : model.detokenize(generated, false, input);
}
