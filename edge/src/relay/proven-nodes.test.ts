import { describe, expect, test } from 'bun:test';
import type { HeartbeatBody, RequestBody } from '@synod/shared';
import { ONLINE_WITHIN_MS, PROVEN_SCORE, ProvenNodes } from './proven-nodes.ts';

const EMBEDDER = 'use-lite-512';
/** A request for `stories260K` with a quorum (only what `applies` reads of it). */
const request = (quorum: number) =>
  ({
    acceptedModels: ['stories260K'],
    frame: { quorum, embeddingModel: { id: EMBEDDER } },
  }) as unknown as RequestBody;

/** A node heard from, serving `model` with the embedder, `queued` of 4 in its queue. */
const heard = (nodeId: string, o: { model?: string; queued?: number; embedder?: string } = {}) => ({
  nodeId,
  body: {
    models: [{ id: o.model ?? 'stories260K' }],
    embedders: [{ id: o.embedder ?? EMBEDDER }],
    capacity: { queued: o.queued ?? 0, maxQueue: 4 },
  } as unknown as HeartbeatBody,
});

describe('ProvenNodes', () => {
  test('proven by the history; applies while at least the quorum of them that can serve is online', async () => {
    const asked: [number, number][] = [];
    let online = [heard('a'), heard('b'), heard('x')];
    const withins: number[] = [];
    const p = new ProvenNodes(
      {
        provenNodes: async (minScore, limit) => {
          asked.push([minScore, limit]);
          return ['a', 'b', 'c'];
        },
      },
      (withinMs) => {
        withins.push(withinMs);
        return online;
      },
    );
    expect(p.isProven('a')).toBe(false);
    await p.refresh();
    expect(asked[0]?.[0]).toBe(PROVEN_SCORE);
    expect(['a', 'b', 'c'].map((n) => p.isProven(n))).toEqual([true, true, true]);
    expect(p.isProven('x')).toBe(false);
    expect(p.applies(request(2))).toBe(true);
    // x is online but has no record: two proven online are not a quorum of three.
    expect(p.applies(request(3))).toBe(false);
    online = [heard('a'), heard('b'), heard('c')];
    expect(p.applies(request(3))).toBe(true);
    // A proven node that cannot serve this request does not count: its queue full, another model, or
    // another embedder.
    for (const c of [
      heard('c', { queued: 4 }),
      heard('c', { model: 'other' }),
      heard('c', { embedder: 'e' }),
    ]) {
      online = [heard('a'), heard('b'), c];
      expect(p.applies(request(3))).toBe(false);
    }
    expect(withins.every((w) => w === ONLINE_WITHIN_MS)).toBe(true);
  });

  test('a failed read keeps the set it had, and is logged', async () => {
    let fail = false;
    const logs: Record<string, unknown>[] = [];
    const p = new ProvenNodes(
      {
        provenNodes: async () => {
          if (fail) throw new Error('database is locked');
          return ['a'];
        },
      },
      () => [],
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
      {
        provenNodes: async () => {
          reads++;
          return [];
        },
      },
      () => [],
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
});
