import { LIMITS, type LifecycleState, type Outgoing, unanswered } from '@synod/shared';
import type { Scheduler } from './scheduler.ts';

/**
 * When `SynodNode` publishes again what its machines published and still wait on (`unanswered`: a
 * coordinator's request, seal or verdict, a node's commit or reveal). Gossip sends a message once, and
 * a peer that was away when it went out (a relay killed and started again, a node whose connection
 * dropped) never gets it: a coordinator then seals without the commits it missed or counts the reveals
 * it missed NOT_REVEALED, and a member that missed the seal never reveals. A copy reaching a peer that
 * has it is dropped by its gossip layer as a duplicate.
 */
export interface ReannounceOptions {
  /**
   * On a schedule, for what is lost on the way: first this long after a packet is first found
   * unanswered, then at gaps that double up to `maxMs`. Default 3 s.
   */
  firstMs?: number;
  /** Default 30 s. */
  maxMs?: number;
  /** How often the machines are looked at. Default 1 s. */
  sweepMs?: number;
  /**
   * When a peer joins (`Transport.onPeerJoined`), everything unanswered is published again after this
   * long (for the peer's streams to open). Default 250 ms.
   */
  joinDelayMs?: number;
  /**
   * Such passes at least this far apart (from the end of one to the start of the next): a burst of joins
   * makes one. Passes for the same peers joining over and over (a peer unsubscribing and subscribing again
   * on purpose, a flapping link) come at gaps that double up to `maxJoinGapMs`; a quiet spell of twice the
   * gap sets it back, and so does a peer that no recent pass was for (a relay started again is not kept
   * waiting by another peer's flapping). Default 1 s.
   */
  joinGapMs?: number;
  /** Default 8 s. */
  maxJoinGapMs?: number;
  /**
   * Packets older than this (their signed `createdAt`) are not published again: peers refuse them as
   * stale. Default `LIMITS.defaultSkewMs`, the intake's clock window.
   */
  maxAgeMs?: number;
}

/**
 * Why a packet went out again: on the schedule, a peer joined, a machine was restored, or (a
 * coordinator's, `SynodNode`) in answer to a packet whose sender missed it (`lateAnswer`).
 */
export type ReannounceReason = 'schedule' | 'peer-joined' | 'restored' | 'late-packet';

export interface ReannouncerDeps {
  scheduler: Scheduler;
  /** The machines hosted now. */
  machines: () => Iterable<LifecycleState>;
  /** Publish `outgoing` again (signed by the machine's key); resolves with how many went out. */
  send: (state: LifecycleState, outgoing: Outgoing[], reason: ReannounceReason) => Promise<number>;
  /** A join pass is over: the peers it was for, and what it published. */
  onJoinPass?: (pass: { peers: string[]; packets: number }) => void;
}

interface Due {
  /** The ids unanswered when the entry was made; a new set starts the backoff again. */
  key: string;
  at: number;
  gap: number;
}

export class Reannouncer {
  readonly #deps: ReannouncerDeps;
  readonly #o: Required<ReannounceOptions>;
  readonly #due = new Map<string, Due>();
  #sweepCancel: (() => void) | null = null;
  #joinCancel: (() => void) | null = null;
  #joiners = new Set<string>();
  /** The peers recent passes were for, and when (kept for twice `maxJoinGapMs`). */
  readonly #served = new Map<string, number>();
  #passing = false;
  #lastPassEnd = Number.NEGATIVE_INFINITY;
  #joinGap: number;
  #stopped = false;

