/**
 * Pages of the history (`GET /v1/history`), newest first, read through one index in that order: the whole
 * history's or one filter's, the others checked on each request it names. Kept apart from
 * history-store.ts, whose `listHistory` is this.
 */
import {
  type OriginKind,
  type RequestStatus,
  requestCommitters,
  requestModels,
  requests,
  verdicts,
} from '@synod/shared/history';
import { type SQL, sql } from 'drizzle-orm';
import type { HistoryDb } from './history-store.ts';

export interface HistoryQuery {
  model?: string;
  status?: RequestStatus;
  /** Requests this node committed to (or coordinated). */
  node?: string;
  /** Where requests came from: `http`, `peer` or `chain` (an oracle's `callLLM`). */
  origin?: OriginKind;
  /** Keyset cursor: `<createdAt>:<requestId>` of the last row of the previous page. */
  cursor?: string;
  limit: number;
}

/**
 * A page of the history, newest first (keyset on created_at and request id), read through an index
 * in that order: the whole history's, or one filter's (the "stream": a status's, an origin's, a
 * model's rows of `request_models`, or a node's, the requests it coordinated merged with those it
 * committed to, `request_committers`), from the cursor on. A single filter reads `limit + 1` index
 * entries and nothing else, matches or none (an unknown model costs one seek, an unknown node two).
 *
 * With several filters, the page follows the stream with the fewest entries left (each counted up to
 * `HISTORY_PROBE`) and checks the others on each request, looking at no more than `HISTORY_WINDOW` of
 * its entries: a combination that matches few of them may end a page short of `limit`, even empty,
 * with a `nextCursor` to go on from where it stopped (`null` only at the end of the history).
 */
export async function listHistory(
  db: HistoryDb,
  q: HistoryQuery,
): Promise<{ items: HistoryItem[]; nextCursor: string | null }> {
  const after = q.cursor === undefined ? undefined : parseCursor(q.cursor);
  const candidates: Stream[] = [];
  if (q.node !== undefined) candidates.push(nodeStream(q.node));
  if (q.model !== undefined) candidates.push(modelStream(q.model));
  if (q.status !== undefined) candidates.push(requestsStream(requests.status, q.status));
  if (q.origin !== undefined) candidates.push(requestsStream(requests.originKind, q.origin));
  const stream = candidates.length === 0 ? requestsStream() : await fewest(db, candidates, after);
  // What the stream leaves to check on each request (r) it names.
  const checks: SQL[] = [];
  if (q.status !== undefined && stream.filter !== 'status') checks.push(sql`r.status = ${q.status}`);
  if (q.origin !== undefined && stream.filter !== 'origin') checks.push(sql`r.origin_kind = ${q.origin}`);
  if (q.model !== undefined && stream.filter !== 'model') {
    checks.push(
      sql`EXISTS (SELECT 1 FROM ${requestModels} m WHERE m.request_id = r.request_id AND m.model_id = ${q.model})`,
    );
  }
  if (q.node !== undefined && stream.filter !== 'node') {
    checks.push(
      sql`(r.coordinator = ${q.node} OR EXISTS (SELECT 1 FROM ${requestCommitters} n WHERE n.request_id = r.request_id AND n.node_id = ${q.node}))`,
    );
  }
  // With checks, the page looks at a window of the stream's entries: up to `HISTORY_WINDOW` from the
  // cursor on, down to its last entry, read first. The page then reads that range of the index whole,
  // whatever is stored in it meanwhile, and a short page's cursor is that entry: the next page goes on
  // exactly where this one stopped. (Were the window counted again after the page, an entry stored
  // inside it meanwhile would move its end up, and the next page read an entry again.)
  let end: Cursor | null = null;
  if (checks.length > 0) {
    const [last] = await db.all<{ created_at: number; request_id: string }>(
      sql`SELECT created_at, request_id FROM (${stream.keys(after, 1, Math.max(HISTORY_WINDOW, q.limit + 1) - 1)})`,
    );
    if (last) end = [Number(last.created_at), last.request_id];
  }
  // Without an end, the stream had fewer entries than a window left: all of them.
  const keys =
    checks.length === 0 ? stream.keys(after, q.limit + 1) : stream.keys(after, null, 0, end ?? undefined);
  // CROSS JOIN: the stream's page (or window) is the outer loop; each request is one primary-key seek.
  // The prompt as bytes: SQLite's text functions and the driver end a TEXT value at its first NUL, and
  // a prompt may hold one (the packet, and so GET /v1/inference/:id, has it whole).
  const rows = await db.all<HistoryRow>(sql`SELECT r.request_id AS requestId, r.status AS status,
      r.coordinator AS coordinator, r.origin_kind AS origin, r.accepted_models AS acceptedModels,
      CAST(r.prompt AS BLOB) AS promptBytes, r.created_at AS createdAt, r.updated_at AS updatedAt,
      v.verdict_digest AS verdictDigest, v.transcript_root AS transcriptRoot,
      v.winner_node_id AS winnerNodeId, v.winner_model_id AS winnerModelId
    FROM (${keys}) AS w
    CROSS JOIN ${requests} r ON r.request_id = w.request_id
    LEFT JOIN ${verdicts} v ON v.request_id = r.request_id
    ${checks.length > 0 ? sql`WHERE ${sql.join(checks, sql` AND `)}` : sql``}
    ORDER BY w.created_at DESC, w.request_id DESC
    LIMIT ${q.limit + 1}`);
  const items = rows.slice(0, q.limit).map(toHistoryItem);
  const last = items[items.length - 1];
  if (rows.length > q.limit && last) return { items, nextCursor: `${last.createdAt}:${last.requestId}` };
  // A short page: the window's last entry, if the window was full, is where the next page starts.
  return { items, nextCursor: end ? `${end[0]}:${end[1]}` : null };
}

