import type { RateLimiter } from '../rate-limit.ts';
import { rateLimitedError } from './errors.ts';

/** Characters of an answer that cost one token of the client address's bucket. */
export const READ_CHARS_PER_TOKEN = 128 * 1024;
/** Most answers whose cost is remembered (the heaviest are the ones that matter; light ones are not kept). */
const REMEMBERED = 4_096;

/** Tokens an answer of `chars` characters costs: none below 128 Ki, one more per 128 Ki. */
export function readTokens(chars: number): number {
  return Math.floor(chars / READ_CHARS_PER_TOKEN);
}

/**
 * Reads whose answer can be megabytes for a GET of a few bytes (a request's view and transcript, which
 * carry reveals from anyone on the network), charged to the client address's bucket by their size: the
 * reads every poller makes, below 128 Ki characters, cost nothing here. An answer's cost is known once it
 * is built, so it is remembered by key (a request id) and charged up front the next time, before the
 * database is read: a client cannot have the relay build a heavy answer again and again only to be
 * refused each time.
 */
export class HeavyReads {
  readonly #known = new Map<string, number>();
  readonly #limiter: RateLimiter;

  constructor(limiter: RateLimiter) {
    this.#limiter = limiter;
  }

  /**
   * Before the work: charge `bucket()` what `key` cost last time (nothing when it was light or is not
   * known). Returns the tokens charged; throws 429 RATE_LIMITED when the bucket does not hold them.
   */
  before(bucket: () => string, key: string): number {
    const tokens = this.#known.get(key) ?? 0;
    if (tokens > 0) this.#take(bucket(), tokens);
    return tokens;
  }

  /**
   * After the work: remember what `key` costs (`tokens`), and charge what it costs beyond the `charged`
   * tokens of `before` (429 RATE_LIMITED, the answer withheld, when the bucket does not hold them).
   */
  after(bucket: () => string, key: string, tokens: number, charged: number): void {
    this.#known.delete(key);
    if (tokens > 0) {
      if (this.#known.size >= REMEMBERED) {
        const oldest = this.#known.keys().next().value;
        if (oldest !== undefined) this.#known.delete(oldest);
      }
      this.#known.set(key, tokens);
    }
    if (tokens > charged) this.#take(bucket(), tokens - charged);
  }

  #take(bucket: string, tokens: number): void {
    const wait = this.#limiter.take(bucket, tokens);
    if (wait > 0) throw rateLimitedError(wait);
  }
}
