/**
 * Gun transport: an optional second network for redundant delivery of requests and verdicts (the
 * messages whose loss costs most), through Gun relay peers over WebSocket. Whatever arrives goes
 * through the intake like any other message; the intake's packet-id dedup makes a packet that
 * arrives over both Waku and Gun count once.
 *
 * Mapping
 * -------
 *  topic   a Gun node whose soul is `synod:` + the content topic, e.g. `synod:/synod/1/requests/proto`;
 *  packet  one key of that node: the key is the packet id (`packetId` of @synod/shared; the sha256 of
 *          the bytes for bytes that are not a packet), the value the canonical packet JSON as a string.
 *          Keys are unique and written once, so Gun's conflict resolution never has to choose;
 *  receive `gun.get(soul).map().on(...)`: called for every key, including keys other peers still
 *          hold when we subscribe (history, which the bounds below keep to the last few minutes); a
 *          stale packet that gets through anyway is rejected by the intake's skew check.
 *
 * Options always set: `multicast: false` (no UDP discovery), `axe: false`, `localStorage: false`,
 * `radisk: false`, `rfs: false` (no disk anywhere), `stats: false` (Gun's server build would
 * otherwise write a stats file beside itself), `super: false` (a client; Gun's server build
 * defaults to relay mode, which never connects to its peers until it has something to say).
 *
 * Limits: Gun alone keeps every value it has seen in memory for the life of the instance (its graph).
 * Every Synod Gun instance, this transport and the relay (gun-relay.ts), is therefore bounded per
 * topic by a `GunGraphBounds` (gun-bounds.ts, option `bounds`). A packet is pruned once born more than
 * `maxAgeMs` ago (default 3 min: the 2 min skew window + 1 min; born = its `body.createdAt`, or when
 * its key was first seen here if that is earlier or the value has none), checked every `sweepEveryMs`
 * (10 s). A topic holds at most `maxKeys` keys (4096) and `maxBytes` (32 MiB of keys and values,
 * counted in UTF-16 code units; Gun's own bookkeeping, measured at ~1.6 KB a key, comes on top), the
 * earliest born evicted the moment a put goes over. Pruning removes the key from Gun's graph, its HAM
 * state and the chain caches, so the memory is freed and a later subscriber is not replayed it. Puts of
 * pruned keys, of stale packets, of non-string values, with HAM states far ahead, and to other souls
 * are refused at the wire (neither stored nor relayed). `graphStats()` reports keys, bytes, pruned and
 * refused. What Gun holds on the way out is bounded by a `GunWireBounds` (gun-wire-bounds.ts, option
 * `wireBounds`): what it queues for a relay while its socket connects (1024 messages, 4 Mi code units
 * per relay; newer messages dropped past that) and the ack listeners of our own puts, which hold the
 * packet until acked or 9 s pass (relays without storage never ack): at most 256 (4 Mi code units),
 * the oldest taken off early, which costs nothing since Synod reads no acks. `wireStats()` reports them.
 * Gun's dedup of the last 9 s of message ids (one entry per id heard or said, per key stored, per ack
 * routed) is bounded by a `GunDedupBounds` (gun-dedup-bounds.ts, option `dedupBounds`) to
 * `MAX_GUN_DEDUP_IDS` (32 Ki) ids and `MAX_GUN_DEDUP_ID_CHARS` (4 Mi) characters of them, the oldest
 * forgotten first, so a peer sending distinct (or long) ids as fast as it can does not grow it with its
 * rate. `dedupStats()` reports them.
 *
 * Gun reports no sending peer, so `meta.peer` is the relay list (`gun:<url>,...`).
 */
