/**
 * What `synod-verify` prints comes largely from others: a winner's output and every other text a node
 * signed, what a relay answers (request ids in its history, its error bodies), what a file holds, and
 * refund reasons anyone may write on chain. A terminal acts on some characters rather than showing them
 * (ESC starts a sequence that can hide the lines after it, a carriage return rewrites a line, bidi
 * controls reorder it), so every line is printed with those characters escaped (`escapeUnshown` of
 * @synod/shared), and JSON with them as `\uXXXX` escapes (the same values once parsed).
 */
import { escapeUnshown } from '@synod/shared';

/** Lines for a terminal: each escaped on its own, so a line break inside a value cannot start a line. */
export function printableLines(lines: readonly string[]): string {
  return lines.map(escapeUnshown).join('\n');
}

/**
 * `value` as indented JSON whose text a terminal shows as written: `JSON.stringify` escapes C0 controls
 * but not DEL, C1 controls or the invisible format characters, which are written here as `\uXXXX`
 * escapes (a pair of them past the Basic Multilingual Plane). Parsed, it is the same value.
 */
export function printableJson(value: unknown): string {
  return (JSON.stringify(value, null, 2) ?? 'null').replace(/[^\x20-\x7e\n]/gu, (ch) => {
    if (escapeUnshown(ch) === ch) return ch;
    const cp = ch.codePointAt(0) ?? 0;
    const units = cp > 0xffff ? [0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff)] : [cp];
    return units.map((u) => `\\u${u.toString(16).padStart(4, '0')}`).join('');
  });
}
