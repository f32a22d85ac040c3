import { type HeartbeatBody, sha256Hex, utf8 } from '@synod/shared';

/**
 * A node's heartbeat is written at most once in this long (relay clock) while what it advertises stays the
 * same (`advertisedKey`); nodes send one every 10 s. Shorter than the window in which a proven node counts as
 * online from its stored heartbeat (`ONLINE_WITHIN_MS`, 60 s) less a heartbeat period, so that a relay that
 * restarts, or another relay over the database, still finds it online; `last_seen` is that much coarser.
 */
export const HEARTBEAT_WRITE_INTERVAL_MS = 30_000;

/** Nodes whose last heartbeat write a relay remembers (`HeartbeatWrites`), the least recently heard out. */
export const HEARTBEAT_WRITES_REMEMBERED = 10_000;

/**
 * What a heartbeat advertises that the registry shows or a relay reads back (`/v1/nodes`, the seat policy
 * after a restart): role, software, models, embedders, addresses, and whether its queue is full (the seat
 * policy counts only nodes with room). Not its `createdAt`, nor how many jobs it has queued short of full.
 * A digest: a heartbeat may carry 64 model and embedder entries.
 */
export function advertisedKey(b: HeartbeatBody): string {
  const full = b.capacity.queued >= b.capacity.maxQueue;
  return sha256Hex(
    utf8(
      JSON.stringify([b.role, b.software, b.models, b.embedders, b.addresses, full, b.coordinators ?? null]),
    ),
  );
}

/**
 * What a relay remembers of the heartbeats it wrote, to write a node's at most once per
 * `HEARTBEAT_WRITE_INTERVAL_MS` unless what it advertises changed: when, and what it advertised, for at
 * most `max` nodes, the least recently heard forgotten first (a forgotten node's next heartbeat is
 * written).
 */
export class HeartbeatWrites {
  readonly #written = new Map<string, { advertised: string; at: number }>();

  constructor(
    readonly max = HEARTBEAT_WRITES_REMEMBERED,
    readonly intervalMs = HEARTBEAT_WRITE_INTERVAL_MS,
  ) {}

  get size(): number {
    return this.#written.size;
  }

  /** Whether a heartbeat of `nodeId` advertising `advertised`, heard at `now`, is to be written. */
  due(nodeId: string, advertised: string, now: number): boolean {
    const w = this.#written.get(nodeId);
    if (w === undefined) return true;
    this.#written.delete(nodeId);
    this.#written.set(nodeId, w);
    return w.advertised !== advertised || now - w.at >= this.intervalMs || now < w.at;
  }

  /** A heartbeat of `nodeId` written at `at`. */
  wrote(nodeId: string, advertised: string, at: number): void {
    this.#written.delete(nodeId);
    this.#written.set(nodeId, { advertised, at });
    while (this.#written.size > this.max) {
      const oldest = this.#written.keys().next().value;
      if (oldest === undefined) break;
      this.#written.delete(oldest);
    }
  }

  /** Its next heartbeat is written (its row went, or its write failed). */
  forget(nodeId: string): void {
    this.#written.delete(nodeId);
  }
}
