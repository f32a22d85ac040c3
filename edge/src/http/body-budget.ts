import { HttpError } from './errors.ts';

/** Most bytes of request bodies being read at once from one client address (four maximal transcripts). */
export const BODY_BYTES_PER_ADDRESS = 16 * 1024 * 1024;
/** Most bytes of request bodies being read at once, all addresses together. */
export const BODY_BYTES_IN_ALL = 512 * 1024 * 1024;
/** How long a request body may take to arrive, from when its reading starts. */
export const BODY_DEADLINE_MS = 30_000;

/**
 * The bytes of request bodies the relay is waiting for, per client address and in all. A body is read
 * whole before anything else is done with it (authentication needs all of it for a signed request), and
 * the routes that read one need no key: a client that sends headers and part of a body, then a byte now
 * and then, has the relay hold what came for as long as it likes. A body is counted at its declared
 * `Content-Length` (without one, at the route's limit) while it is read; past either bound a new one is
 * refused at once with 429 `RATE_LIMITED`, and a body not in after `deadlineMs` is a 408 `BODY_TIMEOUT`
 * (see readBody). An address leaves the map when its last body is in, so the map holds only addresses
 * with a body under way.
 */
export class BodyBudget {
  readonly #held = new Map<string, number>();
  readonly #perAddress: number;
  readonly #inAll: number;
  readonly deadlineMs: number;
  #total = 0;

  constructor(o: { perAddress?: number; inAll?: number; deadlineMs?: number } = {}) {
    this.#perAddress = o.perAddress ?? BODY_BYTES_PER_ADDRESS;
    this.#inAll = o.inAll ?? BODY_BYTES_IN_ALL;
    this.deadlineMs = o.deadlineMs ?? BODY_DEADLINE_MS;
    for (const v of [this.#perAddress, this.#inAll, this.deadlineMs]) {
      if (!(Number.isSafeInteger(v) && v > 0))
        throw new RangeError('body budget: bounds must be positive integers');
    }
  }

  /** Bytes of bodies being read now, in all. */
  get held(): number {
    return this.#total;
  }

  /**
   * Count `bytes` of a body from `address` until the function returned is called (calling it again does
   * nothing), or throw 429 RATE_LIMITED when that would pass the address's bound or the relay's.
   */
  take(address: string, bytes: number): () => void {
    const held = this.#held.get(address) ?? 0;
    const mine = held + bytes > this.#perAddress;
    if (mine || this.#total + bytes > this.#inAll) {
      throw new HttpError(
        429,
        'RATE_LIMITED',
        `too many request bodies under way ${mine ? 'from this address' : 'on this relay'}`,
        { bytes, held: mine ? held : this.#total, limit: mine ? this.#perAddress : this.#inAll },
        'send a body once its request can be sent whole; retry after Retry-After',
        { 'retry-after': '1' },
      );
    }
    this.#held.set(address, held + bytes);
    this.#total += bytes;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.#total -= bytes;
      const left = (this.#held.get(address) ?? bytes) - bytes;
      if (left <= 0) this.#held.delete(address);
      else this.#held.set(address, left);
    };
  }
}
