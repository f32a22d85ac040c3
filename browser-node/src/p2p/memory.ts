import { seededRandom } from '@synod/shared';
import type { ContentTopic } from './topics.ts';
import {
  type MessageHandler,
  TopicHandlers,
  type Transport,
  TransportClosedError,
  type Unsubscribe,
} from './transport.ts';

/**
 * An in-memory network for unit tests and the simulator: a hub that every node joins, delivering each
 * publication to every other subscribed node. Optional faults are deterministic for a given seed and
 * publication order: latency drawn from [min, max], independent loss per delivery, and (when `reorder`
 * is on) no per-link FIFO guarantee. Timers come from an injectable clock, so a simulator can run it on
 * virtual time.
 */
export interface MemoryNetworkOptions {
  /** Seed of the PRNG that draws latency and loss. Default 1. */
  seed?: number;
  /** Delivery latency in ms: a fixed number or a range drawn uniformly per delivery. Default 0. */
  latencyMs?: number | { min: number; max: number };
  /** Probability in [0, 1] that one delivery is lost. Default 0. */
  dropRate?: number;
  /**
   * Allow a link to deliver out of publication order (each delivery keeps its own drawn latency).
   * Default false: a later publication on a link is never delivered before an earlier one.
   */
  reorder?: boolean;
  /** Time source and timer. Default: Date.now and setTimeout (microtasks for zero delay). */
  clock?: MemoryClock;
}

export interface MemoryClock {
  now(): number;
  /** Run `fn` after `delayMs`. */
  schedule(fn: () => void, delayMs: number): void;
}

export interface MemoryNetworkStats {
  published: number;
  delivered: number;
  dropped: number;
  inFlight: number;
}

const realClock: MemoryClock = {
  now: () => Date.now(),
  schedule: (fn, delayMs) => {
    if (delayMs <= 0) queueMicrotask(fn);
    else setTimeout(fn, delayMs);
  },
};

export class MemoryNetwork {
  readonly #nodes = new Map<string, MemoryTransport>();
  readonly #random: () => number;
  readonly #latency: { min: number; max: number };
  readonly #dropRate: number;
  readonly #reorder: boolean;
  readonly #clock: MemoryClock;
  /** Per link (`from>to`), the time of the latest scheduled delivery, to keep links FIFO. */
  readonly #lastDelivery = new Map<string, number>();
  readonly #stats = { published: 0, delivered: 0, dropped: 0, inFlight: 0 };
  #idleWaiters: Array<() => void> = [];

  constructor(options: MemoryNetworkOptions = {}) {
    this.#random = seededRandom(options.seed ?? 1);
    const lat = options.latencyMs ?? 0;
    this.#latency = typeof lat === 'number' ? { min: lat, max: lat } : { ...lat };
    if (!(this.#latency.min >= 0 && this.#latency.max >= this.#latency.min)) {
      throw new RangeError('latencyMs needs 0 <= min <= max');
    }
    this.#dropRate = options.dropRate ?? 0;
    if (!(this.#dropRate >= 0 && this.#dropRate <= 1)) throw new RangeError('dropRate is in [0, 1]');
    this.#reorder = options.reorder ?? false;
    this.#clock = options.clock ?? realClock;
  }

  /** Add a node with this id; its transport is connected to every other node. */
  join(nodeId: string): MemoryTransport {
    if (this.#nodes.has(nodeId)) throw new Error(`node ${nodeId} already joined this network`);
    const transport = new MemoryTransport(this, nodeId);
    this.#nodes.set(nodeId, transport);
    return transport;
  }

  /** Ids of the nodes on the network now. */
  nodes(): string[] {
    return [...this.#nodes.keys()];
  }

  stats(): MemoryNetworkStats {
    return { ...this.#stats };
  }

  /** Resolves when no delivery is in flight. */
  settled(): Promise<void> {
    if (this.#stats.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** @internal called by MemoryTransport: `nodeId` listens on a topic it did not listen on before. */
  listening(nodeId: string): void {
    for (const [id, t] of this.#nodes) if (id !== nodeId) t.peerJoined(nodeId);
  }

  /** @internal called by MemoryTransport */
  leave(nodeId: string): void {
    this.#nodes.delete(nodeId);
  }

  /** @internal called by MemoryTransport */
  publishFrom(from: string, topic: ContentTopic, bytes: Uint8Array): void {
    this.#stats.published++;
    const now = this.#clock.now();
    for (const [to, target] of this.#nodes) {
      if (to === from) continue;
      // Draw for every receiver in join order, whether or not it listens, so the fault pattern of one
      // node does not depend on what the others subscribe to.
      const lost = this.#dropRate > 0 && this.#random() < this.#dropRate;
      let delay = this.#latency.min + (this.#latency.max - this.#latency.min) * this.#random();
      if (!target.listens(topic)) continue;
      if (lost) {
        this.#stats.dropped++;
        continue;
      }
      if (!this.#reorder) {
        const link = `${from}>${to}`;
        const at = Math.max(now + delay, this.#lastDelivery.get(link) ?? 0);
        this.#lastDelivery.set(link, at);
        delay = at - now;
      }
      // Each receiver gets its own copy: a handler that mutates bytes cannot affect another node.
      const copy = bytes.slice();
      this.#stats.inFlight++;
      this.#clock.schedule(() => {
        this.#stats.inFlight--;
        if (this.#nodes.get(to) === target && target.deliver(topic, copy, from)) this.#stats.delivered++;
        if (this.#stats.inFlight === 0) {
          const waiters = this.#idleWaiters;
          this.#idleWaiters = [];
          for (const w of waiters) w();
        }
      }, delay);
    }
  }
}

export class MemoryTransport implements Transport {
  readonly name = 'memory';
  readonly nodeId: string;
  readonly #network: MemoryNetwork;
  readonly #handlers = new TopicHandlers();
  readonly #joined = new Set<(peer: string) => void>();
  #closed = false;

  constructor(network: MemoryNetwork, nodeId: string) {
    this.#network = network;
    this.nodeId = nodeId;
  }

  async publish(topic: ContentTopic, bytes: Uint8Array): Promise<void> {
    if (this.#closed) throw new TransportClosedError(this.name);
    this.#network.publishFrom(this.nodeId, topic, bytes);
  }

  subscribe(topic: ContentTopic, handler: MessageHandler): Unsubscribe {
    if (this.#closed) throw new TransportClosedError(this.name);
    const sub = this.#handlers.add(topic, handler);
    if (sub.first) this.#network.listening(this.nodeId);
    return () => {
      sub.remove();
    };
  }

  onPeerJoined(listener: (peer: string) => void): Unsubscribe {
    this.#joined.add(listener);
    return () => {
      this.#joined.delete(listener);
    };
  }

  peers(): string[] {
    return this.#closed ? [] : this.#network.nodes().filter((id) => id !== this.nodeId);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#handlers.clear();
    this.#joined.clear();
    this.#network.leave(this.nodeId);
  }

  /** @internal */
  peerJoined(peer: string): void {
    if (this.#closed) return;
    for (const listener of this.#joined) listener(peer);
  }

  /** @internal */
  listens(topic: ContentTopic): boolean {
    return !this.#closed && this.#handlers.has(topic);
  }

  /** @internal */
  deliver(topic: ContentTopic, bytes: Uint8Array, from: string): boolean {
    if (this.#closed) return false;
    return this.#handlers.dispatch(topic, bytes, { peer: from, transport: this.name, topic }) > 0;
  }
}
