import { describe, expect, test } from 'bun:test';
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { isSynodError } from '../errors.ts';
import { canonicalBytes, canonicalJson } from './canonical.ts';

/** What `canonicalJson(value)` throws; fails the test when it is not an ENCODING_INVALID SynodError. */
function encodingError(value: unknown): Error {
  let caught: unknown;
  try {
    canonicalJson(value);
  } catch (e) {
    caught = e;
  }
  expect(isSynodError(caught, 'ENCODING_INVALID')).toBe(true);
  return caught as Error;
}

describe('canonicalJson (RFC 8785)', () => {
  test('sorts keys by UTF-16 code units and drops white space', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], A: { z: 0, y: -0 } })).toBe(
      '{"A":{"y":0,"z":0},"a":[true,null,"x"],"b":1}',
    );
  });

  test('numbers use the ECMAScript shortest form', () => {
    expect(canonicalJson([1e21, 1e-7, 0.1, 100, 1.5e300, -0])).toBe('[1e+21,1e-7,0.1,100,1.5e+300,0]');
  });

  test('strings escape only what JSON requires', () => {
    expect(canonicalJson({ s: '€\u0001"\\/\n' })).toBe('{"s":"€\\u0001\\"\\\\/\\n"}');
  });

  test('rejects non-finite numbers, lone surrogates and non-plain objects with a typed error', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, '\ud800', new Date(0), new Map(), () => 1]) {
      encodingError({ x: bad });
    }
  });

  test('property: parse(canonical(x)) is x and canonical form is a fixed point', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalJson(value);
        const reparsed = JSON.parse(text);
        expect(canonicalJson(reparsed)).toBe(text);
      }),
      { numRuns: 300 },
    );
  });

  test('property: key order of the input does not change the bytes', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 8 }), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        expect(canonicalBytes(reversed)).toEqual(canonicalBytes(obj));
      }),
    );
  });

  test('property: byte-identical to the canonicalize package (the reference implementation)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(canonicalJson(value)).toBe(canonicalize(value) as string);
      }),
      { numRuns: 500 },
    );
  });

  test('property: a value already in canonical key order is written as it is, byte-identical', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        // JSON.parse keeps the text's key order, so this is `value` with every object sorted.
        const sorted = JSON.parse(canonicalize(value) as string);
        expect(canonicalJson(sorted)).toBe(canonicalize(value) as string);
      }),
      { numRuns: 300 },
    );
    // In order but with an undefined member, or out of order further down: still canonical.
    expect(canonicalJson({ a: 1, b: undefined, c: { y: 1, x: 2 } })).toBe('{"a":1,"c":{"x":2,"y":1}}');
    expect(canonicalJson({ a: [{ z: 1 }, { b: 1, a: 2 }] })).toBe('{"a":[{"z":1},{"a":2,"b":1}]}');
  });

  test('keys that look like array indices are still sorted as strings', () => {
    const value = { b: 1, '10': 2, '9': 3, '1a': 4, a: { '2': [{ '0': true, '-1': false }], '11': null } };
    const text = canonicalJson(value);
    expect(text).toBe('{"10":2,"1a":4,"9":3,"a":{"11":null,"2":[{"-1":false,"0":true}]},"b":1}');
    expect(text).toBe(canonicalize(value) as string);
    fc.assert(
      fc.property(
        fc.dictionary(fc.oneof(fc.nat().map(String), fc.string()), fc.jsonValue(), { maxKeys: 8 }),
        (obj) => {
          expect(canonicalJson(obj)).toBe(canonicalize(obj) as string);
        },
      ),
    );
  });

  test('an array with toJSON, an array hole, a cycle or too deep a nesting is ENCODING_INVALID', () => {
    // JSON.stringify would call toJSON and write its result unsorted; canonicalize writes `[1,,3]`.
    const withToJson = Object.assign([1, 2], { toJSON: () => ({ b: 1, a: 2 }) });
    class Tagged extends Array<number> {
      toJSON() {
        return { b: 1, a: 2 };
      }
    }
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.b = cyclic;
    const cyclicUnsorted: Record<string, unknown> = { b: 1 };
    cyclicUnsorted.a = [cyclicUnsorted];
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    let deepObject: unknown = 1;
    for (let i = 0; i < 1_001; i++) deepObject = { z: deepObject, a: 0 };
    for (const value of [
      withToJson,
      { a: [{ b: withToJson }] },
      Tagged.from([1]),
      // biome-ignore lint/suspicious/noSparseArray: the hole is the case under test
      [1, , 3],
      cyclic,
      cyclicUnsorted,
      deep,
      deepObject,
    ]) {
      encodingError(value);
    }
    let nested: unknown = 'x';
    for (let i = 0; i < 1_000; i++) nested = [nested];
    expect(canonicalJson(nested)).toBe(`${'['.repeat(1_000)}"x"${']'.repeat(1_000)}`);
  });

  test('a __proto__ member is encoded like any other member', () => {
    const value = JSON.parse('{"z":1,"__proto__":{"x":2}}');
    expect(canonicalJson(value)).toBe('{"__proto__":{"x":2},"z":1}');
  });

  test('an invalid value is reported with its path, also beside index-like keys', () => {
    for (const [value, where] of [
      [{ a: [1, { b: Number.NaN }] }, '$.a[1].b'],
      [{ '1': 0, c: new Date(0) }, '$.c'],
      [{ k: 'ok', ['\udc00']: 1 }, '$.\udc00'],
    ] as const) {
      expect(encodingError(value).message.startsWith(`${where}:`)).toBe(true);
    }
  });
});
