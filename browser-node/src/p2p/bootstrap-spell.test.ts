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

  test('a change of kind is logged at its first failure a minute or more after the last line, even one that came within the minute', () => {
    const M = KIND_CHANGE_LOG_EVERY_MS;
    const spell = new BootstrapFailureSpell('mismatch', 1_000);
    expect(spell.failed('dial', 1_000 + M - 1)).toEqual({ changed: true, log: false });
    // Still refused past the minute: the change is said now (the last line named a mismatch)...
    expect(spell.failed('dial', 1_000 + M)).toEqual({ changed: false, log: true });
    // ...and nothing more of that kind.
    expect(spell.failed('dial', 1_000 + M + 5_000)).toEqual({ changed: false, log: false });
    const at = 1_000 + 2 * M;
    expect(spell.failed('mismatch', at)).toEqual({ changed: true, log: true });
    expect(spell.failed('dial', at + 5_000)).toEqual({ changed: true, log: false });
    // Back, within the minute, to what the last line named: nothing to say, then or later.
    expect(spell.failed('mismatch', at + 10_000)).toEqual({ changed: true, log: false });
    expect(spell.failed('mismatch', at + M + 10_000)).toEqual({ changed: false, log: false });
    expect(spell.counts(at + M + 10_000)).toMatchObject({ attempts: 8, kindChanges: 4 });
  });
});
