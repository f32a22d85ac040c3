import { describe, expect, test } from 'bun:test';
import { ONLINE_WITHIN_MS, PROVEN_SCORE, ProvenNodes } from './proven-nodes.ts';

const frame = (quorum: number) => ({ quorum }) as Parameters<ProvenNodes['applies']>[0];

describe('ProvenNodes', () => {
  test('proven by the history; applies while at least the quorum of them is online', async () => {
    const asked: [number, number][] = [];
    let online = ['a', 'b', 'x'];
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
        return online.map((nodeId) => ({ nodeId }));
      },
    );
    expect(p.isProven('a')).toBe(false);
    await p.refresh();
    expect(asked[0]?.[0]).toBe(PROVEN_SCORE);
    expect(['a', 'b', 'c'].map((n) => p.isProven(n))).toEqual([true, true, true]);
    expect(p.isProven('x')).toBe(false);
    expect(p.applies(frame(2))).toBe(true);
    // x is online but has no record: two proven online are not a quorum of three.
    expect(p.applies(frame(3))).toBe(false);
    online = ['a', 'b', 'c'];
    expect(p.applies(frame(3))).toBe(true);
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
