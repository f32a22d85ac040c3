/**
 * Bounds on what a Gun 0.2020 instance keeps in memory for Synod's topic nodes, client or relay alike.
 *
 * Gun never forgets on its own: every key it has seen stays in its in-memory graph for the life of the
 * instance. A Synod packet is worth keeping only while receivers accept it (the intake's skew window), so
 * for each topic node (`synod:<topic>`) a `GunGraphBounds`:
 *
 *  tracks  every key Gun stores (a listener on the root's `put` event, which fires after HAM has written
 *          `root.graph`), with its approximate size and the time it was born: the packet's own
 *          `body.createdAt` when the value parses as JSON with one, capped at the time the key was first
 *          seen here (so a forged future date buys nothing); the first-seen time otherwise;
 *  caps    each topic at `maxKeys` keys and `maxBytes` bytes, evicting the earliest born at once (inside
 *          the `put` event, so a burst never holds more than the cap; ties go by arrival, and the key
 *          being stored may be the one evicted). What stays is the newest `maxKeys` of all that came,
 *          however Gun orders them on the way;
 *  sweeps  every `sweepEveryMs`, pruning keys born more than `maxAgeMs` ago (and, after a stale arrival,
 *          right away);
 *  refuses at the wire (a wrapper around the mesh's `hear.one`, before dedup and HAM): keys it has
 *          pruned (tombstones, kept `maxAgeMs`), values born more than `maxAgeMs` ago, non-string
 *          values and values longer than a packet may be, HAM states more than `maxAgeMs` ahead of
 *          Gun's clock (Gun would hold such a put in a timer until then, up to 24 days), and puts to
 *          souls other than its own topics'. A state ahead by less is taken as Gun's clock now, so the
 *          put is stored (and bounded) at once instead of waiting in a timer outside the graph.
 *          Refused keys are not stored and not relayed, so a peer that still holds a pruned packet
 *          cannot put it back nor hand it to a late subscriber.
 *
 * Pruning a key removes it from every structure of Gun that holds it (found by walking the instance):
 *  - `root.graph[soul][key]` and its HAM state `root.graph[soul]._['>'][key]` (what GETs are answered
 *    from, on relays and clients);
 *  - the soul chain's cache `root.next[soul].put[key]` and `.put._['>'][key]` (replayed to new local
 *    subscribers);
 *  - the per-key child chain `root.next[soul].next[key]` (made by `.map()` for every key; it caches the
 *    value in `.put`), and any `root.next[soul].ask[key]`.
 * Gun's message dedup (`root.dup.s`) keeps ids (no values) of messages seen in the last 9 s, but it
 * forgets them only when a timer armed by the next message fires, so after a burst they would stay until
 * more traffic came: a sweep that finds no drop pending calls `root.dup.drop()` (Gun's own "forget
 * ids older than 9 s"). How many ids it holds within those 9 s is bounded apart (gun-dedup-bounds.ts).
 */
import { LIMITS } from '@synod/shared';
import { type Birth, BirthOrder } from './gun-birth-order.ts';

export interface GunBoundsOptions {
  /**
   * Prune a packet once it was born this long ago. Default `LIMITS.defaultSkewMs` + 60 s (3 min): past
   * the skew window every receiver's intake rejects it as stale.
   */
  maxAgeMs?: number;
  /** Most keys (packets) held per topic; the earliest born go first. Default 4096. */
  maxKeys?: number;
  /** Most bytes held per topic (UTF-16 code units of keys and values), earliest born first. 32 MiB. */
  maxBytes?: number;
  /** How often expired packets are swept. Default 10 s. */
  sweepEveryMs?: number;
  /** Clock (ms since the epoch). Default `Date.now`. */
  now?: () => number;
}

export const GUN_BOUNDS_DEFAULTS = {
  maxAgeMs: LIMITS.defaultSkewMs + 60_000,
  maxKeys: 4096,
  maxBytes: 32 * 1024 * 1024,
  sweepEveryMs: 10_000,
} as const;

export interface GunGraphStats {
  /** Keys held in Gun's graph under the bounded souls. */
  keys: number;
  /** Their approximate size: UTF-16 code units of keys and values (Gun's bookkeeping not counted). */
  bytes: number;
  /** Keys pruned so far (expired or over a cap). */
  pruned: number;
  /** Keys refused at the wire so far (pruned before, stale, not a string, too long, or foreign soul). */
  refused: number;
}

