import { SIGNED_REQUEST_SKEW_MS } from '../auth/signed-request.ts';
import type { IntakeStore } from './intake-store.ts';

/** How long an Idempotency-Key is remembered, by default (as long as the usual 24 h of HTTP APIs). */
export const DEFAULT_IDEMPOTENCY_RETENTION_MS = 24 * 60 * 60 * 1000;

/** How often a relay under Bun forgets expired keys. */
export const IDEMPOTENCY_PRUNE_EVERY_MS = 10 * 60 * 1000;

/**
 * Throws a RangeError for a retention shorter than the signed-request skew window: a replayed signed
 * request (keyed by its signature) must still be recognised.
 */
export function checkIdempotencyRetention(retentionMs: number): void {
  if (!(retentionMs >= SIGNED_REQUEST_SKEW_MS)) {
    throw new RangeError(`idempotencyRetentionMs must be at least ${SIGNED_REQUEST_SKEW_MS} ms`);
  }
}

/**
 * Forget the Idempotency-Key rows older than `retentionMs`, in batches of `batch` (short write
 * transactions that never hold the accept path up for long), at most `maxBatches` per call; what is
 * left goes at the next call. Returns how many rows went (`checkIdempotencyRetention` first).
 */
export async function pruneExpiredIdempotency(
  intake: IntakeStore,
  now: number,
  retentionMs: number,
  o: { batch?: number; maxBatches?: number } = {},
): Promise<number> {
  checkIdempotencyRetention(retentionMs);
  const batch = o.batch ?? 1_000;
  const maxBatches = o.maxBatches ?? 20;
  let pruned = 0;
  for (let i = 0; i < maxBatches; i++) {
    const n = await intake.pruneIdempotency(now - retentionMs, batch);
    pruned += n;
    if (n < batch) break;
  }
  return pruned;
}
