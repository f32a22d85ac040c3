import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, createClient } from '@libsql/client';
import { readsOnly, SerializedWritesClient, WriteLockTimeoutError } from './serialized-writes.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-serialized-'));
let n = 0;
const opened: Client[] = [];
afterAll(() => {
  for (const c of opened) c.close();
  rmSync(dir, { recursive: true, force: true });
});

async function file(): Promise<Client> {
  const c = createClient({ url: `file:${join(dir, `db-${n++}.db`)}` });
  opened.push(c);
  await c.execute('PRAGMA journal_mode=WAL');
  await c.execute('CREATE TABLE t (v INTEGER NOT NULL)');
  return c;
}

async function values(c: Client): Promise<number[]> {
  return (await c.execute('SELECT v FROM t ORDER BY rowid')).rows.map((r) => Number(r['v']));
}

/** A write transaction that yields to the event loop between its statements, as real callers do. */
async function txn(c: Client, v: number): Promise<void> {
  const tx = await c.transaction('write');
  try {
    await tx.execute({ sql: 'INSERT INTO t (v) VALUES (?)', args: [v] });
    await Bun.sleep(2);
    await tx.execute({ sql: 'INSERT INTO t (v) VALUES (?)', args: [v] });
    await tx.commit();
  } finally {
    tx.close();
  }
}

describe('SerializedWritesClient', () => {
  test('why it exists: two write transactions of one file client meet as SQLITE_BUSY', async () => {
    const raw = await file();
    const results = await Promise.allSettled([txn(raw, 1), txn(raw, 2)]);
    expect(results.some((r) => r.status === 'rejected' && String(r.reason).includes('SQLITE_BUSY'))).toBe(
      true,
    );
  });

  test('write transactions of one process take turns, in the order they began', async () => {
    const c = new SerializedWritesClient(await file());
    await Promise.all([txn(c, 1), txn(c, 2), txn(c, 3)]);
    expect(await values(c)).toEqual([1, 1, 2, 2, 3, 3]);
  });

  test('a plain write waits for the open transaction; a read does not', async () => {
    const c = new SerializedWritesClient(await file());
    const tx = await c.transaction('write');
    await tx.execute('INSERT INTO t (v) VALUES (1)');
    let written = false;
    const write = c.execute('INSERT INTO t (v) VALUES (2)').then(() => {
      written = true;
    });
    // WAL: the reader sees the last commit (nothing yet) without waiting for the writer.
    expect(await values(c)).toEqual([]);
    await Bun.sleep(5);
    expect(written).toBe(false);
    await tx.commit();
    tx.close();
    await write;
    expect(await values(c)).toEqual([1, 2]);
  });

  test('a WITH … SELECT reads without waiting; a WITH that writes waits like any write', async () => {
    expect(readsOnly('SELECT 1')).toBe(true);
    expect(readsOnly('  with x(n) AS (SELECT 1) SELECT n FROM x')).toBe(true);
    expect(readsOnly('WITH x(n) AS (SELECT 1) INSERT INTO t (v) SELECT n FROM x')).toBe(false);
    expect(readsOnly('INSERT INTO t (v) VALUES (1)')).toBe(false);
    const c = new SerializedWritesClient(await file());
    const tx = await c.transaction('write');
    await tx.execute('INSERT INTO t (v) VALUES (1)');
    const r = await c.execute('WITH x(n) AS (SELECT count(*) FROM t) SELECT n FROM x');
    expect(Number(r.rows[0]?.['n'])).toBe(0);
    await tx.commit();
    tx.close();
  });

  test('rollback, close without commit, and a failed statement all give the lock back', async () => {
    const c = new SerializedWritesClient(await file());
    const a = await c.transaction('write');
    await a.execute('INSERT INTO t (v) VALUES (1)');
    await a.rollback();
    const b = await c.transaction();
    await b.execute('INSERT INTO t (v) VALUES (2)');
    b.close();
    await expect(c.execute('INSERT INTO missing (v) VALUES (3)')).rejects.toThrow();
    await c.batch(['INSERT INTO t (v) VALUES (4)', 'INSERT INTO t (v) VALUES (5)'], 'write');
    await c.executeMultiple('INSERT INTO t (v) VALUES (6); INSERT INTO t (v) VALUES (7);');
    expect(await values(c)).toEqual([4, 5, 6, 7]);
  });

  test('a read transaction does not wait for the writer', async () => {
    const c = new SerializedWritesClient(await file());
    await c.execute('INSERT INTO t (v) VALUES (1)');
    const w = await c.transaction('write');
    await w.execute('INSERT INTO t (v) VALUES (2)');
    const r = await c.transaction('read');
    expect((await r.execute('SELECT count(*) AS n FROM t')).rows[0]?.['n']).toBe(1);
    r.close();
    await w.commit();
    w.close();
    expect(c.closed).toBe(false);
    expect(c.protocol).toBe('file');
  });

  test('a write that waits too long for the lock fails with WRITE_LOCK_TIMEOUT, and the lock still works', async () => {
    const c = new SerializedWritesClient(await file(), { lockTimeoutMs: 50 });
    const tx = await c.transaction('write');
    // Writing through the client inside its own transaction could never go on: it times out instead.
    const stuck = c.execute('INSERT INTO t (v) VALUES (1)');
    await expect(stuck).rejects.toBeInstanceOf(WriteLockTimeoutError);
    await expect(stuck).rejects.toMatchObject({ code: 'WRITE_LOCK_TIMEOUT', waitedMs: 50 });
    await tx.execute('INSERT INTO t (v) VALUES (2)');
    await tx.commit();
    tx.close();
    await c.execute('INSERT INTO t (v) VALUES (3)');
    expect(await values(c)).toEqual([2, 3]);
  });
});

describe('SerializedWritesClient over a client of one connection (an embedded replica, :memory:)', () => {
  async function memory(): Promise<Client> {
    const c = createClient({ url: ':memory:' });
    opened.push(c);
    await c.execute('CREATE TABLE t (v INTEGER NOT NULL)');
    return c;
  }

  test('why reads wait there too: an open transaction holds the only connection (TRANSACTION_ACTIVE)', async () => {
    const raw = await memory();
    const tx = await raw.transaction('write');
    await expect(raw.execute('SELECT count(*) FROM t')).rejects.toMatchObject({ code: 'TRANSACTION_ACTIVE' });
    tx.close();
  });

  test('with oneConnection, a read or read transaction waits for the open write transaction', async () => {
    const c = new SerializedWritesClient(await memory(), { oneConnection: true });
    const tx = await c.transaction('write');
    await tx.execute('INSERT INTO t (v) VALUES (1)');
    const read = values(c);
    const readTx = c.transaction('read').then(async (r) => {
      const n = Number((await r.execute('SELECT count(*) AS n FROM t')).rows[0]?.['n']);
      r.close();
      return n;
    });
    await Bun.sleep(5);
    await tx.execute('INSERT INTO t (v) VALUES (2)');
    await tx.commit();
    tx.close();
    expect(await read).toEqual([1, 2]);
    expect(await readTx).toBe(2);
  });
});
