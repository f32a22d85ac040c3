import { describe, expect, test } from 'bun:test';
import type { HeartbeatBody, RequestBody } from '@synod/shared';
import type { HistoryStore } from '../store/history-store.ts';
import {
  MAX_STANDINGS,
  ONLINE_WITHIN_MS,
  PROVEN_SCORE,
  PROVEN_VOUCHED,
  ProvenNodes,
} from './proven-nodes.ts';

const EMBEDDER = 'use-lite-512';
/** A request for `stories260K` with a quorum (only what `applies` reads of it). */
const request = (quorum: number) =>
  ({
    acceptedModels: ['stories260K'],
    frame: { quorum, embeddingModel: { id: EMBEDDER } },
  }) as unknown as RequestBody;

/** A node's heartbeat signed at `at`, serving `model` with the embedder, `queued` of 4 in its queue. */
const heard = (
  nodeId: string,
  o: { model?: string; queued?: number; embedder?: string; at?: number } = {},
) => ({
  nodeId,
  body: {
    models: [{ id: o.model ?? 'stories260K' }],
    embedders: [{ id: o.embedder ?? EMBEDDER }],
    capacity: { queued: o.queued ?? 0, maxQueue: 4 },
    createdAt: o.at ?? 1,
  } as unknown as HeartbeatBody,
});

/** A history that reads `proven` for the proven nodes, `standings` for the nodes on their way, `heartbeats`. */
const store = (
  proven: HistoryStore['provenNodes'],
  standings: HistoryStore['nodeStandings'] = async () => [],
  heartbeats: HistoryStore['recentHeartbeats'] = async () => [],
): Pick<HistoryStore, 'provenNodes' | 'nodeStandings' | 'recentHeartbeats'> => ({
  provenNodes: proven,
  nodeStandings: standings,
  recentHeartbeats: heartbeats,
});

