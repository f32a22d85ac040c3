/**
 * Bounds on what a Gun 0.2020 client holds for messages on their way out, beside the graph bounds of
 * gun-bounds.ts:
 *
 *  queue   while a relay's socket is connecting, `WebSocket.send` throws and Gun's mesh keeps every
 *          message for that peer in `peer.queue` (strings, sent when the socket opens), with no limit: a
 *          flood of publications while a relay is unreachable grew it without end. Each peer's queue is
 *          bounded to `maxQueued` messages and `maxQueuedBytes` (UTF-16 code units); past either, a new
 *          message is dropped (what is queued keeps its order; Gun asks again for the topics it follows
 *          once the socket opens) and counted in `queueDropped`.
 *  acks    every put registers a listener for its acknowledgement (Gun's `ask`), which holds the put,
 *          packet and all, until an ack comes or 9 s pass; relays without storage never ack, so every
 *          publication was held 9 s and a burst of them grew memory with its rate. Synod reads no put
 *          acks, so at most `maxPendingAcks` listeners and `maxPendingAckBytes` of their puts are kept:
 *          past either, the oldest is taken off early (its timer cleared), counted in `acksReleased`.
 *          The put itself has already gone to the mesh; delivery does not depend on its ack.
 */

export interface GunWireBoundsOptions {
  /** Most messages queued for one relay while its socket connects. Default 1024. */
  maxQueued?: number;
  /** Most UTF-16 code units queued for one relay while its socket connects. Default 4 Mi (8 MiB). */
  maxQueuedBytes?: number;
  /** Most of our puts waiting for an ack. Default 256. */
  maxPendingAcks?: number;
  /** Most UTF-16 code units of string values in the puts waiting for an ack. Default 4 Mi (8 MiB). */
  maxPendingAckBytes?: number;
}

export const GUN_WIRE_BOUNDS_DEFAULTS = {
  maxQueued: 1024,
  maxQueuedBytes: 4 * 1024 * 1024,
  maxPendingAcks: 256,
  maxPendingAckBytes: 4 * 1024 * 1024,
} as const;

export interface GunWireStats {
  /** Messages queued now for relays whose sockets are not open. */
  queued: number;
  /** Their size in UTF-16 code units. */
  queuedBytes: number;
  /** Messages dropped because a relay's queue was full. */
  queueDropped: number;
  /** Our puts waiting for an ack now. */
  pendingAcks: number;
  /** Size of their string values in UTF-16 code units. */
  pendingAckBytes: number;
  /** Ack listeners taken off early to stay within the bounds. */
  acksReleased: number;
}

/** The Gun internals the wire bounds touch (Gun 0.2020's root context, `gun._`). */
interface GunListener {
  err?: ReturnType<typeof setTimeout>;
  off(): void;
}
interface GunEvent {
  to: { next(msg: unknown): void };
  off(): void;
}
interface GunPeerObject {
  queue?: unknown;
  [key: string]: unknown;
}
interface GunRootContext {
  tag?: Record<string, { last?: GunListener } | undefined>;
  opt: { peers: Record<string, GunPeerObject> };
  on(tag: 'out' | 'hi', listener: (this: GunEvent, msg: unknown) => void): GunEvent;
}

interface QueueState {
  items: string[];
  bytes: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function positiveInteger(name: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0)) {
    throw new RangeError(`Gun wire bounds: ${name} must be a positive integer`);
  }
  return value;
}

/** The string values of a put (`{soul: {key: value}}`), in UTF-16 code units. */
function putSize(put: unknown): number {
  let n = 0;
  if (!isObject(put)) return n;
  for (const node of Object.values(put)) {
    if (!isObject(node)) continue;
    for (const [key, value] of Object.entries(node))
      if (key !== '_' && typeof value === 'string') n += value.length;
  }
  return n;
}

export class GunWireBounds {
  readonly maxQueued: number;
  readonly maxQueuedBytes: number;
  readonly maxPendingAcks: number;
  readonly maxPendingAckBytes: number;
  readonly #root: GunRootContext;
  /** Peers whose `queue` is bounded, and their queue now. */
  readonly #queues = new Map<GunPeerObject, QueueState>();
  /** Our puts waiting for an ack, oldest first, with their size. */
  readonly #pending = new Map<string, number>();
  readonly #listeners: GunEvent[] = [];
  #pendingBytes = 0;
  #queueDropped = 0;
  #acksReleased = 0;
  #closed = false;