/**
 * Of several filters' streams, the one with the fewest entries after the cursor, each counted through
 * its index up to `HISTORY_PROBE` (so at most that many entries looked at per stream); ties go to the
 * first (node, model, status, origin).
 */
async function fewest(db: HistoryDb, streams: Stream[], after: Cursor | undefined): Promise<Stream> {
  if (streams.length === 1) return streams[0] as Stream;
  let best = streams[0] as Stream;
  let fewest = Number.POSITIVE_INFINITY;
  for (const s of streams) {
    const [row] = await db.all<{ n: number }>(
      sql`SELECT count(*) AS n FROM (${s.keys(after, HISTORY_PROBE)})`,
    );
    const n = Number(row?.n ?? 0);
    if (n < fewest) [best, fewest] = [s, n];
    if (n === 0) break;
  }
  return best;
}

export interface HistoryItem {
  requestId: string;
  status: RequestStatus;
  coordinator: string;
  origin: OriginKind;
  acceptedModels: string[];
  prompt: string | null;
  createdAt: number;
  updatedAt: number;
  verdictDigest: string | null;
  transcriptRoot: string | null;
  winnerNodeId: string | null;
  winnerModelId: string | null;
}

const UTF8 = new TextDecoder();

/**
 * The UTF-8 text of a BLOB as the drivers hand it over: an ArrayBuffer (the file client; from another
 * realm under workerd, where `instanceof` fails), a typed array or a plain array of bytes; null stays null.
 */
