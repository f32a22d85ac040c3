import { HttpError } from './errors.ts';

const DAY_MS = 86_400_000;

/** Whole seconds from `now` to the next UTC midnight, when daily quotas start again (at least 1). */
export function secondsToNextUtcDay(now: number): number {
  const next = (Math.floor(now / DAY_MS) + 1) * DAY_MS;
  return Math.max(1, Math.ceil((next - now) / 1000));
}

/** Where a caller's daily quota stands after a request (the quota counts requests per UTC day). */
export interface QuotaStanding {
  /** Requests a day. */
  limit: number;
  /** What is left of it today, after this request. */
  remaining: number;
  /** Seconds until the next UTC day, when the count starts again. */
  resetsInSeconds: number;
}

export function quotaStanding(limit: number, used: number, now: number): QuotaStanding {
  return { limit, remaining: Math.max(0, limit - used), resetsInSeconds: secondsToNextUtcDay(now) };
}

/**
 * A quota standing as response headers (Synod's own): `x-synod-quota-limit`, `x-synod-quota-remaining`
 * and `x-synod-quota-reset` (seconds). The OpenAI-compatible route sends them, its body being OpenAI's;
 * `POST /v1/inference` puts the standing in its JSON answer instead.
 */
export function quotaHeaders(q: QuotaStanding): Record<string, string> {
  return {
    'x-synod-quota-limit': String(q.limit),
    'x-synod-quota-remaining': String(q.remaining),
    'x-synod-quota-reset': String(q.resetsInSeconds),
  };
}

/**
 * 429 QUOTA_EXCEEDED: the day's quota is used up. `Retry-After` says when the next UTC day starts, and
 * the quota headers say the same as on an accepted request (none remaining). A quota of 0 (a key its
 * operator paused) is said as such: the next day starts with the same quota.
 */
export function quotaExceededError(
  quotaPerDay: number,
  day: string,
  now: number,
  kind: 'api-key' | 'signed' = 'api-key',
): HttpError {
  const reset = secondsToNextUtcDay(now);
  const paused = quotaPerDay === 0;
  const raise =
    kind === 'signed'
      ? "the relay's operator sets it for signed requests (synod-relay --signed-quota); an API key has a quota of its own"
      : "the relay's operator can raise it (synod-relay keys set-quota)";
  return new HttpError(
    429,
    'QUOTA_EXCEEDED',
    paused
      ? `the daily quota of this ${kind === 'signed' ? 'node key (signed requests)' : 'key'} is 0: it takes no request`
      : `the daily quota of ${quotaPerDay} ${quotaPerDay === 1 ? 'request' : 'requests'} is used up`,
    { quotaPerDay, day, resetsInSeconds: reset },
    paused
      ? `the next UTC day starts with the same quota; ${raise}`
      : 'the quota counts requests per UTC day; retry after Retry-After seconds, or ask for a larger quota',
    { 'retry-after': String(reset), ...quotaHeaders(quotaStanding(quotaPerDay, quotaPerDay, now)) },
  );
}
