import type { Client, InStatement } from '@libsql/client';
import { CHAIN_REQUEST_ID_RE, LIMITS, type RequestBody, RequestBodySchema } from '@synod/shared';
import { INTAKE_BLOCK_BITS, intakeIdPrefix } from '@synod/shared/history';

/** One HTTP request to admit: validated and built, charged to a caller. */
export interface Admission {
  body: RequestBody;
  /** The body's JSON text, as stored (`buildRequest` makes it with the id); else `JSON.stringify(body)`. */
  bodyJson?: string;
  callerId: string;
  quotaPerDay: number;
  /** UTC day (`YYYY-MM-DD`) the quota counts against. */
  day: string;
  idempotency?: { key: string; bodyDigest: string };
}

/**
 * An admission as the transaction needs it: the body as the text to store, with the members of it that
 * have columns of their own taken out. What the admission writer thread is handed.
 */
export interface IntakeEntry {
  requestId: string;
  callerId: string;
  quotaPerDay: number;
  day: string;
  idempotency?: { key: string; bodyDigest: string };
  createdAt: number;
  deadline: number;
  bodyJson: string;
}

export function intakeEntry(a: Admission): IntakeEntry {
  const b = a.body;
  return {
    requestId: b.requestId,
    callerId: a.callerId,
    quotaPerDay: a.quotaPerDay,
    day: a.day,
    ...(a.idempotency ? { idempotency: a.idempotency } : {}),
    createdAt: b.createdAt,
    deadline: intakeDeadline(b),
    bodyJson: a.bodyJson ?? JSON.stringify(b),
  };
}

export type AdmissionOutcome =
  /** `usedToday`: requests charged to the caller on its `day`, this one included. */
  | { kind: 'created'; requestId: string; usedToday: number }
  | { kind: 'replayed'; requestId: string }
  | { kind: 'conflict'; requestId: string }
  | { kind: 'quota-exceeded'; quotaPerDay: number; day: string };

/**
 * The database's time in ms, as SQL (SQLite 3.42+, libSQL and sqld alike): the one clock coordinator
 * leases (`coordinator_leases.renewed_at`) are written and judged on, whatever the relays' clocks say.
 */
export const DB_NOW_MS = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/** A request in the admission log, waiting for its coordinator. */
export interface QueuedRequest {
  seq: number;
  requestId: string;
  coordinator: string;
  callerId: string;
  /** Null when the stored body no longer parses (the row was altered outside the relay). */
  body: RequestBody | null;
  createdAt: number;
  deadline: number;
}

/**
 * When a queued request stops being dispatchable: its seal deadline (`createdAt + maxTimeMs`), or
 * earlier if nodes would already refuse its packet as stale (`createdAt + LIMITS.defaultSkewMs`).
 */
export function intakeDeadline(b: RequestBody): number {
  return b.createdAt + Math.min(b.frame.maxTimeMs, LIMITS.defaultSkewMs);
}

/** `IntakeStore.queued`: the request with id_prefix ?1 and request_id ?2, block by block. */
export const QUEUED_BY_ID = `WITH RECURSIVE block(b) AS (
    SELECT (SELECT min(seq) FROM request_intake) >> ${INTAKE_BLOCK_BITS}
    UNION ALL
    SELECT b + 1 FROM block WHERE b < (SELECT max(seq) FROM request_intake) >> ${INTAKE_BLOCK_BITS}
  )
  SELECT r.seq, r.request_id, r.coordinator, r.caller_id, r.body, r.created_at, r.deadline
  FROM block CROSS JOIN request_intake r
    ON (r.seq >> ${INTAKE_BLOCK_BITS}) = block.b AND r.id_prefix = ? AND r.request_id = ?`;

/** Rows per multi-row INSERT (8 parameters each, far below SQLite's variable limit). */
const INSERT_CHUNK = 256;
const INTAKE_COLUMNS = 7;

/**
 * The admission log (`request_intake`) and the metering that goes with it, over the raw libSQL client:
 * this is the accept path, so it writes multi-row statements without an ORM in between.
 *
 * `admit` takes a whole batch (the group commit) and decides each request in arrival order inside ONE
 * write transaction: an Idempotency-Key seen before replays (or conflicts) without being charged, then
 * the caller's daily quota is checked and counted, then the request is appended. Either every decision
 * of the batch is committed or none is: a failed commit rejects the batch and leaves nothing behind.
 */
export class IntakeStore {
  constructor(readonly client: Client) {}

  async admit(batch: readonly Admission[], coordinator: string, now: number): Promise<AdmissionOutcome[]> {
    if (batch.length === 0) return [];
    const tx = await this.client.transaction('write');
    try {
      const outcomes = await decideAndWrite(tx, batch.map(intakeEntry), coordinator, now);
      await tx.commit();
      return outcomes;
    } finally {
      tx.close();
    }
  }

