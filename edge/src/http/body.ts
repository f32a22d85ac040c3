import { joinBytes } from '@synod/shared';
import type { Context } from 'hono';
import { edgeError } from './errors.ts';

/** Default request body limit of the JSON API (transcripts for /v1/verify may be larger: see routes). */
export const DEFAULT_BODY_LIMIT = 256 * 1024;

/**
 * The raw body bytes of a JSON request, within `limit`: checks Content-Type and Content-Length first,
 * then counts bytes while streaming, so a lying or missing Content-Length cannot make the relay buffer
 * more. `parseJson` turns them into a value.
 */
export async function readBody(c: Context, limit = DEFAULT_BODY_LIMIT): Promise<Uint8Array> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/(?:[\w.+-]+\+)?json\b/i.test(type)) {
    throw edgeError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json');
  }
  const declared = Number(c.req.header('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    throw edgeError(413, 'BODY_TOO_LARGE', `body of ${declared} bytes exceeds ${limit}`, { limit });
  }
  if (Number.isFinite(declared)) {
    // HTTP/1.1 framing: the server reads exactly Content-Length bytes, so a declared length within the
    // limit bounds the body and it can be read in one piece.
    if (declared === 0) throw edgeError(400, 'BAD_JSON', 'the request has no body');
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
      throw edgeError(413, 'BODY_TOO_LARGE', `body exceeds ${limit} bytes`, { limit });
    }
    chunks.push(value);
  }
  return joinBytes(chunks);
}

/** The body stream failed (the client went away, or sent fewer bytes than it declared): its 400. */
function bodyBroken(e: unknown): never {
  throw edgeError(400, 'BAD_JSON', 'the body could not be read to its end', {
    reason: String((e as Error)?.message ?? e).slice(0, 200),
  });
}

/** Strict UTF-8 (a decoder without `stream` keeps no state between calls, so one serves all). */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function parseJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    throw edgeError(400, 'BAD_JSON', 'the body is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw edgeError(400, 'BAD_JSON', `the body is not valid JSON: ${(e as Error).message}`);
  }
}
