/**
 * The operator commands that only read (`keys list`, `history prune --dry-run`) write nothing: they do not
 * migrate a database the relays on it have not migrated (a newer synod-relay run against it by hand), and
 * say so; a relay finds a database a newer relay migrated, and says that too.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { historyCommand } from './history-command.ts';
import { keysCommand } from './keys-command.ts';
import { applyMigrations, migrationState } from './store/migrate.ts';
import { MIGRATIONS } from './store/migrations.gen.ts';
import { openHistory } from './store/open-history.ts';
import { loneRelay } from './test-relay.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-read-only-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A relay database migrated up to all but the last migration this code knows (an older relay's). */
async function olderDatabase(): Promise<string> {
  const file = join(dir, `older-${n++}.db`);
  const c = createClient({ url: `file:${file}` });
  await applyMigrations(c, MIGRATIONS.slice(0, -1));
  c.close();
  return file;
}

async function missingOf(file: string): Promise<string[]> {
  const c = createClient({ url: `file:${file}` });
  try {
    return (await migrationState(c, MIGRATIONS)).missing;
  } finally {
    c.close();
  }
}

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

const last = MIGRATIONS.at(-1)?.tag as string;

describe('commands that only read', () => {
  test('keys list on a database behind this code: refused, said why, and the database left as it was', async () => {
    const file = await olderDatabase();
    const o = io();
    expect(await keysCommand(['list', '--db', `file:${file}`], o.io)).toBe(1);
    expect(o.err.join('\n')).toBe(
      `synod-relay: the database file:${file} could not be opened: ${file} lacks 1 migration(s) of this synod-relay (${last}); a command that only reads does not migrate it (start this version of the relay on it once (it migrates the database), or use the synod-relay the relays on it run)`,
    );
    expect(await missingOf(file)).toEqual([last]);
    // A command that writes migrates it, as the relay does; then keys list reads it.
    const made = io();
    expect(await keysCommand(['create', '--label', 'ops', '--db', `file:${file}`], made.io)).toBe(0);
    expect(await missingOf(file)).toEqual([]);
    const listed = io();
    expect(await keysCommand(['list', '--db', `file:${file}`], listed.io)).toBe(0);
    expect(listed.out.join('\n')).toContain('ops');
  });

  test('history prune --dry-run on a database behind: refused, not migrated; the prune itself migrates it', async () => {
    const file = await olderDatabase();
    const dry = io();
    expect(
      await historyCommand(['prune', '--older-than', '7', '--dry-run', '--db', `file:${file}`], dry.io),
    ).toBe(1);
    expect(dry.err.join('\n')).toContain(`lacks 1 migration(s) of this synod-relay (${last})`);
    expect(await missingOf(file)).toEqual([last]);
    const pruned = io();
    expect(await historyCommand(['prune', '--older-than', '7', '--db', `file:${file}`], pruned.io)).toBe(0);
    expect(await missingOf(file)).toEqual([]);
    const again = io();
    expect(
      await historyCommand(['prune', '--older-than', '7', '--dry-run', '--db', `file:${file}`], again.io),
    ).toBe(0);
  });

  test('a file that is SQLite but no relay database is said to be none, and not made one', async () => {
    const file = join(dir, 'other.db');
    const c = createClient({ url: `file:${file}` });
    await c.execute('CREATE TABLE notes (body text)');
    c.close();
    const o = io();
    expect(await keysCommand(['list', '--db', `file:${file}`], o.io)).toBe(1);
    expect(o.err.join('\n')).toContain(`${file} holds no relay history (none of its migrations)`);
    expect(await missingOf(file)).toHaveLength(MIGRATIONS.length);
    // A file that is not SQLite at all says so, as before.
    const junk = join(dir, 'junk.db');
    writeFileSync(junk, 'not a database, but long enough to be read as one '.repeat(200));
    const j = io();
    expect(await keysCommand(['list', '--db', `file:${junk}`], j.io)).toBe(1);
    expect(j.err.join('\n')).toContain('is not a SQLite database');
  });
});

describe('--help on the commands', () => {
  test('keys and history prune print their usage on standard output, exit 0, and open nothing', async () => {
    const missing = join(dir, 'never-made.db');
    for (const [command, args] of [
      [keysCommand, ['--help']],
      [keysCommand, ['create', '--label', 'x', '-h', '--db', `file:${missing}`]],
      [keysCommand, ['list', '--help']],
      [historyCommand, ['--help']],
      [historyCommand, ['prune', '--older-than', '30', '--help', '--db', `file:${missing}`]],
    ] as const) {
      const o = io();
      expect(await command([...args], o.io)).toBe(0);
      expect(o.err).toEqual([]);
      expect(o.out.join('\n')).toStartWith(
        command === keysCommand ? 'usage: synod-relay keys' : 'usage: synod-relay history',
      );
    }
    expect(existsSync(missing)).toBe(false);
  });
});

describe('a database a newer relay migrated', () => {
  test('opened, it says how many migrations it has past this code; the relay logs DB_SCHEMA_NEWER and runs', async () => {
    const file = join(dir, `newer-${n++}.db`);
    const first = await openHistory(`file:${file}`);
    await first.client.execute({
      sql: 'INSERT INTO "__drizzle_migrations" ("hash", "created_at") VALUES (?, ?)',
      args: ['f'.repeat(64), (MIGRATIONS.at(-1)?.folderMillis as number) + 1_000],
    });
    first.client.close();
    const again = await openHistory(`file:${file}`);
    again.client.close();
    expect(again.migrations).toMatchObject({ applied: [], newer: 1 });
    const logs: Record<string, unknown>[] = [];
    const relay = await loneRelay(`file:${file}`, 91, { log: (l) => logs.push(l) });
    try {
      expect(logs.find((l) => l['code'] === 'DB_SCHEMA_NEWER')).toMatchObject({
        level: 'warn',
        newer: 1,
        schema: last,
      });
      expect((await relay.app.request('/healthz')).status).not.toBe(500);
    } finally {
      await relay.stop();
    }
  });
});
