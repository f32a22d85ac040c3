import { FRAME_DEFAULTS, type NodeKey, packetId, type RequestBody, signPacket } from '@synod/shared';
import { LogSpells } from '../log-spells.ts';
import type { HistoryStore, Stored } from '../store/history-store.ts';
import { type IntakeStore, intakeDeadline, type QueuedRequest } from '../store/intake-store.ts';

/** What the dispatcher needs of the relay's node: start coordinating a request. */
export interface Coordinator {
  submit(body: RequestBody): Promise<unknown>;
}

export interface DispatcherOptions {
  intake: IntakeStore;
  store: HistoryStore;
  node: Coordinator;
  /** The coordinator's key: it signs each request as it leaves the admission log. */
  key: NodeKey;
  now: () => number;
  /** Most requests this relay coordinates at once. Default 256. */
  maxOpen?: number;
  /**
   * Most requests the network can take at once now, or undefined when it is not known: the window is the
   * smaller of this and `maxOpen`. A relay computes it from its nodes' heartbeats (`networkWindow`): 100
   * requests started at once on 3 nodes that queue 64 jobs each had 30 of them expire unheard, each node
   * skipping what its queue could not hold, while waiting here they would have started as others ended.
   */
  networkWindow?: () => number | undefined;
  /** How often the admission log is polled without a wake-up (rows written by other relays). Default 1 s. */
  pollMs?: number;
  /**
   * Most requests that may wait in the admission log for this coordinator before new HTTP requests are
   * refused (`queue()`, 503 QUEUE_FULL). Default `Infinity`: no bound, and the log is never counted.
   */
  maxQueued?: number;
  /**
   * Whether the network can take a request now (the relay's node has a peer). While it cannot, nothing
   * is started: a request published into a network of no one is never heard (gossip keeps nothing for
   * peers that join later), and it would only expire. Queued requests wait, and those past their deadline
   * still leave the log as `expired`. Default: always.
   */
  ready?: () => boolean;
  /**
   * How long past its deadline a row of ANOTHER coordinator waits before this relay takes it for
   * abandoned (`expireAbandoned`). Default `ABANDONED_QUEUE_GRACE_MS`.
   */
  abandonGraceMs?: number;
  /**
   * How often this coordinator renews its lease on its rows (on a timer of its own, never queued behind
   * the sweeps), and, separately, takes over the rows of coordinators whose lease went stale
   * (`takeOverStale`) and sweeps the log for abandoned rows. Default `LEASE_RENEW_MS`.
   */
  leaseRenewMs?: number;
  /**
   * A lease not renewed for this long, by the database's clock (leases are renewed on it: no relay's
   * clock counts), is stale: its rows are taken over. Default `LEASE_STALE_MS`.
   */
  leaseStaleMs?: number;
  /** Told after a request moved into the history (its stored view changed). */
  changed?: (requestId: string) => void;
  log?: (entry: Record<string, unknown>) => void;
}

/**
 * The window a network of nodes that queue `queues` jobs each can take, at the default quorum: each
 * request takes a job at `FRAME_DEFAULTS.quorum` different nodes, so k requests fit when the nodes can hold
 * them, each node at most one job of each: Σ min(queue, k) ≥ quorum · k. The largest such k (not the
 * total over the quorum, which counts jobs of one request twice at a node with a long queue: one node of
 * queue 1 beside two of 64 takes 1 request at quorum 3, not 43). A network of fewer nodes than the quorum
 * is reckoned at a quorum of all of them (the relay refuses larger ones: QUORUM_UNAVAILABLE), not as taking
 * one request at a time. Undefined when no node says its queue.
 */
