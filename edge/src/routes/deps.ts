import type { Context } from 'hono';
import type { ApiKeyCache } from '../auth/api-key-cache.ts';
import type { EdgeConfig } from '../config.ts';
import type { AdmissionHealth } from '../http/admission-health.ts';
import type { BodyBudget } from '../http/body-budget.ts';
import type { PrimaryHealthCheck } from '../http/store-unavailable.ts';
import type { StreamSlots } from '../http/stream-slots.ts';
import type { LogSpells } from '../log-spells.ts';
import type { Metrics } from '../metrics.ts';
import type { RateLimiter } from '../rate-limit.ts';
import type { Admitter, RelayNetwork } from '../relay/network.ts';
import type { HistoryStore } from '../store/history-store.ts';
import type { IntakeStore } from '../store/intake-store.ts';
import type { SchemaState } from '../store/schema-watch.ts';

export interface EdgeDeps {
  store: HistoryStore;
  /** The admission log (queued requests), in the same database as `store`. */
  intake: IntakeStore;
  /** Durable admission of new requests (group commit under Bun). */
  admitter: Admitter;
  /** API keys by hash, cached in front of `store`. */
  apiKeys: ApiKeyCache;
  network: RelayNetwork;
  config: EdgeConfig;
  now: () => number;
  random: (n: number) => Uint8Array;
  metrics: Metrics;
  limiter: RateLimiter;
  /** The client's address, for rate limits of unauthenticated routes (runtime adapters provide it). */
  clientAddress: (c: Context) => string;
  /** Wait `ms` (a runtime timer); used by long polls. */
  sleep: (ms: number) => Promise<void>;
  /** The accept path's group commit, for /metrics (under Bun; the worker has none). */
  admissionStats?: () => AdmissionStats;
  /** How the latest admission went, for /healthz (createApp makes one when none is given). */
  admissionHealth?: AdmissionHealth;
  /** On an embedded replica, whether its primary answers (for /healthz: reads alone would not notice). */
  primaryHealth?: PrimaryHealthCheck;
  /**
   * Where the database's schema stands against this relay's code (under Bun: `SchemaWatch`), for
   * /healthz's warning and /metrics: migrations a newer relay applied.
   */
  schema?: () => SchemaState;
  /**
   * Why the relay's embedder could not be loaded (its node then takes reveals with the bits they claim),
   * for /healthz's warning REEMBED_UNAVAILABLE; absent when it re-embeds or was not asked to.
   */
  reembedUnavailable?: string;
  /** While the relay's latest re-embedding failed: since when and why (/healthz's REEMBED_FAILING). */
  reembedFailing?: () => { since: number; error: string } | null;
  /** The embedder's worker is dead and being started again (`RestartingEmbedder.down`), else null. */
  reembedDown?: () => { since: number; error: string; attempts: number } | null;
  /** Event streams open, per client address (createApp makes one when none is given). */
  streams?: StreamSlots;
  /** Bytes of request bodies being read, per client address (createApp makes one when none is given). */
  bodies?: BodyBudget;
  /** The server-side failures logged, by code and route (`logServerError`: one line a minute each). */
  serverErrors?: LogSpells;
}

/** Running totals of the accept path's group commit since the relay started. */
export interface AdmissionStats {
  /** Batches handed to the writer (each joins a transaction), and the admissions in them. */
  batches: number;
  admissions: number;
  /** Admission writer threads started anew after one died or hung (WRITER_EXITED, WRITER_TIMEOUT). */
  writerRestarts: number;
}