  constructor(deps: ReannouncerDeps, options: ReannounceOptions = {}) {
    this.#deps = deps;
    this.#o = {
      firstMs: options.firstMs ?? 3_000,
      maxMs: options.maxMs ?? 30_000,
      sweepMs: options.sweepMs ?? 1_000,
      joinDelayMs: options.joinDelayMs ?? 250,
      joinGapMs: options.joinGapMs ?? 1_000,
      maxJoinGapMs: options.maxJoinGapMs ?? 8_000,
      maxAgeMs: options.maxAgeMs ?? LIMITS.defaultSkewMs,
    };
    for (const [name, v] of Object.entries(this.#o)) {
      if (!Number.isFinite(v) || v < 0)
        throw new RangeError(`reannounce.${name} must be a finite number >= 0`);
    }
    if (this.#o.maxMs < this.#o.firstMs) throw new RangeError('reannounce.maxMs must be >= firstMs');
    if (this.#o.maxJoinGapMs < this.#o.joinGapMs) {
      throw new RangeError('reannounce.maxJoinGapMs must be >= joinGapMs');
    }
    this.#joinGap = this.#o.joinGapMs;
  }

  start(): void {
    if (this.#stopped || this.#sweepCancel !== null) return;
    const sweep = () => {
      if (this.#stopped) return;
      this.#sweep();
      this.#sweepCancel = this.#deps.scheduler.after(this.#o.sweepMs, sweep);
    };
    this.#sweepCancel = this.#deps.scheduler.after(this.#o.sweepMs, sweep);
  }

  stop(): void {
    this.#stopped = true;
    this.#sweepCancel?.();
    this.#joinCancel?.();
    this.#due.clear();
  }

  /**
   * A peer started listening: one pass over every machine, `joinDelayMs` from now, or a gap after the
   * last pass ended (see `joinGapMs`); never two passes at once.
   */
  peerJoined(peer: string): void {
    if (this.#stopped) return;
    this.#joiners.add(peer);
    this.#schedulePass();
  }

  #schedulePass(): void {
    if (this.#joinCancel !== null || this.#passing || this.#joiners.size === 0) return;
    const now = this.#deps.scheduler.now();
    for (const [peer, at] of this.#served)
      if (now - at >= 2 * this.#o.maxJoinGapMs) this.#served.delete(peer);
    const again = [...this.#joiners].every((peer) => this.#served.has(peer));
    this.#joinGap =
      again && now - this.#lastPassEnd < 2 * this.#joinGap
        ? Math.min(this.#joinGap * 2, this.#o.maxJoinGapMs)
        : this.#o.joinGapMs;
    const at = Math.max(now + this.#o.joinDelayMs, this.#lastPassEnd + this.#joinGap);
    this.#joinCancel = this.#deps.scheduler.after(at - now, () => {
      this.#joinCancel = null;
      if (this.#stopped) return;
      const peers = [...this.#joiners];
      this.#joiners.clear();
      const at = this.#deps.scheduler.now();
      for (const peer of peers) {
        this.#served.delete(peer);
        this.#served.set(peer, at);
      }
      this.#passing = true;
      // Never rejects: `send` reports its own failures.
      void this.#pass(peers).finally(() => {
        this.#passing = false;
        this.#lastPassEnd = this.#deps.scheduler.now();
        if (!this.#stopped) this.#schedulePass();
      });
    });
  }

  /** A machine restored after a restart: what it waits on may have been missed; published at once. */
  restored(state: LifecycleState): void {
    if (this.#stopped) return;
    const out = this.#unanswered(state);
    if (out.length === 0) return;
    this.#mark(state.requestId, out);
    void this.#deps.send(state, out, 'restored');
  }

  async #pass(peers: string[]): Promise<void> {
    let packets = 0;
    const sends: Promise<number>[] = [];
    for (const state of this.#deps.machines()) {
      const out = this.#unanswered(state);
      if (out.length === 0) continue;
      this.#mark(state.requestId, out);
      sends.push(this.#deps.send(state, out, 'peer-joined'));
    }
    for (const n of await Promise.all(sends)) packets += n;
    this.#deps.onJoinPass?.({ peers, packets });
  }

  /** What `state` waits on, less what peers would refuse as stale. */
  #unanswered(state: LifecycleState): Outgoing[] {
    const oldest = this.#deps.scheduler.now() - this.#o.maxAgeMs;
    return unanswered(state).filter((o) => o.body.createdAt > oldest);
  }

  /** Sent now: the next scheduled one is a gap from now (the gap itself unchanged). */
  #mark(requestId: string, out: Outgoing[]): void {
    const key = keyOf(out);
    const now = this.#deps.scheduler.now();
    const due = this.#due.get(requestId);
    if (due === undefined || due.key !== key)
      this.#due.set(requestId, { key, at: now, gap: this.#o.firstMs });
    else due.at = now;
  }

  #sweep(): void {
    const now = this.#deps.scheduler.now();
    const open = new Set<string>();
    for (const state of this.#deps.machines()) {
      const out = this.#unanswered(state);
      if (out.length === 0) continue;
      open.add(state.requestId);
      const key = keyOf(out);
      const due = this.#due.get(state.requestId);
      if (due === undefined || due.key !== key) {
        this.#due.set(state.requestId, { key, at: now, gap: this.#o.firstMs });
        continue;
      }
      if (now < due.at + due.gap) continue;
      due.at = now;
      due.gap = Math.min(due.gap * 2, this.#o.maxMs);
      void this.#deps.send(state, out, 'schedule');
    }
    for (const requestId of this.#due.keys()) if (!open.has(requestId)) this.#due.delete(requestId);
  }
}

function keyOf(out: readonly Outgoing[]): string {
  return out.map((o) => o.id).join(',');
}
