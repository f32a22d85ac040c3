import { afterAll, beforeEach, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LIMITS, REQUEST_ID_MAX_CHARS } from '@synod/shared';
import { INTAKE_BLOCK_BITS } from '@synod/shared/history';
import { buildRequest } from '../inference-input.ts';
import { pruneExpiredIdempotency } from './idempotency-retention.ts';
import type { Admission } from './intake-store.ts';
import { IntakeStore, QUEUED_BY_ID } from './intake-store.ts';
import { openHistory } from './open-history.ts';
import { TEST_COORDINATOR, TEST_EMBEDDER, testAdmission, testBody } from './test-admissions.ts';

const COORDINATOR = TEST_COORDINATOR;
const dir = mkdtempSync(join(tmpdir(), 'synod-intake-'));
let n = 0;

const admission = testAdmission;

async function open() {
  const h = await openHistory(`file:${join(dir, `intake-${n++}.db`)}`);
  return { ...h, intake: new IntakeStore(h.client) };
}

let db: Awaited<ReturnType<typeof open>>;
beforeEach(async () => {
  db?.client.close();
  db = await open();
});
afterAll(() => {
  db?.client.close();
  rmSync(dir, { recursive: true, force: true });
});

async function usage(callerId: string, day = '2026-11-22'): Promise<number> {
  const r = await db.client.execute({
    sql: 'SELECT count FROM usage WHERE key_id = ? AND day = ?',
    args: [callerId, day],
  });
  return Number(r.rows[0]?.['count'] ?? 0);
}

