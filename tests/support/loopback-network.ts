/**
 * For the cross-package node suites and the node bench: a Synod network of real headless nodes on
 * loopback. Every node is a `SynodNode` with its own Waku relay transport (libp2p gossipsub over TCP on
 * 127.0.0.1), bootstrapped to the coordinator's TCP multiaddr, and its own real serving stack
 * (node-llama-cpp + stories260K, USE Lite). Nothing here is a fake; the test doubles that misbehave on
 * purpose (`InterceptingTransport`, `GarbageInferenceQueue`) are named for what they do and live at
 * the bottom of this file.
 */
import {
  type AnyPacket,
  decodePacket,
  deriveRequestId,
  type EmbeddingModelRef,
  type Evidence,
  encodePacket,
  type Frame,
  NodeKey,
  type PacketType,
  type RequestBody,
  resolveFrame,
  signPacket,
  toHex,
  type VerdictEffect,
} from '@synod/shared';
import { InferenceQueue, type QueueJob, type QueueResult } from '../../browser-node/src/inference/queue.ts';
import type { MachineStore } from '../../browser-node/src/node/machine-store.ts';
import { SynodNode, type SynodNodeOptions } from '../../browser-node/src/node/synod-node.ts';
import { loadTestServing, type TestServing } from '../../browser-node/src/node/test-helpers.ts';
import { createHeadlessWakuRelay } from '../../browser-node/src/p2p/headless.ts';
import { type ContentTopic, topicOfPacketType } from '../../browser-node/src/p2p/topics.ts';
import type {
  ForwardValidator,
  MessageHandler,
  Transport,
  Unsubscribe,
} from '../../browser-node/src/p2p/transport.ts';
import type { WakuRelayTransport } from '../../browser-node/src/p2p/waku-relay.ts';

export const REVEALS: ContentTopic = topicOfPacketType('reveal');
export const SEALS: ContentTopic = topicOfPacketType('seal');
export const COMMITS: ContentTopic = topicOfPacketType('commit');

/** Poll `check` until it holds; fail after `timeoutMs`. Never a fixed sleep as synchronisation. */
export async function until(check: () => boolean, timeoutMs = 60_000, what = 'a condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 50);
  }
}

export function tcpAddress(t: WakuRelayTransport): string {
  const a = t.addresses().find((x) => !x.includes('/ws') && x.startsWith('/ip4/127.0.0.1/tcp/'));
  if (a === undefined) throw new Error(`no loopback TCP address on ${t.peerId}`);
  return a;
}

/** A Waku relay transport on 127.0.0.1 only (TCP and ws listeners on free ports), loopback dialing only. */
export function loopbackWaku(bootstrap: string[] = []): Promise<WakuRelayTransport> {
  return createHeadlessWakuRelay({
    host: '127.0.0.1',
    bootstrap,
    dialPolicy: 'loopback',
    reconnect: { initialMs: 200, maxMs: 2_000 },
  });
}

let nonceCounter = 0;

/** A prompt request for stories260K, greedy, with a fresh nonce. */
export function makeRequest(
  embedder: EmbeddingModelRef,
  frame: Partial<Frame> = {},
  overrides: Partial<RequestBody> = {},
): RequestBody {
  nonceCounter++;
  const nonce = (Date.now().toString(16) + nonceCounter.toString(16).padStart(8, '0')).padStart(32, '0');
  const body = {
    nonce,
    prompt: 'Once upon a time',
    acceptedModels: ['stories260K'],
    params: { temperature: 0, maxTokens: 24 },
    frame: resolveFrame({ embeddingModel: embedder, maxTimeMs: 30_000, revealWindowMs: 20_000, ...frame }),
    origin: { kind: 'http' as const },
    createdAt: Date.now(),
    ...overrides,
  };
  return { ...body, requestId: deriveRequestId(body) } as RequestBody;
}

/** Everything a member of the loopback network reports, by request id. */
export class Recorder {
  readonly verdicts = new Map<string, Array<{ nodeId: string; v: VerdictEffect }>>();
  readonly evidence = new Map<string, Array<{ nodeId: string; e: Evidence }>>();
  readonly finished = new Map<string, Array<{ nodeId: string; kind: string; reason: string }>>();
  readonly errors: Array<Record<string, unknown>> = [];

  options(nodeId: () => string): Pick<SynodNodeOptions, 'onVerdict' | 'onEvidence' | 'onFinished' | 'log'> {
    const push = <T>(m: Map<string, T[]>, k: string, v: T) => m.set(k, [...(m.get(k) ?? []), v]);
    return {
      onVerdict: (id, v) => push(this.verdicts, id, { nodeId: nodeId(), v }),
      onEvidence: (id, e) => push(this.evidence, id, { nodeId: nodeId(), e }),
      onFinished: (id, o) => push(this.finished, id, { nodeId: nodeId(), ...o }),
      log: (entry) => {
        if (entry['level'] === 'error') this.errors.push(entry);
      },
    };
  }

  verdictsOf(requestId: string): Array<{ nodeId: string; v: VerdictEffect }> {
    return this.verdicts.get(requestId) ?? [];
  }
}

