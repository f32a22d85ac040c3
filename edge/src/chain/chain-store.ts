import { escapeUnshown } from '@synod/shared';
import {
  type ChainCursorRow,
  type ChainRequestRow,
  type ChainRequestStatus,
  chainCursors,
  chainRequestCounts,
  chainRequests,
} from '@synod/shared/history';
import { and, asc, desc, eq, gte, inArray, isNull, type SQL, sql } from 'drizzle-orm';
import type { HistoryDb } from '../store/history-store.ts';
import type { OracleRequestEvent } from './oracle-request.ts';
import { chainRequestIdOf } from './oracle-request.ts';

/** Which oracle: a chain and a contract (lowercase). */
export interface OracleRef {
  chainId: number;
  contract: string;
}

/** Where a row stands in the order `pending` gives: its event's block and log index, then its request id. */
export interface PendingKey {
  blockNumber: number;
  logIndex: number;
  requestId: string;
}

/** The `PendingKey` of a row. */
export function pendingKeyOf(row: PendingKey): PendingKey {
  return { blockNumber: row.blockNumber, logIndex: row.logIndex, requestId: row.requestId };
}

/** Whether `a` comes after `b` in the order `pending` gives (request ids are ASCII: compared as SQLite does). */
export function pendingAfter(a: PendingKey, b: PendingKey): boolean {
  if (a.blockNumber !== b.blockNumber) return a.blockNumber > b.blockNumber;
  if (a.logIndex !== b.logIndex) return a.logIndex > b.logIndex;
  return a.requestId > b.requestId;
}

/** What `recordRequest` did with an event. */
export type RecordOutcome =
  /** First time seen: a new `pending` row. */
  | 'new'
  /** Already recorded from this very event: nothing changed. */
  | 'known'
  /** The row was `reorged` and the request is back on chain (maybe in another block): `pending` again. */
  | 'restored'
  /** The same request number from another event while the row is not `reorged`: left as it was. */
  | 'conflict';

/**
 * How the chain settled a request: fulfilled, or refunded with its `LLMRefunded` event's reason; and
 * whether the consumer's callback ran without failing, as the settlement's event says (`callbackOk`).
 * Both null while that event is not readable.
 */
export type ChainSettlement =
  | { kind: 'fulfilled'; callbackOk: boolean | null }
  | { kind: 'refunded'; reason: string | null; callbackOk: boolean | null };

/**
 * A settlement's columns. The reason is anyone's choice after the deadline: stored with its controls and
 * invisible characters escaped (`escapeUnshown`), as libSQL reads a text only up to a NUL and the view
 * serves it to pages and terminals.
 */
function settlementColumns(s: ChainSettlement) {
  return {
    status: s.kind,
    refundReason: s.kind === 'refunded' && s.reason !== null ? escapeUnshown(s.reason) : null,
    callbackOk: s.callbackOk,
  };
}

/**
 * The chain bridge's rows in libSQL (`chain_requests`, `chain_cursors`): which oracle requests the
 * watcher has seen, how each was settled, and how far each oracle's events have been read. Every
 * settlement step is a conditional update on the row's current state, so two watchers over one database
 * (or one restarted mid-way) never settle a request twice: the contract would refuse it anyway, but no
 * gas is spent on the attempt.
 */
export class ChainStore {
  constructor(readonly db: HistoryDb) {}