  /**
   * What an admission of this caller's request would find, read without writing: the request an
   * `Idempotency-Key` already names (with its body's digest), and the requests charged on `day`. A
   * relay shedding load asks it first, so that a replay is answered and a spent quota is said as such
   * rather than as a full queue.
   */
  async standing(
    callerId: string,
    day: string,
    idempotencyKey?: string,
  ): Promise<{ prior: { requestId: string; bodyDigest: string } | null; usedToday: number }> {
    const usage = await this.client.execute({
      sql: 'SELECT count FROM usage WHERE key_id = ? AND day = ?',
      args: [callerId, day],
    });
    const usedToday = Number(usage.rows[0]?.['count'] ?? 0);
    if (idempotencyKey === undefined) return { prior: null, usedToday };
    const r = await this.client.execute({
      sql: 'SELECT request_id, body_digest FROM idempotency WHERE key_id = ? AND idempotency_key = ?',
      args: [callerId, idempotencyKey],
    });
    const row = r.rows[0];
    const prior = row
      ? { requestId: String(row['request_id']), bodyDigest: String(row['body_digest']) }
      : null;
    return { prior, usedToday };
  }

  /**
   * A queued request by id (any coordinator; a content id or a chain request id), or null. One index seek per block of 1,024 queued rows
   * (`request_intake_lookup_idx`), from the oldest block to the newest, in one statement (CROSS JOIN
   * keeps the block list as the outer loop, so SQLite seeks the index instead of scanning the log).
   */
  async queued(requestId: string): Promise<QueuedRequest | null> {
    if (!/^[0-9a-f]{64}$/.test(requestId) && !CHAIN_REQUEST_ID_RE.test(requestId)) return null;
    const r = await this.client.execute({
      sql: QUEUED_BY_ID,
      args: [intakeIdPrefix(requestId), requestId],
    });
    const row = r.rows[0];
    return row ? toQueued(row) : null;
  }

  /** The oldest queued requests of a coordinator, in admission order. */
  async next(coordinator: string, limit: number): Promise<QueuedRequest[]> {
    const r = await this.client.execute({
      sql: `SELECT seq, request_id, coordinator, caller_id, body, created_at, deadline FROM request_intake
            WHERE coordinator = ? ORDER BY seq LIMIT ?`,
      args: [coordinator, limit],
    });
    return r.rows.map(toQueued);
  }

  /**
   * Queued requests of coordinators other than `except` whose deadline passed before `before` (ms): what
   * `Dispatcher.expireAbandoned` takes out of the log for a coordinator that stopped and never came back
   * (a live one moves its rows out at their deadline). Only each coordinator's oldest `perCoordinator`
   * rows are looked at, through `request_intake_coordinator_idx` (its coordinators found by one index
   * seek each): the sweep runs every few seconds and must not read a long log whole. Rows are in
   * admission order, deadlines at most `LIMITS.defaultSkewMs` after it, so old rows come first.
   */
  async abandoned(except: string, before: number, perCoordinator: number): Promise<QueuedRequest[]> {
    const coordinators = await this.client.execute(`WITH RECURSIVE c(x) AS (
        SELECT min(coordinator) FROM request_intake
        UNION ALL
        SELECT (SELECT min(coordinator) FROM request_intake WHERE coordinator > c.x) FROM c WHERE c.x IS NOT NULL
      ) SELECT x FROM c WHERE x IS NOT NULL`);
    const rows: QueuedRequest[] = [];
    for (const row of coordinators.rows) {
      const coordinator = String(row['x']);
      if (coordinator === except) continue;
      const r = await this.client.execute({
        sql: `SELECT * FROM (
                SELECT seq, request_id, coordinator, caller_id, body, created_at, deadline FROM request_intake
                WHERE coordinator = ? ORDER BY seq LIMIT ?)
              WHERE deadline < ?`,
        args: [coordinator, perCoordinator, before],
      });
      rows.push(...r.rows.map(toQueued));
    }
    return rows;
  }

  /**
   * This database's identity (`database_identity`, a random id its migrations made): the same for every
   * relay over it and its embedded replicas, another for another database. Null for a database migrated
   * before it had one (it never is: the migration that makes the table writes the id).
   */
  async databaseId(): Promise<string | null> {
    const r = await this.client.execute('SELECT id FROM database_identity WHERE singleton = 1');
    const id = r.rows[0]?.['id'];
    return typeof id === 'string' ? id : null;
  }

  /**
   * Renew `coordinator`'s lease on its admission-log rows (`coordinator_leases`), at the database's time
   * (`DB_NOW_MS`): leases are written and judged on that one clock, so a relay whose own clock runs behind
   * or ahead of the others' never looks stale to them (or fresh when it is gone).
   */
  async renewLease(coordinator: string): Promise<void> {
    await this.client.execute({
      sql: `INSERT INTO coordinator_leases (coordinator, renewed_at) VALUES (?, ${DB_NOW_MS})
            ON CONFLICT (coordinator) DO UPDATE SET renewed_at = max(renewed_at, excluded.renewed_at)`,
      args: [coordinator],
    });
  }

