import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { isSynodError } from '../errors.ts';
import { compareBytes, concatBytes, fromHex, fromUtf8, lengthPrefixed, toHex, utf8 } from './bytes.ts';
import { domainTag, sha256Hex, taggedHash } from './hash.ts';

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

  test('lengthPrefixed makes concatenations unambiguous', () => {
    const a = concatBytes(lengthPrefixed(utf8('ab')), lengthPrefixed(utf8('c')));
    const b = concatBytes(lengthPrefixed(utf8('a')), lengthPrefixed(utf8('bc')));
    expect(toHex(a)).not.toBe(toHex(b));
    expect(toHex(lengthPrefixed(utf8('ab')))).toBe('000000026162');
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

  test('domain tags separate purposes', () => {
    expect(toHex(domainTag('x'))).toBe(`${toHex(utf8('synod/v1/x'))}00`);
    expect(toHex(taggedHash('a', utf8('b')))).not.toBe(toHex(taggedHash('ab')));
  });
});
