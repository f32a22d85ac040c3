import { describe, expect, test } from 'bun:test';
import { utcDay } from './auth.ts';

describe('utcDay (the day a daily quota counts against)', () => {
  test('names the UTC day, across day boundaries in either direction', () => {
    const midnight = Date.UTC(2026, 10, 22);
    expect(utcDay(midnight)).toBe('2026-11-22');
    expect(utcDay(midnight - 1)).toBe('2026-11-21');
    expect(utcDay(midnight + 86_399_999)).toBe('2026-11-22');
    expect(utcDay(midnight + 86_400_000)).toBe('2026-11-23');
    expect(utcDay(midnight - 1)).toBe('2026-11-21');
    expect(utcDay(0)).toBe('1970-01-01');
    expect(utcDay(Date.UTC(2028, 1, 29, 23, 59))).toBe('2028-02-29');
  });

  test('matches toISOString for arbitrary times', () => {
    for (let i = 0; i < 1000; i++) {
      const t = Math.floor(Math.random() * 4_102_444_800_000);
      expect(utcDay(t)).toBe(new Date(t).toISOString().slice(0, 10));
    }
  });
});
