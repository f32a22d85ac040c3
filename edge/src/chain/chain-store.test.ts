import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { historySchema } from '@synod/shared/history';
import { drizzle } from 'drizzle-orm/libsql';
import { openHistory } from '../store/open-history.ts';
import { type ChainSettlement, ChainStore, pendingAfter, pendingKeyOf } from './chain-store.ts';
import type { OracleRequestEvent } from './oracle-request.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-chain-store-'));
const closers: (() => void)[] = [];
afterAll(() => {
  for (const c of closers) c();
  rmSync(dir, { recursive: true, force: true });
});
let n = 0;

/** Each database's client, to look at its query plans. */
const clients = new WeakMap<ChainStore, Awaited<ReturnType<typeof openHistory>>['client']>();

async function store(): Promise<ChainStore> {
  const h = await openHistory(`file:${join(dir, `chain-${n++}.db`)}`);
  closers.push(() => h.client.close());
  const s = new ChainStore(h.store.db);
  clients.set(s, h.client);
  return s;
}

const ORACLE = { chainId: 31337, contract: '0x5fbdb2315678afecb367f032d93f642f64180aa3' };
const hash = (b: string) => `0x${b.repeat(32)}` as const;
const FULFILLED: ChainSettlement = { kind: 'fulfilled', callbackOk: true };
const refunded = (reason: string, callbackOk: boolean | null = true): ChainSettlement => ({
  kind: 'refunded',
  reason,
  callbackOk,
});

function event(requestNo: bigint, o: Partial<OracleRequestEvent> = {}): OracleRequestEvent {
  return {
    chainId: ORACLE.chainId,
    contract: ORACLE.contract as `0x${string}`,
    requestNo,
    requester: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
    prompt: 'p',
    acceptedModels: ['m'],
    maxTokens: 8,
    temperatureCenti: 0,
    quorum: 3,
    fee: 0n,
    deadline: 0n,
    questionHash: hash('ee'),
    txHash: hash('a1'),
    logIndex: 0,
    blockNumber: 10n,
    blockHash: hash('b1'),
    ...o,
  };
}
const id = (requestNo: bigint) => `${ORACLE.chainId}:${ORACLE.contract}:${requestNo}`;

