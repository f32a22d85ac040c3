import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import {
  encodePacket,
  NodeKey,
  type Packet,
  type RequestBody,
  signPacket,
  type VerdictEffect,
} from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { heartbeatPacket, testKey } from '../p2p/test-fixtures.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { SynodNode } from './synod-node.ts';
import { loadTestServing, type TestServing } from './test-helpers.ts';
import { type TestRequestOptions, testRequest } from './test-request.ts';
import { until } from './test-until.ts';

/** A stories260K request for `serving`, made at `now`, quorum 3 unless `o.frame` says otherwise. */
function request(
  serving: TestServing,
  now: number,
  o: Omit<TestRequestOptions, 'embedder'> = {},
): RequestBody {
  return testRequest({
    embedder: serving.embedder,
    nonce: 1,
    prompt: 'Once upon a time',
    acceptedModels: ['stories260K'],
    params: { temperature: 0, maxTokens: 24 },
    createdAt: now,
    ...o,
    frame: { quorum: 3, maxTimeMs: 20_000, revealWindowMs: 5_000, ...o.frame },
  });
}

describe('SynodNode over an in-memory network with real engines', () => {
  const servings: TestServing[] = [];
  const nodes: SynodNode[] = [];
  let net: MemoryNetwork;
  let relay: SynodNode;
  const verdicts = new Map<string, VerdictEffect[]>();
  const reveals: Packet<'reveal'>[] = [];

  beforeAll(async () => {
    net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(100));
    relay = new SynodNode({
      key: relayKey,
      role: 'relay',
      transports: [net.join(relayKey.nodeId)],
      onVerdict: (id, v) => verdicts.set(id, [...(verdicts.get(id) ?? []), v]),
      onPacket: ({ packet }) => {
        if (packet.type === 'reveal') reveals.push(packet);
      },
    });
    await relay.start();
    for (let i = 0; i < 3; i++) {
      const serving = await loadTestServing();
      servings.push(serving);
      const key = await NodeKey.fromSeed(new Uint8Array(32).fill(101 + i));
      const node = new SynodNode({
        key,
        role: 'node',
        transports: [net.join(key.nodeId)],
        serving,
        store: new MemoryMachineStore(),
        onVerdict: (id, v) => verdicts.set(id, [...(verdicts.get(id) ?? []), v]),
      });
      await node.start();
      nodes.push(node);
    }
  });

  afterAll(async () => {
    await Promise.all([relay.close(), ...nodes.map((n) => n.close())]);
    await Promise.all(servings.map((s) => s.close()));
  });

  test('three nodes reach an accepted verdict, early close, byte-identical everywhere', async () => {
    const body = request(servings[0] as TestServing, Date.now());
    const submitted = await relay.submit(body);
    expect(submitted.packet.body.requestId).toBe(body.requestId);
    // coordinator computes it; each node recomputes it
    await until(() => (verdicts.get(body.requestId)?.length ?? 0) >= 4);
    const all = verdicts.get(body.requestId) ?? [];
    const digests = new Set(all.map((v) => v.digest));
    expect(digests.size).toBe(1);
    const computed = all.find((v) => v.check === 'computed');
    expect(computed?.verdict.status).toBe('accepted');
    expect(computed?.verdict.accepted.length).toBe(3);
    expect(computed?.verdict.winner?.output.length).toBeGreaterThan(0);
    expect(all.filter((v) => v.check === 'recomputed').length).toBe(3);
    const status = relay.status(body.requestId);
    expect(status?.verdict?.status).toBe('accepted');
    // attestations from the three nodes reach the coordinator
    await until(() => (relay.status(body.requestId)?.attestations ?? 0) >= 3);
    const m = relay.metrics();
    expect(m.published.seal).toBe(1);
    expect(m.published.verdict).toBe(1);
  });

  test('an output cut at maxTokens is revealed with finishReason length, and the verdict is as usual', async () => {
    const body = request(servings[0] as TestServing, Date.now(), {
      nonce: 3,
      params: { temperature: 0, maxTokens: 3 },
    });
    await relay.submit(body);
    await until(() => (verdicts.get(body.requestId)?.length ?? 0) >= 4);
    const mine = reveals.filter((r) => r.body.requestId === body.requestId);
    expect(mine).toHaveLength(3);
    for (const r of mine) expect(r.body.finishReason).toBe('length');
    const all = verdicts.get(body.requestId) ?? [];
    expect(new Set(all.map((v) => v.digest)).size).toBe(1);
    expect(all.find((v) => v.check === 'computed')?.verdict.status).toBe('accepted');
  });

  test('openCommitments counts the requests a node committed to and has not finished; none once they end', async () => {
    // A quorum of 4 among 3 nodes: each commits, no seal comes, and each machine ends at the deadline.
    const body = request(servings[0] as TestServing, Date.now(), {
      nonce: 4,
      frame: { quorum: 4, maxCommits: 4, maxTimeMs: 3_000, revealWindowMs: 1_000 },
    });
    expect(nodes.map((n) => n.openCommitments())).toEqual([0, 0, 0]);
    await relay.submit(body);
    await until(() => nodes.every((n) => n.openCommitments() === 1), 10_000);
    await until(() => nodes.every((n) => n.openCommitments() === 0), 15_000);
    // Its finished machine is still held (for replays), and no longer counted.
    expect(nodes.every((n) => n.metrics().machines.node >= 1)).toBe(true);
  }, 30_000);

  test('a node made with the knownNodes of an earlier one (a role change) knows the network at once, itself left out', async () => {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(101));
    const others = await Promise.all([102, 103].map((b) => NodeKey.fromSeed(new Uint8Array(32).fill(b))));
    const now = Date.now();
    // As an earlier node's knownNodes() gives them (sorted by id): this key's own heartbeat among them.
    const heard = (
      await Promise.all(
        [key, ...others].map(async (k, i) => ({
          nodeId: k.nodeId,
          body: ((await heartbeatPacket(k, i, now - i * 1_000)) as Packet<'heartbeat'>).body,
          at: now - i * 1_000,
        })),
      )
    ).sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
    const again = new SynodNode({
      key,
      role: 'follower',
      transports: [net.join(`${key.nodeId}-again`)],
      knownNodes: heard,
    });
    expect(again.knownNodes()).toEqual(heard.filter((n) => n.nodeId !== key.nodeId));
    expect(again.metrics().knownNodes).toBe(2);
    await again.close();
  });

  test('a request no node serves expires with quorum-not-met', async () => {
    const finished: string[] = [];
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(120));
    const lonely = new SynodNode({
      key,
      role: 'relay',
      transports: [net.join(key.nodeId)],
      onFinished: (_id, o) => finished.push(`${o.kind}:${o.reason}`),
    });
    await lonely.start();
    const body = request(servings[0] as TestServing, Date.now(), {
      acceptedModels: ['some-other-model'],
      frame: { quorum: 1, maxTimeMs: 1_000, revealWindowMs: 10_000 },
    });
    const skipped = () => nodes.map((n) => n.metrics().skipped['not-served'] ?? 0);
    const before = skipped();
    await lonely.submit(body);
    await until(() => finished.length > 0, 10_000);
    expect(finished).toEqual(['expired:quorum-not-met']);
    // Each node turned it away, and counts it by why (`synod_requests_skipped_total{reason}`).
    await until(() => skipped().every((n, i) => n === (before[i] ?? 0) + 1), 5_000);
    await lonely.close();
  });
});

