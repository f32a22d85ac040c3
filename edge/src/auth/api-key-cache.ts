/** A live API key as the edge needs it. */
export interface KnownKey {
  id: string;
  quotaPerDay: number;
  revoked: boolean;
}

export interface ApiKeyCacheOptions {
  /** How long a looked-up key is reused. Default 5 s: a revocation takes at most this long to bite. */
  ttlMs?: number;
  /** Most keys held; the least recently used go first. Default 10,000. */
  maxEntries?: number;
  now: () => number;
}

/**
 * API keys by hash, in front of `api_keys`: the accept path should not read the database for every
 * request of the same caller. Only found keys are cached (an unknown key is looked up each time, so a
 * key created a moment ago works at once); a key revoked elsewhere keeps working here for at most
 * `ttlMs`, and its daily quota, which lives in libSQL, is never exceeded meanwhile.
 */
export class ApiKeyCache {
  readonly #entries = new Map<string, { key: KnownKey; at: number }>();
  /** Loads under way, by hash (at most one per key; each gone when it settles). */
  readonly #loading = new Map<string, Promise<KnownKey | null>>();
  readonly #ttl: number;
  readonly #max: number;
  readonly #now: () => number;

  constructor(o: ApiKeyCacheOptions) {
    this.#ttl = o.ttlMs ?? 5_000;
    this.#max = o.maxEntries ?? 10_000;
    this.#now = o.now;
  }

  async get(hash: string, load: (hash: string) => Promise<KnownKey | null>): Promise<KnownKey | null> {
    const t = this.#now();
    const hit = this.#entries.get(hash);
    // A negative age is a clock set back: the entry is as old as it can be, not young until then.
    if (hit && t >= hit.at && t - hit.at < this.#ttl) {
      // Refresh its recency (a Map iterates in insertion order).
      this.#entries.delete(hash);
      this.#entries.set(hash, hit);
      return hit.key;
    }
    // Requests that miss together wait for one load: a busy key whose entry just expired would otherwise
    // be read from the database once per request in flight (and spend as many of its address's lookups).
    const pending = this.#loading.get(hash);
    if (pending) return pending;
    const loading = this.#load(hash, load, t).finally(() => this.#loading.delete(hash));
    this.#loading.set(hash, loading);
    return loading;
  }

  async #load(
    hash: string,
    load: (hash: string) => Promise<KnownKey | null>,
    t: number,
  ): Promise<KnownKey | null> {
    const key = await load(hash);
    this.#entries.delete(hash);
    if (key && this.#ttl > 0) {
      if (this.#entries.size >= this.#max) {
        const oldest = this.#entries.keys().next().value;
        if (oldest !== undefined) this.#entries.delete(oldest);
      }
      this.#entries.set(hash, { key, at: t });
    }
    return key;
  }

  /** Forget a key at once (after revoking it through this relay). */
  forget(hash: string): void {
    this.#entries.delete(hash);
  }
}
