/**
 * A relay's start, as far as its migrations go, in a process of its own (for migrate-race.test.ts: two
 * relays are two processes, each with its own connection to the database). Usage:
 * `bun migrating-relay.child.ts <db url> <start at, epoch ms> <replica file or -> [<extra migrations as
 * JSON>]`. It opens the database as the relay does (an embedded replica of the server at `db url` when a
 * replica file is given), waits until the start time (so that the relays begin together), migrates,
 * and prints the tags it applied as JSON; a failure exits 1 with the error on stderr.
 */
import { createClient } from '@libsql/client';
import { applyMigrations, type EmbeddedMigration } from './migrate.ts';
import { MIGRATIONS } from './migrations.gen.ts';
import { BUSY_TIMEOUT_MS } from './open-history.ts';

const [url, startAt, replica, extra] = process.argv.slice(2);
if (url === undefined || startAt === undefined || replica === undefined) {
  throw new Error('usage: <db url> <start at> <replica file or -> [<extra>]');
}
const migrations = [...MIGRATIONS, ...(extra ? (JSON.parse(extra) as EmbeddedMigration[]) : [])];
const client = createClient(
  replica === '-'
    ? { url, timeout: BUSY_TIMEOUT_MS }
    : { url: `file:${replica}`, syncUrl: url, readYourWrites: true },
);
try {
  if (replica !== '-') await client.sync();
  await Bun.sleep(Math.max(0, Number(startAt) - Date.now()));
  console.log(JSON.stringify(await applyMigrations(client, migrations)));
} catch (e) {
  console.error(String(e));
  process.exitCode = 1;
} finally {
  client.close();
}