/** Test double over the real MemoryMachineStore: counts the writes a node makes. */
class CountingMachineStore extends MemoryMachineStore {
  saves = 0;
  deletes = 0;
  override async save(owner: string, requestId: string, state: string): Promise<void> {
    this.saves++;
    await super.save(owner, requestId, state);
  }
  override async delete(owner: string, requestId: string): Promise<void> {
    this.deletes++;
    await super.delete(owner, requestId);
  }
}

describe('SynodNode: machine state in its store', () => {
  test('is written when a step changes it, not for packets that change nothing, and deleted once', async () => {
    const serving = await loadTestServing();
    const net = new MemoryNetwork();
    const coordinatorKey = await NodeKey.fromSeed(new Uint8Array(32).fill(130));
    const followerKey = await NodeKey.fromSeed(new Uint8Array(32).fill(131));
    const store = new CountingMachineStore();
    const finished: string[] = [];
    const coordinator = new SynodNode({
      key: coordinatorKey,
      role: 'relay',
      transports: [net.join(coordinatorKey.nodeId)],
    });
    const follower = new SynodNode({
      key: followerKey,
      role: 'follower',
      followAll: true,
      transports: [net.join(followerKey.nodeId)],
      store,
      onFinished: (id) => finished.push(id),
    });
    const stranger = net.join('stranger');
    try {
      await coordinator.start();
      await follower.start();
      const body = request(serving, Date.now(), {
        acceptedModels: ['some-other-model'],
        frame: { quorum: 1, maxTimeMs: 1_000, revealWindowMs: 10_000 },
      });
      await coordinator.submit(body);
      await until(() => follower.status(body.requestId) !== null);
      await follower.settled();
      const savesWhileOpen = store.saves;
      expect(savesWhileOpen).toBeGreaterThanOrEqual(1);
      expect((await store.load(followerKey.nodeId)).map((r) => r.requestId)).toEqual([body.requestId]);
      await until(() => finished.includes(body.requestId), 20_000);
      await follower.settled();
      expect(store.deletes).toBe(1);
      expect(await store.load(followerKey.nodeId)).toEqual([]);
      const writes = store.saves + store.deletes;
      // late packets for the finished request (each new and valid, so the intake passes them on)
      for (let n = 0; n < 20; n++) {
        const key = await testKey(5_000 + n);
        const commit = await signPacket(key, 'commit', {
          requestId: body.requestId,
          commitment: (n + 1).toString(16).padStart(64, '0'),
          createdAt: Date.now(),
        });
        await stranger.publish(topicOfPacketType('commit'), encodePacket(commit));
      }
      await net.settled();
      await until(() => follower.metrics().intake.accepted >= 21);
      await follower.settled();
      expect(store.saves + store.deletes).toBe(writes);
    } finally {
      await coordinator.close();
      await follower.close();
      await stranger.close();
      await serving.close();
    }
  }, 60_000);
});

