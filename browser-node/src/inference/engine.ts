import type { ChatMessage, InferenceParams, ModelRef } from '@synod/shared';
import { InferenceError } from './errors.ts';

/**
 * An inference engine: one model loaded into one runtime (llama.cpp native, llama.cpp in WASM, MLC on
 * WebGPU, ONNX via transformers.js).
 *
 * Determinism, which consensus relies on:
 * - Greedy decoding (`temperature: 0`) is deterministic: the same engine, model file and prompt give the
 *   same text on every run. Across engines it usually agrees too (node-llama-cpp and wllama agree
 *   character for character on stories260K), but that is an observation, not a promise: kernels differ.
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
  /** Generated tokens over the wall time of the whole call (prompt processing included). */
  tokensPerSecond: number;
  finishReason: FinishReason;
}

export interface Engine {
  /** The engine as advertised in heartbeats, e.g. `node-llama-cpp@3.22.1` (at most 32 characters). */
  readonly id: string;
  readonly kind: EngineKind;
  /** The loaded model as the protocol names it, or null before `load()` and after `unload()`. */
  readonly model: ModelRef | null;
  /** Load a model, verifying its bytes against `model.fileHash` (MODEL_HASH_MISMATCH otherwise). */
  load(model: ModelSource, onProgress?: OnLoadProgress): Promise<void>;
  /** One generation. Throws ENGINE_NOT_LOADED, INFERENCE_INVALID_INPUT, INFERENCE_FAILED, INFERENCE_ABORTED. */
  generate(request: GenerateRequest): Promise<GenerateResult>;
  /** Free the model and every native or GPU resource. Safe to call twice. */
  unload(): Promise<void>;
}

/** Validate a request's shape; engines call this before touching their runtime. */
export function checkGenerateRequest(request: GenerateRequest): void {
  const hasPrompt = request.prompt !== undefined;
  const hasMessages = request.messages !== undefined;
  if (hasPrompt === hasMessages) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', 'give exactly one of prompt and messages');
  }
  if (hasMessages && (request.messages as ChatMessage[]).length === 0) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', 'messages is empty');
  }
  const { temperature, maxTokens, seed, topP, topK } = request.params;
  if (!(Number.isFinite(temperature) && temperature >= 0 && temperature <= 2)) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', `temperature must be in [0, 2], got ${temperature}`);
  }
  if (!(Number.isInteger(maxTokens) && maxTokens >= 1 && maxTokens <= 4096)) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', `maxTokens must be an integer in [1, 4096]`, {
      details: { maxTokens },
    });
  }
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
    throw new InferenceError('INFERENCE_INVALID_INPUT', 'seed must be a uint32', { details: { seed } });
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
