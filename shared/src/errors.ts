/**
 * Typed errors of the protocol core. Every rejection carries a stable `code` (part of the public API:
 * codes are never renamed, only added), a short message, optional structured details and a hint that
 * says what to do about it.
 */
export const ERROR_CODES = [
  // encoding
  'ENCODING_INVALID',
  'HEX_INVALID',
  // identity
  'KEY_INVALID',
  'KEY_WRONG_PASSPHRASE',
  'KEYSTORE_MALFORMED',
  /** a passphrase for a new key shorter than MIN_PASSPHRASE_LENGTH */
  'PASSPHRASE_TOO_SHORT',
  // packets
  'PACKET_MALFORMED',
  /** a packet's text names a member of one object twice (readers differ on which value it keeps) */
  'PACKET_DUPLICATE_MEMBER',
  'PACKET_TOO_LARGE',
  'PACKET_UNSUPPORTED_VERSION',
  'PACKET_UNKNOWN_TYPE',
  'PACKET_UNKNOWN_FIELD',
  'PACKET_INVALID_FIELD',
  'PACKET_BAD_SIGNATURE',
  'PACKET_STALE',
  'PACKET_FROM_FUTURE',
  'REQUEST_ID_MISMATCH',
  // security frame
  'FRAME_OUT_OF_RANGE',
  // commitments and embeddings
  'COMMITMENT_MISMATCH',
  'EMBEDDING_INVALID',
  // consensus and transcripts
  'SEAL_INVALID',
  'TRANSCRIPT_INVALID',
  'VERDICT_MISMATCH',
  'MERKLE_PROOF_INVALID',
  // lifecycle
  'LIFECYCLE_INVALID_EVENT',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface SynodErrorOptions {
  details?: Record<string, unknown>;
  hint?: string;
  cause?: unknown;
}

/**
 * An error with a stable `code` of its kind's own set (`C`), each subclass naming itself and its codes:
 * the base of `SynodError` here, and of the node's (`NodeError`, `InferenceError`), the browser's
 * (`BrowserNodeError`) and the web app's (`KeyFileError`) typed errors.
 */
export class CodedError<C extends string> extends Error {
  readonly code: C;

  constructor(code: C, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

export class SynodError extends CodedError<ErrorCode> {
  override readonly name = 'SynodError';
  readonly details: Record<string, unknown>;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: SynodErrorOptions = {}) {
    super(code, message, options);
    this.details = options.details ?? {};
    this.hint = options.hint;
  }

  /** A plain JSON shape for HTTP bodies and logs. */
  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown>; hint?: string } {
    return this.hint === undefined
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message, details: this.details, hint: this.hint };
  }
}

export function isSynodError(value: unknown, code?: ErrorCode): value is SynodError {
  return value instanceof SynodError && (code === undefined || value.code === code);
}