describe('SynodNode: packets of requests not seen yet', () => {
  test('are held within a byte budget, the oldest request first, not only within counts', async () => {
    const net = new MemoryNetwork();
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(120));
    const follower = new SynodNode({
      key,
      role: 'follower',
      transports: [net.join(key.nodeId)],
      followAll: true,
    });
    await follower.start();
    const sender = net.join('sender');
    const stranger = await NodeKey.fromSeed(new Uint8Array(32).fill(121));
    try {
      // 300 reveals of about 65 KB, each for a request nobody sent: 256 of them (the count bound) would
      // still be 16.8 MB, past the 16 MiB budget.
      for (let i = 0; i < 300; i++) {
        const reveal = await signPacket(stranger, 'reveal', {
          requestId: i.toString(16).padStart(64, '0'),
          output: 'x'.repeat(65_000),
          bEmbedding: '00'.repeat(64),
          model: { id: 'stories260K', fileHash: 'ab'.repeat(32) },
          salt: 'cd'.repeat(32),
          createdAt: Date.now(),
        });
        await sender.publish(topicOfPacketType('reveal'), encodePacket(reveal));
      }
      await net.settled();
      await until(() => follower.metrics().intake.accepted >= 300);
      const { early } = follower.metrics();
      expect(early.bytes).toBeLessThanOrEqual(16 * 1024 * 1024);
      expect(early.bytes).toBeGreaterThan(15 * 1024 * 1024);
      expect(early.requests).toBeLessThan(256);
    } finally {
      await follower.close();
    }
  }, 60_000);
});

