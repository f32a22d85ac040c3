import { describe, expect, test } from 'bun:test';
import { seededRandom } from '@synod/shared';
import { type MemoryClock, MemoryNetwork } from './memory.ts';
import { contentTopic } from './topics.ts';
import type { MessageMeta } from './transport.ts';

const topic = contentTopic('commits');
const bytesOf = (n: number) => new Uint8Array([n & 0xff, n >> 8]);
const numOf = (b: Uint8Array) => (b[0] ?? 0) | ((b[1] ?? 0) << 8);

/** A virtual clock: timers run in deadline order (ties in scheduling order) when `run` is called. */
function virtualClock(): MemoryClock & { run(): void } {
  let now = 0;
  let seq = 0;
  const timers: Array<{ at: number; seq: number; fn: () => void }> = [];
  return {
    now: () => now,
    schedule(fn, delayMs) {
      timers.push({ at: now + delayMs, seq: seq++, fn });
    },
    run() {
      while (timers.length > 0) {
        timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
        const t = timers.shift()!;
        now = t.at;
        t.fn();
      }
    },
  };
}

describe('MemoryNetwork', () => {
  test('delivers to every other subscriber, not to the publisher, with peer and transport', async () => {
    const net = new MemoryNetwork();
    const [a, b, c] = ['a', 'b', 'c'].map((id) => net.join(id)) as [
      ReturnType<MemoryNetwork['join']>,
      ReturnType<MemoryNetwork['join']>,
      ReturnType<MemoryNetwork['join']>,
    ];
    const got: Record<string, Array<[number, MessageMeta]>> = { a: [], b: [], c: [] };
    for (const [id, t] of [
      ['a', a],
      ['b', b],
      ['c', c],
    ] as const) {
      t.subscribe(topic, (bytes, meta) => got[id]!.push([numOf(bytes), meta]));
    }
    await a.publish(topic, bytesOf(7));
    await net.settled();
    expect(got['a']).toEqual([]);
    expect(got['b']).toEqual([[7, { peer: 'a', transport: 'memory', topic }]]);
    expect(got['c']).toEqual([[7, { peer: 'a', transport: 'memory', topic }]]);
    expect(a.peers().sort()).toEqual(['b', 'c']);
    expect(net.stats()).toEqual({ published: 1, delivered: 2, dropped: 0, inFlight: 0 });
    for (const t of [a, b, c]) await t.close();
    expect(net.nodes()).toEqual([]);
  });

  test('topics are separate and unsubscribe stops delivery', async () => {
    const net = new MemoryNetwork();
    const a = net.join('a');
    const b = net.join('b');
    const seen: number[] = [];
    const off = b.subscribe(topic, (bytes) => seen.push(numOf(bytes)));
    b.subscribe(contentTopic('heartbeats'), () => seen.push(-1));
    await a.publish(topic, bytesOf(1));
    await net.settled();
    off();
    await a.publish(topic, bytesOf(2));
    await a.publish(contentTopic('heartbeats'), bytesOf(3));
    await net.settled();
    expect(seen).toEqual([1, -1]);
    await a.close();
    await b.close();
    await expect(a.publish(topic, bytesOf(4))).rejects.toThrow('closed');
  });

  test('faults are deterministic for a seed: the same seed gives the same arrivals', async () => {
    const run = (seed: number) => {
      const clock = virtualClock();
      const net = new MemoryNetwork({
        seed,
        latencyMs: { min: 1, max: 50 },
        dropRate: 0.2,
        reorder: true,
        clock,
      });
      const a = net.join('a');
      const b = net.join('b');
      const order: number[] = [];
      b.subscribe(topic, (bytes) => order.push(numOf(bytes)));
      for (let i = 0; i < 200; i++) void a.publish(topic, bytesOf(i));
      clock.run();
      return { order, stats: net.stats() };
    };
    const one = run(42);
    const two = run(42);
    const other = run(43);
    expect(one).toEqual(two);
    expect(other.order).not.toEqual(one.order);
    expect(one.stats.dropped).toBeGreaterThan(0);
    expect(one.stats.delivered + one.stats.dropped).toBe(200);
    expect(one.order.length).toBe(one.stats.delivered);
    // reordering happened: the arrival order is not sorted
    expect([...one.order].sort((x, y) => x - y)).not.toEqual(one.order);
  });

  test('without reorder a link stays FIFO even with random latency', async () => {
    const clock = virtualClock();
    const net = new MemoryNetwork({ seed: 9, latencyMs: { min: 0, max: 100 }, clock });
    const a = net.join('a');
    const b = net.join('b');
    const order: number[] = [];
    b.subscribe(topic, (bytes) => order.push(numOf(bytes)));
    for (let i = 0; i < 100; i++) void a.publish(topic, bytesOf(i));
    clock.run();
    expect(order).toEqual([...Array(100).keys()]);
  });

  test('seededRandom is reproducible and in [0, 1)', () => {
    const r1 = seededRandom(5);
    const r2 = seededRandom(5);
    const xs = Array.from({ length: 1000 }, () => r1());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => r2()));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});
