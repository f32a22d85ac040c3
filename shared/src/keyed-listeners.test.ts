import { describe, expect, test } from 'bun:test';
import { KeyedListeners } from './keyed-listeners.ts';

describe('KeyedListeners', () => {
  test('emit reaches the listeners of that key only; unsubscribing the last one drops the key', () => {
    const l = new KeyedListeners<number>();
    const got: string[] = [];
    const offA1 = l.add('a', (v) => got.push(`a1:${v}`));
    const offA2 = l.add('a', (v) => got.push(`a2:${v}`));
    l.add('b', (v) => got.push(`b:${v}`));
    l.emit('a', 1);
    l.emit('c', 9);
    expect(got).toEqual(['a1:1', 'a2:1']);
    offA1();
    expect(l.has('a')).toBe(true);
    offA2();
    offA2();
    expect(l.has('a')).toBe(false);
    expect(l.size).toBe(1);
    l.emit('a', 2);
    expect(got).toEqual(['a1:1', 'a2:1']);
  });

  test('a throwing listener is reported and the others still run; without onError it throws', () => {
    const l = new KeyedListeners<void>();
    const ran: string[] = [];
    l.add('k', () => {
      throw new Error('boom');
    });
    l.add('k', () => ran.push('second'));
    const errors: unknown[] = [];
    l.emit('k', undefined, (e) => errors.push(e));
    expect(ran).toEqual(['second']);
    expect(String(errors[0])).toContain('boom');
    expect(() => l.emit('k', undefined)).toThrow('boom');
  });
});
