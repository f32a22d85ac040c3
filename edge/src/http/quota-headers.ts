import { HttpError } from './errors.ts';

const DAY_MS = 86_400_000;

/** Whole seconds from `now` to the next UTC midnight, when daily quotas start again (at least 1). */
export function secondsToNextUtcDay(now: number): number {
  const next = (Math.floor(now / DAY_MS) + 1) * DAY_MS;
  return Math.max(1, Math.ceil((next - now) / 1000));
}

/**
 * Where a caller's daily quota stands, as response headers (Synod's own; the quota counts requests per
 * UTC day): `x-synod-quota-limit`, `x-synod-quota-remaining` (after this request), and
 * `x-synod-quota-reset` (seconds until the count starts again).
 */
export function quotaHeaders(limit: number, used: number, now: number): Record<string, string> {
  return {
    'x-synod-quota-limit': String(limit),
    'x-synod-quota-remaining': String(Math.max(0, limit - used)),
    'x-synod-quota-reset': String(secondsToNextUtcDay(now)),
  };
}

/**
 * 429 QUOTA_EXCEEDED: the day's quota is used up. `Retry-After` says when the next UTC day starts, and
 * the quota headers say the same as on an accepted request (none remaining).
 */
export function quotaExceededError(quotaPerDay: number, day: string, now: number): HttpError {
  const reset = secondsToNextUtcDay(now);
  return new HttpError(
    429,
    'QUOTA_EXCEEDED',
    `the daily quota of ${quotaPerDay} requests is used up`,
    { quotaPerDay, day, resetsInSeconds: reset },
    'the quota counts requests per UTC day; retry after Retry-After seconds, or ask for a larger quota',
    { 'retry-after': String(reset), ...quotaHeaders(quotaPerDay, quotaPerDay, now) },
  );
}
