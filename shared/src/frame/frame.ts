import * as z from 'zod';
import { SynodError } from '../errors.ts';

/**
 * The security frame a requester attaches to a request. Fractions are carried as JSON numbers but are
 * limited to six decimal places and are converted to integer parts-per-million before any arithmetic,
 * so every runtime computes the same thresholds (no floating-point rounding in consensus).
 */
export const FRAME_BOUNDS = {
  quorum: { min: 1, max: 64 },
  maxCommits: { min: 1, max: 128 },
  secDistance: { min: 0, max: 0.5 },
  secPercentage: { minExclusive: 0, max: 1 },
  maxTimeMs: { min: 1_000, max: 600_000 },
  revealWindowMs: { min: 250, max: 300_000 },
  embeddingBits: { min: 8, max: 8192, multipleOf: 8 },
} as const;

export const MODEL_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$/;
export const HASH_HEX_RE = /^[0-9a-f]{64}$/;

/**
 * At most six decimals, as packets are read: within 10^-6 ppm of an integer number of ppm. Requests
 * older relays signed passed this tolerance (`0.7999999999999999`, `0.1500000000001`), and they are
 * read, stored and verified as they were signed; a relay takes a new one only exact (`exactSixDecimals`).
 */
const sixDecimals = (x: number) => Math.abs(Math.round(x * 1e6) - x * 1e6) < 1e-6;

/**
 * At most six decimals, exactly: the double nearest to `k / 10^6` for an integer `k` (what the text of a
 * fraction with at most six decimals parses to). What a relay takes from its callers (`InferenceInputSchema`).
 */
export const exactSixDecimals = (x: number) => x === Math.round(x * 1e6) / 1e6;

// Members in canonical (sorted) order, like the request schemas (see packets/schemas.ts).
export const EmbeddingModelRefSchema = z.strictObject({
  /** How many leading dimensions are used (Matryoshka prefix); one bit each after sign quantization. */
  bits: z
    .number()
    .int()
    .min(FRAME_BOUNDS.embeddingBits.min)
    .max(FRAME_BOUNDS.embeddingBits.max)
    .multipleOf(FRAME_BOUNDS.embeddingBits.multipleOf),
  /** sha256 of the embedder's weights file (or of its manifest of files). */
  fileHash: z.string().regex(HASH_HEX_RE, 'a sha256 in lowercase hex'),
  /** Embedder id, e.g. `use-lite-512`. */
  id: z.string().regex(MODEL_ID_RE, 'model ids are 1-128 characters of [A-Za-z0-9._:/@+-]'),
});
export type EmbeddingModelRef = z.infer<typeof EmbeddingModelRefSchema>;

/** The frame's fields without the cross-field rule; for building partial input schemas. In canonical order. */
export const FrameFieldsSchema = z.strictObject({
  embeddingModel: EmbeddingModelRefSchema,
  /** Commits at which the coordinator seals at once (early close); at least `quorum`. */
  maxCommits: z.number().int().min(FRAME_BOUNDS.maxCommits.min).max(FRAME_BOUNDS.maxCommits.max),
  /** From the request's createdAt to the latest seal. */
  maxTimeMs: z.number().int().min(FRAME_BOUNDS.maxTimeMs.min).max(FRAME_BOUNDS.maxTimeMs.max),
  /** Fewest valid commits the coordinator needs at `maxTimeMs` to seal at all. */
  quorum: z.number().int().min(FRAME_BOUNDS.quorum.min).max(FRAME_BOUNDS.quorum.max),
  /** From the seal's createdAt to the last accepted reveal. */
  revealWindowMs: z.number().int().min(FRAME_BOUNDS.revealWindowMs.min).max(FRAME_BOUNDS.revealWindowMs.max),
  /** Largest normalized Hamming distance (fraction of bits) between agreeing outputs. */
  secDistance: z
    .number()
    .min(FRAME_BOUNDS.secDistance.min)
    .max(FRAME_BOUNDS.secDistance.max)
    .refine(sixDecimals, 'at most six decimal places'),
  /** Fraction of the sealed members that must agree; unrevealed members count against. */
  secPercentage: z
    .number()
    .gt(FRAME_BOUNDS.secPercentage.minExclusive)
    .max(FRAME_BOUNDS.secPercentage.max)
    .refine(sixDecimals, 'at most six decimal places'),
});

export const FrameSchema = FrameFieldsSchema.refine((f) => f.maxCommits >= f.quorum, {
  message: 'maxCommits must be at least quorum',
  path: ['maxCommits'],
});
export type Frame = z.infer<typeof FrameSchema>;

/** Defaults for every field but the embedding model, which the serving relay or node pins. */
export const FRAME_DEFAULTS = {
  quorum: 3,
  maxCommits: 3,
  secDistance: 0.15,
  secPercentage: 0.6,
  maxTimeMs: 30_000,
  revealWindowMs: 10_000,
} as const satisfies Omit<Frame, 'embeddingModel'>;

/** Fill defaults into a partial frame and validate it; throws `FRAME_OUT_OF_RANGE` with every issue. */
export function resolveFrame(partial: Partial<Frame> & { embeddingModel: EmbeddingModelRef }): Frame {
  const quorum = partial.quorum ?? FRAME_DEFAULTS.quorum;
  return validateFrame({
    ...FRAME_DEFAULTS,
    maxCommits: Math.max(partial.maxCommits ?? quorum, quorum),
    ...partial,
  });
}

export function validateFrame(input: unknown): Frame {
  const r = FrameSchema.safeParse(input);
  if (!r.success) {
    throw new SynodError('FRAME_OUT_OF_RANGE', 'the security frame is out of range', {
      details: {
        issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
        bounds: FRAME_BOUNDS,
      },
      hint: 'see FRAME_BOUNDS: secDistance in [0, 0.5], secPercentage in (0, 1], quorum <= maxCommits',
    });
  }
  return r.data;
}

/** A fraction with at most six decimals as integer parts per million. */
export function toPpm(fraction: number): number {
  return Math.round(fraction * 1e6);
}

/** Largest Hamming distance, in bits, that counts as agreement: floor(secDistance × bits), exactly. */
export function distanceThresholdBits(frame: Pick<Frame, 'secDistance'>, bits: number): number {
  return Math.floor((toPpm(frame.secDistance) * bits) / 1_000_000);
}

/** Agreeing reveals needed: ceil(secPercentage × sealSize), exactly. */
export function requiredAgreement(frame: Pick<Frame, 'secPercentage'>, sealSize: number): number {
  const ppm = toPpm(frame.secPercentage);
  // Integer ceiling division: both operands are exact integers well below 2^53.
  return Math.max(1, Math.floor((ppm * sealSize + 999_999) / 1_000_000));
}
