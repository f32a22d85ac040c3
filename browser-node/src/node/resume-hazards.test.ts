/**
 * Hazards of resuming a machine whose step failed (its state write failed past its retries): a resume
 * must not restart an inference still running, a `submit` that failed must leave nothing running, and
 * `close()` must not wait on a write retry's pause.
 */
import { describe, expect, test } from 'bun:test';
import { NodeKey } from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { FailingMachineStoreDouble } from './failing-machine-store-double.ts';
import { NodeError } from './node-errors.ts';
import type { Scheduler } from './scheduler.ts';
import { SynodNode, type SynodNodeOptions } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };

/** A node machine's state while it infers. */
const inferring = (state: string) =>
  (JSON.parse(state) as { work?: { phase?: string } }).work?.phase === 'inferring';

let seed = 90;

/** A fixed queue whose answers take `ms`, counting its submits. */
function slowQueue(ms: number) {
  const inner = fixedQueue();
  const q = {
    ...inner,
    submits: 0,
    submit: async (...args: Parameters<typeof inner.submit>) => {
      q.submits++;
      await Bun.sleep(ms);
      return inner.submit(...args);
    },
  };
  return q;
}

async function setUp(
  o: { relay?: Partial<SynodNodeOptions>; node?: Partial<SynodNodeOptions>; queueMs?: number } = {},
) {
  const net = new MemoryNetwork();
  const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
  const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
  const relayStore = new FailingMachineStoreDouble();
  const nodeStore = new FailingMachineStoreDouble();
  const queue = slowQueue(o.queueMs ?? 0);
  const finished = new Map<string, { kind: 'done' | 'expired'; reason: string }>();
  const published: string[] = [];
  const relay = new SynodNode({
    key: relayKey,
    role: 'relay',
    transports: [net.join(relayKey.nodeId)],
    store: relayStore,
    onFinished: (id, outcome) => finished.set(id, outcome),
    onPacket: ({ packet, own }) => {
      if (own) published.push(`${packet.type}:${'requestId' in packet.body ? packet.body.requestId : ''}`);
    },
    ...o.relay,
  });
  const node = new SynodNode({
    key: nodeKey,
    role: 'node',
    transports: [net.join(nodeKey.nodeId)],
    store: nodeStore,
    serving: { queue: queue as never, models: [{ id: 'm', fileHash: '22'.repeat(32) }], embedder },
    ...o.node,
  });
  await relay.start();
  await node.start();
  const body = testRequest({ embedder, nonce: seed, frame: { maxTimeMs: 5_000 } });
  return {
    relay,
    node,
    relayStore,
    nodeStore,
    queue,
    body,
    finished,
    published,
    async close() {
      await node.close();
      await relay.close();
    },
  };
}

describe('SynodNode: resuming a machine whose step failed', () => {
  test('a resume while the inference runs does not start it again: one submit, the request completes', async () => {
    const t = await setUp({ node: { writeRetriesMs: [10], resumeAfterMs: 50 }, queueMs: 600 });
    try {
      // The write after the pick-up (inferring) fails with its retry: the step fails, a resume is armed
      // and fires (its write works) while the inference still runs.
      t.nodeStore.failSaves(2, inferring);
      await t.relay.submit(t.body);
      await until(() => t.finished.has(t.body.requestId), 15_000);
      expect(t.finished.get(t.body.requestId)?.kind).toBe('done');
      expect(t.nodeStore.failed).toBe(2);
      expect(t.queue.submits).toBe(1);
      expect(t.relay.metrics().verdicts).toBe(1);
    } finally {
      await t.close();
    }
  }, 30_000);

  test('a submit whose first write fails leaves nothing running; the same body can be submitted again', async () => {
    const t = await setUp({ relay: { writeRetriesMs: [10], resumeAfterMs: 50 } });
    try {
      t.relayStore.failSaves(2);
      const refused = await t.relay.submit(t.body).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(NodeError);
      expect((refused as NodeError).code).toBe('REQUEST_NOT_PUBLISHED');
      expect(t.relay.status(t.body.requestId)).toBeNull();
      // Well past the resume's delay: nothing of it was published.
      await Bun.sleep(400);
      expect(t.published.filter((p) => p.endsWith(t.body.requestId))).toEqual([]);
      expect(t.relay.status(t.body.requestId)).toBeNull();
      expect(await t.relayStore.load(t.relay.nodeId)).toEqual([]);
      const r = await t.relay.submit(t.body);
      expect(r.packet.body.requestId).toBe(t.body.requestId);
      await until(() => t.finished.has(t.body.requestId), 15_000);
      expect(t.finished.get(t.body.requestId)?.kind).toBe('done');
    } finally {
      await t.close();
    }
  }, 30_000);

  test('close() does not wait on a write retry pause whose timer never fires', async () => {
    // Timers that never fire on their own: a pause between write attempts ends only when close() ends it.
    const frozen: Scheduler = { now: () => Date.now(), after: () => () => {} };
    const t = await setUp({ relay: { scheduler: frozen, writeRetriesMs: [10, 10] } });
    t.relayStore.failSaves(Number.POSITIVE_INFINITY);
    const submitted = t.relay.submit(t.body).catch((e: unknown) => e);
    await until(() => t.relayStore.failed >= 1, 5_000);
    const closed = await Promise.race([
      t.relay.close().then(() => 'closed'),
      Bun.sleep(2_000).then(() => 'hung'),
    ]);
    expect(closed).toBe('closed');
    expect(await submitted).toBeInstanceOf(Error);
    // Not written again once closed.
    expect(t.relayStore.failed).toBe(1);
    await t.node.close();
  }, 30_000);
});

describe('SynodNode: submit refusals are typed', () => {
  test('a request the node already follows is REQUEST_ALREADY_KNOWN; after close, NODE_CLOSED', async () => {
    const t = await setUp();
    try {
      t.relay.watch(t.body.requestId);
      const known = await t.relay.submit(t.body).catch((e: unknown) => e);
      expect(known).toBeInstanceOf(NodeError);
      expect((known as NodeError).code).toBe('REQUEST_ALREADY_KNOWN');
    } finally {
      await t.close();
    }
    const closed = await t.relay.submit(t.body).catch((e: unknown) => e);
    expect(closed).toBeInstanceOf(NodeError);
    expect((closed as NodeError).code).toBe('NODE_CLOSED');
  });
});
