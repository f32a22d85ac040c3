import { describe, expect, test } from 'bun:test';
import { RateLimiter } from './rate-limit.ts';

/** A limiter on a clock the test moves by hand. */
function limiter(ratePerSecond: number, burst: number, maxCallers?: number) {
  let now = 1_000_000;
  const l = new RateLimiter(
    { ratePerSecond, burst, ...(maxCallers !== undefined ? { maxCallers } : {}) },
    () => now,
  );
  return {
    take: (caller: string) => l.take(caller),
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('RateLimiter (token bucket per caller)', () => {
  test('a burst passes, then the caller is told how long to wait for the next token', () => {
    const l = limiter(2, 3);
    expect([l.take('a'), l.take('a'), l.take('a')]).toEqual([0, 0, 0]);
    // Empty: one token comes back every 500 ms at 2/s.
    expect(l.take('a')).toBe(500);
    l.advance(200);
    expect(l.take('a')).toBe(300);
    l.advance(300);
    expect(l.take('a')).toBe(0);
    expect(l.take('a')).toBe(500);
  });

  test('a refill never exceeds the burst', () => {
    const l = limiter(10, 2);
    l.take('a');
    l.take('a');
    l.advance(60_000);
    expect([l.take('a'), l.take('a')]).toEqual([0, 0]);
    expect(l.take('a')).toBe(100);
  });

  test('callers have buckets of their own', () => {
    const l = limiter(1, 1);
    expect(l.take('a')).toBe(0);
    expect(l.take('a')).toBe(1_000);
    expect(l.take('b')).toBe(0);
  });

  test('past maxCallers the least recently seen caller is forgotten (and starts full again)', () => {
    const l = limiter(1, 1, 2);
    l.take('a');
    l.take('b');
    // Seeing `a` again makes `b` the least recent; `c` then pushes `b` out, not `a`.
    expect(l.take('a')).toBeGreaterThan(0);
    l.take('c');
    expect(l.take('a')).toBeGreaterThan(0);
    expect(l.take('b')).toBe(0);
  });

  test('a clock set back neither takes tokens away nor locks the caller out', () => {
    const l = limiter(2, 3);
    expect(l.take('a')).toBe(0);
    // The wall clock steps back an hour: no refill for that time, and no debt of an hour's tokens.
    l.advance(-3_600_000);
    expect([l.take('a'), l.take('a')]).toEqual([0, 0]);
    expect(l.take('a')).toBe(500);
    l.advance(500);
    expect(l.take('a')).toBe(0);
  });
});
