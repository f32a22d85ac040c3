import type { AnyPacket } from '@synod/shared';
import { LogSpells } from '../log-spells.ts';

/** Delays between the retries of the history writes that failed, the last repeated while they fail. */
export const HISTORY_RETRY_MS: readonly number[] = [250, 1_000, 4_000, 15_000, 30_000];
/** Most packets waiting to be written again; past it the newest is dropped (counted, logged once). */
export const HISTORY_RETRY_MAX = 4_096;

export interface HistoryWriterOptions {
  /** Write one packet into the history (idempotent); true when the request's stored view changed. */
  record: (id: string, packet: AnyPacket) => Promise<boolean>;
  /** Told after a packet was written. */
  stored?: (packet: AnyPacket, changed: boolean) => void;
  log: (entry: Record<string, unknown>) => void;
  now: () => number;
  retryMs?: readonly number[];
  maxPending?: number;
}

/**
 * The relay's writes of what its node sees into the quorum history, kept going through a store outage.
 * A write that fails is tried again, in order, until it is stored: the packets of a request (commits,
 * seal, reveals, verdict, attestations) are not heard again, and a verdict lost to an outage left its
 * request `sealed` until another relay expired it `COORDINATOR_GONE`. While packets wait, new ones queue
 * behind them (a verdict is written after its seal). Heartbeats are not retried: the next one comes in
 * seconds. A spell of failures is logged once (`history write failed`, again every 5 minutes while it
 * lasts), and once when writes work again, not once a packet (a full disk logged thousands of lines).
 */
export class HistoryWriter {
  readonly #o: Required<Omit<HistoryWriterOptions, 'stored'>> & Pick<HistoryWriterOptions, 'stored'>;
  readonly #pending: { id: string; packet: AnyPacket }[] = [];
  readonly #spells: LogSpells;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #draining = false;
  #closed = false;
  #retried = 0;
  #dropped = 0;

  constructor(o: HistoryWriterOptions) {
    this.#o = { retryMs: HISTORY_RETRY_MS, maxPending: HISTORY_RETRY_MAX, ...o };
    this.#spells = new LogSpells(o.now);
  }

  /** Packets waiting to be written again. */
  get pending(): number {
    return this.#pending.length;
  }

  /** Write `packet` now, or queue it behind those waiting; never throws. */
  async write(id: string, packet: AnyPacket): Promise<void> {
    if (this.#closed) return;
    if (this.#pending.length > 0) {
      if (packet.type !== 'heartbeat') this.#enqueue(id, packet);
      return;
    }
    try {
      // Written first: an optional call's arguments are not evaluated when there is nothing to call.
      const changed = await this.#o.record(id, packet);
      this.#o.stored?.(packet, changed);
      // A heartbeat not due yet was skipped, the database untouched: it says nothing of whether writes
      // work again (said while the database was still down, between two failures).
      if (packet.type !== 'heartbeat' || changed) this.#worked();
    } catch (e) {
      this.#failed(packet, e);
      if (packet.type !== 'heartbeat') {
        this.#enqueue(id, packet);
        this.#schedule();
      }
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #enqueue(id: string, packet: AnyPacket): void {
    if (this.#pending.length >= this.#o.maxPending) {
      this.#dropped++;
      if (this.#dropped === 1) {
        this.#o.log({
          level: 'error',
          msg: 'history writes waiting: too many, the newest dropped',
          code: 'HISTORY_RETRY_FULL',
          waiting: this.#pending.length,
        });
      }
      return;
    }
    this.#pending.push({ id, packet });
  }

  #schedule(): void {
    if (this.#closed || this.#timer !== undefined || this.#draining) return;
    const delays = this.#o.retryMs;
    const ms = delays[Math.min(this.#attempt, delays.length - 1)] ?? 1_000;
    this.#attempt++;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#drain();
    }, ms);
  }

  /** Write the waiting packets in order; at the first failure, wait for the next retry. */
  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (!this.#closed && this.#pending.length > 0) {
        const next = this.#pending[0] as { id: string; packet: AnyPacket };
        try {
          const changed = await this.#o.record(next.id, next.packet);
          this.#o.stored?.(next.packet, changed);
        } catch (e) {
          this.#failed(next.packet, e);
          return;
        }
        this.#pending.shift();
        this.#retried++;
      }
      this.#worked();
    } finally {
      this.#draining = false;
      if (this.#pending.length > 0) this.#schedule();
    }
  }

  #failed(packet: AnyPacket, e: unknown): void {
    const spell = this.#spells.failed('history');
    if (!spell.log) return;
    this.#o.log({
      level: 'error',
      msg: 'history write failed',
      type: packet.type,
      err: String(e).slice(0, 500),
      waiting: this.#pending.length,
      ...(spell.failures > 1 ? { failedForMs: spell.sinceMs, failures: spell.failures } : {}),
      hint:
        packet.type === 'heartbeat'
          ? "not kept (the node's next heartbeat comes in seconds); packets of requests are kept and written again, in order, once the database takes writes"
          : 'kept and written again, in order, once the database takes writes',
    });
  }

  #worked(): void {
    if (this.#pending.length > 0) return;
    this.#attempt = 0;
    const ended = this.#spells.ended('history');
    if (ended === null) return;
    this.#o.log({
      level: 'info',
      msg: 'history writes work again',
      failedForMs: ended.forMs,
      failures: ended.failures,
      written: this.#retried,
      ...(this.#dropped > 0 ? { dropped: this.#dropped } : {}),
    });
    this.#retried = 0;
    this.#dropped = 0;
  }
}
