import { expect, test } from 'bun:test';
import fc from 'fast-check';
import { escapeUnshown } from './unshown.ts';

test('controls, DEL, C1 and invisible format characters are escaped; everything else is as written', () => {
  expect(escapeUnshown('NO_CONSENSUS')).toBe('NO_CONSENSUS');
  expect(escapeUnshown('OK\n\u0000<script>')).toBe('OK\\u000a\\u0000<script>');
  expect(escapeUnshown('\u001b[2K\r\u001b[32mall hold\u001b[0m')).toBe(
    '\\u001b[2K\\u000d\\u001b[32mall hold\\u001b[0m',
  );
  expect(escapeUnshown('a\u007fb\u009bc')).toBe('a\\u007fb\\u009bc');
  // Text that passes for other text: right-to-left override, zero-width space, byte order mark, soft
  // hyphen, Arabic letter mark, a tag character.
  expect(escapeUnshown('EXP\u202eDERI\u200b\ufeff')).toBe('EXP\\u202eDERI\\u200b\\ufeff');
  expect(escapeUnshown('A\u00adB\u061cC\u{e0041}D')).toBe('A\\u00adB\\u061cC\\u{e0041}D');
  // Printable text of any script and emoji are left alone.
  expect(escapeUnshown('délai dépassé 期限切れ 🙂')).toBe('délai dépassé 期限切れ 🙂');
});

test('a backslash is escaped too: text that spells an escape never reads as the character escaped', () => {
  expect(escapeUnshown('a\\b')).toBe('a\\u005cb');
  expect(escapeUnshown('\\u001b')).toBe('\\u005cu001b');
  expect(escapeUnshown('\\u001b')).not.toBe(escapeUnshown('\u001b'));
});

test('property: different texts never read the same once escaped', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
      if (a !== b) expect(escapeUnshown(a)).not.toBe(escapeUnshown(b));
    }),
    { numRuns: 2_000 },
  );
});
