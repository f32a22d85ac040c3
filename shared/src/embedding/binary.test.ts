import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { toHex } from '../encoding/bytes.ts';
import { isSynodError } from '../errors.ts';
import {
  bitAt,
  hamming,
  normalizedHamming,
  PackedMatrix,
  popcount32,
  quantize,
  truncateBits,
} from './binary.ts';

const vec = (n: number) =>
  fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: n, maxLength: n });

function naiveHamming(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < a.length * 8; i++) if (bitAt(a, i) !== bitAt(b, i)) d++;
  return d;
}

describe('binary embeddings', () => {
  test('bit order: dimension 0 is the top bit of byte 0', () => {
    const v = new Array(16).fill(-1);
    v[0] = 1;
    v[9] = 0.5;
    expect(toHex(quantize(v))).toBe('8040');
  });

  test('zero, negative zero and negatives quantize to 0; NaN is rejected', () => {
    expect(toHex(quantize([0, -0, -1, 1e-30, 0, 0, 0, 0]))).toBe('10');
    expect(() => quantize([Number.NaN, 0, 0, 0, 0, 0, 0, 0])).toThrow('NaN');
  });

  test('bit counts must be whole bytes and within the vector', () => {
    for (const bits of [0, 7, 12, 24]) {
      let caught: unknown;
      try {
        quantize([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], bits);
      } catch (e) {
        caught = e;
      }
      expect(isSynodError(caught, 'EMBEDDING_INVALID')).toBe(true);
    }
  });

  test('popcount32 on edge values', () => {
    expect(popcount32(0)).toBe(0);
    expect(popcount32(0xffffffff)).toBe(32);
    expect(popcount32(0x80000001)).toBe(2);
  });

  test('property: Matryoshka truncation is a byte prefix', () => {
    fc.assert(
      fc.property(vec(64), fc.integer({ min: 1, max: 8 }), (v, k) => {
        expect(truncateBits(quantize(v), k * 8)).toEqual(quantize(v, k * 8));
        expect(quantize(v.slice(0, k * 8))).toEqual(quantize(v, k * 8));
      }),
    );
  });

  test('property: Hamming matches a bit-by-bit reference and is a metric', () => {
    fc.assert(
      fc.property(vec(96), vec(96), vec(96), (x, y, z) => {
        const [a, b, c] = [quantize(x), quantize(y), quantize(z)];
        expect(hamming(a, b)).toBe(naiveHamming(a, b));
        expect(hamming(a, b)).toBe(hamming(b, a));
        expect(hamming(a, a)).toBe(0);
        expect(hamming(a, c)).toBeLessThanOrEqual(hamming(a, b) + hamming(b, c));
        expect(normalizedHamming(a, b)).toBeLessThanOrEqual(1);
      }),
    );
  });

  test('PackedMatrix agrees with pairwise hamming, including lengths not a multiple of 4 bytes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 13, maxLength: 13 }), { minLength: 1, maxLength: 12 }),
        (rows) => {
          const m = new PackedMatrix(rows);
          const d = m.distanceMatrix();
          for (let i = 0; i < rows.length; i++) {
            for (let j = 0; j < rows.length; j++) {
              expect(d[i * rows.length + j]).toBe(naiveHamming(rows[i] as Uint8Array, rows[j] as Uint8Array));
            }
          }
        },
      ),
    );
  });

  test('vectors of different lengths are a typed error', () => {
    expect(() => hamming(new Uint8Array(4), new Uint8Array(8))).toThrow('differ in length');
    expect(() => new PackedMatrix([new Uint8Array(4), new Uint8Array(8)])).toThrow('expected 4');
  });
});
