import { isSynodError, type SynodError } from '@synod/shared';
import { DrizzleQueryError } from 'drizzle-orm/errors';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { storeUnreachableCause } from './store-unavailable.ts';

/**
 * Errors of the HTTP surface. Every 4xx/5xx body is `{ error: { code, message, details?, hint? } }` with
 * a stable code: protocol codes from `@synod/shared` (e.g. FRAME_OUT_OF_RANGE) pass through unchanged,
 * and the edge adds its own below.
 */
export const EDGE_ERROR_CODES = [
  'BAD_JSON',
  'BODY_TOO_LARGE',
  'BODY_TIMEOUT',
  'UNSUPPORTED_MEDIA_TYPE',
  'INVALID_INPUT',
  'UNKNOWN_MODEL',
  'UNSUPPORTED_PARAMETER',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'QUOTA_EXCEEDED',
  'RATE_LIMITED',
  'QUEUE_FULL',
  'QUORUM_UNAVAILABLE',
  'IDEMPOTENCY_CONFLICT',
  'NOT_FOUND',
  'NO_VERDICT',
  'METHOD_NOT_ALLOWED',
  'NETWORK_UNAVAILABLE',
  'STORE_UNAVAILABLE',
  'NO_CONSENSUS',
  'CONTEXT_LENGTH_EXCEEDED',
  'EXPIRED',
  'TIMEOUT',
  'INTERNAL',
] as const;
export type EdgeErrorCode = (typeof EDGE_ERROR_CODES)[number];

export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly hint?: string,
    /** Response headers that go with the error (the app's error handlers send them). */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }

  body(): { error: { code: string; message: string; details?: Record<string, unknown>; hint?: string } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details ? { details: this.details } : {}),
        ...(this.hint ? { hint: this.hint } : {}),
      },
    };
  }
}

export function edgeError(
  status: ContentfulStatusCode,
  code: EdgeErrorCode,
  message: string,
  details?: Record<string, unknown>,
  hint?: string,
): HttpError {
  return new HttpError(status, code, message, details, hint);
}

/**
 * 429 RATE_LIMITED for a caller who must wait `waitMs` before a retry: the wait in the details, and a
 * `Retry-After` header in whole seconds (at least 1).
 */
export function rateLimitedError(waitMs: number): HttpError {
  return new HttpError(
    429,
    'RATE_LIMITED',
    `too many requests; retry in ${waitMs} ms`,
    { retryAfterMs: waitMs },
    undefined,
    { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))) },
  );
}

/** Seconds a caller refused with QUEUE_FULL is told to wait: about two polls of the coordinator's log. */
export const QUEUE_FULL_RETRY_S = 2;

/**
 * 503 QUEUE_FULL: the coordinator's admission log already holds `limit` requests waiting for the
 * network, so a new one would only wait to expire. Nothing was stored or charged; `Retry-After` says when
 * to try again.
 */
export function queueFullError(q: { queued: number; limit: number }): HttpError {
  return new HttpError(
    503,
    'QUEUE_FULL',
    `${q.queued} requests already wait for the network (the bound is ${q.limit}); nothing was stored`,
    { queued: q.queued, limit: q.limit, retryAfterMs: QUEUE_FULL_RETRY_S * 1000 },
    'retry after the Retry-After seconds (with the same Idempotency-Key, if you sent one)',
    { 'retry-after': String(QUEUE_FULL_RETRY_S) },
  );
}

/** Seconds a caller is asked to wait after a 503 QUORUM_UNAVAILABLE: about one round of node heartbeats. */
export const QUORUM_UNAVAILABLE_RETRY_S = 10;

/**
 * 503 QUORUM_UNAVAILABLE: fewer nodes that could serve the request (one of its models, its embedder) were
 * heard from lately than its quorum asks for, so it could never be answered; nothing was stored or
 * charged. Retryable: nodes come and go (a node restarting is heard again within a heartbeat).
 */
