import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { LIMITS, TRANSCRIPT_LIMITS } from '@synod/shared';
import { VerifyInputError } from './verify-input.ts';

/**
 * The most bytes `synod-verify` reads from one source (a file, standard input, a URL): a transcript at
 * its bounds (386 packets of at most 256 KiB each) and 8 MiB for what a relay gives beside it (the
 * verdict, the nodes' attestations). Anything larger is not a transcript, and is refused before it is
 * held in memory whole.
 */
export const MAX_SOURCE_BYTES = TRANSCRIPT_LIMITS.maxPackets * LIMITS.maxPacketBytes + 8 * 1024 * 1024;

function tooLarge(what: string, max: number): VerifyInputError {
  return new VerifyInputError(
    `the ${what} is larger than ${max} bytes, more than any transcript can be`,
    'VERIFY_INPUT_TOO_LARGE',
  );
}

/**
 * A byte stream as UTF-8 text, read up to `max` bytes: past it, the stream is cancelled and a
 * `VerifyInputError` (`VERIFY_INPUT_TOO_LARGE`) thrown, so an endless or huge source costs at most `max`
 * bytes of memory.
 */
export async function readBoundedText(
  stream: ReadableStream<Uint8Array> | null,
  max: number,
  what: string,
): Promise<string> {
  if (stream === null) return '';
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(what, max);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/**
 * A file as UTF-8 text, read as a stream up to `max` bytes (a `VerifyInputError`,
 * `VERIFY_INPUT_TOO_LARGE`, past it): a named pipe, a device or a file growing as it is read has no size
 * to check before, and costs no more memory than a regular file.
 */
export function readBoundedFile(path: string, max: number, what: string): Promise<string> {
  return readBoundedText(
    Readable.toWeb(createReadStream(path)) as unknown as ReadableStream<Uint8Array>,
    max,
    what,
  );
}

/** A file's size checked against `max` before it is read. */
export function checkFileSize(size: number, max: number, what: string): void {
  if (size > max) throw tooLarge(what, max);
}

/** Redirects followed within the URL's own origin; more is a loop, or a relay that is not one. */
export const MAX_REDIRECTS = 5;

/**
 * How `synod-verify` treats a relay's rate limit (a relay allows each client address about 50 reads a
 * second, bursts of 100, and charges a large transcript more): it starts at most one request every
 * `paceMs` to one origin (20 a second, half what a relay allows), and a `429` is waited out as its
 * `Retry-After` says (1 s when it says nothing), at most `retries` times and `maxWaitS` seconds in all
 * for one URL; a `Retry-After` beyond what is left of that is not waited for. Past that the fetch is a
 * `VerifyInputError` with code `VERIFY_RATE_LIMITED`, which audits count as not checked, never as a
 * request that fails.
 */
export const RATE_LIMIT = { paceMs: 50, retries: 5, maxWaitS: 60 } as const;

/** When each origin may be asked next (ms): `RATE_LIMIT.paceMs` apart, later while a 429 is waited out. */
const nextAt = new Map<string, number>();

async function pace(origin: string): Promise<void> {
  const now = Date.now();
  const at = Math.max(now, nextAt.get(origin) ?? 0);
  nextAt.set(origin, at + RATE_LIMIT.paceMs);
  if (at > now) await Bun.sleep(at - now);
}

/** Seconds a `Retry-After` header asks for (delay-seconds or an HTTP date); undefined when unreadable. */
export function retryAfterS(header: string | null, now = Date.now()): number | undefined {
  if (header === null) return undefined;
  const text = header.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * GET a URL as JSON text, each attempt within `timeoutS` (redirects included) and `max` bytes; a
 * network failure, a timeout or a body too large is a `VerifyInputError` naming `what` was fetched.
 * A redirect is followed only within the URL's origin (scheme, host and port): one to another origin is
 * refused, naming where it pointed, so the verifier never asks a host it was not given. Requests to one
 * origin are paced, and a `429` retried as `RATE_LIMIT` says (`VERIFY_RATE_LIMITED` past it). Any other
 * status is the caller's to judge.
 */
export async function fetchText(
  url: string,
  timeoutS: number,
  what: string,
  max: number = MAX_SOURCE_BYTES,
): Promise<{ status: number; ok: boolean; text: string }> {
  let origin: string;
  try {
    origin = new URL(url).origin;
  } catch (e) {
    throw new VerifyInputError(`could not fetch the ${what} at ${url}: ${(e as Error).message}`);
  }
  let waited = 0;
  for (let attempt = 0; ; attempt++) {
    await pace(origin);
    const r = await fetchOnce(url, origin, timeoutS, what, max);
    if (r.status !== 429) return r;
    const wait = retryAfterS(r.retryAfter) ?? 1;
    if (attempt >= RATE_LIMIT.retries || waited + wait > RATE_LIMIT.maxWaitS) {
      throw new VerifyInputError(
        `${url} answered 429 (rate limited) ${attempt + 1} time${attempt === 0 ? '' : 's'}${r.retryAfter === null ? '' : `, the last asking to wait ${wait} s`}: given up after waiting ${waited} s (at most ${RATE_LIMIT.retries} retries, ${RATE_LIMIT.maxWaitS} s); try again later`,
        'VERIFY_RATE_LIMITED',
      );
    }
    nextAt.set(origin, Math.max(nextAt.get(origin) ?? 0, Date.now() + wait * 1000));
    waited += wait;
  }
}

async function fetchOnce(
  url: string,
  origin: string,
  timeoutS: number,
  what: string,
  max: number,
): Promise<{ status: number; ok: boolean; text: string; retryAfter: string | null }> {
  const signal = AbortSignal.timeout(timeoutS * 1000);
  let at = url;
  try {
    for (let hops = 0; ; hops++) {
      const r = await fetch(at, { headers: { accept: 'application/json' }, redirect: 'manual', signal });
      const location = r.status >= 300 && r.status < 400 ? r.headers.get('location') : null;
      if (location === null) {
        const text = await readBoundedText(r.body, max, `${what} at ${url}`);
        return { status: r.status, ok: r.ok, text, retryAfter: r.headers.get('retry-after') };
      }
      await r.body?.cancel().catch(() => undefined);
      const next = new URL(location, at).href;
      if (new URL(next).origin !== origin) {
        throw new VerifyInputError(
          `${url} redirected to ${next}, another origin: not followed (give that URL if you trust it)`,
        );
      }
      if (hops === MAX_REDIRECTS) {
        throw new VerifyInputError(`${url} redirected more than ${MAX_REDIRECTS} times (last to ${next})`);
      }
      at = next;
    }
  } catch (e) {
    if (e instanceof VerifyInputError) throw e;
    throw new VerifyInputError(`could not fetch the ${what} at ${url}: ${(e as Error).message}`);
  }
}

/** The most characters of an answer's text `describeAnswer` quotes. */
const MAX_QUOTED = 1_000;

/**
 * What a relay's answer that is not a transcript says, for an error message: a JSON error body as
 * `CODE: message`, with its `details`' plain values (a 409's `status` and `error`) and the names of the
 * rest; any other text as it is, up to 1,000 characters, saying how many more there were.
 */
export function describeAnswer(text: string): string {
  let said: string | undefined;
  try {
    const e = (
      JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null
    )?.error;
    if (typeof e?.code === 'string') {
      const details =
        e.details !== null && typeof e.details === 'object' && !Array.isArray(e.details)
          ? Object.entries(e.details as Record<string, unknown>).map(([k, v]) =>
              typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v === null
                ? `${k} ${String(v)}`
                : `${k} (${Array.isArray(v) ? `${v.length} items` : 'an object'})`,
            )
          : [];
      said = `${e.code}: ${String(e.message ?? '')}${details.length > 0 ? ` (details: ${details.join(', ')})` : ''}`;
    }
  } catch {
    // Not JSON: quoted as text.
  }
  const out = said ?? text;
  return out.length > MAX_QUOTED
    ? `${out.slice(0, MAX_QUOTED)}… (${out.length - MAX_QUOTED} more characters)`
    : out;
}
