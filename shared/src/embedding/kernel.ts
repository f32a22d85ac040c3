import { SynodError } from '../errors.ts';
import { hammingDistanceMatrix, type PackedMatrix } from './binary.ts';
import { HAMMING_WASM_BASE64 } from './wasm/hamming.wasm.gen.ts';

/**
 * Hamming kernels: the all-pairs work of clustering (distance matrix, ball sizes, medoid sums) behind
 * one small interface, on two back ends that give identical integers:
 *
 *  - `js`: PackedMatrix and hammingDistanceMatrix (binary.ts), plain loops. The reference, and the
 *    fallback wherever WebAssembly cannot run.
 *  - `wasm-i64` / `wasm-i8x16`: the module assembled from wasm/hamming.wat, embedded in
 *    wasm/hamming.wasm.gen.ts (no file or network I/O), compiled synchronously on first use. Distances by
 *    v128.xor, a carry-save adder over three vectors at a time and i64.popcnt of its lanes (`wasm-i64`),
 *    or v128.xor + i8x16.popcnt (`wasm-i8x16`); ball sizes and medoid sums with i16x8 compares and
 *    masks, in place over the matrix in wasm memory. The rows go from the matrix's vectors straight
 *    into wasm memory (PackedMatrix.writeRows), without building its word array.
 *
 * hammingKernel() picks `wasm-i64` when the module loads, else `js`. The module needs fixed-width SIMD
 * (both distance kernels, ball sizes and sums), so an engine without it (WebAssembly.validate is false)
 * gets `js`; so does one that forbids compiling WebAssembly from bytes at run time (Cloudflare workerd,
 * a Content-Security-Policy without 'wasm-unsafe-eval'): `new WebAssembly.Module` throws and is caught.
 * Such a runtime can still compile hamming.wasm through its own loader and pass the module to
 * wasmHammingKernel. Browsers allow synchronous compilation of small modules (this one is about 1 KiB)
 * on the main thread.
 *
 * Why i64 by default: on x86-64 an engine lowers i64.popcnt to one POPCNT and i8x16.popcnt to a PSHUFB
 * sequence, and the i64 kernel measured faster there (Bun, see shared/bench/consensus.bench.ts). On
 * ARM64, where i8x16.popcnt is one CNT, `wasm-i8x16` may win; the core has no clock to find out.
 *
 * Memory: one instance per module, grown to the largest matrix seen (rows, then n×n u16 distances, then
 * n u32 sizes, n u16 mask, n u32 sums) and reused; the core stays single-threaded and every call is
 * synchronous, so nothing else touches it mid-call. A HammingBalls whose matrix was overwritten by a
 * later one recomputes it on its next use. If the memory cannot grow, the call runs on `js`.
 */
export interface HammingKernel {
  readonly name: 'js' | 'wasm-i64' | 'wasm-i8x16';
  /** Exactly hammingDistanceMatrix(matrix, out): row-major n×n, symmetric, zero diagonal. */
  distanceMatrix(matrix: PackedMatrix, out?: Uint16Array): Uint16Array;
  /** All pairwise distances of the rows, ready for ball and medoid queries. */
  balls(matrix: PackedMatrix): HammingBalls;
}

export interface HammingBalls {
  readonly rows: number;
  /** Hamming distance of rows i and j. */
  distance(i: number, j: number): number;
  /** |B(i)| = #{j : d(i, j) <= thresholdBits} for every row i (i itself included when t >= 0). */
  ballSizes(thresholdBits: number): Uint32Array;
  /** The rows j with d(centre, j) <= thresholdBits, ascending. */
  ball(centre: number, thresholdBits: number): number[];
  /** For each of `rows` (distinct), in that order: the sum of its distances to all of `rows`. */
  sumsWithin(rows: readonly number[]): number[];
}

// ---------------------------------------------------------------------------------------------------
// js

class JsBalls implements HammingBalls {
  readonly rows: number;
  private readonly d: Uint16Array;

  constructor(matrix: PackedMatrix) {
    this.rows = matrix.rows;
    this.d = hammingDistanceMatrix(matrix);
  }

  distance(i: number, j: number): number {
    return this.d[i * this.rows + j] as number;
  }

