import { SynodError } from '../errors.ts';

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Hex codecs. Lookup tables, no per-byte `parseInt` or `toString(16)`: they run on every commitment
 * check, packet id and digest. `Uint8Array.prototype.toHex` (ES2026; Bun, recent browsers and workerd)
 * is used when the runtime has it: it emits exactly the lowercase form. Decoding stays in JS because the
 * native `Uint8Array.fromHex` also accepts uppercase, which the wire format does not.
 */
const HEX_DIGITS = '0123456789abcdef';
/** Two ASCII codes per byte value: [2b] high digit, [2b + 1] low digit. */
const HEX_CODES = new Uint8Array(512);
/** Value of each lowercase hex digit by char code (< 128); -1 for every other code. */
const NIBBLES = new Int8Array(128).fill(-1);
for (let b = 0; b < 256; b++) {
  HEX_CODES[2 * b] = HEX_DIGITS.charCodeAt(b >> 4);
  HEX_CODES[2 * b + 1] = HEX_DIGITS.charCodeAt(b & 15);
}
for (let v = 0; v < 16; v++) NIBBLES[HEX_DIGITS.charCodeAt(v)] = v;

type NativeToHex = (this: Uint8Array) => string;
const nativeToHex = (Uint8Array.prototype as { toHex?: NativeToHex }).toHex;
const asciiDecoder = new TextDecoder();

/** Lowercase hex, two characters a byte, no prefix. The only binary-to-text form on the wire. */
export function toHex(bytes: Uint8Array): string {
  if (nativeToHex !== undefined && bytes instanceof Uint8Array) return nativeToHex.call(bytes);
  return toHexPortable(bytes);
}

/** toHex without the native method: the fallback, exported so tests can hold it to the native one. */
export function toHexPortable(bytes: Uint8Array): string {
  const n = bytes.length;
  const ascii = new Uint8Array(2 * n);
  for (let i = 0; i < n; i++) {
    const t = (bytes[i] as number) << 1;
    ascii[2 * i] = HEX_CODES[t] as number;
    ascii[2 * i + 1] = HEX_CODES[t + 1] as number;
  }
  return asciiDecoder.decode(ascii);
}

/**
 * Decodes lowercase hex into `out` at `offset`. False, with `out` partly written, when `hex` is not a
 * string of an even number of lowercase hex digits or does not fit; the allocation-free form of fromHex.
 */
export function decodeHexInto(hex: string, out: Uint8Array, offset = 0): boolean {
  if (typeof hex !== 'string' || (hex.length & 1) !== 0) return false;
  const n = hex.length >>> 1;
  if (offset < 0 || offset + n > out.length) return false;
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    const c0 = hex.charCodeAt(j);
    const c1 = hex.charCodeAt(j + 1);
    if ((c0 | c1) > 0x7f) return false;
    const hi = NIBBLES[c0] as number;
    const lo = NIBBLES[c1] as number;
    if ((hi | lo) < 0) return false;
    out[offset + i] = (hi << 4) | lo;
  }
  return true;
}

/** Lowercase hex decoded, optionally of exactly `expectedBytes` bytes; null for anything else. */
export function tryFromHex(hex: string, expectedBytes?: number): Uint8Array | null {
  if (typeof hex !== 'string') return null;
  if (expectedBytes !== undefined && hex.length !== expectedBytes * 2) return null;
  const out = new Uint8Array(hex.length >>> 1);
  return decodeHexInto(hex, out) ? out : null;
}

export function fromHex(hex: string, expectedBytes?: number): Uint8Array {
  const out = typeof hex === 'string' ? new Uint8Array(hex.length >>> 1) : undefined;
  if (out === undefined || !decodeHexInto(hex, out)) {
    throw new SynodError('HEX_INVALID', 'expected lowercase hex with an even number of digits', {
      details: { length: typeof hex === 'string' ? hex.length : null },
    });
  }
  if (expectedBytes !== undefined && hex.length !== expectedBytes * 2) {
    throw new SynodError('HEX_INVALID', `expected ${expectedBytes} bytes of hex, got ${hex.length / 2}`);
  }
  return out;
}

export function utf8(text: string): Uint8Array {
  return textEncoder.encode(text);
}

export function fromUtf8(bytes: Uint8Array): string {
  try {
    return textDecoder.decode(bytes);
  } catch (cause) {
    throw new SynodError('ENCODING_INVALID', 'bytes are not valid UTF-8', { cause });
  }
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return joinBytes(parts);
}

/** One array of all the parts, in order (for many chunks, e.g. a streamed body, without spreading them). */
export function joinBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** A 4-byte big-endian length followed by the bytes: makes concatenations of variable fields unambiguous. */
export function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length, false);
  out.set(bytes, 4);
  return out;
}

/** Unsigned lexicographic byte order; -1, 0 or 1. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return compareBytes(a, b) === 0;
}

/** Code-unit order of two strings; for lowercase hex of equal length it equals byte order. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
