import type { Client } from '@libsql/client';

/** One drizzle-kit migration, embedded so it can run without a file system. */
export interface EmbeddedMigration {
  tag: string;
  /** The journal's `when`: drizzle's migrator orders and records migrations by it. */
  folderMillis: number;
  /** sha256 of the migration's SQL file, as drizzle records it. */
  hash: string;
  statements: string[];
}

/**
 * Apply the migrations a database lacks. Bookkeeping is drizzle-orm's own (`__drizzle_migrations`,
 * a row per applied migration with its hash and `created_at = folderMillis`), so a database migrated
 * here and one migrated by drizzle's file-based migrator are interchangeable. Each migration runs in one
 * write batch (a transaction): it applies whole or not at all.
 */
export async function applyMigrations(
  client: Client,
  migrations: readonly EmbeddedMigration[],
): Promise<string[]> {
  await client.execute(
    'CREATE TABLE IF NOT EXISTS "__drizzle_migrations" (id INTEGER PRIMARY KEY AUTOINCREMENT, hash text NOT NULL, created_at numeric)',
  );
  const last = await client.execute(
    'SELECT created_at FROM "__drizzle_migrations" ORDER BY created_at DESC LIMIT 1',
  );
  const lastMillis = last.rows.length > 0 ? Number(last.rows[0]?.['created_at']) : -1;
  const applied: string[] = [];
  for (const m of migrations) {
    if (m.folderMillis <= lastMillis) continue;
    await client.batch(
      [
        ...m.statements,
        {
          sql: 'INSERT INTO "__drizzle_migrations" ("hash", "created_at") VALUES (?, ?)',
          args: [m.hash, m.folderMillis],
        },
      ],
      'write',
    );
    applied.push(m.tag);
  }
  return applied;
}
