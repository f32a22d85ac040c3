import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { isSynodError } from '../errors.ts';
import {
  compareBytes,
  concatBytes,
  decodeHexInto,
  fromHex,
  fromUtf8,
  joinBytes,
  lengthPrefixed,
  toHex,
  toHexPortable,
  tryFromHex,
  utf8,
} from './bytes.ts';
import { domainTag, SHA256_BACKEND, sha256, sha256Hex, sha256Noble, taggedHash } from './hash.ts';

describe('bytes', () => {
  test('hex round-trips and is lowercase', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        const h = toHex(b);
        expect(h).toMatch(/^[0-9a-f]*$/);
        expect(fromHex(h)).toEqual(b);
      }),
    );
  });

  test('fromHex rejects uppercase, odd length, junk and wrong lengths', () => {
    for (const [text, len] of [
      ['AB', undefined],
      ['abc', undefined],
      ['zz', undefined],
      ['abcd', 3],
    ] as const) {
      let caught: unknown;
      try {
        fromHex(text, len);
      } catch (e) {
        caught = e;
      }
      expect(isSynodError(caught, 'HEX_INVALID')).toBe(true);
    }
  });

  test('hex codecs agree with a per-byte reference on arbitrary strings', () => {
    const reference = (hex: string): Uint8Array | null =>
      /^(?:[0-9a-f]{2})*$/.test(hex)
        ? Uint8Array.from({ length: hex.length / 2 }, (_, i) =>
            Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16),
          )
        : null;
    // Digits, their uppercase twins, near misses and code units whose low byte is a digit ('İ' is 0x130).
    const alphabet = fc.constantFrom(...'0123456789abcdefABCDEFgxz /:İ\u0161\u3030\u0000'.split(''));
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 40 }), (hex) => {
        const expected = reference(hex);
        expect(tryFromHex(hex)).toEqual(expected);
        if (expected === null) expect(() => fromHex(hex)).toThrow('expected lowercase hex');
        else expect(fromHex(hex)).toEqual(expected);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        const expected = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
        expect(toHex(b)).toBe(expected);
        expect(toHexPortable(b)).toBe(expected);
      }),
    );
  });

  test('decodeHexInto writes at an offset and refuses what does not fit', () => {
    const out = new Uint8Array(4);
    expect(decodeHexInto('abcd', out, 1)).toBe(true);
    expect([...out]).toEqual([0, 0xab, 0xcd, 0]);
    expect(decodeHexInto('abcd', out, 3)).toBe(false);
    expect(decodeHexInto('abc', out, 0)).toBe(false);
    expect(decodeHexInto('AB', out, 0)).toBe(false);
    expect(tryFromHex('abcd', 2)).toEqual(Uint8Array.of(0xab, 0xcd));
    expect(tryFromHex('abcd', 3)).toBeNull();
    expect(fromHex('')).toEqual(new Uint8Array(0));
  });

  test('lengthPrefixed makes concatenations unambiguous', () => {
    const a = concatBytes(lengthPrefixed(utf8('ab')), lengthPrefixed(utf8('c')));
    const b = concatBytes(lengthPrefixed(utf8('a')), lengthPrefixed(utf8('bc')));
    expect(toHex(a)).not.toBe(toHex(b));
    expect(toHex(lengthPrefixed(utf8('ab')))).toBe('000000026162');
  });

  test('joinBytes joins any number of chunks in order, like concatBytes', () => {
    const chunks = Array.from({ length: 100_000 }, (_, i) => Uint8Array.of(i & 0xff));
    const joined = joinBytes(chunks);
    expect(joined.length).toBe(100_000);
    expect(joined[257]).toBe(1);
    expect(joinBytes([])).toEqual(new Uint8Array(0));
    expect(joinBytes([utf8('ab'), utf8('c')])).toEqual(concatBytes(utf8('ab'), utf8('c')));
  });

  test('compareBytes is unsigned lexicographic', () => {
    expect(compareBytes(Uint8Array.of(0x7f), Uint8Array.of(0x80))).toBe(-1);
    expect(compareBytes(Uint8Array.of(1, 2), Uint8Array.of(1))).toBe(1);
    expect(compareBytes(Uint8Array.of(1), Uint8Array.of(1))).toBe(0);
  });

  test('fromUtf8 rejects invalid UTF-8 with a typed error', () => {
    expect(() => fromUtf8(Uint8Array.of(0xff, 0xfe))).toThrow('not valid UTF-8');
  });
});

describe('hashes', () => {
  test('sha256 known answer', () => {
    expect(sha256Hex(utf8('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  test('the native SHA-256 (Bun) and noble agree on every input', () => {
    expect(SHA256_BACKEND).toBe('native');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (b) => {
        expect(toHex(sha256(b))).toBe(toHex(sha256Noble(b)));
        expect(sha256(b)).toBeInstanceOf(Uint8Array);
      }),
    );
  });

  test('domain tags separate purposes', () => {
    expect(toHex(domainTag('x'))).toBe(`${toHex(utf8('synod/v1/x'))}00`);
    expect(toHex(taggedHash('a', utf8('b')))).not.toBe(toHex(taggedHash('ab')));
  });
});
