import { describe, expect, test } from 'bun:test';
import { StreamSlots } from '../http/stream-slots.ts';
import { refusal } from '../http/test-refusal.ts';
import { STREAM_LEASE_MS, StreamLeases } from './stream-leases.ts';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('StreamLeases (event-stream slots on workerd)', () => {
  test('a stream that stopped renewing gives its slot back after the lease; renewed ones keep theirs', () => {
    const c = clock();
    const leases = new StreamLeases({ now: c.now, slots: new StreamSlots(2, 10) });
    const kept = leases.forRequest();
    const left = leases.forRequest();
    kept.take('a');
    left.take('a');
    expect(refusal(() => leases.forRequest().take('a'))?.status).toBe(429);
    // The kept stream's loop comes round; the other one's client left and workerd stopped it.
    c.advance(STREAM_LEASE_MS - 1);
    kept.renew();
    expect(refusal(() => leases.forRequest().take('a'))?.code).toBe('RATE_LIMITED');
    c.advance(1);
    expect(refusal(() => leases.forRequest().take('a'))).toBeUndefined();
    expect(leases.open).toBe(2);
    // The kept stream is still held: a third is refused again.
    expect(refusal(() => leases.forRequest().take('a'))?.status).toBe(429);
  });

  test("a lapsed lease stays given back: its stream's own release, or a late renewal, counts nothing twice", () => {
    const c = clock();
    const leases = new StreamLeases({ now: c.now, leaseMs: 100, slots: new StreamSlots(1, 10) });
    const slow = leases.forRequest();
    const release = slow.take('a');
    c.advance(100);
    const next = leases.forRequest();
    const releaseNext = next.take('a');
    expect(leases.open).toBe(1);
    slow.renew();
    release();
    release();
    expect(leases.open).toBe(1);
    expect(refusal(() => leases.forRequest().take('a'))?.status).toBe(429);
    releaseNext();
    expect(leases.open).toBe(0);
    expect(refusal(() => leases.forRequest().take('a'))).toBeUndefined();
  });

  test('a stream given back at once frees its slot at once; the lease must be a positive integer', () => {
    const c = clock();
    const leases = new StreamLeases({ now: c.now, slots: new StreamSlots(1, 1) });
    const r = leases.forRequest();
    r.take('a')();
    expect(leases.open).toBe(0);
    r.renew();
    expect(refusal(() => leases.forRequest().take('b'))).toBeUndefined();
    expect(() => new StreamLeases({ now: c.now, leaseMs: 0 })).toThrow(RangeError);
  });
});
