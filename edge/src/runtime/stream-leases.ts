import { StreamSlots } from '../http/stream-slots.ts';

/**
 * How long an event stream's slot is kept without its loop coming round. The loop waits a second between
 * two reads of the history, so only a stream that stopped running goes this long without one.
 */
export const STREAM_LEASE_MS = 10_000;

interface Lease {
  release: () => void;
  expiresAt: number;
}

/**
 * The event-stream slots of a workerd isolate (see StreamSlots for the bounds). Under Bun a stream whose
 * client left is aborted, and its loop gives its slot back. workerd instead drops the I/O of a request
 * whose client left: the stream's loop stops where it waits and never reaches the code that gives the
 * slot back, so the isolate would refuse that address every new stream (429) until the isolate ends.
 * Here a slot is a lease: the request holding it renews it each time its loop waits for its next read
 * (`RequestStreamSlots.renew`, called by the request's `sleep`), and a lease not renewed for `leaseMs`
 * is given back at the next `take`. A lease that lapsed stays given back; its stream's own release then
 * changes nothing. A stream held up longer than `leaseMs` while it runs (a write its client does not
 * read, a database read that slow) loses its lease the same way, and its address may then hold one
 * stream more than its bound until that one ends: the price of not counting dead streams for good.
 */
export class StreamLeases {
  readonly #slots: StreamSlots;
  readonly #leases = new Set<Lease>();
  readonly #now: () => number;
  readonly #leaseMs: number;

  constructor(o: { now: () => number; leaseMs?: number; slots?: StreamSlots }) {
    this.#now = o.now;
    this.#leaseMs = o.leaseMs ?? STREAM_LEASE_MS;
    this.#slots = o.slots ?? new StreamSlots();
    if (!(Number.isSafeInteger(this.#leaseMs) && this.#leaseMs > 0)) {
      throw new RangeError('stream leases: leaseMs must be a positive integer');
    }
  }

  /** Streams whose lease is current, in all (lapsed leases are counted until the next `take`). */
  get open(): number {
    return this.#slots.open;
  }

  /** The slots one HTTP request's app sees: what it takes is a lease that request renews. */
  forRequest(): RequestStreamSlots {
    return new RequestStreamSlots(this);
  }

  /** Take a lease on a slot for `address` (429 RATE_LIMITED past the bounds), after giving back lapsed ones. */
  take(address: string): Lease {
    const now = this.#now();
    for (const lease of this.#leases) {
      if (lease.expiresAt <= now) lease.release();
    }
    const give = this.#slots.take(address);
    const lease: Lease = {
      expiresAt: now + this.#leaseMs,
      release: () => {
        this.#leases.delete(lease);
        give();
      },
    };
    this.#leases.add(lease);
    return lease;
  }

  /** Keep `lease` for another `leaseMs`, unless it lapsed already. */
  renew(lease: Lease): void {
    if (this.#leases.has(lease)) lease.expiresAt = this.#now() + this.#leaseMs;
  }
}

/**
 * One request's view of the isolate's `StreamLeases`, in the shape the app takes (`StreamSlots`). A
 * request opens at most one event stream; `renew` keeps its slot.
 */
export class RequestStreamSlots extends StreamSlots {
  readonly #leases: StreamLeases;
  #held: Lease | undefined;

  constructor(leases: StreamLeases) {
    super(1, 1);
    this.#leases = leases;
  }

  override get open(): number {
    return this.#leases.open;
  }

  override take(address: string): () => void {
    const lease = this.#leases.take(address);
    this.#held = lease;
    return () => {
      if (this.#held === lease) this.#held = undefined;
      lease.release();
    };
  }

  /** The request's stream is still running: keep its slot. */
  renew(): void {
    if (this.#held) this.#leases.renew(this.#held);
  }
}
