/**
 * A sealed node key read from a file, checked without opening it (no passphrase yet): the format
 * `sealNodeKey` of @synod/shared writes, as this page saves it ("Save sealed key to a file") and as the
 * `synod node` CLI keeps its identity file. The checks are `openNodeKey`'s own (its SealedKeySchema),
 * written out here so that the page's bundle carries no second copy of the key code and zod
 * (sealed-key-file.test.ts holds the two to the same answers), plus one more: scrypt's cost must be a
 * power of two, which `openNodeKey` finds out only when it derives the key.
 *
 * Errors (KeyFileError, shown by the page as `CODE: message`):
 *   KEY_FILE_MALFORMED   the file is not a sealed Synod node key (not JSON, a field missing, unknown or
 *                        out of bounds, or larger than any sealed key): nothing stored is changed
 *   KEY_FILE_UNREADABLE  the browser could not read the chosen file (moved or deleted meanwhile)
 *   NODE_KEY_CHANGED     the key stored in this browser changed (another tab) between the confirmation
 *                        and the replacement: nothing is replaced
 */
export type KeyFileErrorCode = 'KEY_FILE_MALFORMED' | 'KEY_FILE_UNREADABLE' | 'NODE_KEY_CHANGED';

export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
  readonly code: KeyFileErrorCode;

  constructor(code: KeyFileErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

/** A sealed key file is a few hundred bytes; one much larger is something else. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;

/** A checked sealed key: its node id, and its text as it is stored (compact JSON, as `sealNodeKey` made it). */
export interface SealedKeyText {
  nodeId: string;
  text: string;
}

type Check = (value: unknown) => string | null;

const hex =
  (pattern: RegExp, what: string): Check =>
  (v) =>
    typeof v === 'string' && pattern.test(v) ? null : `must be ${what}`;
const literal =
  (want: string | number): Check =>
  (v) =>
    v === want ? null : `must be ${JSON.stringify(want)}`;
const integer =
  (min: number, max: number, powerOfTwo = false): Check =>
  (v) =>
    typeof v === 'number' &&
    Number.isInteger(v) &&
    v >= min &&
    v <= max &&
    (!powerOfTwo || (v & (v - 1)) === 0)
      ? null
      : `must be ${powerOfTwo ? 'a power of two' : 'an integer'} from ${min} to ${max}`;

/** SealedKeySchema of shared/src/identity/keystore.ts: strict objects, every field required. */
const SEALED_KEY = {
  v: literal(1),
  kind: literal('synod-node-key'),
  nodeId: hex(/^[0-9a-f]{64}$/, '64 lowercase hex digits'),
  kdf: {
    name: literal('scrypt'),
    N: integer(2 ** 10, 2 ** 20, true),
    r: integer(1, 32),
    p: integer(1, 16),
    salt: hex(/^[0-9a-f]{32,128}$/, '32 to 128 lowercase hex digits'),
  },
  cipher: {
    name: literal('aes-256-gcm'),
    iv: hex(/^[0-9a-f]{24}$/, '24 lowercase hex digits'),
    data: hex(/^[0-9a-f]{96}$/, '96 lowercase hex digits'),
  },
} as const;

interface Shape {
  readonly [field: string]: Check | Shape;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The first thing wrong with `value` (at `path`, '' for the file) against `shape`, as `path: what`, or null. */
function problem(value: unknown, shape: Shape, path: string): string | null {
  if (!isRecord(value)) return `${path || 'the file'}: must be a JSON object`;
  const at = (field: string) => (path === '' ? field : `${path}.${field}`);
  for (const field of Object.keys(value)) {
    if (!Object.hasOwn(shape, field)) return `${at(field)}: is not a field of a sealed key`;
  }
  for (const [field, check] of Object.entries(shape)) {
    if (!Object.hasOwn(value, field)) return `${at(field)}: is missing`;
    if (typeof check !== 'function') {
      const inner = problem(value[field], check, at(field));
      if (inner !== null) return inner;
      continue;
    }
    const wrong = check(value[field]);
    if (wrong !== null) return `${at(field)}: ${wrong}`;
  }
  return null;
}

function malformed(name: string, why: string, cause?: unknown): KeyFileError {
  return new KeyFileError(
    'KEY_FILE_MALFORMED',
    `${name} is not a sealed Synod node key (${why}); choose a file saved by "Save sealed key to a file" or a synod node identity file`,
    { cause },
  );
}

/** Check the text of a file named `name`; KEY_FILE_MALFORMED when it is not a sealed node key. */
export function parseSealedKeyFile(text: string, name = 'the file'): SealedKeyText {
  if (text.length > MAX_KEY_FILE_BYTES) {
    throw malformed(name, `${text.length} characters, larger than any sealed key`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (cause) {
    throw malformed(name, 'it is not JSON', cause);
  }
  const why = problem(value, SEALED_KEY, '');
  if (why !== null) throw malformed(name, why);
  const nodeId = (value as { nodeId: string }).nodeId;
  return { nodeId, text: JSON.stringify(value) };
}

/** Read and check a chosen file; the size is checked before the file is read. */
export async function readSealedKeyFile(file: Blob & { name: string }): Promise<SealedKeyText> {
  if (file.size > MAX_KEY_FILE_BYTES) {
    throw malformed(file.name, `${file.size} bytes, larger than any sealed key`);
  }
  let text: string;
  try {
    text = await file.text();
  } catch (cause) {
    throw new KeyFileError(
      'KEY_FILE_UNREADABLE',
      `the browser could not read ${file.name} (${String(cause)}); choose it again`,
      { cause },
    );
  }
  return parseSealedKeyFile(text, file.name);
}
