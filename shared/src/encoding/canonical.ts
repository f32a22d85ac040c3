import canonicalize from 'canonicalize';
import { SynodError } from '../errors.ts';
import { utf8 } from './bytes.ts';

/**
 * RFC 8785 (JSON Canonicalization Scheme) text of a JSON value: object keys sorted by UTF-16 code
 * units, no white space, numbers in ECMAScript shortest form. One byte string per logical value, so
 * every verifier hashes the same bytes. `undefined` members are dropped (as JSON does); non-finite
 * numbers, lone surrogates, non-plain values (arrays with a `toJSON` included), array holes and values
 * nested deeper than `MAX_DEPTH` (so any cyclic value) are rejected with `ENCODING_INVALID`.
 *
 * The engine's own `JSON.stringify` writes the text: its number and string forms are the ones RFC 8785
 * names, and it keeps a plain object's key order. One pass checks the value; a value whose objects
 * already have their keys in sorted order (as the relay builds its request bodies) is written as it is,
 * and any other is first copied with its keys sorted. An object with a key that starts with a digit
 * could be an array index, which JavaScript always orders first; such a value is written by the
 * `canonicalize` package instead. All paths are held byte-identical by property tests
 * (canonical.test.ts).
 */
export function canonicalJson(value: unknown): string {
  if (isSortedJson(value, [])) return JSON.stringify(value);
  const walk: Walk = { path: [], indexLike: false };
  const sorted = sortedCopy(value, walk);
  if (!walk.indexLike) return JSON.stringify(sorted);
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

/**
 * Most arrays and objects nested in one another (1,000 accepted, 1,001 not): far beyond any protocol
 * value, far below any engine's stack.
 */
const MAX_DEPTH = 1000;

interface Walk {
  /** Where the walk is (for error messages). */
  path: (string | number)[];
  /** A key starting with a digit was seen: the engine's key order would not keep the copy sorted. */
  indexLike: boolean;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const wellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !LONE_SURROGATE.test(s);

function invalid(path: readonly (string | number)[], what: string): SynodError {
  const where = path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
  return new SynodError('ENCODING_INVALID', `$${where}: ${what}`);
}

/** Throws when an array or object at `path` is nested too deeply (a cycle always is). */
function checkDepth(path: readonly (string | number)[]): void {
  if (path.length >= MAX_DEPTH) {
    throw invalid(path.slice(0, 8), `nested deeper than ${MAX_DEPTH} levels (or cyclic)`);
  }
}

/** Whether `value` is an array; throws if it has a `toJSON` (own or inherited), which JSON.stringify would call. */
function isPlainArray(value: unknown, path: readonly (string | number)[]): value is readonly unknown[] {
  if (!Array.isArray(value)) return false;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    throw invalid(path, 'an array with toJSON cannot be encoded');
  }
  return true;
}

/**
 * Check `value` as `sortedCopy` does and say whether `JSON.stringify` of it as it is would be its
 * canonical text: every object's keys strictly ascending, none index-like, no `undefined` member. False
 * as soon as one is not (the caller then copies); throws, with the path, on a value no JSON can hold.
 */
function isSortedJson(value: unknown, path: (string | number)[]): boolean {
  if (isScalar(value, path)) return true;
  checkDepth(path);
  if (isPlainArray(value, path)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      const ok = isSortedJson(value[i], path);
      path.pop();
      if (!ok) return false;
    }
    return true;
  }
  const keys = Object.keys(plainObject(value, path));
  // Order first, so an invalid member is reported at the same path as by `sortedCopy`.
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    if (i > 0 && !((keys[i - 1] as string) < k)) return false;
    if (indexLike(k)) return false;
    if ((value as Record<string, unknown>)[k] === undefined) return false;
  }
  for (const k of keys) {
    path.push(k);
    if (!wellFormed(k)) throw invalid(path, 'lone surrogate in a key');
    const ok = isSortedJson((value as Record<string, unknown>)[k], path);
    path.pop();
    if (!ok) return false;
  }
  return true;
}

/** Check all of `value` and copy it with every object's keys sorted (UTF-16 code units). */
function sortedCopy(value: unknown, walk: Walk): unknown {
  const path = walk.path;
  if (isScalar(value, path)) return value;
  checkDepth(path);
  if (isPlainArray(value, path)) {
    const out: unknown[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      out[i] = sortedCopy(value[i], walk);
      path.pop();
    }
    return out;
  }
  const keys = Object.keys(plainObject(value, path)).sort();
  // No prototype, so a `__proto__` key is an own member like any other.
  const out: Record<string, unknown> = Object.create(null);
  for (const k of keys) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined) continue;
    path.push(k);
    if (!wellFormed(k)) throw invalid(path, 'lone surrogate in a key');
    out[k] = sortedCopy(v, walk);
    path.pop();
    if (indexLike(k)) walk.indexLike = true;
  }
  return out;
}

/** True for null, a boolean, a well-formed string or a finite number; false for an array or object. */
function isScalar(value: unknown, path: readonly (string | number)[]): boolean {
  if (value === null || typeof value === 'boolean') return true;
  if (typeof value === 'string') {
    if (!wellFormed(value)) throw invalid(path, 'lone surrogate in a string');
    return true;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalid(path, 'non-finite number');
    return true;
  }
  return false;
}

/** `value` if it is a plain object (not an array); throws with the path otherwise. */
function plainObject(value: unknown, path: readonly (string | number)[]): object {
  if (typeof value !== 'object' || value === null) throw invalid(path, `${typeof value} cannot be encoded`);
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw invalid(path, 'only plain objects can be encoded');
  return value;
}

/** A key that starts with a digit: JavaScript may order it before the others, as an array index. */
function indexLike(k: string): boolean {
  const first = k.charCodeAt(0);
  return first >= 48 && first <= 57;
}
