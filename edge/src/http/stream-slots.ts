import { HttpError } from './errors.ts';

/** Most event streams one client address may hold open at once. */
export const STREAMS_PER_ADDRESS = 32;
/** Most event streams the relay holds open at once, all addresses together. */
export const STREAMS_IN_ALL = 4_096;
/** What a refused client is told to wait before it tries again (seconds). */
const RETRY_AFTER_S = 5;

/**
 * Open server-sent event streams (`GET /v1/inference/:id/events`), counted per client address and in
 * all. Each open stream reads the history about once a second for up to 15 minutes, and opening one
 * needs no key: without a bound, one client holding thousands open would have the relay read its
 * database thousands of times a second. Past either bound a new stream is refused with 429
 * `RATE_LIMITED` and `Retry-After` (the streams already open go on). An address's count leaves the map
 * when its last stream closes, so the map holds at most `inAll` addresses.
 */
export class StreamSlots {
  readonly #open = new Map<string, number>();
  readonly #perAddress: number;
  readonly #inAll: number;
  #total = 0;

  constructor(perAddress = STREAMS_PER_ADDRESS, inAll = STREAMS_IN_ALL) {
    if (!(Number.isInteger(perAddress) && perAddress > 0 && Number.isInteger(inAll) && inAll > 0)) {
      throw new RangeError('stream slots: the bounds must be positive integers');
    }
    this.#perAddress = perAddress;
    this.#inAll = inAll;
  }

  /** Streams open now, in all. */
  get open(): number {
    return this.#total;
  }

  /**
   * Take a slot for a stream from `address`, or throw 429 RATE_LIMITED. The function returned gives it
   * back; calling it again does nothing.
   */
  take(address: string): () => void {
    const held = this.#open.get(address) ?? 0;
    if (held >= this.#perAddress || this.#total >= this.#inAll) {
      const reason = held >= this.#perAddress ? 'from this address' : 'on this relay';
      throw new HttpError(
        429,
        'RATE_LIMITED',
        `too many event streams open ${reason}`,
        { open: held, limit: held >= this.#perAddress ? this.#perAddress : this.#inAll },
        'close a stream you no longer read, or poll GET /v1/inference/:id',
        { 'retry-after': String(RETRY_AFTER_S) },
      );
    }
    this.#open.set(address, held + 1);
    this.#total++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.#total--;
      const left = (this.#open.get(address) ?? 1) - 1;
      if (left <= 0) this.#open.delete(address);
      else this.#open.set(address, left);
    };
  }
}