import { packetId, parseEnvelope, sha256Hex } from '@synod/shared';
import { type GunBoundsOptions, GunGraphBounds, type GunGraphStats } from './gun-bounds.ts';
import { GunDedupBounds, type GunDedupBoundsOptions, type GunDedupStats } from './gun-dedup-bounds.ts';
import Gun from './gun-module.ts';
import { GunWireBounds, type GunWireBoundsOptions, type GunWireStats } from './gun-wire-bounds.ts';
import type { ContentTopic } from './topics.ts';
import {
  type MessageHandler,
  TopicHandlers,
  type Transport,
  TransportClosedError,
  type Unsubscribe,
} from './transport.ts';

export interface GunTransportOptions {
  /** Relay peers, e.g. `http://127.0.0.1:8765/gun`. */
  peers: string[];
  /** Topics this transport carries. Default requests and verdicts. Others are refused on publish. */
  topics?: readonly ContentTopic[];
  /** WebSocket constructor. Default `globalThis.WebSocket` (Bun, browsers). */
  WebSocket?: unknown;
  /** The Gun constructor, if not the `gun` package's default export (e.g. a browser build). */
  gun?: unknown;
  /** Most of our own publications remembered to suppress their local echo. Default 4096. */
  ownEchoes?: number;
  /** Bounds on what Gun keeps in memory per topic (age, keys, bytes); see gun-bounds.ts. */
  bounds?: GunBoundsOptions;
  /** Bounds on what Gun holds on the way out (queues while connecting, puts awaiting acks); see gun-wire-bounds.ts. */
  wireBounds?: GunWireBoundsOptions;
  /** Bound on the message ids Gun keeps for its 9 s dedup; see gun-dedup-bounds.ts. */
  dedupBounds?: GunDedupBoundsOptions;
}

export type { GunBoundsOptions, GunGraphStats } from './gun-bounds.ts';
export { GUN_BOUNDS_DEFAULTS } from './gun-bounds.ts';
export type { GunDedupBoundsOptions, GunDedupStats } from './gun-dedup-bounds.ts';
export { MAX_GUN_DEDUP_IDS } from './gun-dedup-bounds.ts';
export type { GunWireBoundsOptions, GunWireStats } from './gun-wire-bounds.ts';
export { GUN_WIRE_BOUNDS_DEFAULTS } from './gun-wire-bounds.ts';

export const GUN_DEFAULT_TOPICS: readonly ContentTopic[] = [
  '/synod/1/requests/proto',
  '/synod/1/verdicts/proto',
];

/** Options every Synod Gun instance, client or relay, is created with. */
export const GUN_SAFE_OPTIONS = {
  multicast: false,
  axe: false,
  localStorage: false,
  radisk: false,
  rfs: false,
  stats: false,
} as const;

/** The slice of Gun's chain API this transport uses. */
export interface GunChain {
  get(key: string): GunChain;
  put(value: Record<string, string>): GunChain;
  map(): GunChain;
  on(callback: (value: unknown, key: string) => void): GunChain;
  off(): void;
}

interface GunPeer {
  wire?: { close?: () => void; terminate?: () => void } | null;
  defer?: ReturnType<typeof setTimeout>;
}

export interface GunRoot extends GunChain {
  _: { opt: { peers: Record<string, GunPeer> } };
}

export type GunConstructor = (options: Record<string, unknown>) => GunRoot;

export function soulOf(topic: ContentTopic): string {
  return `synod:${topic}`;
}

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** The key a message is stored under: its packet id, or the sha256 of its bytes. */
export function gunKeyOf(bytes: Uint8Array): string {
  try {
    return packetId(parseEnvelope(JSON.parse(decoder.decode(bytes))));
  } catch {
    return sha256Hex(bytes);
  }
}

export class GunTransport implements Transport {
  readonly name = 'gun';
  readonly gun: GunRoot;
  readonly #topics: ReadonlySet<ContentTopic>;
  readonly topics: readonly ContentTopic[];
  readonly #handlers = new TopicHandlers();
  readonly #chains = new Map<ContentTopic, GunChain>();
  readonly #own = new Set<string>();
  readonly #ownMax: number;
  readonly #peerLabel: string;
  readonly #bounds: GunGraphBounds;
  readonly #wire: GunWireBounds;
  readonly #dedup: GunDedupBounds;
  #closed = false;

