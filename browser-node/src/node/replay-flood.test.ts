import { describe, expect, test } from 'bun:test';
import { encodePacket, NodeKey, type Packet, type RequestBody, signPacket } from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { SynodNode } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until as waitUntil } from './test-until.ts';

const until = (cond: () => boolean, timeoutMs = 60_000) => waitUntil(cond, timeoutMs, 5);

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };

/** A request body for `model`, with `nonce` making it unique, sealed within `maxTimeMs` at the latest. */
function requestBody(model: string, nonce: number, maxTimeMs = 10_000): RequestBody {
  return testRequest({
    embedder,
    nonce,
    acceptedModels: [model],
    params: { temperature: 0.8, seed: 1, maxTokens: 8 },
    frame: { maxTimeMs },
  });
}

describe('SynodNode: a request it served, replayed after a flood of other requests', () => {
  test('is not served again: requests it never served do not push it out of what it remembers', async () => {
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(150));
    const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(151));
    const floodKey = await NodeKey.fromSeed(new Uint8Array(32).fill(152));
    const commits: Packet<'commit'>[] = [];
    let requestBytes: Uint8Array | null = null;
    const node = new SynodNode({
      key: nodeKey,
      role: 'node',
      transports: [net.join(nodeKey.nodeId)],
      store: new MemoryMachineStore(),
      lingerMs: 20,
      serving: {
        queue: fixedQueue() as never,
        models: [{ id: 'm', fileHash: '22'.repeat(32) }],
        embedder,
      },
      onPacket: ({ packet, own }) => {
        if (own && packet.type === 'commit') commits.push(packet as Packet<'commit'>);
        if (!own && packet.type === 'request') requestBytes ??= encodePacket(packet);
      },
    });
    const relay = new SynodNode({ key: relayKey, role: 'relay', transports: [net.join(relayKey.nodeId)] });
    await relay.start();
    await node.start();
    try {
      const body = requestBody('m', 1, 120_000);
      await relay.submit(body);
      await until(() => node.status(body.requestId) === null && commits.length === 1);
      // Requests cost nothing to sign: a peer sends more of them (for a model this node does not serve,
      // each finished at once) than the node and its intake remember, paced so none is shed.
      const flooder = net.join('flooder');
      const total = 66_000;
      for (let start = 0; start < total; start += 200) {
        for (let i = start; i < Math.min(total, start + 200); i++) {
          const p = await signPacket(floodKey, 'request', requestBody('other', 1_000 + i));
          await flooder.publish(topicOfPacketType('request'), encodePacket(p));
        }
        await until(() => node.metrics().intake.accepted >= start + 200 + 1);
      }
      if (requestBytes === null) throw new Error('the node saw no request');
      await flooder.publish(topicOfPacketType('request'), requestBytes);
      await net.settled();
      await Bun.sleep(300);
      await node.settled();
      expect(commits.map((c) => c.body.requestId)).toEqual([body.requestId]);
      expect(node.metrics().replaysIgnored).toBe(1);
    } finally {
      await node.close();
      await relay.close();
    }
  }, 300_000);
});