export interface Member {
  key: NodeKey;
  waku: WakuRelayTransport;
  /** What the SynodNode publishes through (the Waku transport, possibly wrapped by a test double). */
  transport: Transport;
  node: SynodNode;
}

export interface ServingMember extends Member {
  serving: TestServing & { queue: GarbageInferenceQueue };
}

/** Wait until the coordinator and every member share the gossipsub mesh of the Synod shard. */
export async function waitForMesh(coordinator: Member, members: Member[], timeoutMs = 60_000): Promise<void> {
  await until(
    () => {
      const mesh = new Set(coordinator.waku.meshPeers(REVEALS));
      return members.every(
        (m) => mesh.has(m.waku.peerId) && m.waku.meshPeers(REVEALS).includes(coordinator.waku.peerId),
      );
    },
    timeoutMs,
    'the gossipsub mesh around the coordinator',
  );
}

export interface NetworkOptions {
  nodes: number;
  /** The machine store of node `i` (default: in memory). */
  store?: (i: number) => MachineStore | undefined;
  /** Called with every packet the coordinator verifies or publishes (benchmarks time them). */
  onCoordinatorPacket?: (packet: AnyPacket, own: boolean) => void;
}

export interface LoopbackNetwork {
  coordinator: Member & { transport: InterceptingTransport };
  nodes: Array<ServingMember & { transport: InterceptingTransport }>;
  recorder: Recorder;
  /** Every packet the coordinator verified or published, in order. */
  coordinatorPackets: AnyPacket[];
  embedder: EmbeddingModelRef;
  close(): Promise<void>;
}

/** Start a serving member: its own Waku transport (wrapped), its own SynodNode in role `node`. */
export async function startServingMember(
  key: NodeKey,
  serving: ServingMember['serving'],
  bootstrap: string[],
  recorder: Recorder,
  store?: MachineStore,
): Promise<ServingMember & { transport: InterceptingTransport }> {
  const waku = await loopbackWaku(bootstrap);
  const transport = new InterceptingTransport(waku);
  const node = new SynodNode({
    key,
    role: 'node',
    transports: [transport],
    serving,
    ...(store ? { store } : {}),
    ...recorder.options(() => key.nodeId),
  });
  await node.start();
  return { key, waku, transport, node, serving };
}

export async function startNetwork(o: NetworkOptions): Promise<LoopbackNetwork> {
  const recorder = new Recorder();
  const coordinatorPackets: AnyPacket[] = [];
  const ckey = await NodeKey.fromSeed(new Uint8Array(32).fill(200));
  const cwaku = await loopbackWaku();
  const ctransport = new InterceptingTransport(cwaku);
  const cnode = new SynodNode({
    key: ckey,
    role: 'relay',
    transports: [ctransport],
    onPacket: ({ packet, own }) => {
      coordinatorPackets.push(packet);
      o.onCoordinatorPacket?.(packet, own);
    },
    ...recorder.options(() => ckey.nodeId),
  });
  await cnode.start();
  const coordinator = { key: ckey, waku: cwaku, transport: ctransport, node: cnode };
  const boot = [tcpAddress(cwaku)];
  const nodes: LoopbackNetwork['nodes'] = [];
  const servings = await Promise.all(Array.from({ length: o.nodes }, () => loadServing()));
  for (let i = 0; i < o.nodes; i++) {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(201 + i));
    nodes.push(
      await startServingMember(
        key,
        servings[i] as TestServing & { queue: GarbageInferenceQueue },
        boot,
        recorder,
        o.store?.(i),
      ),
    );
  }
  await waitForMesh(coordinator, nodes);
  return {
    coordinator,
    nodes,
    recorder,
    coordinatorPackets,
    embedder: (servings[0] as TestServing).embedder,
    async close() {
      await Promise.allSettled([cnode.close(), ...nodes.map((n) => n.node.close())]);
      await Promise.allSettled([cwaku.close(), ...nodes.map((n) => n.waku.close())]);
      await Promise.allSettled(nodes.map((n) => n.serving.close()));
    },
  };
}

// --- test doubles ---------------------------------------------------------------------------------

type Send = (topic: ContentTopic, bytes: Uint8Array) => Promise<void>;
/** Decide what to do with an outgoing message: `send` it (as is, or something else), or not. */
export type Interceptor = (topic: ContentTopic, bytes: Uint8Array, send: Send) => Promise<void>;

/**
 * TEST DOUBLE. A transport wrapper that lets a test rewrite, hold or replace what one node publishes
 * (the node itself is the real `SynodNode`). Inbound traffic passes untouched. With no interceptor for
 * a message it behaves exactly as the wrapped transport.
 */
export class InterceptingTransport implements Transport {
  readonly name: string;
  readonly #inner: Transport;
  readonly #interceptors: Interceptor[] = [];

  /** The wrapped transport's topics: a node offers the wrapper what it would offer the transport. */
  readonly topics?: readonly ContentTopic[];
  /** Present exactly when the wrapped transport has it: inbound traffic is judged as without the wrapper. */
  readonly setForwardValidator?: (validator: ForwardValidator | null) => void;