describe('SynodNode: a request replayed after its machine is gone', () => {
  test('is ignored: the node does not infer again and sign a second commitment (evidence against itself)', async () => {
    const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
    // A test double of the inference queue: one fixed answer, at once.
    const fixedQueue = {
      accepting: true,
      running: false,
      capacity: { queued: 0, maxQueue: 4 },
      estimateMs: () => 1,
      submit: async () => ({
        text: 'same output',
        tokens: 2,
        tokensPerSecond: 100,
        bEmbedding: new Uint8Array(64).fill(7),
        finishReason: 'stop' as const,
        startedAt: Date.now(),
        finishedAt: Date.now(),
      }),
    };
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(130));
    const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(131));
    const relay = new SynodNode({ key: relayKey, role: 'relay', transports: [net.join(relayKey.nodeId)] });
    const commits: Packet<'commit'>[] = [];
    let requestBytes: Uint8Array | null = null;
    const node = new SynodNode({
      key: nodeKey,
      role: 'node',
      transports: [net.join(nodeKey.nodeId)],
      // A short linger, and a dedup set a flood empties at once: what a replay needs to get through.
      lingerMs: 50,
      intake: { dedupEntries: 8 },
      serving: {
        queue: fixedQueue as never,
        models: [{ id: 'm', fileHash: '22'.repeat(32) }],
        embedder,
      },
      onPacket: ({ packet, own }) => {
        if (own && packet.type === 'commit') commits.push(packet as Packet<'commit'>);
        if (!own && packet.type === 'request') requestBytes = encodePacket(packet);
      },
    });
    await relay.start();
    await node.start();
    try {
      const body = testRequest({ embedder });
      await relay.submit(body);
      await until(() => node.status(body.requestId) === null && commits.length === 1);
      const attacker = net.join('attacker');
      const key = await testKey();
      for (let i = 0; i < 16; i++) {
        await attacker.publish(
          topicOfPacketType('heartbeat'),
          encodePacket(await heartbeatPacket(key, i, Date.now())),
        );
      }
      await net.settled();
      if (requestBytes === null) throw new Error('the node saw no request');
      await attacker.publish(topicOfPacketType('request'), requestBytes);
      await net.settled();
      await until(() => node.metrics().replaysIgnored === 1);
      await Bun.sleep(200);
      expect(commits).toHaveLength(1);
    } finally {
      await node.close();
      await relay.close();
    }
  }, 60_000);
});

describe('SynodNode: a peer the intake bans', () => {
  test('is hung up on through its transport, and the ban is logged', async () => {
    const net = new MemoryNetwork();
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(140));
    const transport = net.join(key.nodeId);
    // The in-memory transport has no connections to close: a recording double of the hook here.
    const hungUp: string[] = [];
    const bans: (number | undefined)[] = [];
    Object.assign(transport, {
      disconnect: async (peer: string, banMs?: number) => {
        hungUp.push(peer);
        bans.push(banMs);
      },
    });
    const logs: Record<string, unknown>[] = [];
    const follower = new SynodNode({
      key,
      role: 'follower',
      transports: [transport],
      intake: { banThreshold: 3, banMs: 90_000 },
      log: (e) => logs.push(e),
    });
    await follower.start();
    try {
      const attacker = net.join('attacker');
      for (let i = 0; i < 5; i++)
        await attacker.publish(topicOfPacketType('commit'), new TextEncoder().encode(`junk ${i}`));
      await net.settled();
      await until(() => hungUp.length === 1);
      expect(hungUp).toEqual(['attacker']);
      // The transport refuses it for the ban the intake was configured with, not a default of its own.
      expect(bans[0]).toBeGreaterThan(85_000);
      expect(bans[0]).toBeLessThanOrEqual(90_000);
      expect(logs.find((l) => l['msg'] === 'peer banned')).toMatchObject({
        code: 'PEER_BANNED',
        peer: 'attacker',
        invalid: 3,
        rejected: { PACKET_MALFORMED: 3 },
      });
    } finally {
      await follower.close();
    }
  });
});
