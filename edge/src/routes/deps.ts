import type { Context } from 'hono';
import type { EdgeConfig } from '../config.ts';
import type { Metrics } from '../metrics.ts';
import type { RateLimiter } from '../rate-limit.ts';
import type { RelayNetwork } from '../relay/network.ts';
import type { HistoryStore } from '../store/history-store.ts';

export interface EdgeDeps {
  store: HistoryStore;
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
}
