/**
 * `openHistory` on an embedded replica of a real sqld: reads from the local file, kept in step with
 * the server (synced on open, then every `replicaSyncMs`), writes forwarded to the server.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, createClient } from '@libsql/client';
import { type RunningSqld, startSqld, waitUntil } from '../test-servers.ts';
import { openHistory } from './open-history.ts';
import { SerializedWritesClient } from './serialized-writes.ts';

let sqld: RunningSqld;
const dir = mkdtempSync(join(tmpdir(), 'synod-replica-'));
let n = 0;
beforeAll(async () => {
  sqld = await startSqld();
}, 60_000);
afterAll(async () => {
  await sqld?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const count = async (c: { execute(sql: string): Promise<{ rows: ArrayLike<Record<string, unknown>> }> }) =>
  Number((await c.execute('SELECT count(*) AS n FROM api_keys')).rows[0]?.['n']);

describe('openHistory on an embedded replica', () => {
  test('opens in step with the server, follows its changes, and forwards its own writes', async () => {
    // The server's database, migrated and holding a row, before the replica exists.
    const primary = await openHistory(sqld.url);
    await primary.store.createApiKey(
      { id: 'key_first', hash: 'a'.repeat(64), label: 'first', quotaPerDay: 5 },
      1,
    );
    const replicaFile = join(dir, `replica-${n++}.db`);
    const replica = await openHistory(sqld.url, undefined, replicaFile, 200);
    // Offline reads from the local file: what the server held when the replica opened is there already.
    expect((await replica.store.apiKeyByHash('a'.repeat(64)))?.id).toBe('key_first');
    // The server's rows (API-key hashes among them) are in that file: its owner's only.
    expect(statSync(replicaFile).mode & 0o777).toBe(0o600);

    // Written elsewhere: arrives by the periodic sync, with no call to sync().
    await primary.store.createApiKey(
      { id: 'key_second', hash: 'b'.repeat(64), label: 'second', quotaPerDay: 5 },
      2,
    );
    await waitUntil(
      'the replica follows the server',
      async () => (await count(replica.client)) === 2,
      10_000,
      50,
    );

    // Written through the replica: on the server, and read back from the replica at once.
    await replica.store.createApiKey(
      { id: 'key_third', hash: 'c'.repeat(64), label: 'third', quotaPerDay: 5 },
      3,
    );
    expect((await replica.store.apiKeyByHash('c'.repeat(64)))?.id).toBe('key_third');
    const direct = createClient({ url: sqld.url });
    expect(await count(direct)).toBe(3);
    direct.close();
    replica.client.close();
    primary.client.close();
  }, 60_000);

  test('a replica file that is no longer a database is moved aside and made again from the server', async () => {
    const primary = await openHistory(sqld.url);
    await primary.store.createApiKey(
      { id: 'key_kept', hash: 'd'.repeat(64), label: 'kept', quotaPerDay: 5 },
      1,
    );
    const replicaFile = join(dir, `replica-${n++}.db`);
    const first = await openHistory(sqld.url, undefined, replicaFile, 200);
    expect(first.rebuiltReplica).toBeUndefined();
    first.client.close();
    // Its pages overwritten past the header, as libSQL left one once its server compacted its log under
    // a sync (its WAL gone with it).
    const bytes = readFileSync(replicaFile);
    bytes.fill(0x5a, 100);
    writeFileSync(replicaFile, bytes);
    for (const side of ['-wal', '-shm']) rmSync(`${replicaFile}${side}`, { force: true });
    const again = await openHistory(sqld.url, undefined, replicaFile, 200);
    try {
      expect(again.rebuiltReplica).toStartWith(`${replicaFile}.malformed-`);
      expect(existsSync(again.rebuiltReplica as string)).toBe(true);
      // Made again from the server: its rows are there.
      expect((await again.store.apiKeyByHash('d'.repeat(64)))?.id).toBe('key_kept');
    } finally {
      again.client.close();
      primary.client.close();
    }
  }, 60_000);

  for (const [what, removed] of [
    ['its database, WAL and shared memory removed (its sync metadata left)', ['', '-wal', '-shm']],
    ['its wal index removed', ['-client_wal_index']],
  ] as const) {
    test(`a replica with ${what} is made again from the server at the start, not a failed start`, async () => {
      const primary = await openHistory(sqld.url);
      await primary.store.createApiKey(
        { id: `key_${n}`, hash: `${n}`.padStart(64, 'e'), label: 'kept', quotaPerDay: 5 },
        1,
      );
      const replicaFile = join(dir, `replica-${n++}.db`);
      const first = await openHistory(sqld.url, undefined, replicaFile, 200);
      first.client.close();
      for (const side of removed) rmSync(`${replicaFile}${side}`, { force: true });
      const again = await openHistory(sqld.url, undefined, replicaFile, 200);
      try {
        // The name of a file that was moved: the database's, or, without it, its sync metadata's.
        expect(again.rebuiltReplica).toStartWith(replicaFile);
        expect(again.rebuiltReplica).toContain('.malformed-');
        expect(existsSync(again.rebuiltReplica as string)).toBe(true);
        expect(await count(again.client)).toBeGreaterThan(0);
        expect(statSync(replicaFile).mode & 0o777).toBe(0o600);
      } finally {
        again.client.close();
        primary.client.close();
      }
    }, 60_000);
  }

  test('a sync interval must be positive', async () => {
    await expect(openHistory(sqld.url, undefined, join(dir, `replica-${n++}.db`), 0)).rejects.toThrow(
      RangeError,
    );
  });

  test('a server that cannot be reached fails the open instead of serving an empty replica', async () => {
    await expect(
      openHistory('http://127.0.0.1:9', undefined, join(dir, `replica-${n++}.db`)),
    ).rejects.toThrow();
  });
});

/**
 * This process's own writes over a server or a replica, at once (as the relay's dispatcher, history
 * writer and machine store make them): write transactions that hold their stream across `await`s,
 * transactions and batches that read before they write (their lock upgrade is refused with SQLITE_BUSY
 * while another stream holds the write lock, a wait could deadlock), plain writes, and reads.
 */
