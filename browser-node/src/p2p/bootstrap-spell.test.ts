import { describe, expect, test } from 'bun:test';
import { BootstrapFailureSpell, KIND_CHANGE_LOG_EVERY_MS } from './bootstrap-spell.ts';

describe('a spell of failures at a bootstrap address', () => {
  test('the same kind again is counted, not a change; a change within a minute of the last line is told, not logged', () => {
    const spell = new BootstrapFailureSpell('dial', 0);
    expect(spell.failed('dial', 5_000)).toEqual({ changed: false, log: false });
    // Flapping every redial (5 s): every change told, none logged within the minute.
    const said = [10_000, 15_000, 20_000, 25_000].map((t, i) =>
      spell.failed(i % 2 === 0 ? 'mismatch' : 'dial', t),
    );
    expect(said).toEqual([
      { changed: true, log: false },
      { changed: true, log: false },
      { changed: true, log: false },
      { changed: true, log: false },
    ]);
    expect(spell.kind).toBe('dial');
    expect(spell.counts(25_000)).toEqual({
      sinceMs: 25_000,
      attempts: 6,
      dialFailures: 4,
      mismatches: 2,
      kindChanges: 4,
    });
  });

  test('a change a minute or more after the last line is logged, and the minute runs again from it', () => {
    const spell = new BootstrapFailureSpell('mismatch', 1_000);
    expect(spell.failed('dial', 1_000 + KIND_CHANGE_LOG_EVERY_MS - 1)).toEqual({ changed: true, log: false });
    // The same kind past the minute: nothing to say.
    expect(spell.failed('dial', 1_000 + KIND_CHANGE_LOG_EVERY_MS)).toEqual({ changed: false, log: false });
    const at = 1_000 + KIND_CHANGE_LOG_EVERY_MS + 5_000;
    expect(spell.failed('mismatch', at)).toEqual({ changed: true, log: true });
    expect(spell.failed('dial', at + 5_000)).toEqual({ changed: true, log: false });
    expect(spell.failed('mismatch', at + KIND_CHANGE_LOG_EVERY_MS)).toEqual({ changed: true, log: true });
    expect(spell.counts(at + KIND_CHANGE_LOG_EVERY_MS)).toMatchObject({ attempts: 6, kindChanges: 4 });
  });
});
