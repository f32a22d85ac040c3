/**
 * Relays that start together over one database (or upgrade together, adding a migration) each run the
 * migrations the database lacks, in processes of their own: every migration is applied once, by one of
 * them, and none fails. Against a database file and against a real sqld.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { type RunningSqld, runCommand, startSqld } from '../test-servers.ts';
import type { EmbeddedMigration } from './migrate.ts';
import { MIGRATIONS } from './migrations.gen.ts';

const RELAYS = 2;
const CHILD = join(import.meta.dir, 'migrating-relay.child.ts');
const dir = mkdtempSync(join(tmpdir(), 'synod-migrate-race-'));
let sqld: RunningSqld;
let replicated: RunningSqld;
beforeAll(async () => {
  [sqld, replicated] = await Promise.all([startSqld(), startSqld()]);
}, 60_000);
afterAll(async () => {
  await sqld?.stop();
  await replicated?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A migration a rolling upgrade adds: applying it twice fails (`duplicate column name`). */
const ADDED: EmbeddedMigration = {
  tag: '9000_added_column',
  folderMillis: Number.MAX_SAFE_INTEGER,
  hash: 'added',
  statements: [
    'ALTER TABLE api_keys ADD COLUMN note text',
    'CREATE INDEX api_keys_note_idx ON api_keys (note)',
  ],
};

let replicas = 0;

/**
 * `RELAYS` relays migrating `url` at once (each through an embedded replica of its own, with
 * `replicated`): what each applied, once all have ended.
 */
async function startTogether(
  url: string,
  replicated: boolean,
  extra: EmbeddedMigration[] = [],
): Promise<string[][]> {
  const startAt = Date.now() + 1_500;
  const ran = await Promise.all(
    Array.from({ length: RELAYS }, () =>
      runCommand([
        'bun',
        CHILD,
        url,
        String(startAt),
        replicated ? join(dir, `replica-${replicas++}.db`) : '-',
        ...(extra.length > 0 ? [JSON.stringify(extra)] : []),
      ]),
    ),
  );
  for (const r of ran) expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: '' });
  return ran.map((r) => JSON.parse(r.out) as string[]);
}

/** Each migration recorded once, in order. */
async function recorded(url: string): Promise<number[]> {
  const c = createClient({ url });
  try {
    const r = await c.execute('SELECT created_at FROM "__drizzle_migrations" ORDER BY id');
    return r.rows.map((row) => Number(row['created_at']));
  } finally {
    c.close();
  }
}

describe.each([
  ['a database file', () => `file:${join(dir, 'relay.db')}`, false],
  ['a libSQL server (sqld)', () => sqld.url, false],
  ['a libSQL server (sqld) through embedded replicas', () => replicated.url, true],
])('relays migrating %s at once', (_, url, replica) => {
  test('a new database: each migration applied once, by one relay; neither fails', async () => {
    const applied = await startTogether(url(), replica);
    expect(applied.flat().sort()).toEqual(MIGRATIONS.map((m) => m.tag));
    expect(await recorded(url())).toEqual(MIGRATIONS.map((m) => m.folderMillis));
  }, 60_000);

  test('a rolling upgrade adding a migration: applied once, by one relay; neither fails', async () => {
    const applied = await startTogether(url(), replica, [ADDED]);
    expect(applied.flat()).toEqual([ADDED.tag]);
    expect(await recorded(url())).toEqual([...MIGRATIONS, ADDED].map((m) => m.folderMillis));
  }, 60_000);
});
