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

describe('a node whose embedder is down (its worker restarting)', () => {
  test('takes no request (skipped no-capacity, no generation), says EMBEDDER_DOWN on /healthz, and works again once it is back', async () => {
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(140));
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(141));
    // The queue's embedder as a RestartingEmbedder shows it: `down` while its worker restarts.
    const state: { down: { since: number; error: string; attempts: number } | null } = {
      down: { since: 1_000, error: 'the inference worker exited (code 134)', attempts: 1 },
    };
    let generations = 0;
    const inner = fixedQueue();
    const queue = {
      ...inner,
      embedder: {
        get down() {
          return state.down;
        },
      },
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
      const options = { bootstrap: [], db: 'state.db' };
      expect(node.metrics().embedderDown).toEqual(state.down);
      const health = nodeHealth({ ...node.metrics(), peers: 1, topicPeers: 1 }, options);
      expect(health.status).toBe(503);
      expect(health.body).toMatchObject({ ok: false, reason: 'EMBEDDER_DOWN' });
      expect(String(health.body['hint'])).toContain('code 134');

      await relay.submit(testRequest({ embedder, nonce: 0x140 }));
      await until(() => (node.metrics().skipped['no-capacity'] ?? 0) === 1, 10_000);
      expect(generations).toBe(0);

      state.down = null;
      expect(node.metrics().embedderDown).toBeNull();
      expect(nodeHealth({ ...node.metrics(), peers: 1, topicPeers: 1 }, options).status).toBe(200);
      await relay.submit(testRequest({ embedder, nonce: 0x141 }));
      await until(() => generations === 1, 10_000);
    } finally {
      await Promise.all([relay.close(), node.close()]);
    }
  }, 30_000);

  test('an engine whose worker died (for good): no request taken, /healthz 503 ENGINE_FAILED', async () => {
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(142));
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(143));
    let generations = 0;
    const inner = fixedQueue();
    const queue = {
      ...inner,
      engine: { failed: new InferenceError('WORKER_FAILED', 'the inference worker exited (code 134)') },
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
      expect(node.metrics().engineFailed).toContain('code 134');
      const health = nodeHealth(
        { ...node.metrics(), peers: 1, topicPeers: 1 },
        { bootstrap: [], db: 'state.db' },
      );
      expect(health).toMatchObject({ status: 503, body: { reason: 'ENGINE_FAILED' } });
      await relay.submit(testRequest({ embedder, nonce: 0x142 }));
      await until(() => (node.metrics().skipped['no-capacity'] ?? 0) === 1, 10_000);
      expect(generations).toBe(0);
    } finally {
      await Promise.all([relay.close(), node.close()]);
    }
  }, 30_000);
});