describe('IntakeStore.admit (one transaction per batch)', () => {
  test('a batch is appended in order and each request can be found by id', async () => {
    const batch = [admission(), admission(), admission()];
    const out = await db.intake.admit(batch, COORDINATOR, 5);
    expect(out).toEqual(
      batch.map((a, i) => ({ kind: 'created', requestId: a.body.requestId, usedToday: i + 1 })),
    );
    expect(await db.intake.count()).toBe(3);
    expect(await db.intake.count(COORDINATOR)).toBe(3);
    expect(await db.intake.count('d'.repeat(64))).toBe(0);
    // Counting can stop early: the cost stays bounded however long the log is.
    expect(await db.intake.count(COORDINATOR, 2)).toBe(2);
    expect(await db.intake.count(COORDINATOR, 10)).toBe(3);
    expect(await db.intake.count(undefined, 1)).toBe(1);
    expect(await db.intake.count(COORDINATOR, Number.POSITIVE_INFINITY)).toBe(3);
    const next = await db.intake.next(COORDINATOR, 10);
    expect(next.map((q) => q.requestId)).toEqual(batch.map((a) => a.body.requestId));
    const [first] = batch;
    const q = await db.intake.queued(first?.body.requestId ?? '');
    expect(q?.body).toEqual(first?.body ?? null);
    expect(q?.deadline).toBe(1_000_000 + (first?.body.frame.maxTimeMs ?? 0));
    expect(q?.callerId).toBe('key_a');
    expect(await db.intake.queued('0'.repeat(64))).toBeNull();
    expect(await db.intake.queued('not an id')).toBeNull();
    expect(await usage('key_a')).toBe(3);
  });

  test('a request is found by id in any block of the log, also after older rows left it', async () => {
    const BLOCK = 2 ** INTAKE_BLOCK_BITS;
    const all: Admission[] = [];
    for (let i = 0; i < 3; i++) {
      const batch = Array.from({ length: BLOCK }, () => admission({ quotaPerDay: 1e9 }));
      await db.intake.admit(batch, COORDINATOR, 5);
      all.push(...batch);
    }
    const probe = [0, BLOCK - 1, BLOCK, 2 * BLOCK + 7, all.length - 1];
    for (const i of probe) {
      const id = all[i]?.body.requestId ?? '';
      expect((await db.intake.queued(id))?.requestId).toBe(id);
    }
    // The dispatcher moves the oldest rows out: the lookup starts at the new oldest block.
    await db.client.execute({ sql: 'DELETE FROM request_intake WHERE seq <= ?', args: [BLOCK + 10] });
    expect(await db.intake.queued(all[0]?.body.requestId ?? '')).toBeNull();
    const kept = all[BLOCK + 10]?.body.requestId ?? '';
    expect((await db.intake.queued(kept))?.requestId).toBe(kept);
    await db.client.execute('DELETE FROM request_intake');
    expect(await db.intake.queued(kept)).toBeNull();
  });

  test('a chain request with the longest id the protocol allows is stored and found', async () => {
    // Sepolia's chain id and the largest uint256 request number: 130 characters, past the 128 of an
    // older CHECK; the bound is REQUEST_ID_MAX_CHARS, the longest id CHAIN_REQUEST_ID_RE matches.
    const requestNo = (2n ** 256n - 1n).toString();
    const origin = {
      kind: 'chain' as const,
      chainId: 11155111,
      contract: `0x${'ab'.repeat(20)}`,
      requestNo,
      txHash: `0x${'cd'.repeat(32)}`,
      blockNumber: 5,
    };
    const { body, json } = buildRequest(
      { prompt: 'Once upon a time' },
      { knownModels: new Set(['m']), defaultModels: ['m'], embedders: [TEST_EMBEDDER] },
      1_000_000,
      (len) => new Uint8Array(len),
      origin,
    );
    expect(body.requestId).toBe(`11155111:0x${'ab'.repeat(20)}:${requestNo}`);
    expect(body.requestId.length).toBe(130);
    const out = await db.intake.admit([admission({ body, bodyJson: json })], COORDINATOR, 5);
    expect(out).toEqual([{ kind: 'created', requestId: body.requestId, usedToday: 1 }]);
    expect((await db.intake.queued(body.requestId))?.body).toEqual(body);
    // The CHECK still refuses what is no request id, at any length.
    const insert = (id: string) =>
      db.client.execute({
        sql: `INSERT INTO request_intake (id_prefix, request_id, coordinator, caller_id, body, created_at, deadline)
              VALUES (1, ?, 'c', 'k', '{}', 1, 2)`,
        args: [id],
      });
    await insert(`1:0x${'ab'.repeat(20)}:${'9'.repeat(78)}`);
    await expect(insert(`1:0x${'ab'.repeat(20)}:${'9'.repeat(REQUEST_ID_MAX_CHARS)}`)).rejects.toThrow(
      /CHECK/,
    );
    await expect(insert('x'.repeat(64))).rejects.toThrow(/CHECK/);
  });

  test('the lookup by id seeks the lookup index, block by block, and never scans the log', async () => {
    const plan = await db.client.execute({ sql: `EXPLAIN QUERY PLAN ${QUEUED_BY_ID}`, args: [1, 'x'] });
    const steps = plan.rows.map((r) => String(r['detail']));
    expect(steps).toContain('SEARCH r USING INDEX request_intake_lookup_idx (<expr>=? AND id_prefix=?)');
    expect(steps.some((d) => /^SCAN r\b/.test(d))).toBe(false);
  });

  test('the daily quota is decided per request, in arrival order, inside and across batches', async () => {
    const out = await db.intake.admit(
      [admission({ quotaPerDay: 2 }), admission({ quotaPerDay: 2 }), admission({ quotaPerDay: 2 })],
      COORDINATOR,
      5,
    );
    expect(out.map((o) => o.kind)).toEqual(['created', 'created', 'quota-exceeded']);
    expect(out[2]).toEqual({ kind: 'quota-exceeded', quotaPerDay: 2, day: '2026-11-22' });
    expect(await usage('key_a')).toBe(2);
    const later = await db.intake.admit([admission({ quotaPerDay: 2 })], COORDINATOR, 6);
    expect(later[0]?.kind).toBe('quota-exceeded');
    // Another caller and another day have quotas of their own.
    const other = await db.intake.admit(
      [admission({ callerId: 'key_b', quotaPerDay: 2 }), admission({ quotaPerDay: 2, day: '2026-11-23' })],
      COORDINATOR,
      7,
    );
    expect(other.map((o) => o.kind)).toEqual(['created', 'created']);
    expect(await db.intake.count()).toBe(4);
  });

  test('Idempotency-Key: a retry replays without being charged, another body conflicts', async () => {
    const a = admission({ idempotency: { key: 'k1', bodyDigest: '1'.repeat(64) } });
    const sameBatchRetry = admission({ idempotency: { key: 'k1', bodyDigest: '1'.repeat(64) } });
    const out = await db.intake.admit([a, sameBatchRetry], COORDINATOR, 5);
    expect(out).toEqual([
      { kind: 'created', requestId: a.body.requestId, usedToday: 1 },
      { kind: 'replayed', requestId: a.body.requestId },
    ]);
    const later = await db.intake.admit(
      [
        admission({ idempotency: { key: 'k1', bodyDigest: '1'.repeat(64) } }),
        admission({ idempotency: { key: 'k1', bodyDigest: '2'.repeat(64) } }),
        // The same key of another caller is another key.
        admission({ callerId: 'key_b', idempotency: { key: 'k1', bodyDigest: '2'.repeat(64) } }),
      ],
      COORDINATOR,
      6,
    );
    expect(later.map((o) => o.kind)).toEqual(['replayed', 'conflict', 'created']);
    expect(later[1]).toEqual({ kind: 'conflict', requestId: a.body.requestId });
    expect(await usage('key_a')).toBe(1);
    expect(await db.intake.count()).toBe(2);
  });

  test('a batch that fails to write leaves nothing behind: no rows, no quota, no idempotency', async () => {
    const good = admission({ idempotency: { key: 'k9', bodyDigest: '3'.repeat(64) } });
    // A request id the CHECK constraint refuses makes the multi-row insert fail.
    const bad = admission();
    bad.body = { ...bad.body, requestId: 'Z'.repeat(64) };
    await expect(db.intake.admit([good, bad], COORDINATOR, 5)).rejects.toThrow();
    expect(await db.intake.count()).toBe(0);
    expect(await usage('key_a')).toBe(0);
    const idem = await db.client.execute('SELECT count(*) AS n FROM idempotency');
    expect(Number(idem.rows[0]?.['n'])).toBe(0);
    // The store is usable afterwards.
    expect((await db.intake.admit([good], COORDINATOR, 6))[0]?.kind).toBe('created');
  });

  test('the deadline is the seal deadline, capped by the clock-skew window nodes accept', async () => {
    const long = admission({ body: testBody({ prompt: 'long', maxTimeMs: 600_000 }) });
    await db.intake.admit([long], COORDINATOR, 5);
    expect((await db.intake.queued(long.body.requestId))?.deadline).toBe(1_000_000 + LIMITS.defaultSkewMs);
  });

  test('a row whose body was altered outside the relay reads back with body null', async () => {
    const a = admission();
    await db.intake.admit([a], COORDINATOR, 5);
    await db.client.execute({
      sql: 'UPDATE request_intake SET body = ? WHERE request_id = ?',
      args: ['{"prompt":"tampered"}', a.body.requestId],
    });
    expect((await db.intake.queued(a.body.requestId))?.body).toBeNull();
  });
});