  /**
   * How long ago, by the database's time, `coordinator` last renewed its lease; `released` when it gave
   * it up (a relay that stopped cleanly: `releaseLease`); null when this database holds none of it (a
   * relay that never ran its dispatcher over this database).
   */
  async leaseAgeMs(coordinator: string): Promise<number | 'released' | null> {
    const r = await this.client.execute({
      sql: `SELECT renewed_at, ${DB_NOW_MS} - renewed_at AS age FROM coordinator_leases WHERE coordinator = ?`,
      args: [coordinator],
    });
    const row = r.rows[0];
    if (row === undefined) return null;
    return Number(row['renewed_at']) === 0 ? 'released' : Number(row['age']);
  }

  /** Give the lease up (a relay that stops): its rows may be taken over at once. */
  async releaseLease(coordinator: string): Promise<void> {
    await this.client.execute({
      sql: 'UPDATE coordinator_leases SET renewed_at = 0 WHERE coordinator = ?',
      args: [coordinator],
    });
  }

  /**
   * Take over the queued rows of every other coordinator whose lease was last renewed more than `staleMs`
   * before the database's time (`DB_NOW_MS`, the clock leases are renewed on): they name `to` as their
   * coordinator from then on. One statement, so two relays taking over at
   * once split nothing: each row goes to one of them. Returns how many rows were taken.
   */
  async takeOver(to: string, staleMs: number): Promise<number> {
    const r = await this.client.execute({
      sql: `UPDATE request_intake SET coordinator = ?
            WHERE coordinator IN (SELECT coordinator FROM coordinator_leases WHERE renewed_at < ${DB_NOW_MS} - ? AND coordinator <> ?)`,
      args: [to, staleMs, to],
    });
    return r.rowsAffected;
  }

