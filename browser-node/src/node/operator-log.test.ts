/**
 * What an operator of a node reads (its log and metrics) for what it actually did: its heartbeats are
 * counted among the packets it published, a step that failed because its state file could not be
 * written is one line with a stable code (not a stack trace per retry), and a restart says which
 * requests it took up again from its state file.
 */
import { describe, expect, test } from 'bun:test';
import { encodePacket, NodeKey, signPacket } from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { FailingMachineStoreDouble } from './failing-machine-store-double.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { realScheduler } from './scheduler.ts';
import { SynodNode, type SynodNodeOptions } from './synod-node.ts';
import { TEST_HEARTBEAT } from './test-helpers.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const serving = () => ({
  queue: fixedQueue() as never,
  models: [{ id: 'm', fileHash: '22'.repeat(32) }],
  embedder,
});
const heartbeat = TEST_HEARTBEAT;

let seed = 210;

async function keys() {
  return {
    relayKey: await NodeKey.fromSeed(new Uint8Array(32).fill(seed++)),
    nodeKey: await NodeKey.fromSeed(new Uint8Array(32).fill(seed++)),
  };
}

describe('SynodNode: what its operator reads', () => {
  test('heartbeats are counted in published (synod_packets_published_total{type="heartbeat"})', async () => {
    const net = new MemoryNetwork();
    const { nodeKey } = await keys();
    const node = new SynodNode({
      key: nodeKey,
      role: 'node',
      transports: [net.join(nodeKey.nodeId)],
      serving: serving(),
      heartbeat,
      log: () => undefined,
    });
    await node.start();
    try {
      // The start sends one; another sent by hand.
      await until(() => (node.metrics().published.heartbeat ?? 0) >= 1);
      await node.publishHeartbeat();
      expect(node.metrics().published.heartbeat).toBe(2);
    } finally {
      await node.close();
    }
  });

  test('a step whose state could not be written logs STORE_WRITE_FAILED with a hint, no stack', async () => {
    const net = new MemoryNetwork();
    const { relayKey, nodeKey } = await keys();
    const store = new FailingMachineStoreDouble();
    const logs: Record<string, unknown>[] = [];
    const relay = new SynodNode({ key: relayKey, role: 'relay', transports: [net.join(relayKey.nodeId)] });
    const node = new SynodNode({
      key: nodeKey,
      role: 'node',
      transports: [net.join(nodeKey.nodeId)],
      serving: serving(),
      store,
      writeRetriesMs: [],
      resumeAfterMs: 60_000,
      log: (e) => logs.push(e),
    } satisfies SynodNodeOptions);
    await relay.start();
    await node.start();
    try {
      store.failSaves(Number.POSITIVE_INFINITY);
      const body = testRequest({ embedder, nonce: seed });
      await relay.submit(body);
      await until(() => logs.some((l) => l.msg === 'machine step failed'));
      const line = logs.find((l) => l.msg === 'machine step failed');
      expect(line).toMatchObject({
        level: 'error',
        code: 'STORE_WRITE_FAILED',
        requestId: body.requestId,
      });
      expect(String(line?.err)).toContain('SQLITE_BUSY');
      expect(String(line?.hint)).toContain('state file');
      expect(line).not.toHaveProperty('stack');
    } finally {
      store.heal();
      await node.close();
      await relay.close();
    }
  });

  test('a spell of failing writes is one retry line and one failed-step line, then one line when writes work again', async () => {
    const net = new MemoryNetwork();
    const { relayKey, nodeKey } = await keys();
    const store = new FailingMachineStoreDouble();
    const logs: Record<string, unknown>[] = [];
    const relay = new SynodNode({ key: relayKey, role: 'relay', transports: [net.join(relayKey.nodeId)] });
    const node = new SynodNode({
      key: nodeKey,
      role: 'node',
      transports: [net.join(nodeKey.nodeId)],
      serving: serving(),
      store,
      writeRetriesMs: [5, 5],
      resumeAfterMs: 20,
      log: (e) => logs.push(e),
    } satisfies SynodNodeOptions);
    await relay.start();
    await node.start();
    const count = (msg: string) => logs.filter((l) => l.msg === msg).length;
    try {
      store.failSaves(Number.POSITIVE_INFINITY);
      // Two requests, each step retried twice and resumed on a backoff: many failures, two lines.
      for (const nonce of [seed + 1, seed + 2]) {
        await relay.submit(testRequest({ embedder, nonce, frame: { quorum: 1, maxCommits: 1 } }));
      }
      await until(() => node.metrics().store.errors >= 6);
      expect(count('machine step failed')).toBe(1);
      expect(count('machine state write failed, trying again')).toBe(1);
      store.heal();
      await until(() => count('state writes work again') === 1);
      const again = logs.find((l) => l.msg === 'state writes work again');
      expect(again).toMatchObject({ level: 'info' });
      expect(Number(again?.['failedSteps'])).toBeGreaterThanOrEqual(6);
      expect(Number(again?.['retries'])).toBeGreaterThanOrEqual(12);
      expect(Number(again?.['failedForMs'])).toBeGreaterThan(0);
      // A later spell is logged again, once.
      store.failSaves(Number.POSITIVE_INFINITY);
      await relay.submit(testRequest({ embedder, nonce: seed + 3, frame: { quorum: 1, maxCommits: 1 } }));
      await until(() => count('machine step failed') === 2);
      expect(count('machine state write failed, trying again')).toBe(2);
    } finally {
      store.heal();
      await node.close();
      await relay.close();
    }
  });

  test('a restart logs each request it resumes from its state file', async () => {
    const net = new MemoryNetwork();
    const { relayKey, nodeKey } = await keys();
    const store = new MemoryMachineStore();
    const relay = new SynodNode({ key: relayKey, role: 'relay', transports: [net.join(relayKey.nodeId)] });
    // A node that commits and is stopped before the seal (its relay seals after a quorum of 3 it never gets).
    const first = new SynodNode({
      key: nodeKey,
      role: 'node',
      transports: [net.join(`${nodeKey.nodeId}-1`)],
      serving: serving(),
      store,
      log: () => undefined,
    });
    await relay.start();
    await first.start();
    const body = testRequest({ embedder, nonce: seed, frame: { quorum: 3, maxTimeMs: 20_000 } });
    let second: SynodNode | undefined;
    try {
      await relay.submit(body);
      await until(() => first.metrics().published.commit === 1);
      await first.settled();
      await first.close();
      const logs: Record<string, unknown>[] = [];
      second = new SynodNode({
        key: nodeKey,
        role: 'node',
        transports: [net.join(`${nodeKey.nodeId}-2`)],
        serving: serving(),
        store,
        log: (e) => logs.push(e),
      });
      await second.start();
      expect(logs).toContainEqual(
        expect.objectContaining({
          level: 'info',
          msg: 'resumed request',
          requestId: body.requestId,
          phase: 'committed',
        }),
      );
    } finally {
      await second?.close();
      await first.close();
      await relay.close();
    }
  });

  test('evidence against other keys is a line a minute for each kind, saying how many were not logged', async () => {
    const net = new MemoryNetwork();
    const { relayKey } = await keys();
    const logs: Record<string, unknown>[] = [];
    // The relay's clock, moved on by hand past the minute.
    let shift = 0;
    const scheduler = { ...realScheduler, now: () => Date.now() + shift };
    const relay = new SynodNode({
      key: relayKey,
      role: 'relay',
      transports: [net.join(relayKey.nodeId)],
      scheduler,
      log: (e) => logs.push(e),
    });
    await relay.start();
    const attacker = net.join('attacker');
    // Each key signs two commitments for the request: evidence against it, each time.
    const doubleCommits = async (requestId: string, from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        const key = await NodeKey.fromSeed(new Uint8Array(32).fill(i));
        for (const c of ['aa', 'bb']) {
          const commit = await signPacket(key, 'commit', {
            requestId,
            commitment: c.repeat(32),
            createdAt: scheduler.now(),
          });
          await attacker.publish(topicOfPacketType('commit'), encodePacket(commit));
        }
      }
    };
    const evidenceLines = () => logs.filter((l) => l.msg === 'evidence');
    try {
      const frame = { quorum: 3, maxCommits: 64, maxTimeMs: 60_000 };
      const first = testRequest({ embedder, nonce: seed++, frame });
      await relay.submit(first);
      await doubleCommits(first.requestId, 100, 6);
      await until(() => relay.metrics().evidence === 6);
      await Bun.sleep(100);
      // Six pieces of evidence, one line.
      expect(evidenceLines()).toHaveLength(1);
      expect(evidenceLines()[0]).toMatchObject({ level: 'warn', kind: 'double-commit' });
      expect(evidenceLines()[0]?.alsoSinceLastLine).toBeUndefined();
      // A minute on: the next is logged, with the five before it that were not.
      shift = 61_000;
      const second = testRequest({ embedder, nonce: seed++, frame, createdAt: scheduler.now() });
      await relay.submit(second);
      await doubleCommits(second.requestId, 120, 2);
      await until(() => relay.metrics().evidence === 8);
      await Bun.sleep(100);
      expect(evidenceLines()).toHaveLength(2);
      expect(evidenceLines()[1]).toMatchObject({ kind: 'double-commit', alsoSinceLastLine: 5 });
      // A key the relay has heard a heartbeat of: its first evidence line comes within the minute too.
      const known = await NodeKey.fromSeed(new Uint8Array(32).fill(140));
      const node = new SynodNode({
        key: known,
        role: 'node',
        transports: [net.join(known.nodeId)],
        serving: serving(),
        heartbeat,
        scheduler,
        log: () => undefined,
      });
      await node.start();
      try {
        await until(() => relay.knownNodes(120_000).some((k) => k.nodeId === known.nodeId));
        await doubleCommits(second.requestId, 140, 1);
        await until(() => relay.metrics().evidence === 9);
        await Bun.sleep(100);
        expect(evidenceLines()).toHaveLength(3);
        expect(evidenceLines()[2]).toMatchObject({ kind: 'double-commit', against: known.nodeId });
      } finally {
        await node.close();
      }
    } finally {
      await relay.close();
    }
  });
});
