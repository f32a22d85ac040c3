import type { Context } from 'hono';
import { bearerToken, hashApiKey, isWellFormedApiKey } from '../auth/api-keys.ts';
import { checkSignedRequest, SIGNED_REQUEST_SKEW_MS } from '../auth/signed-request.ts';
import type { EdgeDeps } from '../routes/deps.ts';
import { edgeError, rateLimitedError } from './errors.ts';
import { idempotencyKeyOf } from './idempotency-key.ts';

export interface Caller {
  /** `key_…` for API keys, `node:<node id>` for signed requests. */
  id: string;
  quotaPerDay: number;
  kind: 'api-key' | 'signed';
  /**
   * A signed request's signature: its implicit Idempotency-Key, so the same signed request sent again
   * within the skew window (a replay) answers the request it made instead of making another.
   */
  signature?: string;
}

/** What `authenticate` uses of the relay. */
export type AuthDeps = Pick<EdgeDeps, 'store' | 'apiKeys' | 'limiter' | 'clientAddress'> & {
  config: Pick<EdgeDeps['config'], 'signedQuotaPerDay'>;
};

/**
 * Who is calling: an API key (`Authorization: Bearer synod_sk_…`, looked up by its sha256) or a signed
 * request (`x-synod-node`, `x-synod-timestamp` judged at `now`, `x-synod-signature`). Throws 401
 * UNAUTHENTICATED with the reason, or 403 FORBIDDEN for a revoked key. A key the cache does not hold is
 * looked up in the database under the client address's rate limit (the `key-lookup:` bucket), as the
 * public reads are: an unknown key is never cached, so without it anyone could make the relay read the
 * database for each of as many made-up keys as they send; past it, 429 RATE_LIMITED. Signed requests
 * are limited per client address as well (see below).
 */
export async function authenticate(
  c: Context,
  deps: AuthDeps,
  body: Uint8Array,
  now: number,
): Promise<Caller> {
  const token = bearerToken(c.req.header('authorization'));
  if (token !== undefined) {
    if (!isWellFormedApiKey(token)) {
      throw edgeError(
        401,
        'UNAUTHENTICATED',
        'the API key is malformed',
        undefined,
        'keys look like synod_sk_<64 hex>',
      );
    }
    const key = await deps.apiKeys.get(hashApiKey(token), (hash) => {
      const wait = deps.limiter.take(`key-lookup:${deps.clientAddress(c)}`);
      if (wait > 0) throw rateLimitedError(wait);
      return deps.store.apiKeyByHash(hash);
    });
    if (!key) throw edgeError(401, 'UNAUTHENTICATED', 'unknown API key');
    if (key.revoked) throw edgeError(403, 'FORBIDDEN', 'this API key was revoked');
    return { id: key.id, quotaPerDay: key.quotaPerDay, kind: 'api-key' };
  }
  const headers = {
    node: c.req.header('x-synod-node'),
    timestamp: c.req.header('x-synod-timestamp'),
    signature: c.req.header('x-synod-signature'),
    idempotencyKey: c.req.header('idempotency-key'),
  };
  if (headers.node || headers.timestamp || headers.signature) {
    // Node keys cost nothing to make, so the per-caller limit alone would not hold a client that signs
    // each request with a fresh one: signed requests are limited per client address too (the `signed:`
    // bucket), before their signature is checked.
    const wait = deps.limiter.take(`signed:${deps.clientAddress(c)}`);
    if (wait > 0) throw rateLimitedError(wait);
    // The signature covers the key: one it could not be checked over is refused as such, not as a
    // signature that does not verify.
    idempotencyKeyOf(headers.idempotencyKey);
  }
  const url = new URL(c.req.url);
  const signed = await checkSignedRequest({
    method: c.req.method,
    pathAndQuery: url.pathname + url.search,
    body,
    headers,
    now,
  });
  if (signed.ok) {
    return {
      id: `node:${signed.nodeId}`,
      quotaPerDay: deps.config.signedQuotaPerDay,
      kind: 'signed',
      signature: headers.signature as string,
    };
  }
  // An Authorization header that is not `Bearer <key>` (Basic, a bare key): said as such, not as a
  // missing credential.
  if (signed.reason === 'MISSING' && c.req.header('authorization') !== undefined) {
    throw edgeError(
      401,
      'UNAUTHENTICATED',
      'the Authorization header is not "Bearer <API key>"',
      { reason: 'AUTHORIZATION_NOT_BEARER' },
      'send Authorization: Bearer synod_sk_<64 hex>, or sign the request (x-synod-* headers)',
    );
  }
  const why = {
    MISSING: 'send an API key (Authorization: Bearer …) or a signed request',
    MALFORMED: 'the x-synod-* signature headers are malformed',
    STALE: 'x-synod-timestamp is outside the allowed clock skew',
    BAD_SIGNATURE: 'the request signature does not verify',
  }[signed.reason];
  // A timestamp in seconds (or one far off) is said with what the relay expects.
  const hint =
    signed.reason === 'STALE'
      ? `x-synod-timestamp is Unix time in milliseconds (the relay's is ${now}), within ${SIGNED_REQUEST_SKEW_MS / 1000} s of the relay's clock${Number(headers.timestamp) < 1e11 ? '; this one looks like seconds' : ''}`
      : undefined;
  throw edgeError(401, 'UNAUTHENTICATED', why, { reason: signed.reason }, hint);
}

const DAY_MS = 86_400_000;
let lastDay = { start: Number.NaN, name: '' };

/** UTC day `YYYY-MM-DD` of a time, for daily quotas (the last day's name is kept: one per request). */
export function utcDay(ms: number): string {
  const start = Math.floor(ms / DAY_MS) * DAY_MS;
  if (start !== lastDay.start) lastDay = { start, name: new Date(start).toISOString().slice(0, 10) };
  return lastDay.name;
}
