import { describe, expect, test } from 'bun:test';
import { encodePacket, NodeKey, type Packet } from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { SynodNode } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };

describe('SynodNode: a request replayed after a restart', () => {
  test('is not served again by the same key: no second commitment after the node finished it', async () => {
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(140));
    const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(141));
    const store = new MemoryMachineStore();
    const commits: Packet<'commit'>[] = [];
    let requestBytes: Uint8Array | null = null;
    const transports = [net.join(`${nodeKey.nodeId}-1`), net.join(`${nodeKey.nodeId}-2`)];
    const makeNode = (run: 0 | 1) =>
      new SynodNode({
        key: nodeKey,
        role: 'node',
        transports: [transports[run] as (typeof transports)[number]],
        store,
        lingerMs: 50,
        serving: {
          queue: fixedQueue() as never,
          models: [{ id: 'm', fileHash: '22'.repeat(32) }],
          embedder,
        },
        onPacket: ({ packet, own }) => {
          if (own && packet.type === 'commit') commits.push(packet as Packet<'commit'>);
          if (!own && packet.type === 'request') requestBytes = encodePacket(packet);
        },
      });
    const relay = new SynodNode({ key: relayKey, role: 'relay', transports: [net.join(relayKey.nodeId)] });
    const first = makeNode(0);
    await relay.start();
    await first.start();
    let second: SynodNode | undefined;
    try {
      const body = testRequest({
        embedder,
        nonce: 0x40,
        params: { temperature: 0.8, seed: 1, maxTokens: 8 },
      });
      await relay.submit(body);
      await until(() => first.status(body.requestId) === null && commits.length === 1);
      await first.close();
      await transports[0]?.close();
      // The same key restarts on the same store (the process was stopped and started again) while the
      // request packet is still fresh, and it reaches the node again: a Gun relay hands out what it
      // holds to a peer that connects, a gossip peer may send it again.
      second = makeNode(1);
      await second.start();
      if (requestBytes === null) throw new Error('the node saw no request');
      const peer = net.join('peer');
      await peer.publish(topicOfPacketType('request'), requestBytes);
      await net.settled();
      await until(() => (second as SynodNode).metrics().intake.accepted >= 1);
      await second.settled();
      await Bun.sleep(200);
      await second.settled();
      expect(commits.map((c) => c.body.commitment)).toEqual([commits[0]?.body.commitment ?? '']);
      expect(second.metrics().replaysIgnored).toBe(1);
      // The store holds the finished machine (for the replay window), not a machine to resume.
      const rows = await store.load(nodeKey.nodeId);
      expect(rows.map((r) => r.requestId)).toEqual([body.requestId]);
      expect(second.status(body.requestId)).toBeNull();
      // Once the window has passed, a start forgets it.
      const old = JSON.parse(rows[0]?.state ?? '{}') as { outcome: { at: number } };
      old.outcome.at -= 10 * 60_000;
      const staleStore = new MemoryMachineStore();
      await staleStore.save(nodeKey.nodeId, body.requestId, JSON.stringify(old));
      const third = new SynodNode({
        key: nodeKey,
        role: 'node',
        transports: [],
        store: staleStore,
        serving: { queue: fixedQueue() as never, models: [{ id: 'm', fileHash: '22'.repeat(32) }], embedder },
      });
      await third.start();
      await third.close();
      expect(await staleStore.load(nodeKey.nodeId)).toEqual([]);
    } finally {
      await second?.close();
      await first.close();
      await relay.close();
    }
  }, 60_000);
});
