/**
 * The database flags of the operator commands run against a relay's database (`synod-relay keys …`,
 * `synod-relay history …`): `--db URL` and `--db-auth-token-env V`, checked before anything is opened.
 */
import { existsSync, statSync } from 'node:fs';
import { expandConfig } from '@libsql/core/config';
import { type DbUrl, FlagError, got, parseDbUrl, parseEnvName, redactDbUrl } from './config.ts';
import { DatabaseFileError, isLocalFile, openHistory } from './store/open-history.ts';

export const DB_OPTIONS = {
  db: { type: 'string', default: 'file:.data/relay/history.db' },
  'db-auth-token-env': { type: 'string', default: 'SYNOD_DB_AUTH_TOKEN' },
} as const;

export const DB_USAGE =
  "DB: [--db URL] [--db-auth-token-env V]   the relay's database  [file:.data/relay/history.db, SYNOD_DB_AUTH_TOKEN]";

/**
 * The database a command is to use, from its parsed flags (`given`: the flags the command line named).
 * Throws `FlagError` for a folder given as the file, a token variable for a file, or one not set.
 */
export function parseDbFlags(
  values: { db: string; 'db-auth-token-env': string },
  given: ReadonlySet<string>,
): { dbUrl: string; authToken: string | undefined } {
  const db: DbUrl = parseDbUrl('--db', values.db);
  if (db.kind === 'file' && statSync(db.path, { throwIfNoEntry: false })?.isDirectory()) {
    throw new FlagError(`--db must be a file path, not a folder, ${got(db.path)}`);
  }
  const tokenEnv = parseEnvName('--db-auth-token-env', values['db-auth-token-env']);
  if (given.has('db-auth-token-env') && db.kind === 'file') {
    throw new FlagError('--db-auth-token-env is for a libSQL server (--db http(s)://HOST or libsql://HOST)');
  }
  if (given.has('db-auth-token-env') && !process.env[tokenEnv]) {
    throw new FlagError(`--db-auth-token-env: $${tokenEnv} is not set`);
  }
  return { dbUrl: db.url, authToken: process.env[tokenEnv] || undefined };
}

/** The local file a database URL names, or null for a server. */
export function localDbFile(dbUrl: string): string | null {
  return isLocalFile(dbUrl) ? expandConfig({ url: dbUrl }, false).path : null;
}

/**
 * Open the relay's database for an operator command, or say why not on `err` and return null (the
 * command exits 1): a local file that is not there (unless `create`, which starts a database) is named
 * rather than made empty at the wrong path, with `missing` said after it. `readOnly` (a command that only
 * reads) writes nothing and migrates nothing: a database behind this code is refused (`DB_SCHEMA_BEHIND`).
 */
export async function openForCommand(
  dbUrl: string,
  authToken: string | undefined,
  err: (line: string) => void,
  o: { create?: boolean; missing?: string; readOnly?: boolean } = {},
): Promise<Awaited<ReturnType<typeof openHistory>> | null> {
  const file = localDbFile(dbUrl);
  if (!o.create && file !== null && !existsSync(file)) {
    err(
      `synod-relay: no database at ${file} (--db names the relay's database${o.missing ? `: ${o.missing}` : ''})`,
    );
    return null;
  }
  try {
    return await openHistory(dbUrl, authToken, undefined, undefined, undefined, {
      ...(o.readOnly ? { readOnly: true } : {}),
    });
  } catch (e) {
    const hint = e instanceof DatabaseFileError ? ` (${e.hint})` : '';
    err(`synod-relay: the database ${redactDbUrl(dbUrl)} could not be opened: ${commandReason(e)}${hint}`);
    return null;
  }
}

/** An error as one short line of a command's output. */
export const commandReason = (e: unknown) => String((e as Error)?.message ?? e).slice(0, 300);
