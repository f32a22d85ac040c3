import { describe, expect, test } from 'bun:test';
import { type Birth, BirthOrder } from './gun-birth-order.ts';

describe('BirthOrder', () => {
  test('gives the earliest live birth, ties by arrival, skipping and rebuilding away the dead', () => {
    const order = new BirthOrder();
    const births: Birth[] = [50, 10, 40, 10, 30, 20, 60].map((bornAt, seq) => ({
      key: `k${seq}`,
      bornAt,
      seq,
    }));
    for (const b of births) order.push(b);
    const dead = new Set<string>();
    const live = (b: Birth) => !dead.has(b.key);
    const drain: string[] = [];
    for (let b = order.peek(live); b !== undefined; b = order.peek(live)) {
      drain.push(b.key);
      dead.add(b.key);
    }
    expect(drain).toEqual(['k1', 'k3', 'k5', 'k4', 'k2', 'k0', 'k6']);
    expect(order.size).toBe(0);

    dead.clear();
    for (const b of births) order.push(b);
    dead.add('k1');
    dead.add('k6');
    order.rebuild(live);
    expect(order.size).toBe(5);
    expect(order.peek(live)?.key).toBe('k3');
  });
});
