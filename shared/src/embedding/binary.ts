import { SynodError } from '../errors.ts';

/**
 * Binary embeddings.
 *
 * Quantization: bit i = 1 when x_i > 0, else 0 (so 0, -0 and negatives are 0; NaN is rejected).
 * Packing: bit i is stored in byte floor(i / 8) at bit position 7 - (i mod 8), i.e. most significant
 * bit first, exactly as numpy.packbits(bitorder='big'). The first dimension is the top bit of byte 0.
 * A consequence the protocol relies on: the first k bits (k a multiple of 8) of a packed vector are the
 * packed quantization of the first k dimensions, so Matryoshka truncation is a byte prefix.
 * On the wire the packed bytes are lowercase hex.
 *
 * Hamming distance: XOR of 32-bit words and a SWAR popcount. Byte order inside a word does not change
 * a popcount, so words are read in platform order; vectors are zero-padded to whole words (padding bits
 * are zero on both sides and never count).
 */
export function quantize(vector: ArrayLike<number>, bits: number = vector.length): Uint8Array {
  if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0) {
    throw new SynodError('EMBEDDING_INVALID', `bit count must be a positive multiple of 8, got ${bits}`);
  }
  if (bits > vector.length) {
    throw new SynodError(
      'EMBEDDING_INVALID',
      `cannot take ${bits} dimensions of a ${vector.length}-dimension vector`,
      {
        details: { bits, dims: vector.length },
      },
    );
  }
  const out = new Uint8Array(bits / 8);
  for (let i = 0; i < bits; i++) {
    const x = vector[i] as number;
    if (Number.isNaN(x)) throw new SynodError('EMBEDDING_INVALID', `dimension ${i} is NaN`);
    if (x > 0) out[i >> 3] = (out[i >> 3] as number) | (0x80 >> (i & 7));
  }
  return out;
}

/** The Matryoshka prefix of a packed vector: its first `bits` bits. */
export function truncateBits(packed: Uint8Array, bits: number): Uint8Array {
  if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0 || bits > packed.length * 8) {
    throw new SynodError('EMBEDDING_INVALID', `cannot truncate ${packed.length * 8} bits to ${bits}`);
  }
  return packed.slice(0, bits / 8);
}

/** Bit i of a packed vector, as 0 or 1. */
export function bitAt(packed: Uint8Array, i: number): 0 | 1 {
  return (((packed[i >> 3] as number) >> (7 - (i & 7))) & 1) as 0 | 1;
}

/** Packed bytes as 32-bit words, zero-padded to a whole word. */
export function toWords(packed: Uint8Array): Uint32Array {
  const words = new Uint32Array(Math.ceil(packed.length / 4));
  new Uint8Array(words.buffer).set(packed);
  return words;
}

export function popcount32(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) as number;
}

/** Hamming distance of two word vectors of equal length. */
export function hammingWords(a: Uint32Array, b: Uint32Array): number {
  if (a.length !== b.length) {
    throw new SynodError('EMBEDDING_INVALID', `word vectors differ in length (${a.length} vs ${b.length})`);
  }
  let d = 0;
  for (let i = 0; i < a.length; i++) d += popcount32(((a[i] as number) ^ (b[i] as number)) >>> 0);
  return d;
}

/** Hamming distance of two packed vectors of equal length. */
export function hamming(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) {
    throw new SynodError(
      'EMBEDDING_INVALID',
      `packed vectors differ in length (${a.length} vs ${b.length} bytes)`,
    );
  }
  return hammingWords(toWords(a), toWords(b));
}

/** Hamming distance as a fraction of the bit count, in [0, 1]. */
export function normalizedHamming(a: Uint8Array, b: Uint8Array): number {
  return hamming(a, b) / (a.length * 8);
}

/**
 * Many vectors of one length in one contiguous word array (row r at words [r*stride, (r+1)*stride)),
 * for cache-friendly all-pairs distances.
 *
 * The word array is built on first use of `words`: a kernel that keeps its own copy (the wasm kernels
 * place the rows in their memory) takes the rows from the vectors with writeRows, and the clustering hot
 * path copies them once, not twice. So the vectors are read after construction, not copied by it: do
 * not modify them while the matrix is in use. Lengths are checked by the constructor.
 */
export class PackedMatrix {
  readonly rows: number;
  readonly stride: number;
  /** Bytes a vector. */
  readonly bytes: number;
  private readonly vectors: readonly Uint8Array[];
  private packed: Uint32Array | undefined;

