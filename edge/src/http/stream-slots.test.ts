import { describe, expect, test } from 'bun:test';
import { StreamSlots } from './stream-slots.ts';
import { refusal } from './test-refusal.ts';

describe('StreamSlots', () => {
  test('per address and in all; a slot given back is taken again; giving back twice changes nothing', () => {
    const slots = new StreamSlots(2, 3);
    const a1 = slots.take('a');
    slots.take('a');
    const perAddress = refusal(() => slots.take('a'));
    expect(perAddress?.status).toBe(429);
    expect(perAddress?.code).toBe('RATE_LIMITED');
    expect(perAddress?.details).toEqual({ open: 2, limit: 2 });
    slots.take('b');
    const inAll = refusal(() => slots.take('c'));
    expect(inAll?.details).toEqual({ open: 0, limit: 3 });
    expect(inAll?.message).toContain('on this relay');
    a1();
    a1();
    expect(slots.open).toBe(2);
    expect(refusal(() => slots.take('c'))).toBeUndefined();
    expect(refusal(() => slots.take('a'))).toBeDefined();
  });

  test('bounds must be positive integers', () => {
    expect(() => new StreamSlots(0)).toThrow(RangeError);
    expect(() => new StreamSlots(1, 1.5)).toThrow(RangeError);
  });
});
