import { describe, expect, test } from 'bun:test';
import { quotaExceededError, quotaHeaders, quotaStanding, secondsToNextUtcDay } from './quota.ts';

const NOON = Date.UTC(2026, 10, 22, 12, 0, 0);

describe('secondsToNextUtcDay', () => {
  test('counts to the next UTC midnight, in whole seconds, never 0', () => {
    expect(secondsToNextUtcDay(NOON)).toBe(12 * 3600);
    expect(secondsToNextUtcDay(Date.UTC(2026, 10, 22, 23, 59, 59, 500))).toBe(1);
    expect(secondsToNextUtcDay(Date.UTC(2026, 10, 23))).toBe(86_400);
    expect(secondsToNextUtcDay(Date.UTC(2026, 10, 22, 23, 59, 59, 999))).toBe(1);
  });
});

describe('quotaStanding and quotaHeaders', () => {
  test('limit, what remains after this request (never below 0), and the reset in seconds', () => {
    expect(quotaStanding(100, 1, NOON)).toEqual({ limit: 100, remaining: 99, resetsInSeconds: 43_200 });
    expect(quotaStanding(5, 7, NOON).remaining).toBe(0);
    expect(quotaHeaders(quotaStanding(100, 1, NOON))).toEqual({
      'x-synod-quota-limit': '100',
      'x-synod-quota-remaining': '99',
      'x-synod-quota-reset': '43200',
    });
  });
});

describe('quotaExceededError', () => {
  test('429 QUOTA_EXCEEDED with Retry-After at the next UTC day and none remaining', () => {
    const e = quotaExceededError(3, '2026-11-22', NOON);
    expect(e.status).toBe(429);
    expect(e.code).toBe('QUOTA_EXCEEDED');
    expect(e.details).toEqual({ quotaPerDay: 3, day: '2026-11-22', resetsInSeconds: 43_200 });
    expect(e.headers).toEqual({
      'retry-after': '43200',
      'x-synod-quota-limit': '3',
      'x-synod-quota-remaining': '0',
      'x-synod-quota-reset': '43200',
    });
    expect(e.message).toBe('the daily quota of 3 requests is used up');
    expect(quotaExceededError(1, '2026-11-22', NOON).message).toBe('the daily quota of 1 request is used up');
  });

  test('a quota of 0 (a paused key) is said as such: the next day brings no more', () => {
    const e = quotaExceededError(0, '2026-11-22', NOON);
    expect(e.status).toBe(429);
    expect(e.code).toBe('QUOTA_EXCEEDED');
    expect(e.message).toBe('the daily quota of this key is 0: it takes no request');
    expect(e.hint).toContain('the next UTC day starts with the same quota');
    expect(e.hint).toContain('keys set-quota');
    expect(e.headers?.['x-synod-quota-limit']).toBe('0');
    // Signed requests have no key to raise: the relay's --signed-quota is said instead.
    const signed = quotaExceededError(0, '2026-11-22', NOON, 'signed');
    expect(signed.message).toBe(
      'the daily quota of this node key (signed requests) is 0: it takes no request',
    );
    expect(signed.hint).toContain('--signed-quota');
    expect(signed.hint).not.toContain('keys set-quota');
  });
});
