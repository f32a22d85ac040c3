/**
 * An embedded replica (of a real sqld) whose file breaks while the relay runs is moved aside and made
 * again from the server, without a restart; a server that is only down is not a broken replica.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toHttpError } from '../http/errors.ts';
import { loneRelay } from '../test-relay.ts';
import { freePort, type RunningSqld, startSqld, stopProcess, waitUntil } from '../test-servers.ts';
import { openHistory } from './open-history.ts';
import {
  ReplicaBrokenError,
  type ReplicaRebuilt,
  replicaBrokenCause,
  replicaFiles,
} from './replica-keeper.ts';

let sqld: RunningSqld;
const dir = mkdtempSync(join(tmpdir(), 'synod-replica-keeper-'));
let n = 0;
beforeAll(async () => {
  // Its own directory and port, given: a test stops it and starts it again on both.
  sqld = await startSqld({ dir: mkdtempSync(join(tmpdir(), 'synod-sqld-')), port: await freePort() });
}, 60_000);
afterAll(async () => {
  await sqld?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const hash = (i: number) => i.toString(16).padStart(64, '0');

/**
 * Overwrite every other page the replica's WAL holds (its frame headers kept), under the open replica:
 * its syncs then fail `database disk image is malformed` for good, and its reads go on, stale.
 */
function corruptWal(replicaFile: string): void {
  const wal = `${replicaFile}-wal`;
  const size = statSync(wal).size;
  const fd = openSync(wal, 'r+');
  try {
    for (let at = 32 + 24; at + 4096 <= size; at += 2 * (24 + 4096)) {
      writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, at);
    }
  } finally {
    closeSync(fd);
  }
}

/** A replica of the server's history, with its rebuilds recorded. */
async function openReplica(o: { rebuildIntervalMs?: number } = {}) {
  const replicaFile = join(dir, `replica-${n++}.db`);
  const rebuilt: ReplicaRebuilt[] = [];
  const h = await openHistory(sqld.url, undefined, replicaFile, 200, undefined, {
    onReplicaRebuilt: (r) => rebuilt.push(r),
    replicaSyncCheckMs: 200,
    replicaRebuildIntervalMs: o.rebuildIntervalMs ?? 1_000,
  });
  return { ...h, replicaFile, rebuilt };
}

