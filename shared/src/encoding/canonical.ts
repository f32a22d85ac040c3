import canonicalize from 'canonicalize';
import { SynodError } from '../errors.ts';
import { utf8 } from './bytes.ts';

/**
 * RFC 8785 (JSON Canonicalization Scheme) text of a JSON value: object keys sorted by UTF-16 code
 * units, no white space, numbers in ECMAScript shortest form. One byte string per logical value, so
 * every verifier hashes the same bytes. `undefined` members are dropped (as JSON does); non-finite
 * numbers, lone surrogates and non-plain values are rejected.
 */
export function canonicalJson(value: unknown): string {
  assertJsonValue(value, '$');
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (cause) {
    throw new SynodError('ENCODING_INVALID', `value cannot be canonicalized: ${String(cause)}`, { cause });
  }
  if (text === undefined) throw new SynodError('ENCODING_INVALID', 'value has no JSON form');
  return text;
}

export function canonicalBytes(value: unknown): Uint8Array {
  return utf8(canonicalJson(value));
}

function assertJsonValue(value: unknown, path: string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new SynodError('ENCODING_INVALID', `${path}: non-finite number`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      assertJsonValue(v, `${path}[${i}]`);
    });
    return;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new SynodError('ENCODING_INVALID', `${path}: only plain objects can be encoded`);
    }
    for (const [k, v] of Object.entries(value)) {
      if (v !== undefined) assertJsonValue(v, `${path}.${k}`);
    }
    return;
  }
  throw new SynodError('ENCODING_INVALID', `${path}: ${typeof value} cannot be encoded`);
}
