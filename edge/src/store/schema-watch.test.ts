/**
 * A relay already running when a newer relay migrates their shared database learns it: it looks every
 * minute (here every 50 ms), logs DB_SCHEMA_NEWER once, and says it in /metrics and in /healthz (a
 * warning, not a 503). It used to learn only at its next start.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, createClient } from '@libsql/client';
import { MemoryNetwork } from '@synod/browser-node';
import { openApiDocument } from '../openapi.ts';
import { type Doc, mismatches } from '../test-openapi-check.ts';
import { loneRelay } from '../test-relay.ts';
import { applyMigrations, type EmbeddedMigration, newerMigrations } from './migrate.ts';
import { MIGRATIONS } from './migrations.gen.ts';
import { SchemaWatch } from './schema-watch.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-schema-watch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const last = MIGRATIONS.at(-1) as EmbeddedMigration;

/** A migration of a relay newer than this code, the `i`th past its last. */
function newerMigration(i: number): EmbeddedMigration {
  return {
    tag: `9999_newer_${i}`,
    folderMillis: last.folderMillis + 1_000 * i,
    hash: String(i).repeat(64).slice(0, 64),
    statements: [`CREATE TABLE newer_relay_table_${i} (id INTEGER PRIMARY KEY)`],
  };
}

/** What a newer relay's start does to the database at `file`: its migrations, past this code's. */
async function newerRelayMigrates(file: string, upTo: number): Promise<string[]> {
  const c = createClient({ url: `file:${file}` });
  try {
    const extra = Array.from({ length: upTo }, (_, i) => newerMigration(i + 1));
    return await applyMigrations(c, [...MIGRATIONS, ...extra]);
  } finally {
    c.close();
  }
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

describe('newerMigrations and SchemaWatch on a libSQL file', () => {
  test('counted by one read; logged once, the first time found; a failed read changes nothing', async () => {
    const file = join(dir, `watch-${n++}.db`);
    const client: Client = createClient({ url: `file:${file}` });
    try {
      await applyMigrations(client, MIGRATIONS);
      const logs: Record<string, unknown>[] = [];
      const watch = new SchemaWatch({ client, migrations: MIGRATIONS, log: (l) => logs.push(l) });
      await watch.check();
      expect(await newerMigrations(client, MIGRATIONS)).toBe(0);
      expect(watch.state()).toEqual({ newer: 0, schema: last.tag });
      expect(logs).toEqual([]);

      expect(await newerRelayMigrates(file, 1)).toEqual(['9999_newer_1']);
      expect(await newerMigrations(client, MIGRATIONS)).toBe(1);
      await Promise.all([watch.check(), watch.check()]);
      expect(logs).toEqual([
        {
          level: 'warn',
          msg: 'the database has migrations newer than this relay: a newer synod-relay migrated it; upgrade this relay',
          code: 'DB_SCHEMA_NEWER',
          newer: 1,
          schema: last.tag,
        },
      ]);
      // Another newer migration: the count follows, the line is not said again.
      await newerRelayMigrates(file, 2);
      await watch.check();
      expect(watch.state().newer).toBe(2);
      expect(logs).toHaveLength(1);
      // The database out of reach: the last state stands, nothing is logged (the store's health says it).
      const failing = new SchemaWatch({
        client: { execute: () => Promise.reject(new Error('SQLITE_IOERR')) },
        migrations: MIGRATIONS,
        log: (l) => logs.push(l),
      });
      failing.found(2);
      await failing.check();
      expect(failing.state().newer).toBe(2);
      expect(logs).toHaveLength(2);
    } finally {
      client.close();
    }
  });
});

describe('a running relay whose database a newer relay migrates', () => {
  test('logs DB_SCHEMA_NEWER once, shows it in /metrics and as a warning in /healthz, which stays 200', async () => {
    const file = join(dir, `relay-${n++}.db`);
    const logs: Record<string, unknown>[] = [];
    const net = new MemoryNetwork();
    // A peer: the relay's network is up, so its /healthz is 200 on its own account.
    net.join('a-node');
    const relay = await loneRelay(`file:${file}`, 93, { log: (l) => logs.push(l), schemaCheckMs: 50 }, net);
    const doc = openApiDocument('test') as unknown as Doc;
    const health = async () => {
      const r = await relay.app.request('/healthz');
      const text = await r.text();
      expect(mismatches(doc, 'GET', '/healthz', { status: r.status, headers: r.headers, text })).toEqual([]);
      return { status: r.status, body: JSON.parse(text) as Record<string, unknown> };
    };
    const gauge = async () =>
      /^synod_db_schema_newer_migrations (\d+)$/m.exec(
        await (await relay.app.request('/metrics')).text(),
      )?.[1];
    const said = () => logs.filter((l) => l['code'] === 'DB_SCHEMA_NEWER');
    try {
      const before = await health();
      expect(before.status).toBe(200);
      expect(before.body['warnings']).toBeUndefined();
      expect(await gauge()).toBe('0');

      await newerRelayMigrates(file, 1);
      await until('DB_SCHEMA_NEWER', () => said().length > 0);
      expect(said()).toEqual([expect.objectContaining({ level: 'warn', newer: 1, schema: last.tag })]);
      const after = await health();
      expect(after.status).toBe(200);
      expect(after.body['ok']).toBe(true);
      expect(after.body['warnings']).toEqual([
        {
          code: 'DB_SCHEMA_NEWER',
          message: `the database has 1 migration(s) newer than this relay's last (${last.tag}): a newer synod-relay migrated it`,
          hint: 'upgrade this relay: it runs on, but knows nothing of what those migrations added',
          newer: 1,
          schema: last.tag,
        },
      ]);
      expect(await gauge()).toBe('1');
      // Looked at again and again: said once.
      await Bun.sleep(300);
      expect(said()).toHaveLength(1);
    } finally {
      await relay.stop();
    }
  });
});
