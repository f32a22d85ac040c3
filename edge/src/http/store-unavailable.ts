/**
 * Telling a database that cannot be reached (a libSQL server down, restarting, overloaded, or a network
 * between) from a database that answered with an error. The first is 503 STORE_UNAVAILABLE: the request
 * may well succeed if retried shortly. The second stays what it is (a bug is 500 INTERNAL).
 */

/**
 * Codes of a connection that could not be made or was cut: Node's and Bun's socket errors, undici's
 * (`fetch failed` carries one in its cause), Bun's fetch, and @libsql/client's for a WebSocket or a
 * stream closed under it.
 */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ConnectionRefused',
  'ConnectionClosed',
  'FailedToOpenSocket',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'HRANA_WEBSOCKET_ERROR',
  'HRANA_CLOSED_ERROR',
]);

/** HTTP statuses of a server (or a proxy before it) that is down, overloaded or too slow to answer. */
const unavailableStatus = (status: number) => status >= 500 || status === 408 || status === 429;

/** Messages of a fetch that never got an answer, where no code says so (Node, workerd). */
const NO_ANSWER = /^(?:fetch failed|network connection lost|unable to connect)/i;

/**
 * Messages of an embedded replica (libsql's native client) whose primary could not be reached or was too
 * busy: its sync (`sync error: error trying to connect…`, which every read on its connection then
 * answers until the server is back), a write it delegates to the primary over gRPC refused as
 * unavailable or timed out, the primary too busy to open a connection for it (sqld's `DbCreateTimeout`),
 * or the replica's read-back of its write refused as unavailable (`Replication(Client(Status { code:
 * Unavailable, message: "snapshot not found"`: the server compacted its log under it; the write itself
 * was committed, so a retry with the same `Idempotency-Key` replays it). They carry no code.
 */
const REPLICA_NO_ANSWER =
  /^(?:sync error: error trying to connect|WriteDelegation\(status: (?:Unavailable|DeadlineExceeded|Cancelled)\b|WriteDelegation\(status: Internal, message: "Timed out while opening database connection|Replication\(Client\(Status \{ code: (?:Unavailable|DeadlineExceeded|Cancelled)\b)/;

/** How deep a chain of causes is followed (a query error wraps the client's, which wraps the socket's). */
const MAX_DEPTH = 5;

/**
 * The error in `e`'s chain of causes that says the database could not be reached, or undefined when
 * none does. @libsql/client throws a socket's error as is (Bun: `TypeError`, code ECONNREFUSED; Node:
 * `TypeError: fetch failed` with the socket's error as its cause), an HTTP error status from the server
 * as `LibsqlError` SERVER_ERROR (its cause an `HttpServerError` with the status), and drizzle wraps any
 * of them in a `DrizzleQueryError` (its cause). A timeout (`TimeoutError` or `AbortError`, from an
 * abort signal) counts as well, and so does a write that waited too long for the process's write lock
 * (`WRITE_LOCK_TIMEOUT`), and an embedded replica found broken while it is made again (`REPLICA_BROKEN`).
 */
export function storeUnreachableCause(e: unknown): Error | undefined {
  let at: unknown = e;
  for (let depth = 0; depth < MAX_DEPTH && at instanceof Error; depth++) {
    const code = (at as { code?: unknown }).code;
    if (typeof code === 'string' && CONNECTION_CODES.has(code)) return at;
    if (code === 'SERVER_ERROR') {
      const status = (at.cause as { status?: unknown } | undefined)?.status;
      if (typeof status !== 'number' || unavailableStatus(status)) return at;
    }
    if (at.name === 'TimeoutError' || at.name === 'AbortError') return at;
    // The process's write lock not had in time (`SerializedWritesClient`): the database is too busy
    // to take the write now, and a retry shortly may well get it.
    if (code === 'WRITE_LOCK_TIMEOUT') return at;
    // An embedded replica found broken, being made again from its server (`ReplicaKeeper`).
    if (code === 'REPLICA_BROKEN') return at;
    // With a cause, the cause says why (a socket error above, or a bad certificate: not an outage).
    if (at.cause === undefined && NO_ANSWER.test(at.message)) return at;
    if (REPLICA_NO_ANSWER.test(at.message)) return at;
    at = at.cause;
  }
  return undefined;
}

/** Whether `e` says the database could not be reached (see `storeUnreachableCause`). */
export function isStoreUnreachable(e: unknown): boolean {
  return storeUnreachableCause(e) !== undefined;
}

/**
 * What `/healthz` says of an embedded replica's primary, the libSQL server its writes go to (its reads
 * come from its own file, so they say nothing of it). Unreachable: `STORE_UNAVAILABLE`, as a write would
 * be answered meanwhile; answering with an error (a revoked auth token, say): `INTERNAL`, likewise.
 * `since`: when the primary was first found failing, in this run of failures.
 */
export type PrimaryHealth =
  | { ok: true }
  | {
      ok: false;
      reachable: boolean;
      code: 'STORE_UNAVAILABLE' | 'INTERNAL';
      reason: string;
      since: number;
    };

/** Asks whether the primary answers: bounded in time, and cheap however often it is asked. */
export type PrimaryHealthCheck = () => Promise<PrimaryHealth>;
