import { expect, test } from 'bun:test';
import { LogSpells } from './log-spells.ts';

test('a spell is logged at its first failure, every repeatEveryMs after, and ends once', () => {
  const clock = { t: 0 };
  const spells = new LogSpells(() => clock.t, 60_000);
  const logged: number[] = [];
  for (let s = 0; s < 150; s++) {
    clock.t = s * 1_000;
    if (spells.failed('rpc').log) logged.push(s);
  }
  // 150 failures a second apart: 3 lines (at 0 s, 60 s and 120 s), not 150.
  expect(logged).toEqual([0, 60, 120]);
  clock.t = 150_000;
  expect(spells.ended('rpc')).toEqual({ forMs: 150_000, failures: 150 });
  expect(spells.ended('rpc')).toBeNull();
  // A new spell under the same key starts over.
  expect(spells.failed('rpc')).toMatchObject({ log: true, failures: 1 });
});

test('a repeated line says how many failures were not logged since the last', () => {
  const clock = { t: 0 };
  const spells = new LogSpells(() => clock.t, 10);
  spells.failed('k');
  clock.t = 5;
  expect(spells.failed('k')).toMatchObject({ log: false, unlogged: 1 });
  clock.t = 10;
  expect(spells.failed('k')).toEqual({ log: true, unlogged: 1, failures: 3, sinceMs: 10 });
});

test('spells by key are apart, and at most maxSpells are followed', () => {
  const spells = new LogSpells(() => 0, 60_000, 3);
  for (const k of ['a', 'b', 'c', 'd']) expect(spells.failed(k).log).toBe(true);
  expect(spells.size).toBe(3);
  // 'a' was forgotten: its next failure starts a spell again.
  expect(spells.failed('a').log).toBe(true);
  expect(spells.failed('d').log).toBe(false);
});
