/** A member name an object of a JSON text has twice, and where that object is. */
export interface DuplicateMember {
  /** The name, decoded (`"a"` and `"\u0061"` are the same name). */
  name: string;
  /** The path of the object holding it, from the text's root (member names and array indexes). */
  path: (string | number)[];
}

/** An object or array the scan is inside: an object's names so far and last name, an array's index. */
interface Open {
  names: Set<string> | null;
  at: string | number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The first member name some object of `text` holds twice; undefined when every object's names are
 * unique. `text` must be a JSON text `JSON.parse` took: this reads only its strings and brackets.
 *
 * RFC 8259 lets a JSON text repeat a name and leaves what it means to the reader: `JSON.parse` keeps the
 * last value, other readers the first. A transcript or packet with `"output":"A","output":"B"` would be
 * verified as one and read by someone else as the other, so whatever the project checks for someone
 * (packets, transcripts, verification bodies) must not repeat a name, as I-JSON (RFC 7493 §2.3) has it.
 *
 * One pass, no recursion (a text nested 200,000 deep, which `JSON.parse` reads, is no stack overflow;
 * jsonc-parser's visitor, tried first, is recursive), strings skipped with `indexOf`.
 */
export function duplicateMember(text: string): DuplicateMember | undefined {
  if (!text.includes('{')) return undefined; // no object, no member
  const open: Open[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      let k = end + 1;
      while (k < n && isSpace(text.charCodeAt(k))) k++;
      const top = open[open.length - 1];
      if (text.charCodeAt(k) === 0x3a /* : */ && top?.names) {
        const raw = text.slice(i + 1, end);
        const name = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (top.names.has(name)) {
          return { name, path: open.slice(0, -1).map((o) => o.at) };
        }
        top.names.add(name);
        top.at = name;
      }
      i = end + 1;
      continue;
    }
    if (c === 0x7b /* { */) open.push({ names: new Set(), at: '' });
    else if (c === 0x5b /* [ */) open.push({ names: null, at: 0 });
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) open.pop();
    else if (c === 0x2c /* , */) {
      const top = open[open.length - 1];
      if (top && top.names === null) top.at = (top.at as number) + 1;
    }
    i++;
  }
  return undefined;
}

/** The index of the quote closing the string whose opening quote is at `start`. */
function stringEnd(text: string, start: number): number {
  let from = start + 1;
  for (;;) {
    const q = text.indexOf('"', from);
    if (q < 0) return text.length;
    // Escaped when an odd number of backslashes stand right before it (each run is counted once: it
    // precedes one quote).
    let slashes = 0;
    while (text.charCodeAt(q - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return q;
    from = q + 1;
  }
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** A path as `a.b[2].c` for a message (`(root)` for the text's root). */
export function formatJsonPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(root)' : out;
}