describe('an embedded replica that breaks while the relay runs', () => {
  test('is moved aside and made again from the server, and follows it again (503s meanwhile)', async () => {
    const primary = await openHistory(sqld.url);
    for (let i = 1; i <= 10; i++) {
      await primary.store.createApiKey({ id: `key_${i}`, hash: hash(i), label: 'k', quotaPerDay: 5 }, 1);
    }
    const replica = await openReplica();
    try {
      expect((await replica.store.apiKeyByHash(hash(10)))?.id).toBe('key_10');
      corruptWal(replica.replicaFile);
      await primary.store.createApiKey({ id: 'key_after', hash: hash(99), label: 'k', quotaPerDay: 5 }, 1);
      const failures: unknown[] = [];
      await waitUntil(
        'the replica to follow the server again',
        async () => {
          try {
            return (await replica.store.apiKeyByHash(hash(99)))?.id === 'key_after';
          } catch (e) {
            failures.push(e);
            return false;
          }
        },
        20_000,
        100,
      );
      expect(replica.rebuilt).toHaveLength(1);
      const [r] = replica.rebuilt;
      expect(r?.cause).toMatch(/malformed|not a database/);
      expect(r?.movedTo).toStartWith(`${replica.replicaFile}.malformed-`);
      expect(existsSync(r?.movedTo as string)).toBe(true);
      // What failed meanwhile (if anything did) said the store was unavailable: retry shortly.
      for (const e of failures)
        expect(toHttpError(e)).toMatchObject({ status: 503, code: 'STORE_UNAVAILABLE' });
      // The same client, store and lock as before: writes through it reach the server and read back.
      await replica.store.createApiKey({ id: 'key_mine', hash: hash(100), label: 'k', quotaPerDay: 5 }, 1);
      expect((await replica.store.apiKeyByHash(hash(100)))?.id).toBe('key_mine');
      expect((await primary.store.apiKeyByHash(hash(100)))?.id).toBe('key_mine');
    } finally {
      replica.client.close();
      primary.client.close();
    }
  }, 60_000);

  test('a server that is down is no broken replica: 503 while it is away, nothing made again, then it follows', async () => {
    const primary = await openHistory(sqld.url);
    const replica = await openReplica();
    try {
      await stopProcess(sqld.proc);
      // A write (delegated to the server) fails as the store being unavailable.
      const down = await replica.store
        .createApiKey({ id: 'key_down', hash: hash(200), label: 'k', quotaPerDay: 5 }, 1)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(toHttpError(down)).toMatchObject({ status: 503, code: 'STORE_UNAVAILABLE' });
      expect(replicaBrokenCause(down)).toBeUndefined();
      // Reads and the sync checks go on for a while: nothing is taken for a broken replica.
      const until = Date.now() + 1_500;
      while (Date.now() < until) {
        await replica.store.apiKeyByHash(hash(1)).catch((e: unknown) => {
          expect(toHttpError(e)).toMatchObject({ status: 503, code: 'STORE_UNAVAILABLE' });
        });
        await Bun.sleep(100);
      }
      sqld = await startSqld({ dir: sqld.dir, port: sqld.port });
      primary.client.reconnect();
      await primary.store.createApiKey({ id: 'key_back', hash: hash(201), label: 'k', quotaPerDay: 5 }, 1);
      await waitUntil(
        'the replica to follow the server once it is back',
        async () => (await replica.store.apiKeyByHash(hash(201)))?.id === 'key_back',
        20_000,
        100,
      );
      expect(replica.rebuilt).toEqual([]);
    } finally {
      replica.client.close();
      primary.client.close();
    }
  }, 60_000);

  test('its files removed under it (by hand, or a cleaner of the folder): made again, and follows the server again', async () => {
    const primary = await openHistory(sqld.url);
    await primary.store.createApiKey({ id: 'key_gone', hash: hash(600), label: 'k', quotaPerDay: 5 }, 1);
    const replica = await openReplica();
    try {
      expect((await replica.store.apiKeyByHash(hash(600)))?.id).toBe('key_gone');
      // libSQL goes on with the removed files (or an empty one it makes at the path) and reads nothing
      // new, without an error: only the file's identity tells.
      for (const f of replicaFiles(replica.replicaFile)) rmSync(f, { force: true });
      await primary.store.createApiKey({ id: 'key_new', hash: hash(601), label: 'k', quotaPerDay: 5 }, 1);
      await waitUntil(
        'the replica to follow the server again',
        async () => {
          try {
            return (await replica.store.apiKeyByHash(hash(601)))?.id === 'key_new';
          } catch (e) {
            expect(toHttpError(e)).toMatchObject({ status: 503, code: 'STORE_UNAVAILABLE' });
            return false;
          }
        },
        20_000,
        100,
      );
      expect(replica.rebuilt).toHaveLength(1);
      // libSQL makes an empty file at the path soon after: removed, or removed or replaced.
      expect(replica.rebuilt[0]?.cause).toContain(`${replica.replicaFile} was removed`);
      // Its own writes read back again (they did not, on the removed file).
      await replica.store.createApiKey({ id: 'key_own', hash: hash(602), label: 'k', quotaPerDay: 5 }, 1);
      expect((await replica.store.apiKeyByHash(hash(602)))?.id).toBe('key_own');
    } finally {
      replica.client.close();
      primary.client.close();
    }
  }, 60_000);

  test('made again at most once per interval: until then, its operations fail REPLICA_BROKEN (503)', async () => {
    const primary = await openHistory(sqld.url);
    await primary.store.createApiKey({ id: 'key_once', hash: hash(300), label: 'k', quotaPerDay: 5 }, 1);
    const replica = await openReplica({ rebuildIntervalMs: 60_000 });
    try {
      // Broken once: made again at once.
      corruptWal(replica.replicaFile);
      await primary.store.createApiKey({ id: 'key_twice', hash: hash(301), label: 'k', quotaPerDay: 5 }, 1);
      await waitUntil(
        'the first rebuild',
        async () => (await replica.store.apiKeyByHash(hash(301)))?.id === 'key_twice',
        20_000,
        100,
      );
      expect(replica.rebuilt).toHaveLength(1);
      // Broken again within the interval: not made again; its failures are REPLICA_BROKEN, a 503.
      await primary.store.createApiKey({ id: 'key_more', hash: hash(302), label: 'k', quotaPerDay: 5 }, 1);
      await Bun.sleep(500);
      corruptWal(replica.replicaFile);
      await primary.store.createApiKey({ id: 'key_last', hash: hash(303), label: 'k', quotaPerDay: 5 }, 1);
      let broken: unknown;
      await waitUntil(
        'a write to fail on the broken replica',
        async () => {
          broken = await replica.store
            .createApiKey({ id: `key_w${n++}`, hash: hash(400 + n), label: 'k', quotaPerDay: 5 }, 1)
            .then(
              () => undefined,
              (e: unknown) => e,
            );
          return broken !== undefined;
        },
        10_000,
        100,
      );
      expect(replicaBrokenCause(broken)).toBeInstanceOf(ReplicaBrokenError);
      expect(toHttpError(broken)).toMatchObject({ status: 503, code: 'STORE_UNAVAILABLE' });
      await Bun.sleep(500);
      expect(replica.rebuilt).toHaveLength(1);
    } finally {
      replica.client.close();
      primary.client.close();
    }
  }, 60_000);
});

