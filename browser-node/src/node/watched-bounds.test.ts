import { describe, expect, test } from 'bun:test';
import { NodeKey, toHex } from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { SynodNode } from './synod-node.ts';
import { until } from './test-until.ts';

describe('SynodNode: the requests it was asked to watch', () => {
  test('are forgotten once their machine finished: a long-running node does not keep every id', async () => {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(160));
    const node = new SynodNode({
      key,
      role: 'relay',
      transports: [new MemoryNetwork().join(key.nodeId)],
      // A watched request that never comes expires after 20 ms; its machine lingers 10 ms.
      observer: { requestWaitMs: 20 },
      lingerMs: 10,
    });
    await node.start();
    try {
      const watched = 500;
      for (let i = 0; i < watched; i++) node.watch(toHex(crypto.getRandomValues(new Uint8Array(32))));
      expect(node.metrics().watched).toBe(watched);
      await until(() => node.metrics().machines.follower === 0, 10_000, 10);
      expect(node.metrics().watched).toBe(0);
    } finally {
      await node.close();
    }
  });

  test('a request watched again while its finished machine lingers is not kept either', async () => {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(161));
    const node = new SynodNode({
      key,
      role: 'relay',
      transports: [new MemoryNetwork().join(key.nodeId)],
      observer: { requestWaitMs: 20 },
      lingerMs: 200,
    });
    await node.start();
    try {
      const requestId = toHex(crypto.getRandomValues(new Uint8Array(32)));
      node.watch(requestId);
      await until(() => node.status(requestId)?.phase === 'expired', 5_000, 5);
      node.watch(requestId);
      expect(node.metrics().watched).toBe(0);
      await until(() => node.status(requestId) === null, 5_000, 10);
      expect(node.metrics().watched).toBe(0);
    } finally {
      await node.close();
    }
  });
});
