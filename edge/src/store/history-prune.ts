/**
 * Pruning the quorum history: the requests that ended before a cutoff are deleted (each with its
 * commits, seal, reveals, verdict, attestations and declines, by the schema's cascades), after being
 * written, when asked, to an archive of JSON lines that `synod-verify` reads as it reads a relay's
 * `GET /v1/verify/:id`. What the history keeps apart from the requests stays: nodes, reputation (a
 * node's record still counts the verdicts pruned), API keys and their use, chain requests.
 *
 * Never pruned: a request still open (pending or sealed), and a chain request whose settlement is not
 * final yet (pending on chain, or sent and not yet under the chain's finalized block): the chain watcher
 * still reads its verdict. The cutoff is at least `PRUNE_MIN_AGE_MS` old, past the Idempotency-Keys'
 * retention (24 h): a retry of a pruned request would otherwise be answered with an id the history no
 * longer holds.
 */
import { type AnyPacket, buildTranscript, CHAIN_REQUEST_ID_RE, type Packet } from '@synod/shared';
import { chainRequests, requests } from '@synod/shared/history';
import { and, asc, eq, gt, inArray, lt, or, sql } from 'drizzle-orm';
import { type HistoryStore, type RequestDetail, transcriptHead, verdictReveals } from './history-store.ts';

const DAY_MS = 86_400_000;

/** The youngest a cutoff may be: two days, past the 24 h an Idempotency-Key is remembered. */
export const PRUNE_MIN_AGE_MS = 2 * DAY_MS;

/** The statuses of a request that has ended: only these are pruned. */
export const ENDED_STATUSES = ['verdict', 'no-consensus', 'expired', 'failed'] as const;

/** Requests read, archived and deleted together (one transaction deletes each batch). */
export const DEFAULT_PRUNE_BATCH = 200;

export interface PruneOptions {
  /** Requests created before this time (ms since the epoch) are pruned. */
  before: number;
  /** The relay's clock, to check `before` against `PRUNE_MIN_AGE_MS`. */
  now: number;
  /** Requests a batch (default `DEFAULT_PRUNE_BATCH`). */
  batch?: number;
  /**
   * Called with a batch's archive lines (one JSON document each, no newline) before that batch is
   * deleted; the batch is deleted only once it resolves, so the archive must be durable then.
   */
  archive?: (lines: string[]) => Promise<void>;
  /** Count what would be pruned; change nothing. */
  dryRun?: boolean;
}

export interface PruneResult {
  /** Requests deleted (or, in a dry run, that would be). */
  pruned: number;
  /** Requests created before the cutoff that stay: still open, or a chain settlement not final yet. */
  kept: number;
  /** Bytes of archive lines written (newlines included). */
  archivedBytes: number;
}

/** The archive of a batch could not be written: nothing of that batch was deleted. */
export class ArchiveWriteError extends Error {
  override readonly name = 'ArchiveWriteError';
  constructor(
    /** Requests pruned (archived and deleted) before the batch that failed. */
    readonly pruned: number,
    override readonly cause: unknown,
  ) {
    super(
      `writing the archive failed after ${pruned} requests pruned: ${String((cause as Error)?.message ?? cause)}`,
    );
  }
}

