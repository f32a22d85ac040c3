/**
 * Token-bucket rate limiting per caller (API key id, signer node id or client address), in memory, per
 * relay instance. Daily quotas are durable and live in libSQL (see store); this only smooths bursts.
 * The clock is injected.
 */
export interface RateLimitConfig {
  /** Sustained requests per second. */
  ratePerSecond: number;
  /** Bucket size: the burst allowed on top of the rate. */
  burst: number;
  /** Most callers tracked at once; the least recently seen are forgotten first. */
  maxCallers?: number;
}

export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #max: number;

  constructor(
    private readonly config: RateLimitConfig,
    private readonly now: () => number,
  ) {
    this.#max = config.maxCallers ?? 10_000;
  }

  /** Take one token; returns 0 when allowed, else the ms to wait before a retry. */
  take(caller: string): number {
    const t = this.now();
    let b = this.#buckets.get(caller);
    if (b) {
      this.#buckets.delete(caller);
      // A clock set back refills nothing (and takes nothing away) for the time it went back.
      const elapsed = Math.max(0, t - b.at);
      b.tokens = Math.min(this.config.burst, b.tokens + (elapsed / 1000) * this.config.ratePerSecond);
      b.at = t;
    } else {
      b = { tokens: this.config.burst, at: t };
      if (this.#buckets.size >= this.#max) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
    }
    this.#buckets.set(caller, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / this.config.ratePerSecond) * 1000);
  }
}