  /** The rows of one oracle. */
  static #of(o: OracleRef): SQL[] {
    return [eq(chainRequests.chainId, o.chainId), eq(chainRequests.contract, o.contract)];
  }

  async cursor(o: OracleRef): Promise<ChainCursorRow | null> {
    const rows = await this.db
      .select()
      .from(chainCursors)
      .where(and(eq(chainCursors.chainId, o.chainId), eq(chainCursors.contract, o.contract)));
    return rows[0] ?? null;
  }

  /**
   * The oracle's events are read up to block `blockNumber` (whose hash was `blockHash`): all of that
   * block's, or, with `logIndex`, those up to and including that log index (a pass's budget ended inside
   * the block; the next pass reads on from there).
   */
  async setCursor(
    o: OracleRef,
    blockNumber: bigint,
    blockHash: string,
    now: number,
    logIndex: number | null = null,
  ): Promise<void> {
    const row = {
      chainId: o.chainId,
      contract: o.contract,
      blockNumber: Number(blockNumber),
      blockHash,
      logIndex,
      updatedAt: now,
    };
    await this.db
      .insert(chainCursors)
      .values(row)
      .onConflictDoUpdate({
        target: [chainCursors.chainId, chainCursors.contract],
        set: { blockNumber: row.blockNumber, blockHash, logIndex, updatedAt: now },
      });
  }

  /** Record a confirmed `LLMRequested` event (see `RecordOutcome`). */
  async recordRequest(e: OracleRequestEvent, now: number): Promise<RecordOutcome> {
    const contract = e.contract.toLowerCase();
    const requestNo = e.requestNo.toString();
    return this.db.transaction(async (tx) => {
      const [row] = await tx
        .select()
        .from(chainRequests)
        .where(
          and(
            eq(chainRequests.chainId, e.chainId),
            eq(chainRequests.contract, contract),
            eq(chainRequests.requestNo, requestNo),
          ),
        );
      const event = {
        txHash: e.txHash.toLowerCase(),
        logIndex: e.logIndex,
        blockNumber: Number(e.blockNumber),
        blockHash: e.blockHash.toLowerCase(),
      };
      if (!row) {
        await tx.insert(chainRequests).values({
          chainId: e.chainId,
          contract,
          requestNo,
          requestId: chainRequestIdOf(e),
          ...event,
          status: 'pending',
          createdAt: now,
          updatedAt: now,
        });
        return 'new';
      }
      if (row.status === 'reorged') {
        await tx
          .update(chainRequests)
          .set({ ...event, status: 'pending', updatedAt: now })
          .where(and(eq(chainRequests.requestId, row.requestId), eq(chainRequests.status, 'reorged')));
        return 'restored';
      }
      return row.txHash === event.txHash && row.logIndex === event.logIndex ? 'known' : 'conflict';
    });
  }

  /**
   * A reorg replaced the blocks from `fromBlock` on: rows still `pending` whose event was in them, and
   * that no settlement was sent for, become `reorged` until their event is seen again. Returns how many.
   * Rows with a settlement transaction (claimed, or settled and not final) are left to it: it names the
   * question of the row's event, which the oracle refuses for any other request under the number, so
   * its follow-up (or the settlement check) finds it reverted or gone, and the row's event is checked
   * before anything else is sent. Marked `reorged`, they would be neither followed up nor checked until
   * their event came back, and a settlement that did land would go unrecorded meanwhile.
   */
  async markReorged(o: OracleRef, fromBlock: bigint, now: number): Promise<number> {
    const r = await this.db
      .update(chainRequests)
      .set({ status: 'reorged', updatedAt: now })
      .where(
        and(
          ...ChainStore.#of(o),
          eq(chainRequests.status, 'pending'),
          isNull(chainRequests.fulfilledTx),
          gte(chainRequests.blockNumber, Number(fromBlock)),
        ),
      )
      .returning({ requestId: chainRequests.requestId });
    return r.length;
  }

  /**
   * The newest recorded event at or below `block` (not `reorged`): its block's number and hash, to tell a
   * chain that still holds what was read from it (an RPC behind) from one that was reset. Null: none.
   */
  async anchorAtOrBelow(
    o: OracleRef,
    block: bigint,
  ): Promise<{ blockNumber: number; blockHash: string } | null> {
    const [row] = await this.db
      .select({ blockNumber: chainRequests.blockNumber, blockHash: chainRequests.blockHash })
      .from(chainRequests)
      .where(
        and(
          ...ChainStore.#of(o),
          sql`${chainRequests.status} <> 'reorged'`,
          sql`${chainRequests.blockNumber} <= ${Number(block)}`,
        ),
      )
      .orderBy(desc(chainRequests.blockNumber))
      .limit(1);
    return row ?? null;
  }

  /**
   * Rows waiting for settlement, oldest block first (then by log index, then by request id: after a reorg
   * two rows may hold the same block and log index). With `after`, only the rows past that one in this
   * order (keyset pagination: the next page starts after the last row of the page before, however many
   * rows of the pages before are still pending).
   */
  async pending(o: OracleRef, limit: number, after?: PendingKey): Promise<ChainRequestRow[]> {
    return this.db
      .select()
      .from(chainRequests)
      .where(
        and(
          ...ChainStore.#of(o),
          eq(chainRequests.status, 'pending'),
          after === undefined
            ? undefined
            : sql`(${chainRequests.blockNumber}, ${chainRequests.logIndex}, ${chainRequests.requestId}) > (${after.blockNumber}, ${after.logIndex}, ${after.requestId})`,
        ),
      )
      .orderBy(asc(chainRequests.blockNumber), asc(chainRequests.logIndex), asc(chainRequests.requestId))
      .limit(limit);
  }

  async byRequestId(requestId: string): Promise<ChainRequestRow | null> {
    const rows = await this.db.select().from(chainRequests).where(eq(chainRequests.requestId, requestId));
    return rows[0] ?? null;
  }

  /**
   * Claim a pending row for the settlement transaction `txHash` (signed, not yet sent): true if this
   * call claimed it, false if it is no longer pending or already has a transaction.
   */
  claim(requestId: string, txHash: string, now: number): Promise<boolean> {
    return this.#update(
      requestId,
      { fulfilledTx: txHash, updatedAt: now },
      eq(chainRequests.status, 'pending'),
      isNull(chainRequests.fulfilledTx),
    );
  }

  /** Move a claim from one transaction to its replacement (same nonce): true if the row had `from`. */
  replaceClaim(requestId: string, from: string, to: string, now: number): Promise<boolean> {
    return this.#update(
      requestId,
      { fulfilledTx: to, updatedAt: now },
      eq(chainRequests.status, 'pending'),
      eq(chainRequests.fulfilledTx, from),
    );
  }

  /** Forget a claim whose transaction never reached the chain (it may be claimed again). */
  async release(requestId: string, txHash: string, now: number): Promise<void> {
    await this.#update(
      requestId,
      { fulfilledTx: null, updatedAt: now },
      eq(chainRequests.status, 'pending'),
      eq(chainRequests.fulfilledTx, txHash),
    );
  }

  /**
   * The request is settled on chain (by `txHash`): `fulfilled` or `refunded` (with the reason its
   * `LLMRefunded` event gives), from `pending` only.
   */
  settled(requestId: string, settlement: ChainSettlement, txHash: string, now: number): Promise<boolean> {
    return this.#update(
      requestId,
      { ...settlementColumns(settlement), fulfilledTx: txHash, updatedAt: now, finalizedAt: null },
      eq(chainRequests.status, 'pending'),
    );
  }

  /**
   * Fill in what a settlement recorded without its event lacks (`callbackOk`, and a refund's reason: null
   * while neither its receipt nor its event was readable), from that event read since: on the row settled
   * by `txHash` as `settlement.kind` only, and only where the row holds null (what it holds is kept).
   * True if the row took something.
   */
  async completeSettlement(requestId: string, txHash: string, settlement: ChainSettlement): Promise<boolean> {
    const { status, refundReason, callbackOk } = settlementColumns(settlement);
    const settledBy = [eq(chainRequests.status, status), eq(chainRequests.fulfilledTx, txHash)];
    const callback =
      callbackOk !== null &&
      (await this.#update(requestId, { callbackOk }, ...settledBy, isNull(chainRequests.callbackOk)));
    const reason =
      refundReason !== null &&
      (await this.#update(requestId, { refundReason }, ...settledBy, isNull(chainRequests.refundReason)));
    return callback || reason;
  }

  /**
   * Settled rows of an oracle (`fulfilled` or `refunded`) not yet found final, most recently settled
   * first: the ones a reorg may still undo (`chain_requests_unfinal_idx` holds only these).
   */
  async unfinalized(o: OracleRef, limit: number): Promise<ChainRequestRow[]> {
    return this.unfinalizedQuery(o, limit);
  }

  /**
   * `unfinalized`'s query. The statuses are inlined, not bound: SQLite uses a partial index only when
   * the query's own terms imply its WHERE.
   */
  unfinalizedQuery(o: OracleRef, limit: number) {
    return this.db
      .select()
      .from(chainRequests)
      .where(
        and(
          ...ChainStore.#of(o),
          sql`${chainRequests.status} in ('fulfilled', 'refunded')`,
          isNull(chainRequests.finalizedAt),
        ),
      )
      .orderBy(desc(chainRequests.updatedAt))
      .limit(limit);
  }

  /** The settlement by `txHash` is final: no longer checked. True if the row was settled by it. */
  markFinal(requestId: string, txHash: string, now: number): Promise<boolean> {
    return this.#updateUnfinal(requestId, txHash, { finalizedAt: now });
  }

  /**
   * The chain holds another settlement than the row (`fromTx`): after a reorg the request was settled
   * again, by another transaction, maybe the other way (a refund where the row says fulfilled). The row
   * follows the chain. True if the row was settled by `fromTx` and not yet final.
   */
  resettle(
    requestId: string,
    fromTx: string,
    settlement: ChainSettlement,
    txHash: string,
    now: number,
  ): Promise<boolean> {
    return this.#updateUnfinal(requestId, fromTx, {
      ...settlementColumns(settlement),
      fulfilledTx: txHash,
      updatedAt: now,
    });
  }

  /**
   * A settlement by `txHash` was undone on chain (a reorg deeper than the confirmations took its block):
   * the row is `pending` again with no transaction, to be settled anew. True if the row was settled by
   * that transaction.
   */
  reopen(requestId: string, txHash: string, now: number): Promise<boolean> {
    return this.#updateUnfinal(requestId, txHash, {
      status: 'pending',
      fulfilledTx: null,
      refundReason: null,
      callbackOk: null,
      updatedAt: now,
    });
  }

  /** Update a row settled by `txHash` and not yet final; true if there was one. */
  #updateUnfinal(
    requestId: string,
    txHash: string,
    set: Partial<typeof chainRequests.$inferInsert>,
  ): Promise<boolean> {
    return this.#update(
      requestId,
      set,
      inArray(chainRequests.status, ['fulfilled', 'refunded']),
      eq(chainRequests.fulfilledTx, txHash),
      isNull(chainRequests.finalizedAt),
    );
  }

  /**
   * Every settlement step: one conditional update of a row on the state it must be in (`conditions`),
   * so two watchers, or one restarted mid-way, never both take it. True if the row was in that state.
   */
  async #update(
    requestId: string,
    set: Partial<typeof chainRequests.$inferInsert>,
    ...conditions: SQL[]
  ): Promise<boolean> {
    const r = await this.db
      .update(chainRequests)
      .set(set)
      .where(and(eq(chainRequests.requestId, requestId), ...conditions))
      .returning({ requestId: chainRequests.requestId });
    return r.length === 1;
  }

  /** Settlements not yet found final, of every oracle (`/metrics`; read from the partial index). */
  async unfinalCount(): Promise<number> {
    const rows = await this.db
      .select({ n: sql<number>`count(*)` })
      .from(chainRequests)
      .where(
        and(sql`${chainRequests.status} in ('fulfilled', 'refunded')`, isNull(chainRequests.finalizedAt)),
      );
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Rows by status: of one oracle (counted from its rows), or of every oracle (`/metrics`: the counters
   * `chain_request_counts` that triggers keep in the transaction of every write, four rows however many
   * requests there were).
   */
  async counts(o?: OracleRef): Promise<Record<ChainRequestStatus, number>> {
    const rows =
      o === undefined
        ? await this.db
            .select({ status: chainRequestCounts.status, n: chainRequestCounts.n })
            .from(chainRequestCounts)
        : await this.db
            .select({ status: chainRequests.status, n: sql<number>`count(*)` })
            .from(chainRequests)
            .where(and(...ChainStore.#of(o)))
            .groupBy(chainRequests.status);
    const out: Record<ChainRequestStatus, number> = { pending: 0, fulfilled: 0, refunded: 0, reorged: 0 };
    for (const r of rows) out[r.status] = Number(r.n);
    return out;
  }
}
