import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { isSynodError } from '../errors.ts';
import { hammingDistanceMatrix, PackedMatrix } from './binary.ts';
import {
  embeddedWasmKernels,
  type HammingKernel,
  hammingKernel,
  hammingWasmBytes,
  jsHammingKernel,
  wasmHammingKernel,
} from './kernel.ts';
import { assembleHammingWat, GENERATED_PATH, generatedSource } from './wasm/build.ts';

const wasm = embeddedWasmKernels();

/** Bun has WebAssembly SIMD, so here the wasm kernels must load: a silent fall back would hide a bug. */
const kernels: HammingKernel[] = [jsHammingKernel, wasm?.i64, wasm?.i8x16].filter(
  (k): k is HammingKernel => k !== undefined,
);

/** n rows of `bytes` bytes each; lengths deliberately not multiples of 4, 8 or 16. */
const rowsArb = fc
  .tuple(fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 70 }))
  .chain(([n, bytes]) =>
    fc.array(fc.uint8Array({ minLength: bytes, maxLength: bytes }), { minLength: n, maxLength: n }),
  );

/** Rows near each other (so balls hold more than their centre): a base with a few flipped bytes. */
const clusteredRowsArb = fc
  .tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }))
  .chain(([n, bytes]) =>
    fc
      .tuple(
        fc.uint8Array({ minLength: bytes, maxLength: bytes }),
        fc.array(fc.array(fc.tuple(fc.nat(bytes - 1), fc.nat(255)), { maxLength: 3 }), {
          minLength: n,
          maxLength: n,
        }),
      )
      .map(([base, flips]) =>
        flips.map((fs) => {
          const row = base.slice();
          for (const [at, x] of fs) row[at] = (row[at] as number) ^ x;
          return row;
        }),
      ),
  );

function referenceBalls(rows: Uint8Array[], t: number, subset: number[]) {
  const m = new PackedMatrix(rows);
  const d = hammingDistanceMatrix(m);
  const n = rows.length;
  const sizes = Array.from({ length: n }, (_, i) => {
    let c = 0;
    for (let j = 0; j < n; j++) if ((d[i * n + j] as number) <= t) c++;
    return c;
  });
  const ballOf = (c: number) => [...Array(n).keys()].filter((j) => (d[c * n + j] as number) <= t);
  const sums = subset.map((i) => subset.reduce((s, j) => s + (d[i * n + j] as number), 0));
  return { d, sizes, ballOf, sums };
}

