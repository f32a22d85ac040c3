/**
 * Characters a terminal or a page acts on rather than shows: C0 and C1 controls and DEL (a NUL ends a
 * string for some readers, ESC starts a terminal's escape sequence), and the invisible format
 * characters that hide or reorder text (soft hyphen, Arabic letter mark, Mongolian vowel separator,
 * zero-width characters, word joiner, bidirectional marks, embeddings, overrides and isolates, line and
 * paragraph separators, the byte order mark, interlinear annotation marks, tag characters); and the
 * backslash, so that an escape written here is never mistaken for text that spelled one.
 */
const UNSHOWN =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is its purpose.
  /[\\\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\u{e0000}-\u{e007f}]/gu;

/**
 * `text` with each character it would not show as written (see `UNSHOWN`) replaced by its escape,
 * `\uXXXX` (`\u{XXXXX}` past the Basic Multilingual Plane), a backslash as `\u005c`: for text anyone may
 * choose (a refund's reason on chain) that is stored, printed to a terminal or served, so that it cannot
 * end early, rewrite an auditor's report, or pass for other text; and two different texts never read the
 * same.
 */
export function escapeUnshown(text: string): string {
  return text.replace(UNSHOWN, (ch) => {
    const cp = ch.codePointAt(0) ?? 0;
    return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
  });
}