  constructor(options: GunTransportOptions) {
    if (options.peers.length === 0) throw new Error('a Gun transport needs at least one relay peer');
    this.#topics = new Set(options.topics ?? GUN_DEFAULT_TOPICS);
    this.topics = [...this.#topics];
    this.#ownMax = options.ownEchoes ?? 4096;
    this.#peerLabel = `gun:${options.peers.join(',')}`;
    const create = (options.gun ?? Gun) as GunConstructor;
    this.gun = create({
      ...GUN_SAFE_OPTIONS,
      super: false,
      peers: [...options.peers],
      WebSocket: options.WebSocket ?? globalThis.WebSocket,
    });
    this.#bounds = new GunGraphBounds(this.gun, this.topics.map(soulOf), options.bounds);
    this.#wire = new GunWireBounds(this.gun, options.wireBounds);
    this.#dedup = new GunDedupBounds(this.gun, options.dedupBounds);
  }

  /** What Gun holds for this transport's topics, and how much was pruned or refused. */
  graphStats(): GunGraphStats {
    return this.#bounds.stats();
  }

  /** What Gun holds on the way out (queued for relays that are connecting, puts awaiting acks). */
  wireStats(): GunWireStats {
    return this.#wire.stats();
  }

  /** The message ids Gun holds for its dedup, and how many were forgotten early. */
  dedupStats(): GunDedupStats {
    return this.#dedup.stats();
  }

  async publish(topic: ContentTopic, bytes: Uint8Array): Promise<void> {
    if (this.#closed) throw new TransportClosedError(this.name);
    if (!this.#topics.has(topic)) throw new Error(`the gun transport does not carry ${topic}`);
    const key = gunKeyOf(bytes);
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw new Error('the gun transport carries UTF-8 packet JSON only');
    }
    this.#own.add(key);
    if (this.#own.size > this.#ownMax) {
      const oldest = this.#own.values().next().value;
      if (oldest !== undefined) this.#own.delete(oldest);
    }
    this.gun.get(soulOf(topic)).put({ [key]: text });
  }

  subscribe(topic: ContentTopic, handler: MessageHandler): Unsubscribe {
    if (this.#closed) throw new TransportClosedError(this.name);
    if (!this.#topics.has(topic)) throw new Error(`the gun transport does not carry ${topic}`);
    const sub = this.#handlers.add(topic, handler);
    if (sub.first) {
      const chain = this.gun.get(soulOf(topic)).map();
      chain.on((value, key) => this.#onValue(topic, key, value));
      this.#chains.set(topic, chain);
    }
    return () => {
      if (sub.remove()) {
        this.#chains.get(topic)?.off();
        this.#chains.delete(topic);
      }
    };
  }

  peers(): string[] {
    return Object.entries(this.gun._.opt.peers)
      .filter(([, p]) => p.wire !== undefined && p.wire !== null)
      .map(([url]) => url);
  }

  /** Disconnect from every relay without reconnecting, and stop listening. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#bounds.close();
    this.#wire.close();
    for (const chain of this.#chains.values()) chain.off();
    this.#chains.clear();
    this.#handlers.clear();
    const peers = this.gun._.opt.peers;
    for (const [url, peer] of Object.entries(peers)) {
      // Gun redials a peer only while it is listed; unlist first, then close the socket.
      delete peers[url];
      clearTimeout(peer.defer);
      peer.wire?.close?.();
    }
  }

  #onValue(topic: ContentTopic, key: string, value: unknown): void {
    if (this.#closed || typeof value !== 'string' || this.#own.has(key)) return;
    this.#handlers.dispatch(topic, encoder.encode(value), {
      peer: this.#peerLabel,
      transport: this.name,
      topic,
      // Every writer of the graph reaches us under this one label (and Gun replays what it stored to
      // each new subscriber): it is never banned.
      attributable: false,
    });
  }
}
