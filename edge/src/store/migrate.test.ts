import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { QUEUED_BY_ID } from './intake-store.ts';
import { applyMigrations } from './migrate.ts';
import { MIGRATIONS } from './migrations.gen.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-migrate-'));
let n = 0;
const fresh = () => createClient({ url: `file:${join(dir, `m-${n++}.db`)}` });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const indexes = async (c: ReturnType<typeof fresh>, table: string) =>
  (
    await c.execute({
      sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
      args: [table],
    })
  ).rows.map((r) => String(r['name']));

describe('applyMigrations', () => {
  test('a new database gets every migration once; a second run applies none', async () => {
    const c = fresh();
    expect(await applyMigrations(c, MIGRATIONS)).toEqual(MIGRATIONS.map((m) => m.tag));
    expect(await applyMigrations(c, MIGRATIONS)).toEqual([]);
    c.close();
  });

  test('0004 widens the request id CHECK of a populated admission log and keeps its rows and indexes', async () => {
    const c = fresh();
    const before = MIGRATIONS.filter((m) => m.tag < '0004');
    expect(await applyMigrations(c, before)).toEqual(before.map((m) => m.tag));
    const insert = (id: string) =>
      c.execute({
        sql: `INSERT INTO request_intake (id_prefix, request_id, coordinator, caller_id, body, created_at, deadline)
              VALUES (7, ?, 'c', 'k', '{}', 1, 2)`,
        args: [id],
      });
    const long = `11155111:0x${'ab'.repeat(20)}:${'9'.repeat(78)}`;
    await insert('a'.repeat(64));
    await expect(insert(long)).rejects.toThrow(/CHECK/);

    const upTo0004 = MIGRATIONS.filter((m) => m.tag < '0005');
    expect(await applyMigrations(c, upTo0004)).toEqual(['0004_request_id_length']);
    const rows = await c.execute('SELECT seq, id_prefix, request_id FROM request_intake');
    expect(rows.rows.map((r) => [Number(r['seq']), Number(r['id_prefix']), r['request_id']])).toEqual([
      [1, 7, 'a'.repeat(64)],
    ]);
    await insert(long);
    expect((await indexes(c, 'request_intake')).sort()).toEqual([
      'request_intake_coordinator_idx',
      'request_intake_lookup_idx',
    ]);
    const plan = await c.execute({ sql: `EXPLAIN QUERY PLAN ${QUEUED_BY_ID}`, args: [7, long] });
    expect(plan.rows.map((r) => String(r['detail']))).toContain(
      'SEARCH r USING INDEX request_intake_lookup_idx (<expr>=? AND id_prefix=?)',
    );
    c.close();
  });

  test('0005 leaves settlements made before it to be checked, through the index of unfinal ones', async () => {
    const c = fresh();
    const before = MIGRATIONS.filter((m) => m.tag < '0005');
    await applyMigrations(c, before);
    const contract = `0x${'ab'.repeat(20)}`;
    const row = (no: number, status: string, tx: string | null) =>
      c.execute({
        sql: `INSERT INTO chain_requests (chain_id, contract, request_no, request_id, tx_hash, log_index,
                block_number, block_hash, status, fulfilled_tx, created_at, updated_at)
              VALUES (1, ?, ?, ?, '0x01', ?, 5, '0x05', ?, ?, 1, ?)`,
        args: [contract, String(no), `1:${contract}:${no}`, no, status, tx, no],
      });
    await row(1, 'fulfilled', '0xf1');
    await row(2, 'pending', null);
    await row(3, 'refunded', '0xf3');
    expect(
      await applyMigrations(
        c,
        MIGRATIONS.filter((m) => m.tag < '0006'),
      ),
    ).toEqual(['0005_chain_finality']);
    const unfinal = `SELECT request_no FROM chain_requests INDEXED BY chain_requests_unfinal_idx
      WHERE chain_id = 1 AND contract = ? AND status IN ('fulfilled', 'refunded') AND finalized_at IS NULL
      ORDER BY updated_at DESC`;
    const listed = await c.execute({ sql: unfinal, args: [contract] });
    expect(listed.rows.map((r) => r['request_no'])).toEqual(['3', '1']);
    await c.execute("UPDATE chain_requests SET finalized_at = 9 WHERE request_no = '3'");
    const after = await c.execute({ sql: unfinal, args: [contract] });
    expect(after.rows.map((r) => r['request_no'])).toEqual(['1']);
    c.close();
  });

  test('0007 counts the oracle requests written before it, and triggers keep the counts from then on', async () => {
    const c = fresh();
    await applyMigrations(
      c,
      MIGRATIONS.filter((m) => m.tag < '0007'),
    );
    const row = (contract: string, no: number, status: string, tx: string | null) =>
      c.execute({
        sql: `INSERT INTO chain_requests (chain_id, contract, request_no, request_id, tx_hash, log_index,
                block_number, block_hash, status, fulfilled_tx, created_at, updated_at)
              VALUES (1, ?, ?, ?, '0x01', ?, 5, '0x05', ?, ?, 1, 1)`,
        args: [contract, String(no), `1:${contract}:${no}`, no, status, tx],
      });
    const [a, b] = [`0x${'ab'.repeat(20)}`, `0x${'cd'.repeat(20)}`];
    await row(a, 1, 'fulfilled', '0xf1');
    await row(a, 2, 'pending', null);
    await row(b, 1, 'pending', null);
    await row(b, 2, 'refunded', '0xf3');
    expect(await applyMigrations(c, MIGRATIONS)).toEqual([
      '0007_chain_request_counts',
      '0008_reputation_vouched',
      '0009_coordinator_leases',
      '0010_chain_cursor_log_index',
      '0011_reputation_updated_idx',
      '0012_unheard_nodes',
      '0013_declines',
      '0014_refund_reason',
      '0015_database_identity',
      '0016_chain_pruned_at',
      '0017_health_probes',
      '0018_chain_callback_ok',
    ]);
    const counts = async () =>
      Object.fromEntries(
        (await c.execute('SELECT status, n FROM chain_request_counts ORDER BY status')).rows.map((r) => [
          r['status'],
          Number(r['n']),
        ]),
      );
    expect(await counts()).toEqual({ fulfilled: 1, pending: 2, refunded: 1 });
    await row(a, 3, 'pending', null);
    await c.execute("UPDATE chain_requests SET status = 'reorged' WHERE request_no = '1' AND contract = ?", [
      b,
    ]);
    await c.execute("UPDATE chain_requests SET updated_at = 9 WHERE request_no = '2'");
    await c.execute("DELETE FROM chain_requests WHERE request_no = '1' AND contract = ?", [a]);
    expect(await counts()).toEqual({ fulfilled: 0, pending: 2, refunded: 1, reorged: 1 });
    const recount = await c.execute('SELECT status, count(*) AS n FROM chain_requests GROUP BY status');
    for (const r of recount.rows) expect((await counts())[String(r['status'])]).toBe(Number(r['n']));
    c.close();
  });

  test('a migration that fails part way leaves nothing of itself behind', async () => {
    const c = fresh();
    await applyMigrations(c, MIGRATIONS);
    const broken = {
      tag: '9999_broken',
      folderMillis: Number.MAX_SAFE_INTEGER,
      hash: 'x',
      statements: ['CREATE TABLE half_done (x integer)', 'INSERT INTO no_such_table VALUES (1)'],
    };
    await expect(applyMigrations(c, [...MIGRATIONS, broken])).rejects.toThrow(/no_such_table/);
    const t = await c.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'");
    expect(t.rows).toHaveLength(0);
    expect(await applyMigrations(c, MIGRATIONS)).toEqual([]);
    c.close();
  });
});