describe('ChainStore', () => {
  test('records an event once: new, then known; another event under the number is a conflict', async () => {
    const s = await store();
    expect(await s.recordRequest(event(1n), 1)).toBe('new');
    expect(await s.recordRequest(event(1n), 2)).toBe('known');
    expect(await s.recordRequest(event(1n, { txHash: hash('a2') }), 3)).toBe('conflict');
    expect(await s.byRequestId(id(1n))).toMatchObject({
      requestId: id(1n),
      requestNo: '1',
      status: 'pending',
      txHash: hash('a1'),
      blockNumber: 10,
      fulfilledTx: null,
      createdAt: 1,
      updatedAt: 1,
    });
  });

  test('a reorg marks only unclaimed pending rows at or above the block, and a re-seen event restores them', async () => {
    const s = await store();
    await s.recordRequest(event(1n, { blockNumber: 9n }), 1);
    await s.recordRequest(event(2n, { blockNumber: 10n, logIndex: 1 }), 1);
    await s.recordRequest(event(3n, { blockNumber: 11n, logIndex: 2 }), 1);
    await s.recordRequest(event(4n, { blockNumber: 12n, logIndex: 3 }), 1);
    expect(await s.claim(id(3n), hash('c3'), 2)).toBe(true);
    expect(await s.claim(id(4n), hash('c4'), 2)).toBe(true);
    expect(await s.settled(id(4n), FULFILLED, hash('c4'), 3)).toBe(true);
    expect(await s.markReorged({ ...ORACLE, contract: `0x${'99'.repeat(20)}` }, 0n, 4)).toBe(0);
    expect(await s.markReorged(ORACLE, 10n, 4)).toBe(1);
    const status = async (k: bigint) => (await s.byRequestId(id(k)))?.status;
    expect([await status(1n), await status(2n), await status(3n), await status(4n)]).toEqual([
      'pending',
      'reorged',
      'pending',
      'fulfilled',
    ]);
    expect(await s.recordRequest(event(2n, { blockNumber: 14n, blockHash: hash('b9') }), 5)).toBe('restored');
    expect(await s.byRequestId(id(2n))).toMatchObject({
      status: 'pending',
      blockNumber: 14,
      blockHash: hash('b9'),
    });
    expect(await s.counts(ORACLE)).toEqual({ pending: 3, fulfilled: 1, refunded: 0, reorged: 0 });
  });

  test("every oracle's counts are read from the counters the database keeps, not counted", async () => {
    const s = await store();
    const other = { ...ORACLE, contract: `0x${'99'.repeat(20)}` as const };
    await s.recordRequest(event(1n), 1);
    await s.recordRequest(event(2n, { blockNumber: 12n }), 1);
    await s.recordRequest(event(1n, { contract: other.contract }), 1);
    expect(await s.markReorged(ORACLE, 11n, 2)).toBe(1);
    expect(await s.recordRequest(event(2n, { blockNumber: 14n, blockHash: hash('b9') }), 3)).toBe('restored');
    expect(await s.markReorged(other, 0n, 4)).toBe(1);
    expect(await s.counts()).toEqual({ pending: 2, fulfilled: 0, refunded: 0, reorged: 1 });
    expect(await s.counts(ORACLE)).toEqual({ pending: 2, fulfilled: 0, refunded: 0, reorged: 0 });
    expect(await s.counts(other)).toEqual({ pending: 0, fulfilled: 0, refunded: 0, reorged: 1 });
    const client = clients.get(s);
    if (client === undefined) throw new Error('no client');
    // The same database through a store that keeps the statements it runs.
    const seen: string[] = [];
    const logged = new ChainStore(
      drizzle(client, { schema: historySchema, logger: { logQuery: (sql) => seen.push(sql) } }),
    );
    expect(await logged.counts()).toEqual({ pending: 2, fulfilled: 0, refunded: 0, reorged: 1 });
    expect(seen.join('\n')).toMatch(/chain_request_counts/);
    expect(seen.join('\n')).not.toMatch(/from "chain_requests"/i);
  });

  test('after a reorg the same transaction and log index may carry another request number', async () => {
    const s = await store();
    await s.recordRequest(event(1n, { txHash: hash('a1'), logIndex: 0 }), 1);
    expect(await s.markReorged(ORACLE, 0n, 2)).toBe(1);
    // Mined again after someone else took number 1, the same transaction now asks under number 2.
    const again = event(2n, { txHash: hash('a1'), logIndex: 0, blockNumber: 12n });
    expect(await s.recordRequest(again, 3)).toBe('new');
    expect((await s.byRequestId(id(1n)))?.status).toBe('reorged');
    expect((await s.byRequestId(id(2n)))?.status).toBe('pending');
  });

  test('a claim is taken once, released only by its own hash, and a settled row stays settled', async () => {
    const s = await store();
    await s.recordRequest(event(1n), 1);
    expect(await s.claim(id(1n), hash('c1'), 2)).toBe(true);
    expect(await s.claim(id(1n), hash('c2'), 2)).toBe(false);
    await s.release(id(1n), hash('c2'), 3);
    expect((await s.byRequestId(id(1n)))?.fulfilledTx).toBe(hash('c1'));
    await s.release(id(1n), hash('c1'), 3);
    expect((await s.byRequestId(id(1n)))?.fulfilledTx).toBeNull();
    expect(await s.claim(id(1n), hash('c3'), 4)).toBe(true);
    // A replacement (same nonce, higher fees) takes the claim over only from the hash it replaces.
    expect(await s.replaceClaim(id(1n), hash('c9'), hash('c8'), 4)).toBe(false);
    expect(await s.replaceClaim(id(1n), hash('c3'), hash('c8'), 4)).toBe(true);
    expect(await s.replaceClaim(id(1n), hash('c8'), hash('c3'), 4)).toBe(true);
    expect(await s.settled(id(1n), refunded('NO_CONSENSUS'), hash('c3'), 5)).toBe(true);
    expect(await s.replaceClaim(id(1n), hash('c3'), hash('c7'), 6)).toBe(false);
    expect(await s.settled(id(1n), FULFILLED, hash('c4'), 6)).toBe(false);
    expect(await s.claim(id(1n), hash('c5'), 7)).toBe(false);
    expect(await s.byRequestId(id(1n))).toMatchObject({
      status: 'refunded',
      fulfilledTx: hash('c3'),
      refundReason: 'NO_CONSENSUS',
    });
    expect(await s.pending(ORACLE, 10)).toEqual([]);
  });

  test('settlements not yet final are listed newest first, and reopened only from their own settlement', async () => {
    const s = await store();
    for (const no of [1n, 2n, 3n]) await s.recordRequest(event(no, { logIndex: Number(no) }), 1);
    expect(await s.claim(id(1n), hash('f1'), 2)).toBe(true);
    expect(await s.settled(id(1n), FULFILLED, hash('f1'), 100)).toBe(true);
    expect(await s.claim(id(2n), hash('f2'), 2)).toBe(true);
    expect(await s.settled(id(2n), refunded('NO_CONSENSUS', false), hash('f2'), 200)).toBe(true);
    expect(await s.byRequestId(id(1n))).toMatchObject({ callbackOk: true });
    expect(await s.byRequestId(id(2n))).toMatchObject({ callbackOk: false });
    // A pending row (3) is not a settlement, and has no callback outcome.
    expect(await s.byRequestId(id(3n))).toMatchObject({ callbackOk: null });
    expect((await s.unfinalized(ORACLE, 10)).map((r) => r.requestId)).toEqual([id(2n), id(1n)]);
    expect((await s.unfinalized(ORACLE, 1)).map((r) => r.requestId)).toEqual([id(2n)]);
    expect(await s.unfinalized({ ...ORACLE, chainId: 1 }, 10)).toEqual([]);
    // Read through the partial index of unfinal settlements, not by a scan of the oracle's rows.
    const q = s.unfinalizedQuery(ORACLE, 10).toSQL();
    const plan = await clients.get(s)?.execute({
      sql: `EXPLAIN QUERY PLAN ${q.sql}`,
      args: q.params as (string | number)[],
    });
    expect(plan?.rows.map((r) => String(r['detail'])).join('\n')).toContain('chain_requests_unfinal_idx');
    // Not by another transaction, not a pending row.
    expect(await s.reopen(id(1n), hash('f9'), 300)).toBe(false);
    expect(await s.reopen(id(3n), hash('f1'), 300)).toBe(false);
    expect(await s.reopen(id(1n), hash('f1'), 300)).toBe(true);
    expect(await s.byRequestId(id(1n))).toMatchObject({
      status: 'pending',
      fulfilledTx: null,
      refundReason: null,
      callbackOk: null,
      updatedAt: 300,
    });
    // A refund undone forgets its reason and its callback's outcome too.
    expect(await s.reopen(id(2n), hash('f2'), 300)).toBe(true);
    expect(await s.byRequestId(id(2n))).toMatchObject({
      status: 'pending',
      refundReason: null,
      callbackOk: null,
    });
    expect(await s.claim(id(2n), hash('f2'), 301)).toBe(true);
    expect(await s.settled(id(2n), refunded('NO_CONSENSUS'), hash('f2'), 200)).toBe(true);
    expect(await s.reopen(id(1n), hash('f1'), 301)).toBe(false);
    expect((await s.unfinalized(ORACLE, 10)).map((r) => r.requestId)).toEqual([id(2n)]);
    // Reopened, it can be claimed and settled again.
    expect(await s.claim(id(1n), hash('f3'), 302)).toBe(true);
    expect(await s.settled(id(1n), FULFILLED, hash('f3'), 303)).toBe(true);
    expect((await s.unfinalized(ORACLE, 10)).map((r) => r.requestId)).toEqual([id(1n), id(2n)]);
  });

  test('a settlement is made final only by its own transaction, and is then neither listed, moved nor reopened', async () => {
    const s = await store();
    await s.recordRequest(event(1n), 1);
    expect(await s.claim(id(1n), hash('f1'), 2)).toBe(true);
    expect(await s.settled(id(1n), FULFILLED, hash('f1'), 3)).toBe(true);
    expect(await s.unfinalCount()).toBe(1);
    expect(await s.markFinal(id(1n), hash('f9'), 4)).toBe(false);
    expect(await s.markFinal(id(1n), hash('f1'), 5)).toBe(true);
    expect(await s.unfinalCount()).toBe(0);
    expect(await s.markFinal(id(1n), hash('f1'), 6)).toBe(false);
    expect(await s.byRequestId(id(1n))).toMatchObject({ status: 'fulfilled', finalizedAt: 5 });
    expect(await s.unfinalized(ORACLE, 10)).toEqual([]);
    expect(await s.reopen(id(1n), hash('f1'), 7)).toBe(false);
    expect(await s.resettle(id(1n), hash('f1'), refunded('EXPIRED'), hash('r1'), 7)).toBe(false);
    expect(await s.byRequestId(id(1n))).toMatchObject({ status: 'fulfilled', fulfilledTx: hash('f1') });
  });

  test('a settlement is moved to the one the chain holds only from the recorded transaction', async () => {
    const s = await store();
    await s.recordRequest(event(1n), 1);
    await s.recordRequest(event(2n, { logIndex: 2 }), 1);
    expect(await s.claim(id(1n), hash('f1'), 2)).toBe(true);
    expect(await s.settled(id(1n), FULFILLED, hash('f1'), 3)).toBe(true);
    expect(await s.resettle(id(1n), hash('f9'), refunded('EXPIRED'), hash('r1'), 4)).toBe(false);
    expect(await s.resettle(id(2n), hash('f1'), refunded('EXPIRED'), hash('r1'), 4)).toBe(false);
    expect(await s.resettle(id(1n), hash('f1'), refunded('EXPIRED'), hash('r1'), 4)).toBe(true);
    expect(await s.byRequestId(id(1n))).toMatchObject({
      status: 'refunded',
      fulfilledTx: hash('r1'),
      refundReason: 'EXPIRED',
      updatedAt: 4,
      finalizedAt: null,
    });
    expect(await s.byRequestId(id(2n))).toMatchObject({ status: 'pending', fulfilledTx: null });
    // Still watched, now under the chain's transaction.
    expect(await s.markFinal(id(1n), hash('r1'), 5)).toBe(true);
    // Moved back to a fulfilment (another reorg), the refund's reason goes with the refund.
    await s.recordRequest(event(3n, { logIndex: 3 }), 1);
    expect(await s.claim(id(3n), hash('r3'), 2)).toBe(true);
    expect(await s.settled(id(3n), refunded('EXPIRED'), hash('r3'), 3)).toBe(true);
    expect(await s.resettle(id(3n), hash('r3'), FULFILLED, hash('f3'), 4)).toBe(true);
    expect(await s.byRequestId(id(3n))).toMatchObject({ status: 'fulfilled', refundReason: null });
  });

  test("a settlement recorded without its event takes its callback's outcome and reason later, from its own transaction and kind only, keeping what it holds", async () => {
    const s = await store();
    for (const no of [1n, 2n, 3n]) await s.recordRequest(event(no, { logIndex: Number(no) }), 1);
    const unread = { kind: 'fulfilled', callbackOk: null } as const;
    expect(await s.settled(id(1n), unread, hash('f1'), 2)).toBe(true);
    expect(await s.settled(id(2n), { kind: 'refunded', reason: null, callbackOk: null }, hash('f2'), 2)).toBe(
      true,
    );
    // Another transaction, another kind, a pending row: nothing taken.
    expect(await s.completeSettlement(id(1n), hash('f9'), FULFILLED)).toBe(false);
    expect(await s.completeSettlement(id(1n), hash('f1'), refunded('EXPIRED'))).toBe(false);
    expect(await s.completeSettlement(id(3n), hash('f1'), FULFILLED)).toBe(false);
    expect(await s.byRequestId(id(1n))).toMatchObject({ callbackOk: null, refundReason: null });
    expect(await s.completeSettlement(id(1n), hash('f1'), { kind: 'fulfilled', callbackOk: false })).toBe(
      true,
    );
    expect(await s.byRequestId(id(1n))).toMatchObject({
      status: 'fulfilled',
      callbackOk: false,
      updatedAt: 2,
    });
    // Known now: kept.
    expect(await s.completeSettlement(id(1n), hash('f1'), FULFILLED)).toBe(false);
    expect(await s.byRequestId(id(1n))).toMatchObject({ callbackOk: false });
    // A refund takes its reason (escaped, as `settled` stores it) and its callback's outcome.
    expect(await s.completeSettlement(id(2n), hash('f2'), refunded('EXPIRED\u0000', true))).toBe(true);
    expect(await s.byRequestId(id(2n))).toMatchObject({
      status: 'refunded',
      refundReason: 'EXPIRED\\u0000',
      callbackOk: true,
    });
    expect(await s.completeSettlement(id(2n), hash('f2'), refunded('OTHER', false))).toBe(false);
    expect(await s.byRequestId(id(2n))).toMatchObject({ refundReason: 'EXPIRED\\u0000', callbackOk: true });
  });

  test('the cursor is stored per oracle and moves with each write', async () => {
    const s = await store();
    expect(await s.cursor(ORACLE)).toBeNull();
    await s.setCursor(ORACLE, 5n, hash('b5'), 1);
    await s.setCursor(ORACLE, 8n, hash('b8'), 2);
    expect(await s.cursor(ORACLE)).toEqual({
      ...ORACLE,
      blockNumber: 8,
      blockHash: hash('b8'),
      logIndex: null,
      updatedAt: 2,
    });
    expect(await s.cursor({ ...ORACLE, chainId: 1 })).toBeNull();
  });

  test('a cursor inside a block keeps the log index of the last event taken; a whole block clears it', async () => {
    const s = await store();
    await s.setCursor(ORACLE, 9n, hash('b9'), 3, 4);
    expect(await s.cursor(ORACLE)).toEqual({
      ...ORACLE,
      blockNumber: 9,
      blockHash: hash('b9'),
      logIndex: 4,
      updatedAt: 3,
    });
    await s.setCursor(ORACLE, 9n, hash('b9'), 4, 7);
    expect((await s.cursor(ORACLE))?.logIndex).toBe(7);
    await s.setCursor(ORACLE, 9n, hash('b9'), 5);
    expect(await s.cursor(ORACLE)).toMatchObject({ blockNumber: 9, logIndex: null, updatedAt: 5 });
  });

  test('pending rows come oldest block first, then by log index', async () => {
    const s = await store();
    await s.recordRequest(event(3n, { blockNumber: 12n, logIndex: 0 }), 1);
    await s.recordRequest(event(1n, { blockNumber: 11n, logIndex: 5 }), 1);
    await s.recordRequest(event(2n, { blockNumber: 11n, logIndex: 2, txHash: hash('a2') }), 1);
    expect((await s.pending(ORACLE, 10)).map((r) => r.requestNo)).toEqual(['2', '1', '3']);
    expect((await s.pending(ORACLE, 2)).map((r) => r.requestNo)).toEqual(['2', '1']);
  });

  test('pending rows page after a row (keyset): the next page starts past the last row of the one before, whether or not it is still pending', async () => {
    const s = await store();
    await s.recordRequest(event(3n, { blockNumber: 12n, logIndex: 0, txHash: hash('a3') }), 1);
    await s.recordRequest(event(1n, { blockNumber: 11n, logIndex: 5 }), 1);
    await s.recordRequest(event(2n, { blockNumber: 11n, logIndex: 2, txHash: hash('a2') }), 1);
    // After a reorg two rows may hold the same block and log index: ordered by request id between them.
    await s.recordRequest(event(5n, { blockNumber: 11n, logIndex: 5, txHash: hash('a5') }), 1);
    await s.recordRequest(event(4n, { blockNumber: 13n, logIndex: 1, txHash: hash('a4') }), 1);
    const first = await s.pending(ORACLE, 2);
    expect(first.map((r) => r.requestNo)).toEqual(['2', '1']);
    const last = first.at(-1);
    if (!last) throw new Error('no page');
    const second = await s.pending(ORACLE, 2, pendingKeyOf(last));
    expect(second.map((r) => r.requestNo)).toEqual(['5', '3']);
    // A row of the page before settled meanwhile changes nothing for the pages after it.
    expect(await s.settled(id(1n), FULFILLED, hash('f1'), 2)).toBe(true);
    expect((await s.pending(ORACLE, 2, pendingKeyOf(last))).map((r) => r.requestNo)).toEqual(['5', '3']);
    const end = second.at(-1);
    if (!end) throw new Error('no page');
    expect((await s.pending(ORACLE, 2, pendingKeyOf(end))).map((r) => r.requestNo)).toEqual(['4']);
    expect(pendingAfter(pendingKeyOf(end), pendingKeyOf(last))).toBe(true);
    expect(pendingAfter(pendingKeyOf(last), pendingKeyOf(last))).toBe(false);
  });
});