function textOfBytes(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (ArrayBuffer.isView(v)) return UTF8.decode(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  if (Object.prototype.toString.call(v) === '[object ArrayBuffer]') {
    return UTF8.decode(new Uint8Array(v as ArrayBuffer));
  }
  if (Array.isArray(v)) return UTF8.decode(Uint8Array.from(v as number[]));
  throw new TypeError(`a BLOB read as ${Object.prototype.toString.call(v)}`);
}

/** `listHistory` with several filters: the entries of each filter's index counted to pick the fewest. */
const HISTORY_PROBE = 10_000;

/**
 * `listHistory` with several filters: the entries of the chosen index looked at, at most, for a page
 * (the requests they name checked against the other filters, one primary-key seek each).
 */
export const HISTORY_WINDOW = 2_000;

type Cursor = [createdAt: number, requestId: string];

/**
 * One filter's index, in history order: `keys(after, limit, offset, until)` is a query of `(created_at,
 * request_id)` of up to `limit` entries (every one for null) after the cursor, newest first, down to
 * `until` included when given, a range of the index (the row values `(created_at, request_id) < (…)`
 * and `>= (…)` bound it, where an OR of the two would walk every entry before the cursor).
 */
interface Stream {
  filter: 'node' | 'model' | 'status' | 'origin' | null;
  keys(after: Cursor | undefined, limit: number | null, offset?: number, until?: Cursor): SQL;
}

/** Keys of one index range, with `table` the alias `k` and `key` the filter's condition on it (or none). */
function range(
  table: SQL,
  key: SQL | null,
  after: Cursor | undefined,
  limit: number | null,
  offset = 0,
  until?: Cursor,
): SQL {
  const where: SQL[] = [];
  if (key) where.push(key);
  if (after) where.push(sql`(k.created_at, k.request_id) < (${after[0]}, ${after[1]})`);
  if (until) where.push(sql`(k.created_at, k.request_id) >= (${until[0]}, ${until[1]})`);
  return sql`SELECT k.created_at, k.request_id FROM ${table} k
    ${where.length > 0 ? sql`WHERE ${sql.join(where, sql` AND `)}` : sql``}
    ORDER BY k.created_at DESC, k.request_id DESC LIMIT ${limit ?? -1} OFFSET ${offset}`;
}

/** The whole history (`requests_created_idx`), or one status's or origin's (`requests_*_created_idx`). */
function requestsStream(
  column?: typeof requests.status | typeof requests.originKind,
  value?: string,
): Stream {
  const filter = column === undefined ? null : column === requests.status ? 'status' : 'origin';
  const key = column === undefined ? null : sql`k.${sql.identifier(column.name)} = ${value}`;
  return {
    filter,
    keys: (after, limit, offset, until) => range(sql`${requests}`, key, after, limit, offset, until),
  };
}

/** The requests that accepted a model (`request_models_model_created_idx`). */
function modelStream(model: string): Stream {
  return {
    filter: 'model',
    keys: (after, limit, offset, until) =>
      range(sql`${requestModels}`, sql`k.model_id = ${model}`, after, limit, offset, until),
  };
}

/**
 * The requests a node coordinated (`requests_coordinator_created_idx`) or committed to
 * (`request_committers_node_created_idx`): the first `limit + offset` of each, merged (UNION drops a
 * request in both).
 */
function nodeStream(node: string): Stream {
  return {
    filter: 'node',
    keys: (after, limit, offset = 0, until = undefined) => {
      const each = limit === null ? null : limit + offset;
      return sql`SELECT created_at, request_id FROM (
        SELECT * FROM (${range(sql`${requests}`, sql`k.coordinator = ${node}`, after, each, 0, until)})
        UNION
        SELECT * FROM (${range(sql`${requestCommitters}`, sql`k.node_id = ${node}`, after, each, 0, until)})
      ) ORDER BY created_at DESC, request_id DESC LIMIT ${limit ?? -1} OFFSET ${offset}`;
    },
  };
}

/**
 * A row of `listHistory`'s query, as the driver returns it: the item's columns, with the accepted models
 * as stored (JSON text) and the prompt as bytes (see `textOfBytes`).
 */
type HistoryRow = Omit<HistoryItem, 'acceptedModels' | 'prompt'> & {
  acceptedModels: string;
  promptBytes: unknown;
};

function toHistoryItem({ promptBytes, acceptedModels, ...r }: HistoryRow): HistoryItem {
  const prompt = textOfBytes(promptBytes);
  return {
    ...r,
    createdAt: Number(r.createdAt),
    updatedAt: Number(r.updatedAt),
    acceptedModels: JSON.parse(acceptedModels) as string[],
    prompt: prompt === null ? null : prompt.length > 200 ? `${prompt.slice(0, 200)}…` : prompt,
  };
}

/**
 * A `/v1/history` cursor, `<createdAt>:<requestId>`: a time of at most 16 digits and a request id of
 * either form (64 lowercase hex, or `<chainId>:<0xcontract>:<requestNo>` up to `REQUEST_ID_MAX_CHARS`,
 * as `CHAIN_REQUEST_ID_RE` has it), so that every cursor a page hands out is one the next page takes.
 */
export const HISTORY_CURSOR_RE = /^(\d{1,16}):([0-9a-f]{64}|\d{1,20}:0x[0-9a-f]{40}:\d{1,78})$/;

function parseCursor(cursor: string): Cursor {
  const m = HISTORY_CURSOR_RE.exec(cursor);
  if (!m) throw new RangeError('bad cursor');
  return [Number(m[1]), m[2] as string];
}