describe('ProvenNodes', () => {
  test('a proven node that serves other coordinators only (its heartbeat names them) does not count for this one', async () => {
    const p = new ProvenNodes(
      store(async () => ['a', 'b']),
      () => {},
      () => 1_000_000,
      [],
      'me'.repeat(32),
    );
    await p.refresh();
    p.heard('a', heard('a').body);
    p.heard('b', { ...heard('b').body, coordinators: ['ab'.repeat(32)] });
    expect(p.applies(request(2))).toBe(false);
    p.heard('b', { ...heard('b', { at: 2 }).body, coordinators: ['ab'.repeat(32), 'me'.repeat(32)] });
    expect(p.applies(request(2))).toBe(true);
  });

  test('proven by the history; applies while at least the quorum of them that can serve is online', async () => {
    const asked: [number, number, number][] = [];
    let clock = 1_000_000;
    const p = new ProvenNodes(
      store(async (minVouched, minScore, limit) => {
        asked.push([minVouched, minScore, limit]);
        return ['a', 'b', 'c'];
      }),
      () => {},
      () => clock,
    );
    expect(p.isProven('a')).toBe(false);
    await p.refresh();
    expect(asked[0]?.slice(0, 2)).toEqual([PROVEN_VOUCHED, PROVEN_SCORE]);
    expect(['a', 'b', 'c'].map((n) => p.isProven(n))).toEqual([true, true, true]);
    expect(p.isProven('x')).toBe(false);
    for (const n of [heard('a'), heard('b'), heard('x')]) p.heard(n.nodeId, n.body);
    expect(p.applies(request(2))).toBe(true);
    // x is online but has no record: two proven online are not a quorum of three.
    expect(p.applies(request(3))).toBe(false);
    p.heard('c', heard('c').body);
    expect(p.applies(request(3))).toBe(true);
    // A proven node that cannot serve this request does not count: its queue full, another model, or
    // another embedder.
    for (const c of [
      heard('c', { queued: 4, at: 2 }),
      heard('c', { model: 'other', at: 3 }),
      heard('c', { embedder: 'e', at: 4 }),
    ]) {
      p.heard(c.nodeId, c.body);
      expect(p.applies(request(3))).toBe(false);
    }
    p.heard('c', heard('c', { at: 5 }).body);
    expect(p.applies(request(3))).toBe(true);
    // Heard from more than ONLINE_WITHIN_MS ago: not online.
    clock += ONLINE_WITHIN_MS + 1;
    expect(p.applies(request(1))).toBe(false);
  });

  test('only the newest heartbeat of a node counts: an older copy replayed later changes nothing', async () => {
    const p = new ProvenNodes(store(async () => ['a', 'b']));
    await p.refresh();
    p.heard('a', heard('a', { at: 10 }).body);
    p.heard('b', heard('b', { at: 10 }).body);
    expect(p.applies(request(2))).toBe(true);
    p.heard('b', heard('b', { queued: 4, at: 9 }).body);
    expect(p.applies(request(2))).toBe(true);
  });

  test('a node no longer proven is forgotten at the next read', async () => {
    let ids = ['a', 'b'];
    const p = new ProvenNodes(store(async () => ids));
    await p.refresh();
    p.heard('a', heard('a').body);
    p.heard('b', heard('b').body);
    expect(p.applies(request(2))).toBe(true);
    ids = ['a'];
    await p.refresh();
    expect(p.applies(request(2))).toBe(false);
    // Proven again, it counts from its next heartbeat.
    ids = ['a', 'b'];
    await p.refresh();
    expect(p.applies(request(2))).toBe(false);
    p.heard('b', heard('b', { at: 2 }).body);
    expect(p.applies(request(2))).toBe(true);
  });

  test('a failed read keeps the set it had, and is logged', async () => {
    let fail = false;
    const logs: Record<string, unknown>[] = [];
    const p = new ProvenNodes(
      store(async () => {
        if (fail) throw new Error('database is locked');
        return ['a'];
      }),
      (e) => logs.push(e),
    );
    await p.refresh();
    fail = true;
    await p.refresh();
    expect(p.isProven('a')).toBe(true);
    expect(logs).toEqual([
      { level: 'warn', msg: 'reading the proven nodes failed', err: 'Error: database is locked' },
    ]);
  });

  test('start reads at once and again on its interval; stop ends it', async () => {
    let reads = 0;
    const p = new ProvenNodes(
      store(async () => {
        reads++;
        return [];
      }),
    );
    await p.start(20);
    expect(reads).toBe(1);
    await Bun.sleep(70);
    await p.stop();
    const after = reads;
    expect(after).toBeGreaterThanOrEqual(2);
    await Bun.sleep(50);
    expect(reads).toBe(after);
  });
  test('trusted nodes are proven from the start and after every read, whatever the history says', async () => {
    let ids: string[] = [];
    const p = new ProvenNodes(
      store(async () => ids),
      () => {},
      Date.now,
      ['t1'],
    );
    expect(p.isProven('t1')).toBe(true);
    ids = ['a'];
    await p.refresh();
    expect([p.isProven('t1'), p.isProven('a'), p.size]).toEqual([true, true, 2]);
    ids = [];
    await p.refresh();
    expect([p.isProven('t1'), p.isProven('a')]).toEqual([true, false]);
  });

  test("standings are read with the proven set: a node's standing, 0 for any other; a failed read keeps them", async () => {
    let fail = false;
    const limits: number[] = [];
    const p = new ProvenNodes(
      store(
        async () => ['a'],
        async (limit) => {
          limits.push(limit);
          if (fail) throw new Error('database is locked');
          return [
            { nodeId: 'n1', standing: 2 },
            { nodeId: 'n2', standing: 1 },
          ];
        },
      ),
    );
    expect(p.standing('n1')).toBe(0);
    await p.refresh();
    expect(limits).toEqual([MAX_STANDINGS]);
    expect([p.standing('n1'), p.standing('n2'), p.standing('fresh')]).toEqual([2, 1, 0]);
    fail = true;
    await p.refresh();
    expect([p.standing('n1'), p.isProven('a')]).toEqual([2, true]);
  });

  test("after a restart the history's heartbeats of proven nodes count at once, if from the last minute", async () => {
    const clock = 10_000_000;
    const asked: [string[], number][] = [];
    const stored = [
      { ...heard('a', { at: 5 }), lastSeen: clock - 1_000 },
      { ...heard('b', { at: 5 }), lastSeen: clock - 2_000 },
      // Not proven: the history's copy is not taken either.
      { ...heard('x', { at: 5 }), lastSeen: clock - 1_000 },
    ];
    const p = new ProvenNodes(
      store(
        async () => ['a', 'b', 'c'],
        async () => [],
        async (ids, since) => {
          asked.push([[...ids].sort(), since]);
          return stored.filter((h) => h.lastSeen >= since);
        },
      ),
      () => {},
      () => clock,
    );
    expect(p.applies(request(2))).toBe(false);
    await p.refresh();
    expect(asked).toEqual([[['a', 'b', 'c'], clock - ONLINE_WITHIN_MS]]);
    expect(p.applies(request(2))).toBe(true);
    expect(p.applies(request(3))).toBe(false);
    // A newer heartbeat heard here is not replaced by an older one the history holds.
    p.heard('a', heard('a', { queued: 4, at: 6 }).body);
    await p.refresh();
    expect(p.applies(request(2))).toBe(false);
  });
});