  ballSizes(thresholdBits: number): Uint32Array {
    const n = this.rows;
    const d = this.d;
    const sizes = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const row = i * n;
      let size = 0;
      for (let j = 0; j < n; j++) if ((d[row + j] as number) <= thresholdBits) size++;
      sizes[i] = size;
    }
    return sizes;
  }

  ball(centre: number, thresholdBits: number): number[] {
    const n = this.rows;
    const out: number[] = [];
    for (let j = 0, row = centre * n; j < n; j++)
      if ((this.d[row + j] as number) <= thresholdBits) out.push(j);
    return out;
  }

  sumsWithin(rows: readonly number[]): number[] {
    const n = this.rows;
    return rows.map((i) => {
      let sum = 0;
      for (const j of rows) sum += this.d[i * n + j] as number;
      return sum;
    });
  }
}

export const jsHammingKernel: HammingKernel = {
  name: 'js',
  distanceMatrix: (matrix, out) => hammingDistanceMatrix(matrix, out),
  balls: (matrix) => new JsBalls(matrix),
};

// ---------------------------------------------------------------------------------------------------
// wasm

interface HammingExports {
  memory: WebAssembly.Memory;
  distances_i8x16(rows: number, n: number, vecs: number, dist: number): void;
  distances_i64(rows: number, n: number, vecs: number, dist: number): void;
  ball_sizes(dist: number, n: number, t: number, sizes: number): void;
  ball_sums(dist: number, n: number, mask: number, sums: number): void;
}

interface Layout {
  n: number;
  vecs: number;
  dist: number;
  sizes: number;
  mask: number;
  sums: number;
  end: number;
}

const align16 = (x: number) => (x + 15) & ~15;
const PAGE = 65536;

/** A wasm instance and the matrix currently in its memory. */
class WasmInstance {
  /** Bumped on every load; a HammingBalls holding an older one reloads. */
  generation = 0;
  /** Views of the memory, made again when it grows (growing detaches the old buffer). */
  private buffer: ArrayBuffer | null = null;
  private views!: { u8: Uint8Array; u16: Uint16Array; u32: Uint32Array };

  constructor(readonly exports: HammingExports) {}

  /** Byte, u16 and u32 views of the whole memory (offsets divided by 1, 2, 4). */
  memory(): { u8: Uint8Array; u16: Uint16Array; u32: Uint32Array } {
    const buffer = this.exports.memory.buffer;
    if (buffer !== this.buffer) {
      this.buffer = buffer;
      this.views = { u8: new Uint8Array(buffer), u16: new Uint16Array(buffer), u32: new Uint32Array(buffer) };
    }
    return this.views;
  }

  /** Places the rows and computes their distance matrix; throws RangeError when memory cannot grow. */
  load(matrix: PackedMatrix, kernel: 'i64' | 'i8x16'): Layout {
    const n = matrix.rows;
    const s = matrix.stride;
    const vecs = (s + 3) >> 2;
    const rowBytes = vecs * 16;
    const dist = align16(n * rowBytes);
    const sizes = align16(dist + 2 * n * n);
    const mask = align16(sizes + 4 * n);
    const sums = align16(mask + 2 * n);
    const end = sums + 4 * n;
    const memory = this.exports.memory;
    if (end > memory.buffer.byteLength) memory.grow(Math.ceil((end - memory.buffer.byteLength) / PAGE));
    const { u8 } = this.memory();
    if (rowBytes !== matrix.bytes) u8.fill(0, 0, n * rowBytes);
    matrix.writeRows(u8, 0, rowBytes);
    if (kernel === 'i64') this.exports.distances_i64(0, n, vecs, dist);
    else this.exports.distances_i8x16(0, n, vecs, dist);
    this.generation++;
    return { n, vecs, dist, sizes, mask, sums, end };
  }
}

class WasmBalls implements HammingBalls {
  readonly rows: number;
  private layout: Layout;
  private generation: number;

  constructor(
    private readonly instance: WasmInstance,
    private readonly matrix: PackedMatrix,
    private readonly kernel: 'i64' | 'i8x16',
  ) {
    this.rows = matrix.rows;
    this.layout = instance.load(matrix, kernel);
    this.generation = instance.generation;
  }

  /** The layout, after reloading the matrix if another one has used the memory since. */
  private current(): Layout {
    if (this.generation !== this.instance.generation) {
      this.layout = this.instance.load(this.matrix, this.kernel);
      this.generation = this.instance.generation;
    }
    return this.layout;
  }

  distance(i: number, j: number): number {
    const { dist, n } = this.current();
    return this.instance.memory().u16[(dist >> 1) + i * n + j] as number;
  }

  ballSizes(thresholdBits: number): Uint32Array {
    const { dist, sizes, n } = this.current();
    // d <= t over u16 distances: nothing when t < 0 (or NaN), floor(t) capped at 65535 otherwise.
    if (!(thresholdBits >= 0)) return new Uint32Array(n);
    this.instance.exports.ball_sizes(dist, n, Math.min(Math.floor(thresholdBits), 0xffff), sizes);
    return this.instance.memory().u32.slice(sizes >> 2, (sizes >> 2) + n);
  }

