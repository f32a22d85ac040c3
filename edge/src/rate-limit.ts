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

  /**
   * Take `cost` tokens (one by default; a request that makes the relay work more costs more, capped at
   * the burst so that it can pass from a full bucket); returns 0 when allowed, else the ms to wait
   * before a retry. A refused take spends nothing.
   */
  take(caller: string, cost = 1): number {
    if (!(Number.isInteger(cost) && cost >= 1)) {
      throw new RangeError(`a rate-limit cost is a whole number of tokens, 1 or more, not ${cost}`);
    }
    const need = Math.min(cost, this.config.burst);
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
    if (b.tokens >= need) {
      b.tokens -= need;
      return 0;
    }
    return Math.ceil(((need - b.tokens) / this.config.ratePerSecond) * 1000);
  }
}