  constructor(gun: { _: unknown }, options: GunWireBoundsOptions = {}) {
    const root = gun._ as GunRootContext;
    if (!isObject(root?.opt?.peers) || typeof root.on !== 'function') {
      throw new TypeError(
        'Gun wire bounds need a Gun 0.2020 instance (its root `_` has `opt.peers` and `on`)',
      );
    }
    this.#root = root;
    const d = GUN_WIRE_BOUNDS_DEFAULTS;
    this.maxQueued = positiveInteger('maxQueued', options.maxQueued ?? d.maxQueued);
    this.maxQueuedBytes = positiveInteger('maxQueuedBytes', options.maxQueuedBytes ?? d.maxQueuedBytes);
    this.maxPendingAcks = positiveInteger('maxPendingAcks', options.maxPendingAcks ?? d.maxPendingAcks);
    this.maxPendingAckBytes = positiveInteger(
      'maxPendingAckBytes',
      options.maxPendingAckBytes ?? d.maxPendingAckBytes,
    );
    for (const peer of Object.values(root.opt.peers)) this.#boundQueue(peer);
    const bounds = this;
    // A peer Gun adds later (a relay's `mob` hint) is bounded when it says hi.
    this.#listeners.push(
      root.on('hi', function (peer) {
        this.to.next(peer);
        if (isObject(peer)) bounds.#boundQueue(peer);
      }),
      root.on('out', function (msg) {
        this.to.next(msg);
        bounds.#onOut(msg);
      }),
    );
  }

  stats(): GunWireStats {
    let queued = 0;
    let queuedBytes = 0;
    for (const q of this.#queues.values()) {
      queued += q.items.length;
      queuedBytes += q.bytes;
    }
    this.#forgetSettled();
    return {
      queued,
      queuedBytes,
      queueDropped: this.#queueDropped,
      pendingAcks: this.#pending.size,
      pendingAckBytes: this.#pendingBytes,
      acksReleased: this.#acksReleased,
    };
  }

  /** Stop bounding new puts. Queues stay bounded (their peers are gone with the instance). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const l of this.#listeners) l.off();
  }

  /**
   * Make `peer.queue` a bounded array. Gun appends with `(peer.queue = peer.queue || []).push(raw)` and,
   * once the socket opens, takes the array and sets a fresh one: every array set is bounded.
   */
  #boundQueue(peer: GunPeerObject): void {
    if (this.#queues.has(peer)) return;
    const initial = peer.queue;
    const state: QueueState = { items: [], bytes: 0 };
    this.#fresh(state);
    this.#queues.set(peer, state);
    Object.defineProperty(peer, 'queue', {
      configurable: true,
      enumerable: true,
      get: () => state.items,
      set: (value: unknown) => {
        if (value === state.items) return;
        this.#fresh(state);
        if (Array.isArray(value)) state.items.push(...value);
      },
    });
    if (Array.isArray(initial)) state.items.push(...initial);
  }

  /** Give a queue a new, empty array whose `push` keeps within the bounds. */
  #fresh(state: QueueState): void {
    const items: string[] = [];
    const push = (...raws: string[]): number => {
      for (const raw of raws) {
        const size = typeof raw === 'string' ? raw.length : 0;
        if (items.length >= this.maxQueued || state.bytes + size > this.maxQueuedBytes) {
          this.#queueDropped++;
          continue;
        }
        Array.prototype.push.call(items, raw);
        state.bytes += size;
      }
      return items.length;
    };
    Object.defineProperty(items, 'push', { value: push, enumerable: false });
    state.items = items;
    state.bytes = 0;
  }

  /** An outgoing message: if it is one of our puts waiting for an ack, keep the count within bounds. */
  #onOut(msg: unknown): void {
    if (this.#closed || !isObject(msg) || msg['put'] === undefined || msg['@'] !== undefined) return;
    const id = msg['#'];
    if (typeof id !== 'string' || this.#pending.has(id) || this.#root.tag?.[id]?.last?.err === undefined)
      return;
    const size = putSize(msg['put']);
    this.#pending.set(id, size);
    this.#pendingBytes += size;
    if (this.#pending.size <= this.maxPendingAcks && this.#pendingBytes <= this.maxPendingAckBytes) return;
    this.#forgetSettled();
    for (const [oldest, bytes] of this.#pending) {
      if (this.#pending.size <= this.maxPendingAcks && this.#pendingBytes <= this.maxPendingAckBytes) break;
      this.#pending.delete(oldest);
      this.#pendingBytes -= bytes;
      const listener = this.#root.tag?.[oldest]?.last;
      if (listener === undefined) continue;
      clearTimeout(listener.err);
      listener.off();
      this.#acksReleased++;
    }
  }

  /** Drop the records of puts whose ack came or timed out (Gun took their listener off). */
  #forgetSettled(): void {
    for (const [id, bytes] of this.#pending) {
      if (this.#root.tag?.[id] !== undefined) continue;
      this.#pending.delete(id);
      this.#pendingBytes -= bytes;
    }
  }
}
