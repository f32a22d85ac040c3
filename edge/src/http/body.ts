import { duplicateMember, formatJsonPath, joinBytes } from '@synod/shared';
import type { Context } from 'hono';
import type { BodyBudget } from './body-budget.ts';
import { edgeError, HttpError } from './errors.ts';

/** Default request body limit of the JSON API (transcripts for /v1/verify may be larger: see routes). */
export const DEFAULT_BODY_LIMIT = 256 * 1024;

/** Who sends a body, and the relay's budget of bodies under way that it is read within (body-budget.ts). */
export interface BodyGuard {
  budget: BodyBudget;
  /** The client address, as the per-address limits count it. */
  address: string;
}

/** The guard of a request's body on a relay (none when its deps hold no budget). */
export function bodyGuard(
  c: Context,
  deps: { bodies?: BodyBudget; clientAddress: (c: Context) => string },
): BodyGuard | undefined {
  return deps.bodies ? { budget: deps.bodies, address: deps.clientAddress(c) } : undefined;
}

/**
 * The raw body bytes of a JSON request, within `limit`: checks Content-Type and Content-Length first,
 * then counts bytes while streaming, so a lying or missing Content-Length cannot make the relay buffer
 * more. With a `guard`, the body is counted in its budget while it is read (429 RATE_LIMITED past it)
 * and must arrive within its deadline (408 BODY_TIMEOUT, and the connection is closed). `parseJson`
 * turns the bytes into a value.
 */
export async function readBody(
  c: Context,
  limit = DEFAULT_BODY_LIMIT,
  guard?: BodyGuard,
): Promise<Uint8Array> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/(?:[\w.+-]+\+)?json\b/i.test(type)) {
    throw edgeError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json');
  }
  // The relay decodes no content coding: a compressed body would be read as broken JSON (400 BAD_JSON
  // "not valid UTF-8"), and a plain one labelled compressed read as if it were not. Either is 415, as
  // RFC 9110 (§15.5.16) has it for a coding the server does not support.
  const coding = (c.req.header('content-encoding') ?? '').trim().toLowerCase();
  if (coding !== '' && coding !== 'identity') {
    throw edgeError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      `the body must not be encoded (Content-Encoding: ${coding.slice(0, 40)})`,
      { contentEncoding: coding.slice(0, 40) },
      'send the JSON body uncompressed, without a Content-Encoding',
    );
  }
  const declared = Number(c.req.header('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    throw edgeError(413, 'BODY_TOO_LARGE', `body of ${declared} bytes exceeds ${limit}`, {
      size: declared,
      limit,
    });
  }
  if (declared === 0) throw edgeError(400, 'BAD_JSON', 'the request has no body');
  if (!guard) return readWithin(c, limit, declared);
  const release = guard.budget.take(guard.address, Number.isFinite(declared) ? declared : limit);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(bodyTimeout(guard.budget.deadlineMs)), guard.budget.deadlineMs);
  });
  try {
    return await Promise.race([readWithin(c, limit, declared), late]);
  } finally {
    clearTimeout(timer);
    release();
  }
}

async function readWithin(c: Context, limit: number, declared: number): Promise<Uint8Array> {
  if (Number.isFinite(declared)) {
    // HTTP/1.1 framing: the server reads exactly Content-Length bytes, so a declared length within the
    // limit bounds the body and it can be read in one piece.
    return new Uint8Array(await c.req.raw.arrayBuffer().catch(bodyBroken));
  }
  const body = c.req.raw.body;
  if (!body) throw edgeError(400, 'BAD_JSON', 'the request has no body');
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read().catch(bodyBroken);
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      // Sent without a length: how much had arrived when it was cut off (at least `size`), not its size.
      throw edgeError(413, 'BODY_TOO_LARGE', `body exceeds ${limit} bytes (${size} read when refused)`, {
        sizeAtLeast: size,
        limit,
      });
    }
    chunks.push(value);
  }
  return joinBytes(chunks);
}

/**
 * 408 BODY_TIMEOUT: the body did not arrive within the deadline. The answer closes the connection, so
 * the server stops reading (and holding) the rest of it.
 */
function bodyTimeout(deadlineMs: number): HttpError {
  return new HttpError(
    408,
    'BODY_TIMEOUT',
    `the request body did not arrive within ${deadlineMs} ms`,
    { deadlineMs },
    'send the body at once, with the request',
    { connection: 'close' },
  );
}

/** The body stream failed (the client went away, or sent fewer bytes than it declared): its 400. */
function bodyBroken(e: unknown): never {
  throw edgeError(400, 'BAD_JSON', 'the body could not be read to its end', {
    reason: String((e as Error)?.message ?? e).slice(0, 200),
  });
}

/** Strict UTF-8 (a decoder without `stream` keeps no state between calls, so one serves all). */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The JSON value of a body's bytes (400 BAD_JSON for bytes that are not UTF-8 or not JSON). With
 * `uniqueNames`, also 400 BAD_JSON for a text in which an object names a member twice: the routes that
 * check something for the caller (`POST /v1/verify`) must not verify one reading of a text that another
 * JSON reader would read otherwise (`JSON.parse` keeps a repeated name's last value, others the first).
 */
export function parseJson(bytes: Uint8Array, options: { uniqueNames?: boolean } = {}): unknown {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    throw edgeError(400, 'BAD_JSON', 'the body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw edgeError(400, 'BAD_JSON', `the body is not valid JSON: ${(e as Error).message}`);
  }
  const twice = options.uniqueNames ? duplicateMember(text) : undefined;
  if (twice) {
    const member = twice.name.slice(0, 64);
    const path = formatJsonPath(twice.path);
    throw edgeError(
      400,
      'BAD_JSON',
      `the body names "${member}" twice in ${path}`,
      { member, path },
      'name each member of an object once: JSON readers differ on which value a repeated name keeps (RFC 7493, I-JSON)',
    );
  }
  return value;
}
