import { type AnyPacket, LIMITS } from '@synod/shared';

/** Most packets held for one request not seen yet. */
export const EARLY_PER_REQUEST = 64;
/** Most requests not seen yet whose packets are held. */
export const EARLY_REQUESTS = 256;
/**
 * Bytes of packets held for requests not seen yet, in all (each up to 256 KiB, so the counts alone
 * allowed about 4 GiB); past it the oldest request's packets go first.
 */
export const EARLY_BYTES = 16 * 1024 * 1024;

/**
 * Packets of requests a node has not seen yet (a commit or seal that outran its request through the
 * network), held to be replayed when the request comes: at most `EARLY_PER_REQUEST` for `EARLY_REQUESTS`
 * requests and `EARLY_BYTES` in all, none older than the skew window (its request would be refused as
 * stale by then), the oldest request's going first.
 */
export class EarlyPackets {
  readonly #held = new Map<string, { at: number; bytes: number; packets: AnyPacket[] }>();
  #bytes = 0;

  constructor(
    private readonly limits = { perRequest: EARLY_PER_REQUEST, requests: EARLY_REQUESTS, bytes: EARLY_BYTES },
  ) {}

  /** How many requests' packets are held, and their bytes (`NodeMetrics.early`). */
  sizes(): { requests: number; bytes: number } {
    return { requests: this.#held.size, bytes: this.#bytes };
  }

  /** Hold `packet` (of `size` bytes) of `requestId`, at `now`, within the bounds above. */
  hold(requestId: string, packet: AnyPacket, size: number, now: number): void {
    for (const [id, old] of this.#held) {
      if (old.at > now - LIMITS.defaultSkewMs) break;
      this.#drop(id);
    }
    let e = this.#held.get(requestId);
    if (!e) {
      if (this.#held.size >= this.limits.requests) this.#dropOldest();
      e = { at: now, bytes: 0, packets: [] };
      this.#held.set(requestId, e);
    }
    if (e.packets.length >= this.limits.perRequest || size > this.limits.bytes) return;
    while (this.#bytes + size > this.limits.bytes && this.#held.size > 0) {
      if (this.#held.keys().next().value === requestId && this.#held.size === 1) break;
      this.#dropOldest(requestId);
    }
    if (this.#bytes + size > this.limits.bytes) return;
    e.packets.push(packet);
    e.bytes += size;
    this.#bytes += size;
  }

  /** The packets held for `requestId`, in the order they came, no longer held. */
  take(requestId: string): AnyPacket[] {
    const e = this.#held.get(requestId);
    if (!e) return [];
    this.#drop(requestId);
    return e.packets;
  }

  /** Drop the oldest request's held packets (other than `keep`'s). */
  #dropOldest(keep?: string): void {
    for (const id of this.#held.keys()) {
      if (id === keep) continue;
      this.#drop(id);
      return;
    }
  }

  #drop(requestId: string): void {
    const e = this.#held.get(requestId);
    if (!e) return;
    this.#bytes -= e.bytes;
    this.#held.delete(requestId);
  }
}
