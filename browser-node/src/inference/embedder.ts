import type { EmbeddingModelRef } from '@synod/shared';
import { quantize } from '@synod/shared';
import type { OnLoadProgress } from './engine.ts';
import { InferenceError } from './errors.ts';

/**
 * A sentence embedder: turns a revealed output into the vector whose sign bits go into the commitment.
 *
 * How every Synod embedder embeds: **one text at a time**. `embed(texts)` runs the model once per text,
 * never as one padded batch. Batching changes the last bits of some floats (USE Lite: up to 1.6e-7 between
 * a batch of 32 and single texts), and a verifier re-embedding a single reveal must get exactly what the
 * node got. One-at-a-time is what a verifier naturally does, so nodes do the same.
 *
 * `embedBits(text)` is `quantize(embedding, ref.bits)` from the protocol core: bit i is `x_i > 0`, packed
 * most significant bit first; the first `bits` dimensions are used (Matryoshka prefix), so the result has
 * `bits / 8` bytes.
 */
export interface Embedder {
  /** The embedder as a frame names it. Available after `load()` (ENGINE_NOT_LOADED before). */
  readonly ref: EmbeddingModelRef;
  /** Dimensions of a full embedding. Available after `load()`. */
  readonly dims: number;
  readonly loaded: boolean;
  load(onProgress?: OnLoadProgress): Promise<void>;
  /** One vector per text, embedded one text at a time. */
  embed(texts: string[]): Promise<Float32Array[]>;
  /** Sign bits of the first `ref.bits` dimensions, packed (`bits / 8` bytes). */
  embedBits(text: string): Promise<Uint8Array>;
  unload(): Promise<void>;
  /**
   * An embedder that starts its worker again when it dies (`RestartingEmbedder`): while it is down, since
   * when and why, else null. Absent on embedders that cannot be down and come back.
   */
  readonly down?: { since: number; error: string; attempts: number } | null;
}

/** The largest multiple of 8 that fits in `dims`: the default bit count of an embedder. */
export function defaultBits(dims: number): number {
  return Math.floor(dims / 8) * 8;
}

/** Check a requested bit count against an embedder's dimensions. */
export function checkBits(bits: number, dims: number, embedderId: string): number {
  if (!Number.isInteger(bits) || bits < 8 || bits % 8 !== 0 || bits > dims) {
    throw new InferenceError(
      'INFERENCE_INVALID_INPUT',
      `embedder ${embedderId} has ${dims} dimensions: bits must be a multiple of 8 in [8, ${defaultBits(dims)}]`,
      { details: { bits, dims } },
    );
  }
  return bits;
}

/** Packed sign bits of one embedding, with the frame's bit count. */
export function packBits(vector: Float32Array, bits: number): Uint8Array {
  return quantize(vector, bits);
}
