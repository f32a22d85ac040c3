import { describe, expect, test } from 'bun:test';
import { type AnyPacket, LIMITS } from '@synod/shared';
import { EarlyPackets } from './early-packets.ts';

/** A stand-in packet: `EarlyPackets` only holds and hands back what it is given. */
const packet = (tag: string) => ({ type: 'commit', tag }) as unknown as AnyPacket;
const tags = (ps: AnyPacket[]) => ps.map((p) => (p as unknown as { tag: string }).tag);

describe('EarlyPackets', () => {
  test('hands back what it held for a request, in order, once', () => {
    const e = new EarlyPackets();
    e.hold('r1', packet('a'), 10, 1_000);
    e.hold('r2', packet('x'), 10, 1_000);
    e.hold('r1', packet('b'), 10, 1_001);
    expect(e.sizes()).toEqual({ requests: 2, bytes: 30 });
    expect(tags(e.take('r1'))).toEqual(['a', 'b']);
    expect(e.take('r1')).toEqual([]);
    expect(e.sizes()).toEqual({ requests: 1, bytes: 10 });
  });

  test('at most so many packets a request, and so many requests (the oldest out)', () => {
    const e = new EarlyPackets({ perRequest: 2, requests: 2, bytes: 1_000 });
    for (const t of ['a', 'b', 'c']) e.hold('r1', packet(t), 1, 0);
    expect(tags(e.take('r1'))).toEqual(['a', 'b']);
    e.hold('r1', packet('a'), 1, 0);
    e.hold('r2', packet('b'), 1, 0);
    e.hold('r3', packet('c'), 1, 0);
    expect(e.take('r1')).toEqual([]);
    expect(tags(e.take('r2'))).toEqual(['b']);
    expect(tags(e.take('r3'))).toEqual(['c']);
  });

  test('within a byte budget: the oldest other request goes first; a packet larger than it is not held', () => {
    const e = new EarlyPackets({ perRequest: 10, requests: 10, bytes: 100 });
    e.hold('old', packet('a'), 60, 0);
    e.hold('new', packet('b'), 30, 0);
    e.hold('new', packet('c'), 30, 0);
    expect(e.take('old')).toEqual([]);
    expect(tags(e.take('new'))).toEqual(['b', 'c']);
    e.hold('r', packet('huge'), 101, 0);
    expect(e.take('r')).toEqual([]);
    expect(e.sizes()).toEqual({ requests: 0, bytes: 0 });
  });

  test('packets older than the skew window go as new ones come (their request would be stale)', () => {
    const e = new EarlyPackets();
    e.hold('r1', packet('a'), 10, 0);
    e.hold('r2', packet('b'), 10, LIMITS.defaultSkewMs + 1);
    expect(e.take('r1')).toEqual([]);
    expect(tags(e.take('r2'))).toEqual(['b']);
  });
});
