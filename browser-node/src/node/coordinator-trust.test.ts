import { describe, expect, test } from 'bun:test';
import { encodePacket, NodeKey, type RequestBody, signPacket } from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { coordinatorTrust, parseCoordinatorIds } from './coordinator-trust.ts';
import { SynodNode as Node, type SynodNode } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };

let seed = 40;

/**
 * A relay (the real coordinator), a node that serves it, and a hijacker's key: the hijacker hears the
 * request and publishes the same body signed as its own, before the relay's copy reaches the node.
 */
async function hijacked(trusting: boolean) {
  const net = new MemoryNetwork();
  const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
  const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
  const hijacker = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
  const finished = new Map<string, { kind: 'done' | 'expired'; reason: string }>();
  const relay: SynodNode = new Node({
    key: relayKey,
    role: 'relay',
    transports: [net.join(relayKey.nodeId)],
    onFinished: (id, outcome) => finished.set(id, outcome),
  });
  const node: SynodNode = new Node({
    key: nodeKey,
    role: 'node',
    transports: [net.join(nodeKey.nodeId)],
    serving: { queue: fixedQueue() as never, models: [{ id: 'm', fileHash: '22'.repeat(32) }], embedder },
    observer: trusting ? coordinatorTrust([relayKey.nodeId]) : {},
  });
  const thief = net.join(hijacker.nodeId);
  await relay.start();
  await node.start();
  const body = testRequest({ embedder, nonce: seed, frame: { maxTimeMs: 1_500, revealWindowMs: 500 } });
  // The hijacker's copy is out first.
  const stolen = await signPacket(hijacker, 'request', body);
  await thief.publish(topicOfPacketType('request'), encodePacket(stolen));
  await Bun.sleep(50);
  await relay.submit(body);
  await until(() => finished.has(body.requestId), 10_000);
  const outcome = finished.get(body.requestId);
  const rejected = node.metrics().lifecycleRejected;
  await node.close();
  await relay.close();
  return { outcome, rejected };
}

describe("a node told its coordinators refuses another key's copy of a request", () => {
  test("with --coordinators, the hijacker's copy is refused (NOT_COORDINATOR) and the relay's request gets its verdict", async () => {
    const { outcome, rejected } = await hijacked(true);
    expect(outcome?.kind).toBe('done');
    expect(rejected.NOT_COORDINATOR).toBe(1);
  }, 15_000);

  test("without, the node takes the first copy it hears (the hijacker's), refuses the relay's, and the relay's request gets no verdict", async () => {
    const { outcome, rejected } = await hijacked(false);
    expect(outcome?.kind).toBe('expired');
    expect(rejected.NOT_COORDINATOR).toBeUndefined();
    // The relay's own copy came second: refused as another request packet for a request it holds.
    expect(rejected.DUPLICATE_REQUEST).toBe(1);
  }, 15_000);
});

describe('copies of requests by keys a node does not serve', () => {
  test('are refused before a machine is made for them, so a flood of them holds nothing', async () => {
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
    const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
    const stranger = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
    const node: SynodNode = new Node({
      key: nodeKey,
      role: 'node',
      transports: [net.join(nodeKey.nodeId)],
      serving: { queue: fixedQueue() as never, models: [{ id: 'm', fileHash: '22'.repeat(32) }], embedder },
      observer: coordinatorTrust([relayKey.nodeId]),
    });
    const out = net.join(stranger.nodeId);
    await node.start();
    try {
      for (let i = 0; i < 20; i++) {
        const packet = await signPacket(
          stranger,
          'request',
          testRequest({ embedder, nonce: seed * 100 + i }),
        );
        await out.publish(topicOfPacketType('request'), encodePacket(packet));
      }
      await until(() => node.metrics().lifecycleRejected.NOT_COORDINATOR === 20, 5_000);
      expect(node.metrics().machines).toEqual({ coordinator: 0, node: 0, follower: 0 });
      // Who was refused is said (the node's log says it too: work-watch.ts).
      expect(node.metrics().refusedCoordinators).toEqual([stranger.nodeId]);
    } finally {
      await node.close();
    }
  });
});

describe('parseCoordinatorIds', () => {
  test('64 hex digits each, comma-separated, made lowercase and kept once; empty is none', () => {
    const a = 'AB'.repeat(32);
    const b = 'cd'.repeat(32);
    expect(parseCoordinatorIds(` ${a}, ${b},${a.toLowerCase()}`)).toEqual([a.toLowerCase(), b]);
    expect(parseCoordinatorIds('')).toEqual([]);
    for (const bad of ['xyz', `${a},`, 'ab'.repeat(31), `${a},,${b}`]) {
      expect(parseCoordinatorIds(bad)).toHaveProperty('error');
    }
  });

  test('no list trusts any author; a list only its own', () => {
    expect(coordinatorTrust([]).trustsCoordinator).toBeUndefined();
    const trust = coordinatorTrust(['AB'.repeat(32)]).trustsCoordinator;
    expect(trust?.('ab'.repeat(32), {} as RequestBody)).toBe(true);
    expect(trust?.('cd'.repeat(32), {} as RequestBody)).toBe(false);
  });
});
