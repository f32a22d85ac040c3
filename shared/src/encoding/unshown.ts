/**
 * Characters a terminal or a page acts on rather than shows: C0 and C1 controls and DEL (a NUL ends a
 * string for some readers, ESC starts a terminal's escape sequence), and the invisible format
 * characters that hide or reorder text (zero-width characters, word joiner, bidirectional embeddings,
 * overrides and isolates, line and paragraph separators, the byte order mark).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is its purpose.
const UNSHOWN = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/**
 * `text` with each character it would not show as written (see `UNSHOWN`) replaced by its `\uXXXX`
 * escape: for text anyone may choose (a refund's reason on chain) that is stored, printed to a terminal
 * or served, so that it cannot end early, rewrite an auditor's report, or pass for other text.
 */
export function escapeUnshown(text: string): string {
  return text.replace(UNSHOWN, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