  /**
   * Forget up to `limit` Idempotency-Key rows made before `before` (ms), oldest first, through
   * `idempotency_created_idx`; returns how many went. After that a request sent with one of those keys
   * is a new request. Callers keep `before` at least the signed-request skew window in the past, so a
   * replayed signed request is always still recognised.
   */
  async pruneIdempotency(before: number, limit = 1_000): Promise<number> {
    const r = await this.client.execute({
      sql: `DELETE FROM idempotency WHERE rowid IN (
              SELECT rowid FROM idempotency WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
      args: [before, limit],
    });
    return r.rowsAffected;
  }

  /**
   * How many requests wait (for one coordinator, or in all); with `upTo`, counting stops there, so the
   * cost stays bounded however long the log grew.
   */
  async count(coordinator?: string, upTo?: number): Promise<number> {
    const where = coordinator === undefined ? '' : ' WHERE coordinator = ?';
    const args: (string | number)[] = coordinator === undefined ? [] : [coordinator];
    const limited = upTo !== undefined && Number.isFinite(upTo);
    if (limited) args.push(Math.max(0, Math.floor(upTo)));
    const r = await this.client.execute({
      sql: limited
        ? `SELECT count(*) AS n FROM (SELECT 1 FROM request_intake${where} LIMIT ?)`
        : `SELECT count(*) AS n FROM request_intake${where}`,
      args,
    });
    return Number(r.rows[0]?.['n'] ?? 0);
  }
}

/**
 * What `decideAndWrite` needs of an open write transaction: run one statement, get its rows. A libSQL
 * client `Transaction` is one; so is `SyncIntakeWriter`'s runner over a synchronous connection.
 */
export interface SqlRunner {
  execute(stmt: InStatement): Promise<{ rows: ArrayLike<Record<string, unknown>> }>;
}

/**
 * Decide each admission of a batch in arrival order and write the outcome, inside the caller's write
 * transaction (see `IntakeStore.admit`); the caller commits, or rolls back on a throw.
 */
export async function decideAndWrite(
  tx: SqlRunner,
  batch: readonly IntakeEntry[],
  coordinator: string,
  now: number,
): Promise<AdmissionOutcome[]> {
  // Idempotency keys: what the database already holds, then first-come within the batch.
  const idem = new Map<string, { requestId: string; bodyDigest: string }>();
  for (const a of batch) {
    if (!a.idempotency) continue;
    const k = idemKey(a.callerId, a.idempotency.key);
    if (idem.has(k)) continue;
    const r = await tx.execute({
      sql: 'SELECT request_id, body_digest FROM idempotency WHERE key_id = ? AND idempotency_key = ?',
      args: [a.callerId, a.idempotency.key],
    });
    const row = r.rows[0];
    if (row) idem.set(k, { requestId: String(row['request_id']), bodyDigest: String(row['body_digest']) });
  }
  // Quota counts of every (caller, day) in the batch, as committed.
  const counts = new Map<string, number>();
  for (const a of batch) {
    const k = usageKey(a.callerId, a.day);
    if (counts.has(k)) continue;
    const r = await tx.execute({
      sql: 'SELECT count FROM usage WHERE key_id = ? AND day = ?',
      args: [a.callerId, a.day],
    });
    counts.set(k, Number(r.rows[0]?.['count'] ?? 0));
  }
  const touched = new Set<string>();
  const outcomes: AdmissionOutcome[] = [];
  const created: IntakeEntry[] = [];
  const newIdem: { a: IntakeEntry; key: string; bodyDigest: string }[] = [];
  for (const a of batch) {
    const requestId = a.requestId;
    if (a.idempotency) {
      const prior = idem.get(idemKey(a.callerId, a.idempotency.key));
      if (prior) {
        outcomes.push({
          kind: prior.bodyDigest === a.idempotency.bodyDigest ? 'replayed' : 'conflict',
          requestId: prior.requestId,
        });
        continue;
      }
    }
    const uk = usageKey(a.callerId, a.day);
    const count = counts.get(uk) ?? 0;
    if (count >= a.quotaPerDay) {
      outcomes.push({ kind: 'quota-exceeded', quotaPerDay: a.quotaPerDay, day: a.day });
      continue;
    }
    counts.set(uk, count + 1);
    touched.add(uk);
    if (a.idempotency) {
      idem.set(idemKey(a.callerId, a.idempotency.key), {
        requestId,
        bodyDigest: a.idempotency.bodyDigest,
      });
      newIdem.push({ a, key: a.idempotency.key, bodyDigest: a.idempotency.bodyDigest });
    }
    created.push(a);
    outcomes.push({ kind: 'created', requestId, usedToday: count + 1 });
  }

  const writes: InStatement[] = [];
  for (let i = 0; i < created.length; i += INSERT_CHUNK) {
    const chunk = created.slice(i, i + INSERT_CHUNK);
    const args: (string | number)[] = [];
    for (const a of chunk) {
      args.push(
        intakeIdPrefix(a.requestId),
        a.requestId,
        coordinator,
        a.callerId,
        a.bodyJson,
        a.createdAt,
        a.deadline,
      );
    }
    writes.push({
      sql: `INSERT INTO request_intake (id_prefix, request_id, coordinator, caller_id, body, created_at, deadline)
            VALUES ${placeholders(chunk.length, INTAKE_COLUMNS)}`,
      args,
    });
  }
  for (let i = 0; i < newIdem.length; i += INSERT_CHUNK) {
    const chunk = newIdem.slice(i, i + INSERT_CHUNK);
    writes.push({
      sql: `INSERT INTO idempotency (key_id, idempotency_key, request_id, body_digest, created_at)
            VALUES ${placeholders(chunk.length, 5)}`,
      args: chunk.flatMap((x) => [x.a.callerId, x.key, x.a.requestId, x.bodyDigest, now]),
    });
  }
  for (const uk of touched) {
    const [callerId, day] = splitUsageKey(uk);
    writes.push({
      sql: `INSERT INTO usage (key_id, day, count) VALUES (?, ?, ?)
            ON CONFLICT (key_id, day) DO UPDATE SET count = excluded.count`,
      args: [callerId, day, counts.get(uk) ?? 0],
    });
  }
  for (const w of writes) await tx.execute(w);
  return outcomes;
}

function placeholders(rows: number, columns: number): string {
  const one = `(${Array.from({ length: columns }, () => '?').join(', ')})`;
  return Array.from({ length: rows }, () => one).join(', ');
}

const SEP = '\u0000';
const idemKey = (caller: string, key: string) => `${caller}${SEP}${key}`;
const usageKey = (caller: string, day: string) => `${caller}${SEP}${day}`;
function splitUsageKey(k: string): [string, string] {
  const i = k.indexOf(SEP);
  return [k.slice(0, i), k.slice(i + 1)];
}

function toQueued(row: Record<string, unknown>): QueuedRequest {
  return {
    seq: Number(row['seq']),
    requestId: String(row['request_id']),
    coordinator: String(row['coordinator']),
    callerId: String(row['caller_id']),
    // Written by `admit` from a validated body; parsed again so an altered row never reaches a signature.
    body: parseBody(String(row['body'])),
    createdAt: Number(row['created_at']),
    deadline: Number(row['deadline']),
  };
}

function parseBody(json: string): RequestBody | null {
  try {
    const r = RequestBodySchema.safeParse(JSON.parse(json));
    return r.success ? (r.data as RequestBody) : null;
  } catch {
    return null;
  }
}
