// The errors module alone: the page's bundle takes nothing else of @synod/shared.
import { CodedError } from '../../shared/src/errors.ts';

/**
 * A sealed node key read from a file, checked without opening it (no passphrase yet): the format
 * `sealNodeKey` of @synod/shared writes, as this page saves it ("Save sealed key to a file") and as the
 * `synod node` CLI keeps its identity file. The check itself is the browser node's (`checkSealedKey` of
 * `window.synod`: `parseSealedKey` of @synod/shared, the schema `openNodeKey` uses), so the page's
 * bundle carries no copy of it; this module reads the file, bounds its size and words the refusal.
 *
 * Errors (KeyFileError, shown by the page as `CODE: message`):
 *   KEY_FILE_MALFORMED   the file is not a sealed Synod node key (not JSON, a field missing, unknown or
 *                        out of bounds, or larger than any sealed key): nothing stored is changed
 *   KEY_FILE_UNREADABLE  the browser could not read the chosen file (moved or deleted meanwhile)
 *   NODE_KEY_CHANGED     the key stored in this browser changed (another tab) between the confirmation
 *                        and the replacement: nothing is replaced
 */
export type KeyFileErrorCode = 'KEY_FILE_MALFORMED' | 'KEY_FILE_UNREADABLE' | 'NODE_KEY_CHANGED';

export class KeyFileError extends CodedError<KeyFileErrorCode> {
  override readonly name = 'KeyFileError';
}

/** A sealed key file is a few hundred bytes; one much larger is something else. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;

/** A checked sealed key: its node id, and its text as it is stored (compact JSON, as `sealNodeKey` made it). */
export interface SealedKeyText {
  nodeId: string;
  text: string;
}

/**
 * The browser node's check of a sealed key's text (`SynodPageApi.checkSealedKey`): throws an error
 * with code KEYSTORE_MALFORMED and `details.issues` when the text is not a sealed key.
 */
export type SealedKeyCheck = (text: string) => SealedKeyText;

/** What is wrong, from a KEYSTORE_MALFORMED error's `details.issues`; null for any other error. */
function issuesOf(err: unknown): string | null {
  if (typeof err !== 'object' || err === null || (err as { code?: unknown }).code !== 'KEYSTORE_MALFORMED')
    return null;
  const issues = (err as { details?: { issues?: unknown } }).details?.issues;
  return Array.isArray(issues) && issues.length > 0 ? issues.map(String).join('; ') : 'not a sealed key';
}

function malformed(name: string, why: string, cause?: unknown): KeyFileError {
  return new KeyFileError(
    'KEY_FILE_MALFORMED',
    `${name} is not a sealed Synod node key (${why}); choose a file saved by "Save sealed key to a file" or a synod node identity file`,
    { cause },
  );
}

/** Check the text of a file named `name` with `check`; KEY_FILE_MALFORMED when it is not a sealed node key. */
export function parseSealedKeyFile(text: string, check: SealedKeyCheck, name = 'the file'): SealedKeyText {
  if (text.length > MAX_KEY_FILE_BYTES) {
    throw malformed(name, `${text.length} characters, larger than any sealed key`);
  }
  try {
    return check(text);
  } catch (cause) {
    const why = issuesOf(cause);
    if (why === null) throw cause;
    throw malformed(name, why, cause);
  }
}

/** Read and check a chosen file; the size is checked before the file is read. */
export async function readSealedKeyFile(
  file: Blob & { name: string },
  check: SealedKeyCheck,
): Promise<SealedKeyText> {
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
  return parseSealedKeyFile(text, check, file.name);
}
