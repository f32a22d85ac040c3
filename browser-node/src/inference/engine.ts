import { type ChatMessage, type InferenceParams, MAX_SEED, type ModelRef } from '@synod/shared';
import { InferenceError } from './errors.ts';

/**
 * An inference engine: one model loaded into one runtime (llama.cpp native, llama.cpp in WASM, MLC on
 * WebGPU, ONNX via transformers.js).
 *
 * Determinism, which consensus relies on:
 * - Greedy decoding (`temperature: 0`) is deterministic: the same engine, model file and prompt give the
 *   same text on every run. The two GGUF engines (node-llama-cpp and wllama) feed the model the same
 *   token ids and turn its tokens into text the same way (`completionText`), and agree byte for byte on
 *   stories260K (tested on varied prompts); for other models that stays an observation, not a promise:
 *   their kernels may differ in the last bits.
 * - Seeded sampling (`temperature > 0` with `seed`) is reproducible within one engine (same engine,
 *   version, model and seed give the same text); different engines use different sampler chains, so it
 *   is not reproducible across engines.
 * - Sampling without a seed is not reproducible at all; quorum agreement then rests on embeddings only.
 */
export type EngineKind = 'llama-cpp' | 'wllama' | 'web-llm' | 'transformers';

/** What an engine loads: the protocol's model ref plus where its bytes are. */
export interface ModelSource {
  /** Protocol model id (ModelRef.id), e.g. `stories260K`. */
  id: string;
  /** Expected sha256 of the model file (or of the folder manifest), lowercase hex. Verified on load. */
  fileHash: string;
  /** Local file or folder (headless nodes). */
  path?: string;
  /** URL of the file or folder base (browsers). */
  url?: string;
}

export type LoadPhase = 'fetch' | 'hash' | 'load' | 'ready';

export interface LoadProgress {
  /** Bytes (or steps) done in this phase. */
  loaded: number;
  /** Bytes (or steps) in this phase; 0 when unknown. */
  total: number;
  phase: LoadPhase;
}

export type OnLoadProgress = (progress: LoadProgress) => void;

export interface GenerateRequest {
  /** Exactly one of `prompt` and `messages`. */
  prompt?: string;
  messages?: ChatMessage[];
  params: InferenceParams;
  signal?: AbortSignal;
}

/** `stop`: the model ended its output; `length`: maxTokens was reached. An abort throws INFERENCE_ABORTED. */
export type FinishReason = 'stop' | 'length';

export interface GenerateResult {
  text: string;
  /** Tokens generated (not counting the prompt). */
  tokens: number;
  /** The prompt's length in the model's tokens (chat template included), where the engine says. */
  promptTokens?: number;
  /** Generated tokens over the wall time of the whole call (prompt processing included). */
  tokensPerSecond: number;
  finishReason: FinishReason;
}

/** A prompt's length as an engine's `generate` counts it, and the context it must fit in. */
export interface PromptMeasure {
  /** The prompt's tokens (BOS included), as `GenerateResult.promptTokens` would say. */
  promptTokens: number;
  /** The loaded context's size: a prompt of this many tokens or more is PROMPT_TOO_LONG. */
  contextSize: number;
}

export interface Engine {
  /** The engine as advertised in heartbeats, e.g. `node-llama-cpp@3.22.1` (at most 32 characters). */
  readonly id: string;
  readonly kind: EngineKind;
  /** The loaded model as the protocol names it, or null before `load()` and after `unload()`. */
  readonly model: ModelRef | null;
  /** Load a model, verifying its bytes against `model.fileHash` (MODEL_HASH_MISMATCH otherwise). */
  load(model: ModelSource, onProgress?: OnLoadProgress): Promise<void>;
  /**
   * One generation. Throws ENGINE_NOT_LOADED, INFERENCE_INVALID_INPUT, PROMPT_TOO_LONG, INFERENCE_FAILED,
   * INFERENCE_ABORTED.
   */
  generate(request: GenerateRequest): Promise<GenerateResult>;
  /**
   * The prompt's length as `generate` would count it, and the context it must fit in, without running
   * it: answered while a generation runs, so a prompt the model cannot take is declined as it arrives
   * (`InferenceQueue.submit`), not once the jobs before it are done. Null when the engine cannot say
   * (a worker whose engine does not measure). Engines that cannot measure apart from a generation
   * (wllama, whose calls wait for the running completion) leave it out.
   */
  measurePrompt?(request: Pick<GenerateRequest, 'prompt' | 'messages'>): Promise<PromptMeasure | null>;
  /** Free the model and every native or GPU resource. Safe to call twice. */
  unload(): Promise<void>;
  /**
   * An engine in a worker whose worker died (`WorkerEngine`): why, for good (it is not started again);
   * null while it works. Absent on engines that run in the caller's thread.
   */
  readonly failed?: InferenceError | null;
}

/** Validate a request's input: exactly one of a prompt and a non-empty list of messages. */
export function checkPromptInput(request: Pick<GenerateRequest, 'prompt' | 'messages'>): void {
  const hasPrompt = request.prompt !== undefined;
  const hasMessages = request.messages !== undefined;
  if (hasPrompt === hasMessages) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', 'give exactly one of prompt and messages');
  }
  if (hasMessages && (request.messages as ChatMessage[]).length === 0) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', 'messages is empty');
  }
}