export function quorumUnavailableError(o: { quorum: number; serving: number; models: readonly string[] }) {
  return new HttpError(
    503,
    'QUORUM_UNAVAILABLE',
    o.serving === 0
      ? `a quorum of ${o.quorum} was asked, and the nodes heard that serve ${o.models.join(', ')} take no requests now; nothing was stored`
      : `a quorum of ${o.quorum} was asked, and ${o.serving} node${o.serving === 1 ? '' : 's'} that could serve ${o.models.join(', ')} ${o.serving === 1 ? 'was' : 'were'} heard from in the last minute; nothing was stored`,
    { quorum: o.quorum, serving: o.serving, models: [...o.models] },
    o.serving === 0
      ? 'they are paused (a tab whose Serve is off) or cannot write their state: retry after the Retry-After seconds'
      : `ask for a quorum of at most ${o.serving} (frame.quorum), or retry after the Retry-After seconds`,
    { 'retry-after': String(QUORUM_UNAVAILABLE_RETRY_S) },
  );
}

/** HTTP status for a protocol error: all are the client's fault except internal invariants. */
const PROTOCOL_STATUS: Partial<Record<SynodError['code'], ContentfulStatusCode>> = {
  PACKET_TOO_LARGE: 413,
  PACKET_BAD_SIGNATURE: 401,
  KEY_WRONG_PASSPHRASE: 401,
};

/**
 * 503 STORE_UNAVAILABLE for a database that could not be reached (`cause`: the error that says so, see
 * store-unavailable.ts). Its message is the reason given (never a wrapping query error's, which holds the
 * SQL and its arguments).
 */
export function storeUnavailableError(cause: Error): HttpError {
  return new HttpError(
    503,
    'STORE_UNAVAILABLE',
    'the history database cannot be reached',
    { reason: publicReason(cause) },
    'retry shortly (a POST with the same Idempotency-Key, so that one that was stored is replayed, not duplicated)',
  );
}

/**
 * The HTTP error for anything thrown: HTTP errors as they are, protocol errors with their code, a
 * database that could not be reached as 503 STORE_UNAVAILABLE, anything else 500 INTERNAL.
 */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (isSynodError(e)) {
    return new HttpError(PROTOCOL_STATUS[e.code] ?? 400, e.code, e.message, e.details, e.hint);
  }
  const unreachable = storeUnreachableCause(e);
  if (unreachable) return storeUnavailableError(unreachable);
  return new HttpError(500, 'INTERNAL', 'internal error');
}

