import { defineConfig } from 'drizzle-kit';

/**
 * drizzle-kit configuration of the quorum history. Run from the repository root:
 *   npm run db:generate   (drizzle-kit generate --config shared/drizzle.config.ts)
 * Migrations go to shared/drizzle/, with meta/_journal.json, which drizzle-orm's migrators read.
 * `generate` needs no database; `migrate`, `push` and `studio` use SYNOD_DB_URL (default: a local file).
 */
export default defineConfig({
  dialect: 'turso',
  schema: './shared/src/history/schema.ts',
  out: './shared/drizzle',
  dbCredentials: {
    url: process.env['SYNOD_DB_URL'] ?? 'file:.data/synod.db',
    ...(process.env['SYNOD_DB_AUTH_TOKEN'] ? { authToken: process.env['SYNOD_DB_AUTH_TOKEN'] } : {}),
  },
  strict: true,
  verbose: true,
});