/** The Gun internals the bounds touch (Gun 0.2020's root context, `gun._`). */
interface GunNode {
  _?: { '>'?: Record<string, unknown> };
  [key: string]: unknown;
}
interface GunSoulChain {
  put?: unknown;
  next?: Record<string, unknown>;
  ask?: Record<string, unknown>;
}
interface GunEvent {
  to: { next(msg: unknown): void };
  off(): void;
}
type HearOne = (this: unknown, msg: unknown, ...rest: unknown[]) => unknown;
interface GunRootContext {
  graph: Record<string, GunNode | undefined>;
  dup?: { drop?: (age?: number) => void; to?: unknown };
  next?: Record<string, GunSoulChain | undefined>;
  opt?: { mesh?: { hear?: { one?: HearOne } } };
  on(tag: 'put', listener: (this: GunEvent, msg: { put?: unknown }) => void): GunEvent;
}

interface Held {
  bornAt: number;
  seq: number;
  bytes: number;
}

interface SoulState {
  held: Map<string, Held>;
  /** The held keys by birth, for the caps. */
  order: BirthOrder;
  bytes: number;
  /** Pruned keys, in prune order, with when: refused at the wire for `maxAgeMs`. */
  tombstones: Map<string, number>;
  /** Birth times read at the wire, so a value is parsed once (null: no `createdAt`). */
  parsed: Map<string, number | null>;
}

const hasOwn = (o: object, key: string): boolean => Object.hasOwn(o, key);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** `body.createdAt` of packet JSON, or undefined when the text is not JSON with a finite one. */
export function createdAtOf(text: string): number | undefined {
  try {
    const body = (JSON.parse(text) as { body?: { createdAt?: unknown } } | null)?.body;
    const at = isObject(body) ? body['createdAt'] : undefined;
    return typeof at === 'number' && Number.isFinite(at) ? at : undefined;
  } catch {
    return undefined;
  }
}

