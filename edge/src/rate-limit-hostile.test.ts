import { describe, expect, test } from 'bun:test';
import { RateLimiter } from './rate-limit.ts';

/**
 * Requests that cost the relay more than others (a /v1/verify of a maximal transcript does 40 times the
 * work of a small one) take more tokens: a caller's budget is work, not requests.
 */
describe('RateLimiter: weighted takes', () => {
  test('a take of n tokens spends n, and waits for what it lacks', () => {
    let now = 1_000_000;
    const l = new RateLimiter({ ratePerSecond: 10, burst: 100 }, () => now);
    expect(l.take('a', 60)).toBe(0);
    expect(l.take('a', 40)).toBe(0);
    // Empty: 25 tokens come back in 2.5 s at 10/s; a refused take spends nothing.
    expect(l.take('a', 25)).toBe(2_500);
    now += 1_000;
    expect(l.take('a', 25)).toBe(1_500);
    expect(l.take('a', 10)).toBe(0);
    expect(l.take('a')).toBe(100);
  });

  test('a cost above the burst is capped at the burst (it passes once, from a full bucket)', () => {
    let now = 0;
    const l = new RateLimiter({ ratePerSecond: 10, burst: 20 }, () => now);
    expect(l.take('a', 500)).toBe(0);
    expect(l.take('a', 500)).toBe(2_000);
    now += 2_000;
    expect(l.take('a', 500)).toBe(0);
  });

  test('a cost that is not a positive whole number is a RangeError, not a free pass', () => {
    const l = new RateLimiter({ ratePerSecond: 1, burst: 1 }, () => 0);
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => l.take('a', bad)).toThrow(RangeError);
  });
});
