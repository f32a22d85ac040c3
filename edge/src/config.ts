import type { EmbeddingModelRef } from '@synod/shared';
import type { RateLimitConfig } from './rate-limit.ts';
import { DEFAULT_IDEMPOTENCY_RETENTION_MS } from './store/idempotency-retention.ts';

export interface EdgeConfig {
  /** Embedders the relay can pin into frames; the first is the default. */
  embedders: readonly EmbeddingModelRef[];
  /** Models assumed served even before a heartbeat names them (e.g. the local network's). */
  configuredModels: readonly string[];
  /** `models` when a request names none. */
  defaultModels: readonly string[];
  /** Requests per day for callers authenticated by a signed request (no API key row). */
  signedQuotaPerDay: number;
  /**
   * Rate limit per caller for writes, and per client address for /v1/verify and for the public reads
   * that page through the database (/v1/history, /v1/nodes, GET /v1/verify/:id), each its own bucket.
   */
  rateLimit: RateLimitConfig;
  /** Body limits in bytes. */
  bodyLimit: number;
  verifyBodyLimit: number;
  /** Upper bound on how long /v1/chat/completions waits for a verdict, on top of the frame's times. */
  chatWaitSlackMs: number;
  /** How long an API key looked up in libSQL is reused (a revocation takes this long to bite). */
  apiKeyCacheMs: number;
  /** A comment line on waiting server-sent-event streams this often, so idle-cutting proxies keep them. */
  sseKeepAliveMs: number;
  /** How long an Idempotency-Key (and a signed request's signature) is remembered. */
  idempotencyRetentionMs: number;
  /**
   * Web origins (`https://app.example`) whose pages may call the API from a browser (CORS), or `['*']`
   * for any. Default none: browsers on other origins are refused, servers and agents are not affected.
   */
  corsOrigins: readonly string[];
}

export const DEFAULT_EDGE_CONFIG: Omit<EdgeConfig, 'embedders' | 'configuredModels' | 'defaultModels'> = {
  signedQuotaPerDay: 1_000,
  rateLimit: { ratePerSecond: 50, burst: 100 },
  bodyLimit: 256 * 1024,
  verifyBodyLimit: 4 * 1024 * 1024,
  chatWaitSlackMs: 5_000,
  apiKeyCacheMs: 5_000,
  sseKeepAliveMs: 15_000,
  idempotencyRetentionMs: DEFAULT_IDEMPOTENCY_RETENTION_MS,
  corsOrigins: [],
};

/**
 * A comma-separated origin list (a CLI flag, a worker variable): `*`, or origins like
 * `https://app.example` (scheme, host, optional port; no path). Throws a TypeError naming a bad entry.
 */
export function parseCorsOrigins(list: string): string[] {
  const origins = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const o of origins) {
    if (o !== '*' && !/^https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?$/.test(o)) {
      throw new TypeError(`not a web origin: ${o} (expected https://host[:port], or *)`);
    }
  }
  return origins;
}