describe('Idempotency-Key retention', () => {
  const keyed = (key: string) => admission({ idempotency: { key, bodyDigest: 'd'.repeat(64) } });
  const keys = async () =>
    (await db.client.execute('SELECT idempotency_key AS k FROM idempotency ORDER BY k')).rows.map(
      (r) => r['k'],
    );

  test('pruneIdempotency forgets rows made before a time, oldest first, at most `limit`', async () => {
    for (const [key, at] of [
      ['a', 100],
      ['b', 200],
      ['c', 300],
      ['d', 400],
    ] as const) {
      await db.intake.admit([keyed(key)], COORDINATOR, at);
    }
    expect(await db.intake.pruneIdempotency(350, 2)).toBe(2);
    expect(await keys()).toEqual(['c', 'd']);
    expect(await db.intake.pruneIdempotency(350)).toBe(1);
    expect(await keys()).toEqual(['d']);
    // Forgotten: the key now makes a new request.
    const again = await db.intake.admit([keyed('a')], COORDINATOR, 500);
    expect(again[0]?.kind).toBe('created');
  });

  test('pruneExpiredIdempotency works through batches, and refuses a retention under the skew window', async () => {
    for (let i = 0; i < 7; i++) await db.intake.admit([keyed(`k${i}`)], COORDINATOR, 1_000 + i);
    await db.intake.admit([keyed('fresh')], COORDINATOR, 10_000_000);
    const day = 24 * 60 * 60 * 1000;
    const now = 10_000_000 + day - 1;
    // Batches of 2, at most 3 of them: 6 of the 7 old keys go now, the last at the next call.
    expect(await pruneExpiredIdempotency(db.intake, now, day, { batch: 2, maxBatches: 3 })).toBe(6);
    expect(await pruneExpiredIdempotency(db.intake, now, day, { batch: 2, maxBatches: 3 })).toBe(1);
    expect(await keys()).toEqual(['fresh']);
    await expect(pruneExpiredIdempotency(db.intake, now, 1_000)).rejects.toThrow(RangeError);
  });
});

describe('IntakeStore leases', () => {
  test("leaseAgeMs: how long ago a coordinator renewed its lease by the database's clock, null for none", async () => {
    expect(await db.intake.leaseAgeMs(COORDINATOR)).toBeNull();
    await db.intake.renewLease(COORDINATOR);
    const age = await db.intake.leaseAgeMs(COORDINATOR);
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan(5_000);
    // Given up (a relay that stops cleanly): said as such, not as an age counted from 1970.
    await db.intake.releaseLease(COORDINATOR);
    expect(await db.intake.leaseAgeMs(COORDINATOR)).toBe('released');
    await db.intake.renewLease(COORDINATOR);
    expect(await db.intake.leaseAgeMs(COORDINATOR)).toBeLessThan(5_000);
  });
});

describe('IntakeStore.databaseId', () => {
  test('one random id per database, made by its migrations: each relay over it reads the same, another database another', async () => {
    const id = await db.intake.databaseId();
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    // A second relay over the same file (its migrations run again, finding nothing to do): the same id.
    const again = await openHistory(`file:${join(dir, `intake-${n - 1}.db`)}`);
    expect(await new IntakeStore(again.client).databaseId()).toBe(id);
    again.client.close();
    // Another database: another id.
    const other = await open();
    expect(await other.intake.databaseId()).not.toBe(id);
    other.client.close();
    // One row only, of 32 hex digits: the table refuses a second or a malformed one.
    await expect(
      db.client.execute(
        "INSERT INTO database_identity (singleton, id) VALUES (2, '00000000000000000000000000000000')",
      ),
    ).rejects.toThrow();
    await expect(db.client.execute("UPDATE database_identity SET id = 'nope'")).rejects.toThrow();
  });
});