describe('hamming kernels', () => {
  test('the wasm kernels load in this runtime and are the default', () => {
    expect(wasm).not.toBeNull();
    expect(kernels.map((k) => k.name)).toEqual(['js', 'wasm-i64', 'wasm-i8x16']);
    expect(hammingKernel().name).toBe('wasm-i64');
  });

  test('the embedded module is a fresh assembly of the checked-in .wat', async () => {
    const fresh = await assembleHammingWat();
    expect([...hammingWasmBytes()]).toEqual([...fresh]);
    expect(readFileSync(GENERATED_PATH, 'utf8')).toBe(generatedSource(fresh));
  });

  test('property: every kernel gives the reference distance matrix', () => {
    fc.assert(
      fc.property(rowsArb, (rows) => {
        const m = new PackedMatrix(rows);
        const expected = hammingDistanceMatrix(m);
        for (const k of kernels) {
          expect(k.distanceMatrix(m)).toEqual(expected);
          const out = new Uint16Array(rows.length * rows.length).fill(7);
          expect(k.distanceMatrix(m, out)).toBe(out);
          expect([...out]).toEqual([...expected]);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('property: the wasm specialised widths (384, 512, 768, 1024 bits) and their neighbours', () => {
    // distances_i64 has its own loop for rows of 3, 4, 6 and 8 vectors (33-48, 49-64, 81-96, 113-128
    // bytes); rowsArb stops at 70 bytes. Dense and sparse rows, so the carry-save adder sees carries.
    const widthArb = fc.constantFrom(40, 47, 48, 49, 64, 65, 80, 81, 96, 97, 112, 113, 128, 129, 144);
    const wideRowsArb = fc
      .tuple(fc.integer({ min: 0, max: 20 }), widthArb, fc.constantFrom(0, 0x55, 0xff))
      .chain(([n, bytes, fill]) =>
        fc.array(
          fc.oneof(
            fc.uint8Array({ minLength: bytes, maxLength: bytes }),
            fc.constant(new Uint8Array(bytes).fill(fill)),
          ),
          { minLength: n, maxLength: n },
        ),
      );
    fc.assert(
      fc.property(wideRowsArb, (rows) => {
        const m = new PackedMatrix(rows);
        const expected = hammingDistanceMatrix(m);
        for (const k of kernels) expect([...k.distanceMatrix(m)]).toEqual([...expected]);
      }),
      { numRuns: 300 },
    );
  });

  test('property: ball sizes, balls and sums within a subset match the reference', () => {
    fc.assert(
      fc.property(
        clusteredRowsArb,
        fc.integer({ min: -1, max: 200 }),
        fc.infiniteStream(fc.boolean()),
        (rows, t, picks) => {
          const n = rows.length;
          const subset = [...Array(n).keys()].filter(() => picks.next().value);
          const ref = referenceBalls(rows, t, subset);
          for (const k of kernels) {
            const balls = k.balls(new PackedMatrix(rows));
            expect(balls.rows).toBe(n);
            expect([...balls.ballSizes(t)]).toEqual(ref.sizes);
            for (let c = 0; c < n; c++) expect(balls.ball(c, t)).toEqual(ref.ballOf(c));
            expect(balls.sumsWithin(subset)).toEqual(ref.sums);
            for (let i = 0; i < n; i++) {
              for (let j = 0; j < n; j++) expect(balls.distance(i, j)).toBe(ref.d[i * n + j] as number);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('widest rows (65504 bits) and every bit different: no lane overflows', () => {
    const bytes = 2047 * 4;
    const rows = [new Uint8Array(bytes).fill(0xff), new Uint8Array(bytes), new Uint8Array(bytes).fill(0x0f)];
    const m = new PackedMatrix(rows);
    const expected = hammingDistanceMatrix(m);
    expect(expected[1]).toBe(65504);
    for (const k of kernels) {
      expect(k.distanceMatrix(m)).toEqual(expected);
      expect(k.balls(m).sumsWithin([0, 1, 2])).toEqual([65504 + 32752, 65504 + 32752, 65504]);
    }
  });

  test('many rows: ball counters and sums past one vector of lanes, with a tail', () => {
    const rows = Array.from({ length: 203 }, (_, i) => Uint8Array.of(i, i >> 3, 255 - i));
    const subset = [...Array(203).keys()].filter((i) => i % 3 !== 1);
    const ref = referenceBalls(rows, 6, subset);
    for (const k of kernels) {
      const balls = k.balls(new PackedMatrix(rows));
      expect([...balls.ballSizes(6)]).toEqual(ref.sizes);
      expect(balls.sumsWithin(subset)).toEqual(ref.sums);
    }
  });

  test('balls stay right when another matrix has used the wasm memory since', () => {
    const a = [Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 2), Uint8Array.of(0, 0, 0)];
    const b = Array.from({ length: 50 }, (_, i) => new Uint8Array(100).fill(i));
    for (const k of kernels) {
      const first = k.balls(new PackedMatrix(a));
      const second = k.balls(new PackedMatrix(b));
      expect(first.ball(0, 1)).toEqual([0, 1]);
      expect(first.sumsWithin([0, 1, 2])).toEqual(referenceBalls(a, 1, [0, 1, 2]).sums);
      expect(second.ballSizes(0)[0]).toBe(1);
      expect(first.distance(0, 2)).toBe(4);
    }
  });

  test('the same typed errors as the JS path', () => {
    const wide = new PackedMatrix([new Uint8Array(2048 * 4)]);
    const m = new PackedMatrix([Uint8Array.of(1), Uint8Array.of(2)]);
    for (const k of kernels) {
      for (const run of [() => k.distanceMatrix(wide), () => k.distanceMatrix(m, new Uint16Array(3))]) {
        let caught: unknown;
        try {
          run();
        } catch (e) {
          caught = e;
        }
        expect(isSynodError(caught, 'EMBEDDING_INVALID')).toBe(true);
      }
    }
  });

  test('a module that cannot be instantiated gives no kernel (callers fall back to js)', () => {
    // (module (import "env" "f" (func))): instantiation without imports throws.
    const needsImport = Uint8Array.of(
      0x00,
      0x61,
      0x73,
      0x6d,
      0x01,
      0x00,
      0x00,
      0x00,
      0x01,
      0x04,
      0x01,
      0x60,
      0x00,
      0x00,
      0x02,
      0x09,
      0x01,
      0x03,
      0x65,
      0x6e,
      0x76,
      0x01,
      0x66,
      0x00,
      0x00,
    );
    expect(wasmHammingKernel(new WebAssembly.Module(needsImport))).toBeNull();
    expect(wasmHammingKernel(new WebAssembly.Module(hammingWasmBytes()), 'i8x16')?.name).toBe('wasm-i8x16');
  });
});
