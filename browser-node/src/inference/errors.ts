import { CodedError } from '@synod/shared';

/**
 * Typed errors of the inference layer, in the same shape as the protocol core's `SynodError`: a stable
 * `code` (part of the public API: codes are never renamed, only added), a short message, structured
 * details and a hint that says what to do about it. The core's code list is closed, so the node's
 * inference layer keeps its own.
 */
export const INFERENCE_ERROR_CODES = [
  /** The model id is not in the manifest, or its files are not in the models directory. */
  'MODEL_NOT_FOUND',
  /** The model's file is there but cannot be read (permissions, a folder in its place, an I/O error). */
  'MODEL_UNREADABLE',
  /** The model's bytes do not hash to the expected sha256. */
  'MODEL_HASH_MISMATCH',
  /** A download or fetch of model files failed (network error, non-2xx status). */
  'MODEL_FETCH_FAILED',
  /** The engine's runtime cannot start here (missing native binary, missing browser feature). */
  'ENGINE_UNAVAILABLE',
  /** An engine or embedder was used before `load()` or after `unload()`. */
  'ENGINE_NOT_LOADED',
  /** WebGPU is required and `navigator.gpu` (or an adapter) is missing. */
  'WEBGPU_UNAVAILABLE',
  /** The model needs the WebGPU `shader-f16` feature and the adapter lacks it. */
  'SHADER_F16_UNSUPPORTED',
  /** Generation or embedding failed inside the engine. */
  'INFERENCE_FAILED',
  /** The caller aborted the job (its AbortSignal fired) or the queue was closed. */
  'INFERENCE_ABORTED',
  /** Invalid generation parameters or input (for example both prompt and messages). */
  'INFERENCE_INVALID_INPUT',
  /** The job's estimated duration cannot finish before its deadline; it was never started. */
  'DEADLINE_UNREACHABLE',
  /** The queue is at its bound; the caller should stop taking work (backpressure). */
  'QUEUE_FULL',
  /** The worker hosting an engine died or answered with something unexpected. */
  'WORKER_FAILED',
  /**
   * The prompt, in the model's tokens, fills its context window (`details: {promptTokens, contextSize}`):
   * a property of the request and the model, so a node declines the request (a `decline` packet).
   */
  'PROMPT_TOO_LONG',
] as const;

export type InferenceErrorCode = (typeof INFERENCE_ERROR_CODES)[number];

export interface InferenceErrorOptions {
  details?: Record<string, unknown>;
  hint?: string;
  cause?: unknown;
}

export interface InferenceErrorJSON {
  code: InferenceErrorCode;
  message: string;
  details: Record<string, unknown>;
  hint?: string;
}

export class InferenceError extends CodedError<InferenceErrorCode> {
  override readonly name = 'InferenceError';
  readonly details: Record<string, unknown>;
  readonly hint: string | undefined;

  constructor(code: InferenceErrorCode, message: string, options: InferenceErrorOptions = {}) {
    super(code, message, options);
    this.details = options.details ?? {};
    this.hint = options.hint;
  }

  /** A plain JSON shape for logs, HTTP bodies and the worker protocol. */
  toJSON(): InferenceErrorJSON {
    return this.hint === undefined
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message, details: this.details, hint: this.hint };
  }

  /** Rebuild an error that crossed a worker boundary as JSON. */
  static fromJSON(json: InferenceErrorJSON): InferenceError {
    return new InferenceError(
      json.code,
      json.message,
      json.hint === undefined ? { details: json.details } : { details: json.details, hint: json.hint },
    );
  }
}

export function isInferenceError(value: unknown, code?: InferenceErrorCode): value is InferenceError {
  return value instanceof InferenceError && (code === undefined || value.code === code);
}

/** Wrap anything thrown by an engine's library as INFERENCE_FAILED, keeping typed errors as they are. */
export function asInferenceError(
  error: unknown,
  code: InferenceErrorCode,
  message: string,
  details: Record<string, unknown> = {},
  hint?: string,
): InferenceError {
  if (error instanceof InferenceError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new InferenceError(code, `${message}: ${reason}`, {
    details,
    cause: error,
    ...(hint === undefined ? {} : { hint }),
  });
}