async function concurrentWrites(c: Client, table: string, n: number): Promise<string[]> {
  await c.execute(`CREATE TABLE ${table} (v INTEGER NOT NULL)`);
  const insert = (v: number) => ({ sql: `INSERT INTO ${table} (v) VALUES (?)`, args: [v] });
  const write = async (v: number) => {
    const tx = await c.transaction('write');
    try {
      await tx.execute(insert(v));
      await Bun.sleep(10);
      await tx.execute(insert(v));
      await tx.commit();
    } finally {
      tx.close();
    }
  };
  const readThenWrite = async (v: number) => {
    const tx = await c.transaction('deferred');
    try {
      await tx.execute(`SELECT count(*) FROM ${table}`);
      await Bun.sleep(5);
      await tx.execute(insert(v));
      await tx.commit();
    } finally {
      tx.close();
    }
  };
  const results = await Promise.allSettled(
    Array.from({ length: n }, (_, v) => [
      write(v),
      readThenWrite(v),
      c.batch([`SELECT count(*) FROM ${table}`, insert(v)], 'deferred'),
      c.execute(insert(v)),
      c.execute(`SELECT count(*) AS n FROM ${table}`),
    ]).flat(),
  );
  return results
    .filter((r) => r.status === 'rejected')
    .map((r) => String((r as PromiseRejectedResult).reason));
}

describe("openHistory over a libSQL server: the process's own writes take turns", () => {
  test('why: unserialized, a write that read first meets another write as SQLITE_BUSY', async () => {
    const raw = createClient({ url: sqld.url });
    try {
      const failed = await concurrentWrites(raw, 't_raw', 8);
      expect(failed.some((e) => e.includes('SQLITE_BUSY'))).toBe(true);
    } finally {
      raw.close();
    }
  }, 60_000);

  test('a server URL: concurrent write transactions, batches, writes and reads all succeed', async () => {
    const h = await openHistory(sqld.url);
    try {
      expect(h.client).toBeInstanceOf(SerializedWritesClient);
      expect(await concurrentWrites(h.client, 't_server', 8)).toEqual([]);
      const rows = await h.client.execute('SELECT count(*) AS n FROM t_server');
      expect(Number(rows.rows[0]?.['n'])).toBe(8 * 5);
    } finally {
      h.client.close();
    }
  }, 60_000);

  test('an embedded replica (one connection): the same, and reads wait for an open transaction', async () => {
    const h = await openHistory(sqld.url, undefined, join(dir, `replica-${n++}.db`), 200);
    try {
      expect(await concurrentWrites(h.client, 't_replica', 8)).toEqual([]);
      const rows = await h.client.execute('SELECT count(*) AS n FROM t_replica');
      expect(Number(rows.rows[0]?.['n'])).toBe(8 * 5);
    } finally {
      h.client.close();
    }
  }, 60_000);
});

describe('the database file of a relay', () => {
  test('is readable by its owner only, and so are its WAL files, new or found readable by others', async () => {
    const { chmodSync, readdirSync, writeFileSync } = await import('node:fs');
    const own = join(dir, `own-${n++}`);
    const path = join(own, 'relay', 'history.db');
    const h = await openHistory(`file:${path}`);
    await h.client.execute("INSERT INTO usage (key_id, day, count) VALUES ('k', '2026-11-23', 1)");
    const modes = () =>
      readdirSync(join(own, 'relay')).map((f) => [f, statSync(join(own, 'relay', f)).mode & 0o777]);
    expect(modes().length).toBeGreaterThanOrEqual(2);
    for (const [f, mode] of modes()) expect([f, mode]).toEqual([f, 0o600]);
    h.client.close();
    // A file an older relay made readable by others is made the owner's.
    const old = join(own, 'old.db');
    writeFileSync(old, '');
    chmodSync(old, 0o644);
    (await openHistory(`file:${old}`)).client.close();
    expect(statSync(old).mode & 0o777).toBe(0o600);
  });
});

describe('openHistory: the migrations it applied', () => {
  test('a new database is migrated to the last schema, said once; opened again, nothing is applied', async () => {
    const url = `file:${join(dir, 'migrations-said.db')}`;
    const first = await openHistory(url);
    first.client.close();
    expect(first.migrations.applied[0]).toBe('0000_history');
    expect(first.migrations.applied.at(-1)).toBe(first.migrations.schema as string);
    const again = await openHistory(url);
    again.client.close();
    expect(again.migrations).toEqual({ applied: [], schema: first.migrations.schema, newer: 0 });
  });
});