  constructor(vectors: readonly Uint8Array[]) {
    this.rows = vectors.length;
    const bytes = vectors[0]?.length ?? 0;
    for (let r = 0; r < vectors.length; r++) {
      const v = vectors[r] as Uint8Array;
      if (v.length !== bytes) {
        throw new SynodError('EMBEDDING_INVALID', `vector ${r} has ${v.length} bytes, expected ${bytes}`);
      }
    }
    this.bytes = bytes;
    this.stride = Math.ceil(bytes / 4);
    this.vectors = vectors.slice();
  }

  /** The rows as 32-bit words, zero-padded to `stride` words each. */
  get words(): Uint32Array {
    if (this.packed === undefined) {
      const words = new Uint32Array(this.rows * this.stride);
      this.writeRows(new Uint8Array(words.buffer), 0, this.stride * 4);
      this.packed = words;
    }
    return this.packed;
  }

  /**
   * Copies row r's bytes to target[offset + r·rowBytes ...] for every row (rowBytes >= bytes). The
   * rest of each row's slot is not written: the caller zeroes it if it needs the padding.
   */
  writeRows(target: Uint8Array, offset: number, rowBytes: number): void {
    const vectors = this.vectors;
    for (let r = 0, at = offset; r < vectors.length; r++, at += rowBytes)
      target.set(vectors[r] as Uint8Array, at);
  }

  distance(i: number, j: number): number {
    const w = this.words;
    const s = this.stride;
    let d = 0;
    for (let k = 0, a = i * s, b = j * s; k < s; k++, a++, b++) {
      d += popcount32(((w[a] as number) ^ (w[b] as number)) >>> 0);
    }
    return d;
  }

  /** All pairwise distances, row-major n×n, symmetric, zero diagonal. */
  distanceMatrix(): Uint16Array {
    const n = this.rows;
    const out = new Uint16Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const d = this.distance(i, j);
        out[i * n + j] = d;
        out[j * n + i] = d;
      }
    }
    return out;
  }
}

let popcountTable16: Uint8Array | undefined;

/** popcount of every 16-bit value (64 KiB, built once on first use; a constant, not state). */
function popcount16(): Uint8Array {
  if (popcountTable16 === undefined) {
    const t = new Uint8Array(65536);
    for (let i = 1; i < 65536; i++) t[i] = (t[i >> 1] as number) + (i & 1);
    popcountTable16 = t;
  }
  return popcountTable16;
}

/**
 * All pairwise Hamming distances of a matrix's rows: exactly `matrix.distanceMatrix()` (row-major
 * n×n, symmetric, zero diagonal), computed about 1.5-2x faster for the consensus hot loop: each
 * unordered pair once, XOR of 32-bit words, a 16-bit popcount table and a 4-word unrolled inner loop.
 * Pass `out` (n×n) to reuse a buffer. Rows wider than 65535 bits cannot be represented and throw.
 */
export function hammingDistanceMatrix(matrix: PackedMatrix, out?: Uint16Array): Uint16Array {
  const n = matrix.rows;
  const s = matrix.stride;
  if (s * 32 > 0xffff) {
    throw new SynodError('EMBEDDING_INVALID', `rows of ${s * 32} bits do not fit 16-bit distances`);
  }
  if (out !== undefined && out.length !== n * n) {
    throw new SynodError('EMBEDDING_INVALID', `output buffer holds ${out.length} entries, expected ${n * n}`);
  }
  const d = out ?? new Uint16Array(n * n);
  const w = matrix.words;
  const t = popcount16();
  for (let i = 0; i < n; i++) {
    const a = i * s;
    const rowI = i * n;
    d[rowI + i] = 0;
    for (let j = i + 1; j < n; j++) {
      const b = j * s;
      let sum = 0;
      let k = 0;
      for (; k + 3 < s; k += 4) {
        const x0 = (w[a + k] as number) ^ (w[b + k] as number);
        const x1 = (w[a + k + 1] as number) ^ (w[b + k + 1] as number);
        const x2 = (w[a + k + 2] as number) ^ (w[b + k + 2] as number);
        const x3 = (w[a + k + 3] as number) ^ (w[b + k + 3] as number);
        sum +=
          (t[x0 & 0xffff] as number) +
          (t[x0 >>> 16] as number) +
          (t[x1 & 0xffff] as number) +
          (t[x1 >>> 16] as number) +
          (t[x2 & 0xffff] as number) +
          (t[x2 >>> 16] as number) +
          (t[x3 & 0xffff] as number) +
          (t[x3 >>> 16] as number);
      }
      for (; k < s; k++) {
        const x = (w[a + k] as number) ^ (w[b + k] as number);
        sum += (t[x & 0xffff] as number) + (t[x >>> 16] as number);
      }
      d[rowI + j] = sum;
      d[j * n + i] = sum;
    }
  }
  return d;
}
