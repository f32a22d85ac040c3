/**
 * For tests: real serving stacks (node-llama-cpp + stories260K, USE Lite) from the offline model mirror.
 * Nothing here is a fake; it only saves each test the setup code.
 */

import { NodeKey, type Packet } from '@synod/shared';
import { LlamaCppEngine } from '../inference/llama-cpp.ts';
import { ModelsDir } from '../inference/models-dir.ts';
import { InferenceQueue, type InferenceQueueOptions } from '../inference/queue.ts';
import { TEST_MODELS_DIR } from '../inference/test-models.ts';
import { UseLiteEmbedder } from '../inference/use-lite.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { type ServingConfig, SynodNode, type SynodNodeOptions } from './synod-node.ts';

export interface TestServing<Q extends InferenceQueue = InferenceQueue> extends ServingConfig {
  queue: Q;
  close(): Promise<void>;
}

/** A real serving stack; `makeQueue` lets a test use a queue subclass (e.g. a garbage revealer). */
export async function loadTestServing<Q extends InferenceQueue = InferenceQueue>(
  maxQueued = 4,
  makeQueue: (options: InferenceQueueOptions) => Q = (options) => new InferenceQueue(options) as Q,
): Promise<TestServing<Q>> {
  const dir = new ModelsDir({ root: TEST_MODELS_DIR });
  const model = await dir.resolve('stories260K');
  const engine = new LlamaCppEngine({ threads: 1 });
  await engine.load({ id: model.id, fileHash: model.fileHash, path: model.path });
  const embedder = new UseLiteEmbedder();
  await embedder.load();
  const queue = makeQueue({ engine, embedder, maxQueued, tokensPerSecond: 200, embeddingsPerSecond: 20 });
  return {
    queue,
    models: [{ id: model.id, fileHash: model.fileHash }],
    embedder: embedder.ref,
    async close() {
      queue.close();
      await engine.unload();
      await embedder.unload();
    },
  };
}

/** A relay and one serving node on an in-memory network, as `relayAndNode` starts them. */
export interface RelayAndNode {
  net: MemoryNetwork;
  relay: SynodNode;
  node: SynodNode;
  /** The node's key. */
  key: NodeKey;
  /** The node's log lines. */
  lines: Record<string, unknown>[];
  /** The packets the node published, in order. */
  published: Packet[];
  /** Stop the node, then the relay (the serving stack is the caller's). */
  close(): Promise<void>;
}

/**
 * For tests: a relay and a node serving with `serving` on one `MemoryNetwork`, their keys from the seed
 * bytes `seeds` (relay, node), started; `node` adds to or overrides the node's options.
 */
export async function relayAndNode(
  seeds: [number, number],
  serving: ServingConfig,
  node: Partial<SynodNodeOptions> = {},
): Promise<RelayAndNode> {
  const net = new MemoryNetwork();
  const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seeds[0]));
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(seeds[1]));
  const relay = new SynodNode({
    key: relayKey,
    role: 'relay',
    transports: [net.join(relayKey.nodeId)],
    ...(node.scheduler ? { scheduler: node.scheduler } : {}),
  });
  const lines: Record<string, unknown>[] = [];
  const published: Packet[] = [];
  const n = new SynodNode({
    key,
    role: 'node',
    transports: [net.join(key.nodeId)],
    serving,
    log: (line) => lines.push(line),
    onPacket: ({ packet, own }) => {
      if (own) published.push(packet as Packet);
    },
    ...node,
  });
  await relay.start();
  await n.start();
  return {
    net,
    relay,
    node: n,
    key,
    lines,
    published,
    async close() {
      await n.close();
      await relay.close();
    },
  };
}

/** For tests: heartbeats a test sends itself (`publishHeartbeat`), a serving node's figures in them. */
export const TEST_HEARTBEAT = {
  intervalMs: 3_600_000,
  software: 'test',
  addresses: [] as string[],
  tokensPerSecond: 200,
  embeddingsPerSecond: 20,
  engine: 'llama-cpp',
};
