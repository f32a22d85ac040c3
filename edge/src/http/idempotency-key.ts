import { edgeError } from './errors.ts';

/**
 * An `Idempotency-Key` as the relay takes it: 1-255 characters of visible ASCII and space (a UUID, say),
 * as the IETF draft's structured-field string has it. Header bytes beyond ASCII are not text HTTP
 * agrees on (the runtime reads them as Latin-1), so such a key could not be signed and checked alike.
 */
const IDEMPOTENCY_KEY_RE = /^[\x20-\x7e]{1,255}$/;

/** The request's `Idempotency-Key` (undefined: none sent); a malformed one is 400 INVALID_INPUT. */
export function idempotencyKeyOf(header: string | undefined): string | undefined {
  if (header === undefined || IDEMPOTENCY_KEY_RE.test(header)) return header;
  throw edgeError(
    400,
    'INVALID_INPUT',
    'Idempotency-Key must be 1-255 characters of visible ASCII or space',
    { issues: [{ path: 'Idempotency-Key', message: 'not 1-255 characters of visible ASCII or space' }] },
    'a UUID is a good key',
  );
}
