import { describe, expect, test } from 'bun:test';
import { percentile } from './percentile.ts';

describe('percentile (nearest rank)', () => {
  test('the value at rank ceil(p/100 × n), in any input order', () => {
    const xs = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    expect(percentile(xs, 50)).toBe(5);
    expect(percentile(xs, 99)).toBe(10);
    expect(percentile(xs, 10)).toBe(1);
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile([42], 99)).toBe(42);
    expect(xs[0]).toBe(5); // the input is not sorted in place
  });

  test('no numbers: NaN', () => {
    expect(percentile([], 50)).toBeNaN();
  });
});