export class PruneError extends Error {
  override readonly name = 'PruneError';
  constructor(
    readonly code: 'PRUNE_TOO_RECENT' | 'PRUNE_INVALID_BATCH',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Prune the requests created before `o.before` that have ended, oldest first, `o.batch` at a time: each
 * batch is read, archived (`o.archive`), then deleted in one transaction, re-checked there (a request
 * whose status changed since it was read is left). Safe to run beside live relays over the same
 * database: what they still work on is never selected. Interrupted, it can be run again: a batch
 * archived and not deleted is archived a second time (the same lines).
 */
export async function pruneHistory(store: HistoryStore, o: PruneOptions): Promise<PruneResult> {
  if (!(o.before <= o.now - PRUNE_MIN_AGE_MS)) {
    throw new PruneError(
      'PRUNE_TOO_RECENT',
      `the cutoff must be at least ${PRUNE_MIN_AGE_MS / DAY_MS} days old (Idempotency-Keys are remembered 24 h)`,
    );
  }
  const batch = o.batch ?? DEFAULT_PRUNE_BATCH;
  if (!Number.isInteger(batch) || batch < 1 || batch > 10_000) {
    throw new PruneError('PRUNE_INVALID_BATCH', 'the batch is a whole number of requests in [1, 10000]');
  }
  const kept = await countKept(store, o.before);
  if (o.dryRun) return { pruned: await countPrunable(store, o.before), kept, archivedBytes: 0 };
  let pruned = 0;
  let archivedBytes = 0;
  let cursor: { createdAt: number; requestId: string } | null = null;
  for (;;) {
    const page = await prunable(store, o.before, batch, cursor);
    if (page.length === 0) break;
    const last = page[page.length - 1] as { createdAt: number; requestId: string };
    cursor = last;
    const ids = page.map((r) => r.requestId);
    if (o.archive) {
      const lines: string[] = [];
      for (const id of ids) {
        const d = await store.getRequest(id);
        if (d !== null) lines.push(JSON.stringify(archiveRecord(d)));
      }
      try {
        await o.archive(lines);
      } catch (e) {
        throw new ArchiveWriteError(pruned, e);
      }
      for (const l of lines) archivedBytes += Buffer.byteLength(l) + 1;
    }
    const deleted = await store.db.transaction(async (tx) => {
      const gone = await tx
        .delete(requests)
        .where(and(inArray(requests.requestId, ids), lt(requests.createdAt, o.before), endedHere()))
        .returning({ requestId: requests.requestId });
      // A chain request's record stays (the watcher's), marked: its 404 says it ran and was pruned.
      const goneIds = gone.map((r) => r.requestId).filter((id) => CHAIN_REQUEST_ID_RE.test(id));
      if (goneIds.length > 0) {
        await tx
          .update(chainRequests)
          .set({ prunedAt: o.now })
          .where(inArray(chainRequests.requestId, goneIds));
      }
      return gone;
    });
    pruned += deleted.length;
    if (page.length < batch) break;
  }
  return { pruned, kept, archivedBytes };
}

/**
 * Ended, and not a chain request whose settlement the watcher still follows. The status is tested as an
 * expression (`+status`), not through its index: the batches walk `requests_created_idx` from the
 * oldest on, where a test through the status index made SQLite sort every request left on each batch.
 */
function endedHere() {
  return and(
    sql`+${requests.status} in (${sql.join(
      ENDED_STATUSES.map((x) => sql`${x}`),
      sql`, `,
    )})`,
    sql`not exists (select 1 from ${chainRequests} where ${chainRequests.requestId} = ${requests.requestId} and (${chainRequests.status} = 'pending' or (${chainRequests.status} in ('fulfilled', 'refunded') and ${chainRequests.finalizedAt} is null)))`,
  );
}

function batchQuery(
  store: HistoryStore,
  before: number,
  limit: number,
  after: { createdAt: number; requestId: string } | null,
) {
  return store.db
    .select({ createdAt: requests.createdAt, requestId: requests.requestId })
    .from(requests)
    .where(
      and(
        lt(requests.createdAt, before),
        endedHere(),
        after === null
          ? undefined
          : or(
              gt(requests.createdAt, after.createdAt),
              and(eq(requests.createdAt, after.createdAt), gt(requests.requestId, after.requestId)),
            ),
      ),
    )
    .orderBy(asc(requests.createdAt), asc(requests.requestId))
    .limit(limit);
}

async function prunable(
  store: HistoryStore,
  before: number,
  limit: number,
  after: { createdAt: number; requestId: string } | null,
): Promise<{ createdAt: number; requestId: string }[]> {
  return batchQuery(store, before, limit, after);
}

async function countPrunable(store: HistoryStore, before: number): Promise<number> {
  const [r] = await store.db
    .select({ n: sql<number>`count(*)` })
    .from(requests)
    .where(and(lt(requests.createdAt, before), endedHere()));
  return Number(r?.n ?? 0);
}

async function countKept(store: HistoryStore, before: number): Promise<number> {
  const [r] = await store.db
    .select({ n: sql<number>`count(*)` })
    .from(requests)
    .where(lt(requests.createdAt, before));
  return Number(r?.n ?? 0) - (await countPrunable(store, before));
}

/**
 * One archived request: its status, and every packet the history held of it, each once. A request that
 * was sealed has its `transcript` (the request, sealed commits, seal and the reveals the verdict counted,
 * as `GET /v1/verify/:id` serves it) beside the verdict's digest and root and the attestations, so
 * `synod-verify` re-derives its verdict from the line alone; `others` holds the rest (the request and
 * commits of one never sealed, commits and reveals outside the transcript, declines).
 */
export interface ArchiveRecord {
  v: 1;
  requestId: string;
  status: string;
  error: string | null;
  createdAt: number;
  updatedAt: number;
  transcript: ReturnType<typeof buildTranscript> | null;
  verdictDigest: string | null;
  transcriptRoot: string | null;
  verdict: Packet<'verdict'> | null;
  attestations: Packet<'attestation'>[];
  others: AnyPacket[];
}

export function archiveRecord(d: RequestDetail): ArchiveRecord {
  const all: { id: string; packet: AnyPacket }[] = [
    { id: d.requestPacketId, packet: d.request },
    ...d.commits,
    ...(d.seal ? [d.seal] : []),
    ...d.reveals,
    ...d.declines,
  ];
  let transcript: ArchiveRecord['transcript'] = null;
  const inTranscript = new Set<string>();
  if (d.seal !== null) {
    const sealed = new Set(d.seal.packet.body.members.map((m) => m.commitId));
    const counted = verdictReveals(d);
    for (const id of [d.requestPacketId, d.seal.id, ...sealed, ...counted.map((r) => r.id)]) {
      inTranscript.add(id);
    }
    try {
      transcript = buildTranscript([...transcriptHead(d, d.seal), ...counted.map((r) => r.packet)]);
    } catch {
      // Not a transcript a verifier would take (a seal without its commits, say): kept as packets.
      inTranscript.clear();
    }
  }
  const verdict = d.verdict?.packet ?? null;
  return {
    v: 1,
    requestId: d.requestId,
    status: d.status,
    error: d.error,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
    transcript,
    verdictDigest: verdict?.body.verdictDigest ?? null,
    transcriptRoot: verdict?.body.transcriptRoot ?? null,
    verdict,
    attestations: d.attestations.map((a) => a.packet),
    others: all.filter((x) => !inTranscript.has(x.id)).map((x) => x.packet),
  };
}

/** The query plan of a batch after the first (for tests: it must walk `requests_created_idx`, unsorted). */
export async function pruneBatchPlan(store: HistoryStore): Promise<string[]> {
  const q = batchQuery(store, 2, 10, { createdAt: 1, requestId: '' }).toSQL();
  const plan = await store.db.all<{ detail: string }>(
    sql.raw(`EXPLAIN QUERY PLAN ${inline(q.sql, q.params)}`),
  );
  return plan.map((r) => r.detail);
}

/** `sql` with its `?` parameters written in (numbers and strings only), for EXPLAIN. */
function inline(text: string, params: unknown[]): string {
  let i = 0;
  return text.replace(/\?/g, () => {
    const p = params[i++];
    return typeof p === 'number' ? String(p) : `'${String(p).replace(/'/g, "''")}'`;
  });
}