/** A file path in a message: absolute, after a space, a quote, `(`, `=` or `:` (`file:/…`), or first. */
const FILE_PATH = /(^|[\s'"(=:])((?:[A-Za-z]:\\|\/)[^\s'"]*)/g;
/** A URL in a message (a libSQL server's, with its credentials or `authToken` perhaps). */
const URL_IN_MESSAGE = /\b[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s'"]*/g;
/** The host name a failed DNS lookup names (`getaddrinfo ENOTFOUND db.internal`). */
const LOOKED_UP_HOST = /\b(ENOTFOUND|EAI_AGAIN|EAI_NONAME|EAI_FAIL)\s+[^\s'"]+/g;
/** An IP address, with its port if any (`connect ECONNREFUSED 10.0.0.5:8080`, `[fd00::5]:8080`). */
const IP_ADDRESS = /\[[0-9A-Fa-f:.]+\](?::\d+)?|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b/g;
/**
 * An IPv6 address without brackets (`::1:8080`, `2001:db8::17`, all eight groups): `::` with a group on
 * at least one side, or eight groups; not inside a word or a name such as `std::io::copy`, nor a time.
 */
const BARE_IPV6 =
  /(?<![\w:.])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?|::[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)(?![\w.])/g;
/** A host name with a port (`db-primary.corp.internal:8080`, `localhost:8081`). */
const HOST_AND_PORT = /\b(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+):\d{1,5}\b/g;

/** A gRPC status in Rust's debug form (`WriteDelegation(status: Unavailable, message: "…", details: …`). */
const RUST_GRPC_STATUS = /^([A-Z]\w*)\(status: (\w+), message: "((?:[^"\\]|\\.)*)"/;
/** Rust's debug form of an error enum (`Replication(Injector(Sqlite(…)))`): the variants that lead it. */
const RUST_VARIANTS = /^(?:[A-Z]\w*\()+/;
/** Where anyhow's chain of causes begins after the message (`\n\nCaused by:\n    0: …`). */
const CAUSED_BY = '\n\nCaused by:';
/** The most of a message read to make it public (its answer keeps 300 characters): no regex runs long. */
const MAX_REASON_READ = 4_000;

/**
 * libSQL's embedded replica fails with its Rust errors' debug text (`Replication(PrimaryHandshakeTimeout)`,
 * a write delegated to the server: `WriteDelegation(status: Unavailable, message: "error trying to connect:
 * …", details: [], metadata: MetadataMap { headers: {} }` then `Caused by:` lines): said as the variants
 * that lead it and the message inside (`WriteDelegation: Unavailable: error trying to connect: …`,
 * `Replication: PrimaryHandshakeTimeout`). Any other text is returned as it is.
 */
export function readableRustError(text: string): string {
  const grpc = RUST_GRPC_STATUS.exec(text);
  if (grpc) return `${grpc[1]}: ${grpc[2]}: ${unescapeRust(grpc[3] as string)}`;
  const variants = RUST_VARIANTS.exec(text)?.[0];
  if (variants === undefined) return text;
  const names = variants.slice(0, -1).split('(');
  const causes = text.indexOf(CAUSED_BY);
  const rest = (causes === -1 ? text : text.slice(0, causes)).slice(variants.length);
  // The innermost message: the last quoted string, else the word the variants wrap.
  const quoted = [...rest.matchAll(/"((?:[^"\\]|\\.)*)"/g)].at(-1)?.[1];
  const inner = quoted === undefined ? /^[\w ]+/.exec(rest)?.[0]?.trim() : unescapeRust(quoted);
  return [...names, ...(inner ? [inner] : [])].join(': ');
}

/** A Rust string literal's escapes read, in one pass (`\\n` a space, `\\"` and `\\\\` the character). */
function unescapeRust(s: string): string {
  return s.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? ' ' : c));
}

/**
 * Why something failed, as an answer may say it (`details.reason` of a 503, `/healthz`'s
 * `admissions.reason`, which needs no key): the error's stable code when it has one, and its message
 * without file paths (a database file that went away names its path; the relay's log keeps it), nor
 * the database server's address (its URL, the host name a lookup failed on, a host name with a port, an
 * IPv4 or IPv6 address and port), at most 300 characters; of drizzle's query errors, their cause's (never
 * the query and its parameters); libSQL's Rust errors made readable (`readableRustError`). A host name
 * alone, without a port, is not told apart from a file name (`relay.db`) and stays. At most the first
 * `MAX_REASON_READ` characters of the message are read.
 */
export function publicReason(error: unknown): string {
  // drizzle's wrapper names the query and its parameters: what failed is its cause.
  let e = error;
  for (let depth = 0; depth < 3 && e instanceof DrizzleQueryError && e.cause !== undefined; depth++)
    e = e.cause;
  const trailing = (text: string) => /[.,:;)]+$/.exec(text)?.[0] ?? '';
  const message = readableRustError(String((e as Error)?.message ?? e).slice(0, MAX_REASON_READ))
    .replace(URL_IN_MESSAGE, (url: string) => `<url>${trailing(url)}`)
    .replace(LOOKED_UP_HOST, (_, code: string) => `${code} <host>`)
    .replace(IP_ADDRESS, '<address>')
    .replace(BARE_IPV6, '<address>')
    .replace(HOST_AND_PORT, '<host>')
    .replace(FILE_PATH, (_, before: string, path: string) => `${before}<path>${trailing(path)}`);
  const code = (e as { code?: unknown } | null)?.code;
  const coded = typeof code === 'string' && !message.startsWith(code) ? `${code}: ${message}` : message;
  return coded.slice(0, 300);
}
