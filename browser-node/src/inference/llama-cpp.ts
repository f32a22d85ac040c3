import type { ModelRef } from '@synod/shared';
import type { Llama, LlamaContext, LlamaModel } from 'node-llama-cpp';
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
import { sha256File, verifyHash } from './models-dir.ts';

/**
 * node-llama-cpp (llama.cpp, native) for headless nodes under Bun or Node: GGUF models on the CPU.
 *
 * It only ever uses the prebuilt binary shipped in `@node-llama-cpp/<platform>` (`build: 'never'`,
 * `skipDownload: true`, `gpu: false`): it never compiles llama.cpp nor downloads anything. When the
 * binary for this platform is missing, load() throws ENGINE_UNAVAILABLE.
 *
 * `threads: 1` by default: on a 2-core machine one thread was several times faster than two for small
 * models (measured: 700+ tokens/s for stories260K).
 *
 * Prompts are completed as raw text. Messages use the model's own chat template when the GGUF has one
 * (node-llama-cpp's `resolveChatWrapper`), else the plain rendering of `renderMessagesAsText` shared
 * by every engine.
 */
export interface LlamaCppOptions {
  /** CPU threads for generation (default 1). */
  threads?: number;
  /** Context size in tokens (default: min(2048, the model's training context)). */
  contextSize?: number;
}

export const LLAMA_CPP_ENGINE_ID = 'node-llama-cpp@3.22.1';

export class LlamaCppEngine implements Engine {
  readonly id = LLAMA_CPP_ENGINE_ID;
  readonly kind = 'llama-cpp' as const;
  readonly #options: LlamaCppOptions;
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
      throw asInferenceError(cause, 'ENGINE_UNAVAILABLE', 'node-llama-cpp cannot be imported');
    }
    try {
      this.#llama = await lib.getLlama({
        gpu: false,
        build: 'never',
        skipDownload: true,
        usePrebuiltBinaries: true,
        progressLogs: false,
        logLevel: lib.LlamaLogLevel.error,
        maxThreads: this.#options.threads ?? 1,
      });
    } catch (cause) {
      throw asInferenceError(cause, 'ENGINE_UNAVAILABLE', 'no usable prebuilt llama.cpp binary', {
        platform: `${process.platform}-${process.arch}`,
      });
    }
    try {
      onProgress?.({ loaded: 0, total: 1, phase: 'load' });
      this.#model = await this.#llama.loadModel({
        modelPath: path,
        gpuLayers: 0,
        onLoadProgress: (p: number) => onProgress?.({ loaded: p, total: 1, phase: 'load' }),
      });
      this.#context = await this.#model.createContext({
        contextSize: Math.min(this.#options.contextSize ?? 2048, this.#model.trainContextSize),
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

  async #generate(
    model: LlamaModel,
    context: LlamaContext,
    request: GenerateRequest,
  ): Promise<GenerateResult> {
    const lib = await import('node-llama-cpp');
    const sequence = context.getSequence();
    const { params } = request;
    const started = performance.now();
    let tokens = 0;
    try {
      const sampling = {
        maxTokens: params.maxTokens,
        temperature: params.temperature,
        ...(params.seed === undefined ? {} : { seed: params.seed }),
        ...(params.topP === undefined ? {} : { topP: params.topP }),
        ...(params.topK === undefined ? {} : { topK: params.topK }),
        ...(request.signal === undefined ? {} : { signal: request.signal, stopOnAbortSignal: true }),
        onToken: (t: readonly unknown[]) => {
          tokens += t.length;
        },
      };
      let text: string;
      let stopReason: string;
      if (request.prompt !== undefined) {
        const completion = new lib.LlamaCompletion({ contextSequence: sequence });
        try {
          const out = await completion.generateCompletionWithMeta(request.prompt, sampling);
          text = out.response;
          stopReason = out.metadata.stopReason;
        } finally {
          completion.dispose({ disposeSequence: false });
        }
      } else {
        const messages = request.messages ?? [];
        const chat = new lib.LlamaChat({
          contextSequence: sequence,
          chatWrapper: lib.resolveChatWrapper(model),
          autoDisposeSequence: false,
        });
        try {
          const history: import('node-llama-cpp').ChatHistoryItem[] = messages.map((m) =>
            m.role === 'assistant'
              ? { type: 'model' as const, response: [m.content] }
              : { type: m.role, text: m.content },
          );
          history.push({ type: 'model', response: [] });
          const out = await chat.generateResponse(history, sampling);
          text = out.response;
          stopReason = out.metadata.stopReason;
        } finally {
          chat.dispose({ disposeSequence: false });
        }
      }
      const elapsed = performance.now() - started;
      if (stopReason === 'abort' || request.signal?.aborted) {
        throw new InferenceError('INFERENCE_ABORTED', 'the generation was aborted', { details: { tokens } });
      }
      return {
        text,
        tokens,
        tokensPerSecond: rate(tokens, elapsed),
        finishReason: stopReason === 'maxTokens' ? 'length' : 'stop',
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
