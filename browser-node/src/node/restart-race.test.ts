import { describe, expect, test } from 'bun:test';
import { type Evidence, NodeKey, type VerdictEffect } from '@synod/shared';
import { MemoryNetwork, type MemoryTransport } from '../p2p/memory.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { SynodNode } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
// Not sealed early: the coordinator is still collecting (and re-announcing its request) when member 0
// starts again.
const FRAME = { quorum: 2, maxCommits: 3, maxTimeMs: 4_000, revealWindowMs: 2_000 };

/** A machine store whose `load` takes a while (a big state file, a libSQL server far away, IndexedDB). */
class SlowLoadStore extends MemoryMachineStore {
  loadDelayMs = 0;
  override async load(owner: string) {
    const rows = await super.load(owner);
    await Bun.sleep(this.loadDelayMs);
    return rows;
  }
}

describe('SynodNode: a request that reaches a node while it restores its machines', () => {
  test('is held for its restored machine: no fresh machine, no second commitment, no evidence', async () => {
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(201));
    const keys = await Promise.all([1, 2].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(201 + i))));
    const evidence: Evidence[] = [];
    const verdicts: VerdictEffect[] = [];
    // The relay re-announces its request as soon as the member joins.
    const relay = new SynodNode({
      key: relayKey,
      role: 'relay',
      transports: [net.join(relayKey.nodeId)],
      reannounce: { joinDelayMs: 0 },
      onEvidence: (_id, e) => evidence.push(e),
      onVerdict: (_id, v) => verdicts.push(v),
    });
    const stores = keys.map(() => new SlowLoadStore());
    const open: SynodNode[] = [relay];
    const transports: MemoryTransport[] = [];
    const member = (i: number) => {
      const key = keys[i] as NodeKey;
      const t = net.join(key.nodeId);
      transports[i] = t;
      const n = new SynodNode({
        key,
        role: 'node',
        transports: [t],
        store: stores[i] as SlowLoadStore,
        serving: { queue: fixedQueue() as never, models: [{ id: 'm', fileHash: '22'.repeat(32) }], embedder },
      });
      open.push(n);
      return n;
    };
    try {
      await relay.start();
      const first = member(0);
      const other = member(1);
      await first.start();
      await other.start();
      const body = testRequest({ embedder, nonce: 0x7700, frame: FRAME });
      await relay.submit(body);
      await until(() => (first.metrics().published.commit ?? 0) === 1, 5_000);
      await first.close();
      await transports[0]?.close();
      // Started again over a store that takes 1.5 s to load: the relay's request comes meanwhile.
      (stores[0] as SlowLoadStore).loadDelayMs = 1_500;
      const back = member(0);
      await back.start();
      await until(() => relay.status(body.requestId)?.finished ?? false, 10_000);
      expect(evidence.map((e) => e.kind)).toEqual([]);
      expect(back.metrics().published.commit ?? 0).toBe(0);
      expect(back.metrics().inferences.started).toBe(0);
      expect(relay.metrics().lifecycleRejected.DOUBLE_COMMIT ?? 0).toBe(0);
      expect(verdicts[0]?.verdict.accepted).toHaveLength(2);
    } finally {
      await Promise.all(open.map((n) => n.close()));
    }
  }, 30_000);
});