  ball(centre: number, thresholdBits: number): number[] {
    const { dist, n } = this.current();
    const d = this.instance.memory().u16;
    const out: number[] = [];
    for (let j = 0, p = (dist >> 1) + centre * n; j < n; j++, p++) {
      if ((d[p] as number) <= thresholdBits) out.push(j);
    }
    return out;
  }

  sumsWithin(rows: readonly number[]): number[] {
    const { dist, mask, sums, n } = this.current();
    const { u16, u32 } = this.instance.memory();
    const m = mask >> 1;
    u16.fill(0, m, m + n);
    for (let k = 0; k < rows.length; k++) u16[m + (rows[k] as number)] = 0xffff;
    this.instance.exports.ball_sums(dist, n, mask, sums);
    const out = new Array<number>(rows.length);
    for (let k = 0, s = sums >> 2; k < rows.length; k++) out[k] = u32[s + (rows[k] as number)] as number;
    return out;
  }
}

function checkMatrix(matrix: PackedMatrix, out?: Uint16Array): void {
  const n = matrix.rows;
  if (matrix.stride * 32 > 0xffff) {
    throw new SynodError(
      'EMBEDDING_INVALID',
      `rows of ${matrix.stride * 32} bits do not fit 16-bit distances`,
    );
  }
  if (out !== undefined && out.length !== n * n) {
    throw new SynodError('EMBEDDING_INVALID', `output buffer holds ${out.length} entries, expected ${n * n}`);
  }
}

function wasmKernel(instance: WasmInstance, kernel: 'i64' | 'i8x16'): HammingKernel {
  return {
    name: kernel === 'i64' ? 'wasm-i64' : 'wasm-i8x16',
    distanceMatrix(matrix, out) {
      checkMatrix(matrix, out);
      let layout: Layout;
      try {
        layout = instance.load(matrix, kernel);
      } catch (e) {
        if (e instanceof RangeError) return hammingDistanceMatrix(matrix, out);
        throw e;
      }
      const n = matrix.rows;
      const d = out ?? new Uint16Array(n * n);
      d.set(instance.memory().u16.subarray(layout.dist >> 1, (layout.dist >> 1) + n * n));
      return d;
    },
    balls(matrix) {
      checkMatrix(matrix);
      try {
        return new WasmBalls(instance, matrix, kernel);
      } catch (e) {
        if (e instanceof RangeError) return new JsBalls(matrix);
        throw e;
      }
    },
  };
}

function base64Bytes(base64: string): Uint8Array<ArrayBuffer> {
  const text = atob(base64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** The embedded module's bytes (for tests, and for runtimes that compile modules their own way). */
export function hammingWasmBytes(): Uint8Array<ArrayBuffer> {
  return base64Bytes(HAMMING_WASM_BASE64);
}

/**
 * The wasm kernel on a given compiled module (from hammingWasmBytes), or null when it cannot be
 * instantiated here.
 */
export function wasmHammingKernel(
  module: WebAssembly.Module,
  kernel: 'i64' | 'i8x16' = 'i64',
): HammingKernel | null {
  try {
    const exports = new WebAssembly.Instance(module, {}).exports as unknown as HammingExports;
    return wasmKernel(new WasmInstance(exports), kernel);
  } catch {
    return null;
  }
}

let embedded: { i64: HammingKernel; i8x16: HammingKernel } | null | undefined;

/**
 * The embedded module's kernels, compiled and instantiated once on first use; null when this runtime
 * cannot (no WebAssembly, no SIMD, or compiling from bytes forbidden).
 */
export function embeddedWasmKernels(): { i64: HammingKernel; i8x16: HammingKernel } | null {
  if (embedded !== undefined) return embedded;
  embedded = null;
  try {
    if (typeof WebAssembly !== 'object') return null;
    const bytes = hammingWasmBytes();
    if (!WebAssembly.validate(bytes)) return null;
    const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), {})
      .exports as unknown as HammingExports;
    const instance = new WasmInstance(exports);
    embedded = { i64: wasmKernel(instance, 'i64'), i8x16: wasmKernel(instance, 'i8x16') };
  } catch {
    embedded = null;
  }
  return embedded;
}

/** The fastest kernel this runtime can run: `wasm-i64` when the embedded module loads, else `js`. */
export function hammingKernel(): HammingKernel {
  return embeddedWasmKernels()?.i64 ?? jsHammingKernel;
}
