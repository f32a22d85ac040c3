import { sha256Hex, utf8 } from '@synod/shared';
import type { EmbeddedMigration } from './migrate.ts';

interface Journal {
  entries: { idx: number; when: number; tag: string; breakpoints: boolean }[];
}

/**
 * Read a drizzle-kit migrations folder the way drizzle-orm's migrator does: the journal's entries in
 * order, each SQL file split at `--> statement-breakpoint`, hashed with sha256 of the whole file.
 */
export function readMigrationFolder(folder: string, read: (path: string) => string): EmbeddedMigration[] {
  const journal = JSON.parse(read(`${folder}/meta/_journal.json`)) as Journal;
  return journal.entries.map((e) => {
    const sql = read(`${folder}/${e.tag}.sql`);
    return {
      tag: e.tag,
      folderMillis: e.when,
      hash: sha256Hex(utf8(sql)),
      statements: sql
        .split('--> statement-breakpoint')
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    };
  });
}