/** Validate a request's shape; engines call this before touching their runtime. */
export function checkGenerateRequest(request: GenerateRequest): void {
  checkPromptInput(request);
  const { temperature, maxTokens, seed, topP, topK } = request.params;
  if (!(Number.isFinite(temperature) && temperature >= 0 && temperature <= 2)) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', `temperature must be in [0, 2], got ${temperature}`);
  }
  if (!(Number.isInteger(maxTokens) && maxTokens >= 1 && maxTokens <= 4096)) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', `maxTokens must be an integer in [1, 4096]`, {
      details: { maxTokens },
    });
  }
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed <= MAX_SEED)) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', `seed must be an integer from 0 to ${MAX_SEED}`, {
      details: { seed },
    });
  }
  if (topP !== undefined && !(topP > 0 && topP <= 1)) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', 'topP must be in (0, 1]', { details: { topP } });
  }
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 1)) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', 'topK must be a positive integer', {
      details: { topK },
    });
  }
}

/**
 * Render chat messages as plain text for models without a chat template (base models such as
 * stories260K). One line per message, `role: content`, then `assistant:` to prompt the reply. Every
 * engine that falls back to plain text uses this same rendering, so their prompts are byte-identical.
 */
export function renderMessagesAsText(messages: readonly ChatMessage[]): string {
  return `${messages.map((m) => `${m.role}: ${m.content}`).join('\n')}\nassistant:`;
}

/**
 * The GGUF engines' canonical text-in/text-out rule. node-llama-cpp (headless) and wllama (browser) run
 * the same GGUF files, and a quorum mixes them, so for the same request and greedy params they must
 * produce byte-identical output. Both follow llama.cpp's own server (`llama-server`, whose code wllama
 * runs in WASM), the reference:
 *
 * - Input: the text is `request.prompt`, or the messages rendered by `renderMessagesAsText` (no chat
 *   template in either engine: the two libraries render templates with different code). It is
 *   tokenized as `llama_tokenize(text, add_special = true, parse_special = true)`: BOS first when the
 *   model's `add_bos` says so (EOS last when its `add_eos` does), the SentencePiece dummy-prefix space
 *   when the vocabulary's `add_space_prefix` says so ("Hello" is `▁He ll o`, " Hello" is `▁ ▁He ll o`),
 *   and special-token text such as `</s>` parsed into its token.
 * - Output: the pieces of the generated tokens concatenated (`llama_token_to_piece`, special = false),
 *   so the first token keeps its leading space (" was a big") and prompt + output reads as one text;
 *   control tokens render as nothing; the end-of-generation token is not part of the text.
 * - Stop: at an end-of-generation token (`stop`, the token counted), after `maxTokens` tokens (`length`),
 *   or when prompt + generated tokens fill the context (`length`; no context shift). A prompt as long
 *   as the context, or longer, is PROMPT_TOO_LONG. The context is the same in both: the
 *   requested size capped at the model's training context (`ggufContextSize`), padded by llama.cpp.
 */
export function completionText(request: Pick<GenerateRequest, 'prompt' | 'messages'>): string {
  return request.prompt ?? renderMessagesAsText(request.messages ?? []);
}

/** Context size for a GGUF engine: the requested size (default 2048), never above the training context. */
export function ggufContextSize(requested: number | undefined, trainContextSize: number): number {
  const want = requested ?? 2048;
  return trainContextSize > 0 ? Math.min(want, trainContextSize) : want;
}

/** The prompt does not fit in the context (both GGUF engines throw this, with the same code). */
export function promptTooLong(
  promptTokens: number | undefined,
  contextSize: number | undefined,
): InferenceError {
  return new InferenceError('PROMPT_TOO_LONG', 'the prompt does not fit in the model context', {
    details: {
      ...(promptTokens === undefined ? {} : { promptTokens }),
      ...(contextSize === undefined ? {} : { contextSize }),
    },
    hint: 'shorten the prompt',
  });
}

/** PROMPT_TOO_LONG for a measured prompt that does not fit its context (a token short of it at most). */
export function tooLongFor(m: PromptMeasure): InferenceError | null {
  return m.promptTokens >= m.contextSize ? promptTooLong(m.promptTokens, m.contextSize) : null;
}

/** Tokens per second from a count and a duration, never NaN or Infinity. */
export function rate(count: number, elapsedMs: number): number {
  return count / (Math.max(elapsedMs, 0.001) / 1000);
}

export function notLoaded(what: string): InferenceError {
  return new InferenceError('ENGINE_NOT_LOADED', `${what} has no model loaded`, {
    hint: 'call load() first (and not after unload())',
  });
}

/**
 * The model location an engine needs (`url` for browser engines, `path` for node-llama-cpp), or
 * INFERENCE_INVALID_INPUT naming the engine.
 */
export function requireLocation(
  source: ModelSource,
  where: 'url' | 'path',
  engine: string,
  hint?: string,
): string {
  const value = source[where];
  if (value === undefined) {
    throw new InferenceError(
      'INFERENCE_INVALID_INPUT',
      `${engine} loads models from ${where === 'url' ? 'a URL' : 'a local path'}`,
      { details: { id: source.id }, ...(hint === undefined ? {} : { hint }) },
    );
  }
  return value;
}

/** Throw INFERENCE_ABORTED when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new InferenceError('INFERENCE_ABORTED', 'the generation was aborted before it started');
  }
}