describe('a relay on an embedded replica that breaks', () => {
  test('logs REPLICA_REBUILT with where the broken one went, and serves from the new one', async () => {
    const primary = await openHistory(sqld.url);
    const logs: Record<string, unknown>[] = [];
    const replicaFile = join(dir, `replica-${n++}.db`);
    const relay = await loneRelay(sqld.url, 78, {
      replicaPath: replicaFile,
      replicaSyncMs: 200,
      log: (l) => logs.push(l),
    });
    try {
      corruptWal(replicaFile);
      await primary.store.createApiKey({ id: 'key_relay', hash: hash(500), label: 'k', quotaPerDay: 5 }, 1);
      // /healthz reads the history (and so tries the replica's sync now and then): it finds it broken.
      await waitUntil(
        'the relay to make its replica again',
        async () => {
          await fetch(`${relay.url}/healthz`);
          return logs.some((l) => l['code'] === 'REPLICA_REBUILT');
        },
        30_000,
        200,
      );
      const line = logs.find((l) => l['code'] === 'REPLICA_REBUILT');
      const movedTo = String(line?.['movedTo']);
      expect(line?.['level']).toBe('warn');
      expect(movedTo).toStartWith(`${replicaFile}.malformed-`);
      expect(existsSync(movedTo)).toBe(true);
      expect((await relay.store.apiKeyByHash(hash(500)))?.id).toBe('key_relay');
    } finally {
      await relay.stop();
      primary.client.close();
    }
  }, 60_000);
});

describe('replicaBrokenCause', () => {
  test("libSQL's words for a broken replica, through drizzle's wrapping; not a server out of reach", () => {
    const wrapped = (message: string) => new Error('Failed query: select 1', { cause: new Error(message) });
    for (const broken of [
      'SQLITE_CORRUPT: database disk image is malformed',
      'SQLITE_NOTADB: file is not a database',
      'Replication(Injector(Sqlite(SqliteFailure(Error { code: DatabaseCorrupt, extended_code: 11 }, Some("database disk image is malformed")))))',
      'sync error: replication error: Injector error: SQLite error: file is not a database',
    ]) {
      expect(replicaBrokenCause(wrapped(broken))?.message).toBe(broken);
    }
    for (const outage of [
      'sync error: error trying to connect: tcp connect error: Connection refused (os error 111)',
      'WriteDelegation(status: Unavailable, message: "error trying to connect")',
      'Replication(Client(Status { code: Unavailable, message: "snapshot not found" }))',
    ]) {
      expect(replicaBrokenCause(wrapped(outage))).toBeUndefined();
    }
  });
});