  constructor(inner: Transport) {
    this.#inner = inner;
    this.name = inner.name;
    if (inner.topics !== undefined) this.topics = inner.topics;
    if (inner.setForwardValidator) {
      this.setForwardValidator = (validator) => inner.setForwardValidator?.(validator);
    }
  }

  /** Add an interceptor; the first that returns `true` from its own filter handles the message. */
  use(interceptor: Interceptor): void {
    this.#interceptors.push(interceptor);
  }

  async publish(topic: ContentTopic, bytes: Uint8Array): Promise<void> {
    const send: Send = (t, b) => this.#inner.publish(t, b);
    let chain: Send = send;
    // Compose: the last added interceptor sees the message first.
    for (const i of this.#interceptors) {
      const next = chain;
      chain = (t, b) => i(t, b, next);
    }
    await chain(topic, bytes);
  }

  subscribe(topic: ContentTopic, handler: MessageHandler): Unsubscribe {
    return this.#inner.subscribe(topic, handler);
  }

  peers(): string[] {
    return this.#inner.peers();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

async function decodeOwn(bytes: Uint8Array): Promise<AnyPacket> {
  return (await decodePacket(bytes, { now: Date.now() })).packet;
}

/**
 * TEST DOUBLE: for the listed requests, the node's reveal is rewritten (its output gets a suffix) and
 * re-signed with the node's own key, so it is a well-signed reveal that does not open the commitment.
 */
export function tamperingReveals(key: NodeKey, requestIds: Set<string>): Interceptor {
  return async (topic, bytes, send) => {
    if (topic !== REVEALS) return send(topic, bytes);
    const p = await decodeOwn(bytes);
    if (p.type !== 'reveal' || !requestIds.has(p.body.requestId)) return send(topic, bytes);
    const forged = await signPacket(key, 'reveal', { ...p.body, output: `${p.body.output} (tampered)` });
    return send(topic, encodePacket(forged));
  };
}

/**
 * TEST DOUBLE: for the listed requests, the node does not publish its own reveal; it waits until the
 * reveal of `victim` has arrived, then publishes the victim's output, bits, model and salt under its
 * own key (a copier after the seal). `ready` may hold the copy back further.
 */
export function copyingReveals(
  key: NodeKey,
  inner: Transport,
  victim: () => string,
  requestIds: Set<string>,
  ready: (requestId: string) => boolean = () => true,
): Interceptor {
  const seen = new Map<string, AnyPacket>();
  inner.subscribe(REVEALS, (bytes) => {
    decodePacket(bytes, { now: Date.now() }).then(
      ({ packet }) => {
        if (packet.type === 'reveal' && packet.from === victim()) seen.set(packet.body.requestId, packet);
      },
      () => {},
    );
  });
  return async (topic, bytes, send) => {
    if (topic !== REVEALS) return send(topic, bytes);
    const own = await decodeOwn(bytes);
    if (own.type !== 'reveal' || !requestIds.has(own.body.requestId)) return send(topic, bytes);
    const rid = own.body.requestId;
    await until(() => seen.has(rid) && ready(rid), 60_000, "the victim's reveal");
    const theirs = seen.get(rid) as AnyPacket & { type: 'reveal' };
    const copy = await signPacket(key, 'reveal', { ...theirs.body, createdAt: Date.now() });
    return send(topic, encodePacket(copy));
  };
}

/** TEST DOUBLE: hold every outgoing packet of `type` until `open()` returns true. */
export function holdingPackets(type: PacketType, open: () => boolean): Interceptor {
  const topic = topicOfPacketType(type);
  return async (t, bytes, send) => {
    if (t === topic) await until(open, 120_000, `the gate on outgoing ${type} packets`);
    return send(t, bytes);
  };
}

/**
 * TEST DOUBLE: an inference queue whose results, for the listed requests, are replaced by random text
 * and random embedding bits. The node still commits honestly to that garbage (the lifecycle computes
 * the commitment from what the queue returned), so its reveal opens the commitment but lands far from
 * the honest cluster.
 */
export class GarbageInferenceQueue extends InferenceQueue {
  readonly garbageFor = new Set<string>();

  override async submit(job: QueueJob): Promise<QueueResult> {
    const r = await super.submit(job);
    if (!this.garbageFor.has(job.requestId)) return r;
    const noise = crypto.getRandomValues(new Uint8Array(r.bEmbedding?.length ?? 64));
    return {
      ...r,
      text: `garbage ${toHex(crypto.getRandomValues(new Uint8Array(24)))}`,
      bEmbedding: noise,
    };
  }
}

/**
 * A serving stack as `loadTestServing` builds it (node-llama-cpp + stories260K, USE Lite, one engine
 * per node), with a `GarbageInferenceQueue` so a test can turn any node into a garbage revealer.
 */
export function loadServing(): Promise<TestServing<GarbageInferenceQueue>> {
  return loadTestServing(4, (options) => new GarbageInferenceQueue(options));
}

export type { MachineStore };
