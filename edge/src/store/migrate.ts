import type { Client, Transaction } from '@libsql/client';

/** One drizzle-kit migration, embedded so it can run without a file system. */
export interface EmbeddedMigration {
  tag: string;
  /** The journal's `when`: drizzle's migrator orders and records migrations by it. */
  folderMillis: number;
  /** sha256 of the migration's SQL file, as drizzle records it. */
  hash: string;
  statements: string[];
}

/** The `folderMillis` of the last migration the database records, or -1 for none. */
async function lastApplied(db: Client | Transaction): Promise<number> {
  const last = await db.execute(
    'SELECT created_at FROM "__drizzle_migrations" ORDER BY created_at DESC LIMIT 1',
  );
  return last.rows.length > 0 ? Number(last.rows[0]?.['created_at']) : -1;
}

/**
 * Apply the migrations a database lacks. Bookkeeping is drizzle-orm's own (`__drizzle_migrations`,
 * a row per applied migration with its hash and `created_at = folderMillis`), so a database migrated
 * here and one migrated by drizzle's file-based migrator are interchangeable.
 *
 * Each migration runs in one write transaction (`BEGIN IMMEDIATE`, on a file and on a libSQL server
 * alike): it applies whole or not at all, and relays migrating one database at once (started together,
 * or a rolling upgrade) take turns: the transaction reads the last applied migration again once it holds
 * the write lock, and one that another relay applied meanwhile is skipped, not applied twice. A database
 * that lacks nothing is only read.
 */
export async function applyMigrations(
  client: Client,
  migrations: readonly EmbeddedMigration[],
): Promise<string[]> {
  await client.execute(
    'CREATE TABLE IF NOT EXISTS "__drizzle_migrations" (id INTEGER PRIMARY KEY AUTOINCREMENT, hash text NOT NULL, created_at numeric)',
  );
  let lastMillis = await lastApplied(client);
  const applied: string[] = [];
  for (const m of migrations) {
    if (m.folderMillis <= lastMillis) continue;
    const tx = await client.transaction('write');
    try {
      lastMillis = await lastApplied(tx);
      if (m.folderMillis <= lastMillis) continue;
      await tx.batch([
        ...m.statements,
        {
          sql: 'INSERT INTO "__drizzle_migrations" ("hash", "created_at") VALUES (?, ?)',
          args: [m.hash, m.folderMillis],
        },
      ]);
      await tx.commit();
      lastMillis = m.folderMillis;
      applied.push(m.tag);
    } finally {
      // Rolls back what was not committed (a failed statement, or a migration applied meanwhile).
      tx.close();
    }
  }
  return applied;
}

/** Where a database stands against the migrations this code knows, read without writing anything. */
export interface MigrationState {
  /** The migrations of `migrations` the database lacks (their tags, oldest first). */
  missing: string[];
  /** Migrations the database records past the last one this code knows: a newer relay applied them. */
  newer: number;
}

/**
 * The migrations `client`'s database lacks and those it has that this code does not know, read only (no
 * table made, nothing applied): for the commands that only read, and for the relay to say that a newer
 * one migrated its database. A database without drizzle's bookkeeping table lacks them all.
 */
export async function migrationState(
  client: Client,
  migrations: readonly EmbeddedMigration[],
): Promise<MigrationState> {
  const table = await client.execute(
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'",
  );
  if (table.rows.length === 0) return { missing: migrations.map((m) => m.tag), newer: 0 };
  const last = await lastApplied(client);
  return {
    missing: migrations.filter((m) => m.folderMillis > last).map((m) => m.tag),
    newer: await newerMigrations(client, migrations),
  };
}

/**
 * How many migrations a migrated database records past the last of `migrations` (a newer relay applied
 * them): one read of drizzle's bookkeeping table, nothing written. Cheap enough for a running relay to
 * ask every minute (`SchemaWatch`).
 */
export async function newerMigrations(
  client: Pick<Client, 'execute'>,
  migrations: readonly EmbeddedMigration[],
): Promise<number> {
  const newer = await client.execute({
    sql: 'SELECT count(*) AS n FROM "__drizzle_migrations" WHERE created_at > ?',
    args: [migrations.at(-1)?.folderMillis ?? -1],
  });
  return Number(newer.rows[0]?.['n'] ?? 0);
}
