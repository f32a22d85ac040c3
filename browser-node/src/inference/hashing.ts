import { joinBytes } from '@synod/shared';
import { InferenceError } from './errors.ts';

/**
 * Model hashing that runs anywhere (browsers, workers, Bun, Node): WebCrypto sha256 and the canonical
 * manifest of a folder model. `models-dir.ts` computes the same values from disk with streaming hashes.
 *
 * Canonical manifest: the UTF-8 text of one line per file, `<sha256 hex>  <relative path>\n` (two
 * spaces, `/` separators), sorted by relative path in byte order; a folder model's hash is the sha256 of
 * that text. It is exactly `sha256sum` output, so anyone can recompute it with
 * `cd dir && find . -type f | sed 's|^./||' | LC_ALL=C sort | xargs sha256sum | sha256sum`.
 */

const encoder = new TextEncoder();

export async function sha256Hex(bytes: Uint8Array | ArrayBuffer): Promise<string> {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', view as Uint8Array<ArrayBuffer>));
  let hex = '';
  for (const b of digest) hex += b.toString(16).padStart(2, '0');
  return hex;
}

/** Byte order of the UTF-8 encodings of two strings. */
export function compareUtf8(a: string, b: string): number {
  const ea = encoder.encode(a);
  const eb = encoder.encode(b);
  const n = Math.min(ea.length, eb.length);
  for (let i = 0; i < n; i++) {
    const d = (ea[i] as number) - (eb[i] as number);
    if (d !== 0) return d;
  }
  return ea.length - eb.length;
}

export interface ManifestEntry {
  path: string;
  sha256: string;
}

/** The canonical manifest text; throws on a path listed twice. */
export function canonicalManifest(entries: readonly ManifestEntry[]): string {
  const sorted = [...entries].sort((a, b) => compareUtf8(a.path, b.path));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]?.path === sorted[i - 1]?.path) {
      throw new InferenceError('INFERENCE_INVALID_INPUT', `manifest lists ${sorted[i]?.path} twice`);
    }
  }
  return sorted.map((e) => `${e.sha256}  ${e.path}\n`).join('');
}

/** Hash of a folder model given its files' bytes. */
export async function manifestHash(
  files: ReadonlyArray<{ path: string; bytes: Uint8Array }>,
): Promise<string> {
  const entries: ManifestEntry[] = [];
  for (const f of files) entries.push({ path: f.path, sha256: await sha256Hex(f.bytes) });
  return sha256Hex(encoder.encode(canonicalManifest(entries)));
}

/** sha256 of no bytes at all: what an empty file (a copy or download cut off at its start) hashes to. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Throw MODEL_HASH_MISMATCH unless `actual` equals `expected` (an empty file is said to be empty). */
export function verifyHash(id: string, expected: string, actual: string, where?: string): void {
  if (expected.toLowerCase() === actual) return;
  const empty = actual === EMPTY_SHA256;
  throw new InferenceError(
    'MODEL_HASH_MISMATCH',
    empty
      ? `model ${id} is empty (0 bytes)${where === undefined ? '' : ` at ${where}`}, expected sha256 ${expected}`
      : `model ${id} hashes to ${actual}, expected ${expected}`,
    {
      details: {
        id,
        expected,
        actual,
        ...(empty ? { empty: true } : {}),
        ...(where === undefined ? {} : { where }),
      },
      hint: empty
        ? 'its copy or download was cut short: delete it and copy or fetch it again'
        : 'the file is corrupt, truncated or a different build: delete it and fetch it again',
    },
  );
}

/**
 * Fetch one file completely (the body is read before the promise resolves: never hold many unread
 * bodies open, which hangs Chromium at six connections per host). Non-2xx and network errors are
 * MODEL_FETCH_FAILED. Reports progress while the body streams in.
 */
export async function fetchBytes(
  url: string,
  options: {
    fetch?: typeof fetch;
    signal?: AbortSignal;
    onProgress?: (p: { loaded: number; total: number; phase: 'fetch' }) => void;
  } = {},
): Promise<Uint8Array> {
  const doFetch = options.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(url, options.signal === undefined ? {} : { signal: options.signal });
  } catch (cause) {
    throw new InferenceError('MODEL_FETCH_FAILED', `could not fetch ${url}`, { details: { url }, cause });
  }
  if (!response.ok || response.body === null) {
    throw new InferenceError('MODEL_FETCH_FAILED', `fetching ${url} answered HTTP ${response.status}`, {
      details: { url, status: response.status },
    });
  }
  const total = Number(response.headers.get('content-length') ?? 0) || 0;
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  try {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      options.onProgress?.({ loaded, total, phase: 'fetch' });
    }
  } catch (cause) {
    throw new InferenceError('MODEL_FETCH_FAILED', `fetching ${url} broke off after ${loaded} bytes`, {
      details: { url, loaded, total },
      cause,
    });
  }
  return joinBytes(chunks);
}