export function networkWindow(
  queues: readonly number[],
  defaultQuorum: number = FRAME_DEFAULTS.quorum,
): number | undefined {
  const held = queues.map((q) => Math.max(0, q)).filter((q) => q > 0);
  const total = held.reduce((sum, q) => sum + q, 0);
  if (total <= 0) return undefined;
  const quorum = Math.min(defaultQuorum, held.length);
  const fits = (k: number) => held.reduce((sum, q) => sum + Math.min(q, k), 0) >= quorum * k;
  // What fits is 0..K (Σ min(q, k) - quorum · k is concave and 0 at 0): the largest k, by halving.
  let lo = 0;
  let hi = Math.floor(total / quorum);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Requests a relay coordinates at once by default (`maxOpen`). */
export const DEFAULT_MAX_OPEN = 256;

/**
 * The relay's default bound on requests waiting in its admission log: four dispatch windows (`maxOpen`
 * 256). Past it new HTTP requests get 503 QUEUE_FULL instead of a 202 for a request that would expire
 * in the queue (its deadline is its frame's `maxTimeMs`, 30 s by default).
 */
export const DEFAULT_MAX_QUEUED = 1_024;

/** A bound on waiting requests must be positive (`Infinity` for none); a RangeError otherwise. */
export function checkMaxQueued(maxQueued: number): void {
  if (!(maxQueued > 0)) throw new RangeError('maxQueued must be positive (Infinity for no bound)');
}

/** How many requests wait in a coordinator's admission log, as last known, against its bound. */
export interface AdmissionQueue {
  queued: number;
  limit: number;
}

export interface DispatcherStats {
  open: number;
  /** Most requests coordinated at once, as configured. */
  maxOpen: number;
  /** The window now: `maxOpen`, or less while the network can take fewer (see `networkWindow`). */
  window: number;
  dispatched: number;
  expired: number;
  dropped: number;
  errors: number;
}

/**
 * How long past its deadline a queued row of another coordinator is left to it: its own dispatcher moves
 * it out at the deadline (it polls each second), so one still there this long after belongs to a
 * coordinator that is gone (or whose database writes have failed for as long). Five minutes, so that a
 * relay whose clock runs ahead of the coordinator's by less than that never takes a row it could still
 * have served (nodes refuse requests more than `LIMITS.defaultSkewMs`, 2 minutes, off their clock).
 */
export const ABANDONED_QUEUE_GRACE_MS = 5 * 60_000;

/** How often a coordinator renews its lease on its admission-log rows (and looks for stale ones). */
export const LEASE_RENEW_MS = 5_000;

/**
 * A coordinator whose lease was not renewed for this long (three renewals missed) is taken for gone: its
 * queued rows are taken over by the next relay over the database that can start them.
 */
export const LEASE_STALE_MS = 15_000;

/**
 * How long after its seal and reveal windows an open request of a coordinator whose lease went stale is
 * expired (`HistoryStore.expireOrphaned`): the minute after its reveal window in which a live
 * coordinator's own watchdog would have ended it.
 */
export const ORPHANED_AFTER_WINDOWS_MS = 60_000;

/** Rows read from the admission log per step. */
const STEP = 64;

/**
 * Most batches (`STEP` rows of each other coordinator) `expireAbandoned` moves per sweep round: a long
 * backlog is worked through over several rounds rather than holding one round for its whole length.
 */
export const ABANDONED_BATCHES_PER_ROUND = 8;

/**
 * Moves requests from the admission log (`request_intake`) to the network, oldest first, at the pace
 * the network takes them: at most `maxOpen` coordinated at once, the next one starting when one
 * finishes (`release`). For each request it signs the packet, moves the row into `requests` (one
 * transaction per step) and starts the node's coordinator machine. A request still queued when it
 * could no longer be sealed (`deadline`: `createdAt + maxTimeMs`, capped by the clock-skew window
 * nodes accept) moves to the history as `expired` with `QUEUE_TIMEOUT` instead, without taking a slot.
 *
 * Crash safety: the admission row is deleted in the transaction that inserts the request row, and a
 * request row whose coordinator machine was never saved is resumed by `InProcessRelayNetwork.recover`.
 */
export class Dispatcher {
  readonly #o: Required<Omit<DispatcherOptions, 'changed' | 'log' | 'ready' | 'networkWindow'>> &
    Pick<DispatcherOptions, 'changed' | 'log' | 'ready' | 'networkWindow'>;
  /** Requests this dispatcher started, by id, with the time after which they cannot be open anymore. */
  readonly #open = new Map<string, number>();
  #pumping: Promise<void> | undefined;
  #again = false;
  /** A wake is queued for the end of this turn's microtasks (`admitted`). */
  #wakeQueued = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #leaseTimer: ReturnType<typeof setInterval> | undefined;
  #leasing: Promise<void> | undefined;
  #renewTimer: ReturnType<typeof setInterval> | undefined;
  #renewing: Promise<void> | undefined;
  #stopped = false;
  /** Coordinator starts still running (awaited by `stop`, so the store is not closed under them). */
  readonly #starting = new Set<Promise<unknown>>();
  /** Rows waiting for this coordinator: counted at each poll, kept current in between (see `queue`). */
  #queued = 0;
  /** Places held by admissions under way (`reserve`). */
  #reserved = 0;
  readonly #stats = { dispatched: 0, expired: 0, dropped: 0, errors: 0 };
  /**
   * The failures of the dispatcher's recurring work (reading and counting the log, the lease, the
   * sweeps), logged once a spell and again every minute while it lasts, not at every round (a database
   * out of reach made about three error lines a second); the spell's end is said.
   */
  #spells: LogSpells | undefined;

  constructor(o: DispatcherOptions) {
    this.#o = {
      maxOpen: DEFAULT_MAX_OPEN,
      pollMs: 1_000,
      maxQueued: Number.POSITIVE_INFINITY,
      abandonGraceMs: ABANDONED_QUEUE_GRACE_MS,
      leaseRenewMs: LEASE_RENEW_MS,
      leaseStaleMs: LEASE_STALE_MS,
      ...o,
    };
    checkMaxQueued(this.#o.maxQueued);
  }

  get coordinatorId(): string {
    return this.#o.key.nodeId;
  }

  start(): void {
    this.#timer = setInterval(() => {
      void this.#count();
      this.wake(true);
    }, this.#o.pollMs);
    (this.#timer as { unref?: () => void }).unref?.();
    // The lease is renewed on a timer of its own: a slow sweep never makes it look stale to other relays.
    this.#renewTimer = setInterval(() => this.#renew(), this.#o.leaseRenewMs);
    (this.#renewTimer as { unref?: () => void }).unref?.();
    this.#leaseTimer = setInterval(() => this.#housekeep(), this.#o.leaseRenewMs);
    (this.#leaseTimer as { unref?: () => void }).unref?.();
    this.#renew();
    void this.#count();
    this.wake();
    this.#housekeep();
  }

  /**
   * The admission log's depth for this coordinator against `maxQueued`, or undefined without a bound.
   * Approximate by design (it decides load shedding, not quotas): recounted at every poll (rows other
   * relays admitted for this coordinator show up then), raised by `admitted` and lowered as rows leave.
   */
  queue(): AdmissionQueue | undefined {
    if (!Number.isFinite(this.#o.maxQueued)) return undefined;
    return { queued: this.#queued + this.#reserved, limit: this.#o.maxQueued };
  }

  /**
   * A place held in the bound for a request being admitted (see `RelayNetwork.reserve`): counted in
   * `queue()` until released, once the admission is done (and counted by `admitted`, if it stored one).
   */
  reserve(): () => void {
    this.#reserved++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#reserved--;
    };
  }

  /**
   * Count the admission log's rows for this coordinator now (`queue`), as `start` does: a relay that
   * takes requests before it starts dispatching (while it restores its machines) bounds its queue with
   * the rows a previous run left too.
   */
  recount(): Promise<void> {
    return this.#count();
  }

  /**
   * `n` rows were just admitted for this coordinator: count them now, and dispatch what fits once the
   * requests answered with them have run. A group commit answers a whole batch at once: one wake for
   * all of them (each looks at the network's window, a walk over the nodes heard, on the HTTP thread).
   */
  admitted(n: number): void {
    this.#queued += n;
    if (this.#wakeQueued) return;
    this.#wakeQueued = true;
    queueMicrotask(() => {
      this.#wakeQueued = false;
      this.wake();
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#leaseTimer) clearInterval(this.#leaseTimer);
    if (this.#renewTimer) clearInterval(this.#renewTimer);
    await this.#pumping;
    await this.#renewing;
    await this.#leasing;
    // Its rows may be taken over at once by a relay still running.
    await this.#o.intake
      .releaseLease(this.coordinatorId)
      .catch((e) => this.#fail('releasing the lease failed', e));
    await Promise.allSettled([...this.#starting]);
  }

  /**
   * New rows may be waiting: dispatch what fits. With the window full this does nothing, unless
   * `expire` (the periodic poll) asks to move rows past their deadline out of the log.
   */
  wake(expire = false): void {
    if (this.#stopped) return;
    // With the window full, or no peer to start a request for, there is nothing to do until the poll
    // (which also moves rows past their deadline): reading the log at every admission would cost the
    // HTTP thread a read of the queue per request.
    if (!expire && (this.#open.size >= this.#window() || this.#o.ready?.() === false)) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = this.#pump()
      .then(() => this.#worked('dispatching failed'))
      .catch((e) => this.#fail('dispatching failed', e))
      .finally(() => {
        this.#pumping = undefined;
        if (this.#again) {
          this.#again = false;
          this.wake();
        }
      });
  }

  /**
   * Rows of OTHER coordinators still queued `abandonGraceMs` past their deadline: their coordinator
   * stopped and never came back (a live one moves its rows out of the log at their deadline, and a
   * restarted one as it starts), and without this they stayed `queued` for every relay over the
   * database (a chain request unrefunded). Each moves to the history as `expired` with
   * `COORDINATOR_GONE`, signed by this relay: it is the one that took it out of the log (the request
   * never reached the network). A row its coordinator moves meanwhile stays as that coordinator made it.
   * Runs at `start` and every `leaseRenewMs`, at most `ABANDONED_BATCHES_PER_ROUND` batches a round (the
   * next round goes on); returns the ids moved here.
   */
  async expireAbandoned(): Promise<string[]> {
    const gone: string[] = [];
    const before = this.#o.now() - this.#o.abandonGraceMs;
    for (let batch = 0; batch < ABANDONED_BATCHES_PER_ROUND; batch++) {
      const rows = await this.#o.intake.abandoned(this.coordinatorId, before, STEP);
      if (rows.length === 0) return gone;
      const moves: Parameters<HistoryStore['moveFromIntake']>[0][number][] = [];
      let dropped = 0;
      for (const row of rows) {
        const packet = row.body ? await signPacket(this.#o.key, 'request', row.body).catch(() => null) : null;
        if (packet === null) {
          this.#o.log?.({
            level: 'error',
            msg: 'abandoned admission row does not parse; dropped',
            seq: row.seq,
          });
          await this.#o.store.dropFromIntake(row.seq);
          dropped++;
          continue;
        }
        moves.push({
          seq: row.seq,
          request: { id: packetId(packet), packet } as Stored<'request'>,
          status: 'expired',
          error: 'COORDINATOR_GONE',
        });
      }
      const moved = await this.#o.store.moveFromIntake(moves, this.#o.now());
      for (const m of moves) {
        if (!moved.has(m.seq)) continue;
        const id = m.request.packet.body.requestId;
        gone.push(id);
        this.#o.changed?.(id);
      }
      // Rows read that were already gone (another relay moved them, and this relay reads an embedded
      // replica that has not synced yet): read again, they would be the same rows.
      if (moved.size === 0 && dropped === 0) return gone;
    }
    return gone;
  }

  /**
   * Take over the queued rows of coordinators whose lease went stale (they crashed, or stopped): from
   * then on they are this coordinator's, dispatched (or expired as `QUEUE_TIMEOUT`) by its own steps.
   * Only while this relay can start requests (`ready`): otherwise they would wait here as they waited
   * there, and a relay that can is left to take them. Returns how many rows were taken.
   */
  async takeOverStale(): Promise<number> {
    if (this.#o.ready?.() === false) return 0;
    const taken = await this.#o.intake.takeOver(this.coordinatorId, this.#o.leaseStaleMs);
    if (taken > 0) {
      this.#o.log?.({ level: 'warn', msg: 'queued requests of a coordinator gone taken over', taken });
      this.admitted(taken);
    }
    return taken;
  }

  /**
   * Every `leaseRenewMs`, on its own timer: renew the lease (at the database's time), one renewal at a
   * time but never waiting for the sweeps (`#housekeep`), so a long sweep round does not let the lease go
   * stale. A failure is logged and counted; the next renewal tries again.
   */
  #renew(): void {
    if (this.#renewing || this.#stopped) return;
    this.#renewing = this.#o.intake
      .renewLease(this.coordinatorId)
      .then(() => this.#worked('renewing the lease failed'))
      .catch((e) => this.#fail('renewing the lease failed', e))
      .finally(() => {
        this.#renewing = undefined;
      });
  }

  /**
   * Every `leaseRenewMs`, one round at a time: take over stale coordinators' rows, expire abandoned ones
   * and the open requests of stale coordinators past their windows. A failure is logged and counted; the
   * next round tries again.
   */
  #housekeep(): void {
    if (this.#leasing || this.#stopped) return;
    this.#leasing = (async () => {
      await this.takeOverStale();
      const gone = await this.expireAbandoned();
      const orphaned = await this.#o.store.expireOrphaned(
        this.coordinatorId,
        this.#o.leaseStaleMs,
        this.#o.now(),
        ORPHANED_AFTER_WINDOWS_MS,
      );
      for (const id of orphaned) this.#o.changed?.(id);
      if (orphaned.length > 0) {
        this.#o.log?.({
          level: 'warn',
          msg: 'open requests of a coordinator gone expired after their windows',
          requests: orphaned,
        });
      }
      if (gone.length > 0) {
        this.#o.log?.({
          level: 'warn',
          msg: 'queued requests whose coordinator never came back expired',
          requests: gone,
        });
      }
      this.#worked('taking over stale rows or expiring abandoned ones failed');
    })()
      .catch((e) => this.#fail('taking over stale rows or expiring abandoned ones failed', e))
      .finally(() => {
        this.#leasing = undefined;
      });
  }

  /** A coordinated request finished: its slot is free. */
  release(requestId: string): void {
    if (this.#open.delete(requestId)) this.wake();
  }

  stats(): DispatcherStats {
    return { open: this.#open.size, maxOpen: this.#o.maxOpen, window: this.#window(), ...this.#stats };
  }

  /** Resolves when no step is running (tests). */
  async idle(): Promise<void> {
    while (this.#pumping) await this.#pumping;
  }

  /** The window: `maxOpen`, or less while the network can take fewer at once (`networkWindow`). */
  #window(): number {
    const network = this.#o.networkWindow?.();
    return network === undefined ? this.#o.maxOpen : Math.min(this.#o.maxOpen, Math.max(1, network));
  }

  async #pump(): Promise<void> {
    for (;;) {
      if (this.#stopped) return;
      const now = this.#o.now();
      // A slot whose request is long past any deadline is free even if its finish was never reported.
      for (const [id, until] of this.#open) if (now > until) this.#open.delete(id);
      const room = this.#window() - this.#open.size;
      // Nothing can start (window full, or no peer): a whole step is read, for the rows past their deadline.
      const canStart = room > 0 && this.#o.ready?.() !== false;
      let rows: QueuedRequest[];
      try {
        rows = await this.#o.intake.next(this.coordinatorId, canStart ? Math.min(room, STEP) : STEP);
      } catch (e) {
        this.#fail('reading the admission log failed', e);
        return;
      }
      this.#worked('reading the admission log failed');
      if (rows.length === 0) return;
      const progressed = await this.#step(rows, room, now);
      if (!progressed) return;
    }
  }

  /** Handle the rows in order; false when none could be handled (window full, or an error). */
  async #step(rows: readonly QueuedRequest[], room: number, now: number): Promise<boolean> {
    const moves: {
      seq: number;
      request: Stored<'request'>;
      status: 'pending' | 'expired';
      error?: string;
    }[] = [];
    const start: { body: RequestBody; callerId: string }[] = [];
    // No peer to hear it: nothing starts (rows past their deadline still leave the log).
    let free = this.#o.ready === undefined || this.#o.ready() ? room : 0;
    let dropped = 0;
    for (const row of rows) {
      const expired = now >= row.deadline;
      // One that cannot start now waits; the rows after it are still looked at (those past their
      // deadline leave the log even while nothing can start).
      if (row.body && !expired && free <= 0) continue;
      // Signing checks the body again (its requestId must be derived from its content): a row altered
      // outside the relay fails here, is logged and dropped, and never stops the rows after it.
      const packet = row.body
        ? await signPacket(this.#o.key, 'request', row.body).catch((e) => e as Error)
        : null;
      if (packet === null || packet instanceof Error) {
        const why = packet === null ? 'does not parse' : `cannot be signed: ${packet.message}`;
        this.#o.log?.({ level: 'error', msg: `admission row ${why}; dropped`, seq: row.seq });
        try {
          await this.#o.store.dropFromIntake(row.seq);
          this.#stats.dropped++;
          this.#queued = Math.max(0, this.#queued - 1);
          dropped++;
        } catch (e) {
          this.#fail('dropping an admission row failed', e);
          return false;
        }
        continue;
      }
      const request = { id: packetId(packet), packet } as Stored<'request'>;
      if (expired) {
        moves.push({ seq: row.seq, request, status: 'expired', error: 'QUEUE_TIMEOUT' });
      } else {
        moves.push({ seq: row.seq, request, status: 'pending' });
        start.push({ body: packet.body, callerId: row.callerId });
        free--;
      }
    }
    if (moves.length === 0) return dropped > 0;
    let moved: Set<number>;
    try {
      moved = await this.#o.store.moveFromIntake(moves, now);
    } catch (e) {
      this.#fail('moving requests into the history failed', e);
      return false;
    }
    this.#worked('moving requests into the history failed');
    this.#queued = Math.max(0, this.#queued - moves.length);
    // A row moved by another relay since it was read (it expired this coordinator's rows, taken for
    // abandoned) is that relay's: nothing of it starts here.
    const movedHere = new Set<string>();
    for (const m of moves) {
      if (!moved.has(m.seq)) {
        this.#o.log?.({
          level: 'warn',
          msg: 'admission row moved by another relay; not started',
          seq: m.seq,
        });
        continue;
      }
      if (m.status === 'expired') this.#stats.expired++;
      else movedHere.add(m.request.packet.body.requestId);
      this.#o.changed?.(m.request.packet.body.requestId);
    }
    for (const { body, callerId } of start) {
      if (!movedHere.has(body.requestId)) continue;
      // The clock moved on while this step signed and stored its rows (a restart's backlog takes a
      // while): a request whose time ran out meanwhile can no longer be sealed. It expires as if it had
      // waited in the queue (QUEUE_TIMEOUT), rather than failing its coordinator's start.
      if (this.#o.now() >= intakeDeadline(body)) {
        this.#track(this.#expireLate(body, callerId));
        continue;
      }
      // Open until well after its reveal window: `release` normally frees it long before.
      this.#open.set(body.requestId, body.createdAt + 2 * (body.frame.maxTimeMs + body.frame.revealWindowMs));
      this.#stats.dispatched++;
      const started = this.#o.node.submit(body).catch(async (e) => {
        this.#open.delete(body.requestId);
        if (this.#o.now() >= intakeDeadline(body)) {
          await this.#expireLate(body, callerId);
          return;
        }
        this.#fail(`coordinating ${body.requestId} failed`, e);
        await this.#mark(body.requestId, 'failed', 'COORDINATOR_FAILED');
      });
      this.#track(started);
    }
    // None of the rows read was still in the log (read from a replica not synced yet): the next poll
    // reads again, rather than this step reading the same rows at once.
    return moved.size > 0 || dropped > 0;
  }

  /** A coordinator start the dispatcher waits for on `stop`. */
  #track(started: Promise<unknown>): void {
    this.#starting.add(started);
    void started.finally(() => this.#starting.delete(started));
  }

  /** A request taken from the log to start that never reached the network: expired, its caller refunded. */
  async #expireLate(body: RequestBody, callerId: string): Promise<void> {
    this.#stats.expired++;
    try {
      await this.#o.store.expireUnstarted(
        body.requestId,
        { callerId, createdAt: body.createdAt },
        this.#o.now(),
        'QUEUE_TIMEOUT',
      );
      this.#o.changed?.(body.requestId);
    } catch (e) {
      this.#fail(`marking ${body.requestId} expired did not work`, e);
    }
  }

  async #mark(requestId: string, status: 'expired' | 'failed', error: string): Promise<void> {
    try {
      await this.#o.store.setStatus(requestId, status, this.#o.now(), error);
      this.#o.changed?.(requestId);
    } catch (e) {
      this.#fail(`marking ${requestId} ${status} did not work`, e);
    }
  }

  /** Recount the rows waiting for this coordinator (up to twice the bound: enough to know it is full). */
  async #count(): Promise<void> {
    if (!Number.isFinite(this.#o.maxQueued) || this.#stopped) return;
    try {
      this.#queued = await this.#o.intake.count(this.coordinatorId, 2 * this.#o.maxQueued);
      this.#worked('counting the admission log failed');
    } catch (e) {
      this.#fail('counting the admission log failed', e);
    }
  }

  /** A recurring step worked: the spell of its failures, if any, is said to be over. */
  #worked(msg: RecurringFailure): void {
    const ended = this.#spells?.ended(msg);
    if (ended) {
      this.#o.log?.({
        level: 'info',
        msg: 'works again',
        after: msg,
        failures: ended.failures,
        forMs: ended.forMs,
      });
    }
  }

  #fail(msg: string, e: unknown): void {
    this.#stats.errors++;
    // A recurring step's failure is logged once a spell (with its count when it repeats); any other each time.
    let spell: ReturnType<LogSpells['failed']> | undefined;
    if ((RECURRING as readonly string[]).includes(msg)) {
      this.#spells ??= new LogSpells(this.#o.now, 60_000);
      spell = this.#spells.failed(msg);
      if (!spell.log) return;
    }
    // A node's refusal (NodeError) and a protocol rejection (SynodError) carry a stable code.
    const code = (e as { code?: unknown } | null)?.code;
    this.#o.log?.({
      level: 'error',
      msg,
      err: String((e as Error)?.message ?? e),
      ...(typeof code === 'string' ? { code } : {}),
      ...(spell && spell.failures > 1
        ? { failures: spell.failures, unlogged: spell.unlogged, sinceMs: spell.sinceMs }
        : {}),
    });
  }
}

/** The dispatcher's recurring steps whose failures are logged once a spell (`Dispatcher.#spells`). */
const RECURRING = [
  'reading the admission log failed',
  'counting the admission log failed',
  'moving requests into the history failed',
  'renewing the lease failed',
  'taking over stale rows or expiring abandoned ones failed',
  'dispatching failed',
] as const;
type RecurringFailure = (typeof RECURRING)[number];
