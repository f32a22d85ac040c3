import { expect, test } from 'bun:test';
import { LineLimit } from './line-limit.ts';

test('a line a key every everyMs, the next logged one saying how many were not; forget starts afresh', () => {
  const lines = new LineLimit<string>(60_000);
  expect(lines.take('a', 0)).toBe(0);
  expect(lines.take('a', 1_000)).toBeNull();
  expect(lines.take('a', 59_999)).toBeNull();
  // Another key has its own minute.
  expect(lines.take('b', 2_000)).toBe(0);
  expect(lines.take('a', 60_000)).toBe(2);
  expect(lines.take('a', 61_000)).toBeNull();
  lines.forget('a');
  expect(lines.take('a', 62_000)).toBe(0);
});
