/**
 * `openHistory` on an embedded replica of a real sqld: reads from the local file, kept in step with
 * the server (synced on open, then every `replicaSyncMs`), writes forwarded to the server.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { type RunningSqld, startSqld, waitUntil } from '../test-servers.ts';
import { openHistory } from './open-history.ts';

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
    const replica = await openHistory(sqld.url, undefined, join(dir, `replica-${n++}.db`), 200);
    // Offline reads from the local file: what the server held when the replica opened is there already.
    expect((await replica.store.apiKeyByHash('a'.repeat(64)))?.id).toBe('key_first');

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