function positive(name: string, value: number, integer = false): number {
  if (!(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new RangeError(`Gun bounds: ${name} must be a positive ${integer ? 'integer' : 'number'}`);
  }
  return value;
}

export class GunGraphBounds {
  readonly maxAgeMs: number;
  readonly maxKeys: number;
  readonly maxBytes: number;
  readonly #root: GunRootContext;
  readonly #now: () => number;
  readonly #souls = new Map<string, SoulState>();
  readonly #putListener: GunEvent;
  /** The mesh's `hear` and its own `hear.one`, which `close()` puts back. */
  readonly #hear: { hear: { one?: HearOne }; one: HearOne; wrapped: HearOne } | undefined;
  readonly #interval: ReturnType<typeof setInterval>;
  #soon: ReturnType<typeof setTimeout> | undefined;
  #pruned = 0;
  #refused = 0;
  #seq = 0;
  #closed = false;

  /** `gun` is a Gun root chain (its `_` is the root context); `souls` the topic souls to bound. */
  constructor(gun: { _: unknown }, souls: readonly string[], options: GunBoundsOptions = {}) {
    const root = gun._ as GunRootContext;
    if (!isObject(root?.graph) || typeof root.on !== 'function') {
      throw new TypeError('Gun bounds need a Gun 0.2020 instance (its root `_` has `graph` and `on`)');
    }
    this.#root = root;
    this.maxAgeMs = positive('maxAgeMs', options.maxAgeMs ?? GUN_BOUNDS_DEFAULTS.maxAgeMs);
    this.maxKeys = positive('maxKeys', options.maxKeys ?? GUN_BOUNDS_DEFAULTS.maxKeys, true);
    this.maxBytes = positive('maxBytes', options.maxBytes ?? GUN_BOUNDS_DEFAULTS.maxBytes);
    const every = positive('sweepEveryMs', options.sweepEveryMs ?? GUN_BOUNDS_DEFAULTS.sweepEveryMs);
    this.#now = options.now ?? Date.now;
    for (const soul of souls) {
      this.#souls.set(soul, {
        held: new Map(),
        order: new BirthOrder(),
        bytes: 0,
        tombstones: new Map(),
        parsed: new Map(),
      });
    }

    const bounds = this;
    this.#putListener = root.on('put', function (msg) {
      this.to.next(msg);
      bounds.#onStored(msg.put);
    });

    const hear = root.opt?.mesh?.hear;
    const one = hear?.one;
    if (hear && typeof one === 'function') {
      const wrapped: HearOne = function (msg, ...rest) {
        if (!bounds.#closed && !bounds.#admit(msg)) return undefined;
        return one.call(this, msg, ...rest);
      };
      hear.one = wrapped;
      this.#hear = { hear, one, wrapped };
    }

    this.#interval = setInterval(() => this.sweep(), every);
    unref(this.#interval);
    this.sweep(); // adopt whatever the instance already holds
  }

  stats(): GunGraphStats {
    let keys = 0;
    let bytes = 0;
    for (const s of this.#souls.values()) {
      keys += s.held.size;
      bytes += s.bytes;
    }
    return { keys, bytes, pruned: this.#pruned, refused: this.#refused };
  }

  /** Prune expired keys and enforce the caps now (the timer calls this every `sweepEveryMs`). */
  sweep(): void {
    if (this.#closed) return;
    clearTimeout(this.#soon);
    this.#soon = undefined;
    const now = this.#now();
    const cutoff = now - this.maxAgeMs;
    for (const [soul, s] of this.#souls) {
      for (const [key, at] of s.tombstones) {
        if (at > cutoff) break;
        s.tombstones.delete(key);
      }
      this.#reconcile(soul, s, now);
      for (const [key, held] of s.held) {
        if (held.bornAt <= cutoff) this.#prune(soul, s, key, now);
      }
      s.order.rebuild((b) => isLive(s, b));
      this.#enforceCaps(soul, s, now);
    }
    // Gun forgets message ids 9 s old only when its timer, armed by the first id after the last drop,
    // fires: the ids of a burst's last 9 s stay until the next message. With no such timer pending,
    // drop them on our schedule.
    const dup = this.#root.dup;
    if (dup !== undefined && !dup.to) dup.drop?.();
  }

  /** Stop the timers and unhook from Gun. What Gun holds stays as it is. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#interval);
    clearTimeout(this.#soon);
    this.#soon = undefined;
    this.#putListener.off();
    const h = this.#hear;
    if (h !== undefined && h.hear.one === h.wrapped) h.hear.one = h.one;
  }

  /** A listener on the root's `put` event: Gun has just written `graph[soul][key]`. */
  #onStored(put: unknown): void {
    if (this.#closed || !isObject(put)) return;
    const soul = put['#'];
    const key = put['.'];
    const s = typeof soul === 'string' ? this.#souls.get(soul) : undefined;
    if (s === undefined || typeof soul !== 'string' || typeof key !== 'string') return;
    const value = put[':'];
    const bytes = key.length + (typeof value === 'string' ? value.length : 0);
    const held = s.held.get(key);
    if (held !== undefined) {
      // a newer HAM state for a key we hold (the same packet put again): same birth
      s.bytes += bytes - held.bytes;
      held.bytes = bytes;
      return;
    }
    const now = this.#now();
    const bornAt = this.#bornAt(s, key, value, now);
    this.#hold(s, key, bornAt, bytes);
    s.tombstones.delete(key);
    if (bornAt <= now - this.maxAgeMs) this.#sweepSoon();
    this.#enforceCaps(soul, s, now);
  }

  #hold(s: SoulState, key: string, bornAt: number, bytes: number): void {
    const seq = ++this.#seq;
    s.held.set(key, { bornAt, seq, bytes });
    s.order.push({ key, bornAt, seq });
    s.bytes += bytes;
  }

  /** The wire filter. Mutates `msg.put` to drop refused keys; false drops the whole message. */
  #admit(msg: unknown): boolean {
    if (!isObject(msg) || !isObject(msg['put'])) return true;
    const put = msg['put'];
    const now = this.#now();
    let touched = false;
    for (const soul of Object.keys(put)) {
      const s = this.#souls.get(soul);
      const node = put[soul];
      if (s === undefined) {
        this.#refused += isObject(node) ? Object.keys(node).filter((k) => k !== '_').length : 1;
        delete put[soul];
        touched = true;
        continue;
      }
      if (!isObject(node)) continue; // Gun rejects a malformed node itself
      const states = isObject(node['_']) ? node['_']['>'] : undefined;
      for (const key of Object.keys(node)) {
        if (key === '_') continue;
        const state = isObject(states) ? states[key] : undefined;
        if (this.#welcome(s, key, node[key], state, now)) {
          // Gun holds a put whose HAM state is ahead of its clock in a timer until then, outside its
          // graph and so outside the caps (and late: an honest writer whose clock runs fast has every
          // packet held that long). Keys are written once, so the state orders nothing: take it as now.
          const clock = Date.now();
          if (typeof state === 'number' && state > clock && isObject(states)) {
            states[key] = clock;
            touched = true;
          }
          continue;
        }
        delete node[key];
        if (isObject(states)) delete states[key];
        this.#refused++;
        touched = true;
      }
    }
    if (!touched) return true;
    delete msg['##']; // the sender's hash of the put no longer matches it
    // Keep an emptied reply: its ack still settles the asker's request.
    return Object.keys(put).length > 0 || msg['@'] !== undefined;
  }

  #welcome(s: SoulState, key: string, value: unknown, state: unknown, now: number): boolean {
    if (typeof value !== 'string' || value.length > LIMITS.maxPacketBytes) return false;
    // HAM states are Gun's own clock (real time), not the injectable `now`
    if (typeof state === 'number' && state > Date.now() + this.maxAgeMs) return false;
    if (s.held.has(key)) return true; // Gun dedups it by state
    if (s.tombstones.has(key)) return false;
    const createdAt = createdAtOf(value) ?? null;
    if (createdAt !== null && createdAt <= now - this.maxAgeMs) return false;
    s.parsed.set(key, createdAt);
    if (s.parsed.size > this.maxKeys) {
      const first = s.parsed.keys().next();
      if (!first.done) s.parsed.delete(first.value);
    }
    return true;
  }

  #bornAt(s: SoulState, key: string, value: unknown, now: number): number {
    let createdAt = s.parsed.get(key);
    s.parsed.delete(key);
    if (createdAt === undefined) createdAt = typeof value === 'string' ? (createdAtOf(value) ?? null) : null;
    return createdAt === null ? now : Math.min(createdAt, now);
  }

  /** Evict the earliest born until the soul is within its caps. */
  #enforceCaps(soul: string, s: SoulState, now: number): void {
    while (s.held.size > this.maxKeys || s.bytes > this.maxBytes) {
      const earliest = s.order.peek((b) => isLive(s, b));
      if (earliest === undefined) return;
      this.#prune(soul, s, earliest.key, now);
    }
  }

  /** Make our records match Gun's graph, and drop chain caches of keys the graph no longer holds. */
  #reconcile(soul: string, s: SoulState, now: number): void {
    const node = this.#root.graph[soul];
    for (const [key, held] of s.held) {
      if (node === undefined || !hasOwn(node, key)) {
        s.held.delete(key);
        s.bytes -= held.bytes;
        forgetKey(this.#root, soul, key);
      }
    }
    if (node !== undefined) {
      for (const key of Object.keys(node)) {
        if (key === '_' || s.held.has(key)) continue;
        const value = node[key];
        const bytes = key.length + (typeof value === 'string' ? value.length : 0);
        this.#hold(s, key, this.#bornAt(s, key, value, now), bytes);
      }
    }
    const chain = this.#root.next?.[soul];
    if (isObject(chain?.put)) {
      for (const key of Object.keys(chain.put)) {
        if (key !== '_' && !s.held.has(key)) forgetKey(this.#root, soul, key);
      }
    }
    // A child chain that caches a value the graph no longer holds (one without data is someone's
    // pending `get(key)`, and stays).
    for (const [key, child] of Object.entries(chain?.next ?? {})) {
      if (!s.held.has(key) && isObject(child) && child['put'] !== undefined) forgetKey(this.#root, soul, key);
    }
  }

  #prune(soul: string, s: SoulState, key: string, now: number): void {
    const held = s.held.get(key);
    if (held !== undefined) {
      s.held.delete(key);
      s.bytes -= held.bytes;
    }
    forgetKey(this.#root, soul, key);
    s.tombstones.delete(key);
    s.tombstones.set(key, now);
    if (s.tombstones.size > this.maxKeys) {
      const first = s.tombstones.keys().next();
      if (!first.done) s.tombstones.delete(first.value);
    }
    this.#pruned++;
  }

  #sweepSoon(): void {
    if (this.#soon !== undefined || this.#closed) return;
    this.#soon = setTimeout(() => this.sweep(), 0);
    unref(this.#soon);
  }
}

const isLive = (s: SoulState, b: Birth): boolean => s.held.get(b.key)?.seq === b.seq;

/** Remove one key of one soul from every place Gun 0.2020 keeps it. */
function forgetKey(root: GunRootContext, soul: string, key: string): void {
  forgetIn(root.graph[soul], key);
  const chain = root.next?.[soul];
  if (chain === undefined) return;
  forgetIn(chain.put, key);
  if (chain.next) delete chain.next[key];
  if (chain.ask) delete chain.ask[key];
}

function forgetIn(node: unknown, key: string): void {
  if (!isObject(node)) return;
  delete node[key];
  const meta = node['_'];
  const states = isObject(meta) ? meta['>'] : undefined;
  if (isObject(states)) delete states[key];
}

function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}
