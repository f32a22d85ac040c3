import { expect, test } from 'bun:test';
import { escapeUnshown } from './unshown.ts';

test('controls, DEL, C1 and invisible format characters are escaped; everything else is as written', () => {
  expect(escapeUnshown('NO_CONSENSUS')).toBe('NO_CONSENSUS');
  expect(escapeUnshown('OK\n\u0000<script>')).toBe('OK\\u000a\\u0000<script>');
  expect(escapeUnshown('\u001b[2K\r\u001b[32mall hold\u001b[0m')).toBe(
    '\\u001b[2K\\u000d\\u001b[32mall hold\\u001b[0m',
  );
  expect(escapeUnshown('a\u007fb\u009bc')).toBe('a\\u007fb\\u009bc');
  // Text that passes for other text: right-to-left override, zero-width space, byte order mark.
  expect(escapeUnshown('EXP\u202eDERI\u200b\ufeff')).toBe('EXP\\u202eDERI\\u200b\\ufeff');
  // Printable text of any script, emoji and a backslash are left alone.
  expect(escapeUnshown('délai dépassé 期限切れ 🙂 a\\b')).toBe('délai dépassé 期限切れ 🙂 a\\b');
});
