/**
 * A machine whose state could not be written (SQLITE_BUSY, a server outage) must not be stranded: the
 * coordinator's seal cancels `seal-deadline`, then its `persist` barrier fails, so the seal is never
 * published and no timer is left to move the machine on. The write is retried, the machine is resumed
 * from its state once writes work again, and one that can never be resumed is expired by the watchdog.
 */
import { describe, expect, test } from 'bun:test';
import { NodeKey } from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { FailingMachineStoreDouble } from './failing-machine-store-double.ts';
import { SynodNode, type SynodNodeOptions } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const MAX_TIME_MS = 1_500;
const REVEAL_WINDOW_MS = 500;

/** A sealed coordinator state (the write the `persist` before the seal's publish makes). */
const sealed = (state: string) => (JSON.parse(state) as { phase?: string }).phase === 'sealed';

let seed = 170;

async function setUp(relayOptions: Partial<SynodNodeOptions> = {}) {
  const net = new MemoryNetwork();
  const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
  const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
  const store = new FailingMachineStoreDouble();
  const finished = new Map<string, { kind: 'done' | 'expired'; reason: string }>();
  const logs: Record<string, unknown>[] = [];
  const relay = new SynodNode({
    key: relayKey,
    role: 'relay',
    transports: [net.join(relayKey.nodeId)],
    store,
    log: (e) => logs.push(e),
    onFinished: (id, outcome) => finished.set(id, outcome),
    ...relayOptions,
  });
  const node = new SynodNode({
    key: nodeKey,
    role: 'node',
    transports: [net.join(nodeKey.nodeId)],
    serving: { queue: fixedQueue() as never, models: [{ id: 'm', fileHash: '22'.repeat(32) }], embedder },
  });
  await relay.start();
  await node.start();
  const body = testRequest({
    embedder,
    nonce: seed,
    frame: { maxTimeMs: MAX_TIME_MS, revealWindowMs: REVEAL_WINDOW_MS },
  });
  return {
    relay,
    store,
    body,
    finished,
    logs,
    async close() {
      await node.close();
      await relay.close();
    },
  };
}

describe('SynodNode: a machine whose state write failed', () => {
  test('a write that fails a few times is retried before the effects after it: the request finishes', async () => {
    const t = await setUp();
    try {
      t.store.failSaves(2, sealed);
      await t.relay.submit(t.body);
      await until(() => t.finished.has(t.body.requestId), 10_000);
      expect(t.finished.get(t.body.requestId)?.kind).toBe('done');
      expect(t.store.failed).toBe(2);
      expect(t.relay.metrics().verdicts).toBe(1);
    } finally {
      await t.close();
    }
  }, 30_000);

  test('a write that fails past its retries: the machine is resumed from its state once writes work', async () => {
    const t = await setUp({ writeRetriesMs: [10, 20], resumeAfterMs: 100 });
    try {
      t.store.failSaves(Number.POSITIVE_INFINITY, sealed);
      await t.relay.submit(t.body);
      // The seal's write and its retries failed, and a resume failed too: the machine waits, sealed.
      await until(() => t.store.failed >= 6, 10_000);
      expect(t.relay.status(t.body.requestId)?.phase).toBe('sealed');
      expect(t.logs.some((e) => e['msg'] === 'machine step failed')).toBe(true);
      t.store.heal();
      await until(() => t.finished.has(t.body.requestId), 10_000);
      expect(t.finished.get(t.body.requestId)?.kind).toBe('done');
      expect(t.relay.metrics().verdicts).toBe(1);
      expect(t.relay.metrics().store.failing).toBe(false);
    } finally {
      await t.close();
    }
  }, 30_000);

  test('writes that never work again: the watchdog expires it (no-verdict) once past its deadline', async () => {
    const marginMs = 300;
    const t = await setUp({
      writeRetriesMs: [10],
      resumeAfterMs: 100,
      watchdog: { everyMs: 100, marginMs },
    });
    try {
      t.store.failSaves(Number.POSITIVE_INFINITY, sealed);
      await t.relay.submit(t.body);
      await until(() => t.finished.has(t.body.requestId), 10_000);
      expect(t.finished.get(t.body.requestId)).toEqual({ kind: 'expired', reason: 'no-verdict' });
      // Not before: createdAt + maxTimeMs + revealWindowMs + the margin.
      expect(Date.now()).toBeGreaterThanOrEqual(t.body.createdAt + MAX_TIME_MS + REVEAL_WINDOW_MS + marginMs);
      expect(t.relay.status(t.body.requestId)?.phase).not.toBe('sealed');
      expect(t.relay.metrics().expired).toBe(1);
      expect(t.logs.some((e) => e['msg'] === 'expired a stranded machine')).toBe(true);
    } finally {
      await t.close();
    }
  }, 30_000);
});
