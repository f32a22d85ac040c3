import { describe, expect, test } from 'bun:test';
import { NodeKey } from '@synod/shared';
import { nodeHealth } from '../cli/node-health.ts';
import { InferenceError } from '../inference/errors.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { SynodNode } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const HEALTH_OPTIONS = { bootstrap: [], db: 'state.db' };

/**
 * A relay and a node whose queue (fixedQueue, counting its generations) carries `parts` as a
 * RestartingEmbedder or a WorkerEngine show them (`embedder.down`, `engine.failed`); run `body`, then close.
 */
async function withNode(
  seed: number,
  parts: { embedder?: unknown; engine?: unknown },
  body: (o: {
    relay: SynodNode;
    node: SynodNode;
    generations: () => number;
    health: () => ReturnType<typeof nodeHealth>;
  }) => Promise<void>,
): Promise<void> {
  const net = new MemoryNetwork();
  const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(seed + 1));
  let generations = 0;
  const inner = fixedQueue();
  const queue = {
    ...inner,
    ...parts,
    submit: async (...args: Parameters<typeof inner.submit>) => {
      generations++;
      return inner.submit(...args);
    },
  };
  const relay = new SynodNode({
    key: relayKey,
    role: 'relay',
    transports: [net.join(relayKey.nodeId)],
    store: new MemoryMachineStore(),
  });
  const node = new SynodNode({
    key,
    role: 'node',
    transports: [net.join(key.nodeId)],
    store: new MemoryMachineStore(),
    lingerMs: 50,
    serving: { queue: queue as never, models: [{ id: 'm', fileHash: '22'.repeat(32) }], embedder },
  });
  try {
    await relay.start();
    await node.start();
    await body({
      relay,
      node,
      generations: () => generations,
      health: () => nodeHealth({ ...node.metrics(), peers: 1, topicPeers: 1 }, HEALTH_OPTIONS),
    });
  } finally {
    await Promise.all([relay.close(), node.close()]);
  }
}

describe('a node that cannot work', () => {
  test('its embedder down (a worker restarting): no request taken (skipped no-capacity, no generation), /healthz EMBEDDER_DOWN, work again once it is back', async () => {
    const state: { down: { since: number; error: string; attempts: number } | null } = {
      down: { since: 1_000, error: 'the inference worker exited (code 134)', attempts: 1 },
    };
    const restarting = {
      get down() {
        return state.down;
      },
    };
    await withNode(140, { embedder: restarting }, async ({ relay, node, generations, health }) => {
      expect(node.metrics().embedderDown).toEqual(state.down);
      expect(health().status).toBe(503);
      expect(health().body).toMatchObject({ ok: false, reason: 'EMBEDDER_DOWN' });
      expect(String(health().body['hint'])).toContain('code 134');
      await relay.submit(testRequest({ embedder, nonce: 0x140 }));
      await until(() => (node.metrics().skipped['no-capacity'] ?? 0) === 1, 10_000);
      expect(generations()).toBe(0);

      state.down = null;
      expect(node.metrics().embedderDown).toBeNull();
      expect(health().status).toBe(200);
      await relay.submit(testRequest({ embedder, nonce: 0x141 }));
      await until(() => generations() === 1, 10_000);
    });
  }, 30_000);

  test('its engine worker dead (for good): no request taken, /healthz 503 ENGINE_FAILED', async () => {
    const dead = { failed: new InferenceError('WORKER_FAILED', 'the inference worker exited (code 134)') };
    await withNode(142, { engine: dead }, async ({ relay, node, generations, health }) => {
      expect(node.metrics().engineFailed).toContain('code 134');
      expect(health()).toMatchObject({ status: 503, body: { reason: 'ENGINE_FAILED' } });
      await relay.submit(testRequest({ embedder, nonce: 0x142 }));
      await until(() => (node.metrics().skipped['no-capacity'] ?? 0) === 1, 10_000);
      expect(generations()).toBe(0);
    });
  }, 30_000);
});
