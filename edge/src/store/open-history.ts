/**
 * Opening the relay's libSQL history database (file, server or embedded replica), migrated. Kept apart
 * from the relay runtime (runtime/bun.ts), so a command that only needs the database (`synod-relay
 * keys …`) loads neither the node nor its transports.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type Client, createClient } from '@libsql/client';
import { expandConfig } from '@libsql/core/config';
import { historySchema } from '@synod/shared/history';
import { drizzle } from 'drizzle-orm/libsql';
import { redactDbUrl } from '../config.ts';
import { publicReason } from '../http/errors.ts';
import {
  isStoreUnreachable,
  type PrimaryHealth,
  type PrimaryHealthCheck,
} from '../http/store-unavailable.ts';
import { boundedFetch } from './bounded-fetch.ts';
import { HistoryStore } from './history-store.ts';
import { applyMigrations, migrationState } from './migrate.ts';
import { MIGRATIONS } from './migrations.gen.ts';
import {
  moveAside,
  ReplicaKeeper,
  type ReplicaRebuilt,
  replicaBrokenCause,
  replicaFiles,
} from './replica-keeper.ts';
import { SerializedWritesClient } from './serialized-writes.ts';

/** How long a connection to a local file waits for another thread's or process's write lock. */
export const BUSY_TIMEOUT_MS = 5000;

/** A database this process opens itself (a file or `:memory:`; not a server, not a replica). */
function isLocal(dbUrl: string, replicaPath?: string): boolean {
  return replicaPath === undefined && (dbUrl.startsWith('file:') || dbUrl === ':memory:');
}

/** A local database file (not in memory): one writer thread per file. */
export function isLocalFile(dbUrl: string, replicaPath?: string): boolean {
  return isLocal(dbUrl, replicaPath) && !dbUrl.includes(':memory:');
}

/**
 * The database file this process opened was deleted or replaced under it (`rm`, a restore copied over
 * it): SQLite goes on writing to the file it holds open, which no restart will find again.
 */
export class DatabaseFileGoneError extends Error {
  readonly code = 'DATABASE_FILE_GONE';
  constructor(readonly path: string) {
    super(
      `the database file ${path} was deleted or replaced while it was open: nothing written now is kept; restore the file and restart the relay`,
    );
    this.name = 'DatabaseFileGoneError';
  }
}

/**
 * A check that the database file at `path` is still the one opened (same device and inode): throws
 * `DatabaseFileGoneError` once it is not. A `stat`, cheap enough for every commit.
 */
export function databaseFileCheck(path: string): () => void {
  const id = (s: { dev: number; ino: number }) => `${s.dev}:${s.ino}`;
  const opened = id(statSync(path));
  return () => {
    let now: string | null = null;
    try {
      now = id(statSync(path));
    } catch {
      // gone
    }
    if (now !== opened) throw new DatabaseFileGoneError(path);
  };
}

/**
 * Longest one HTTP request to a libSQL server may take (a statement, a batch, one step of a transaction)
 * before it fails as the store being unavailable: sqld itself cancels a transaction left idle 5 s.
 */
export const SERVER_REQUEST_TIMEOUT_MS = 30_000;

/** How often an embedded replica pulls the primary's changes, by default. */
export const DEFAULT_REPLICA_SYNC_MS = 1_000;

/** How long `/healthz` waits for a replica's primary to answer before it counts as unreachable. */
export const PRIMARY_PROBE_TIMEOUT_MS = 2_000;

/** How long a probe's answer is reused: the primary gets at most one probe this often. */
export const PRIMARY_PROBE_REUSE_MS = 1_000;

/**
 * Whether an embedded replica's primary (the libSQL server at `dbUrl`) answers, for `/healthz`: a
 * `SELECT 1` on a client of its own, opened for the probe and closed after it.
 *
 * Why a probe and not the outcome of the latest sync or write: the replica's syncs run inside libSQL
 * (`syncInterval`), which reports none of their failures, and writes come only with traffic, so an idle
 * relay would go on saying it is healthy long after its primary went away. A probe is cheap and
 * bounded: it fails after `timeoutMs` (2 s, not the 30 s the relay's own requests may take: a load
 * balancer asks `/healthz` far more often than that), closing its client then ends whatever it still
 * waited for, one runs at a time and its answer is reused for `reuseMs`, so however often `/healthz` is
 * asked the primary sees at most one probe per `reuseMs`.
 */
export function primaryHealthCheck(
  dbUrl: string,
  authToken?: string,
  { timeoutMs = PRIMARY_PROBE_TIMEOUT_MS, reuseMs = PRIMARY_PROBE_REUSE_MS, now = Date.now } = {},
): PrimaryHealthCheck {
  let last: { health: PrimaryHealth; at: number } | undefined;
  let probing: Promise<PrimaryHealth> | undefined;
  let failingSince: number | undefined;
  const probe = async (): Promise<PrimaryHealth> => {
    const started = now();
    let client: ReturnType<typeof createClient> | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')),
        timeoutMs,
      );
    });
    try {
      client = createClient({
        url: dbUrl,
        ...(authToken ? { authToken } : {}),
        fetch: boundedFetch(timeoutMs),
      });
      await Promise.race([client.execute('SELECT 1'), timedOut]);
      failingSince = undefined;
      return { ok: true };
    } catch (e) {
      failingSince ??= started;
      const unreachable = isStoreUnreachable(e);
      return {
        ok: false,
        reachable: !unreachable,
        code: unreachable ? 'STORE_UNAVAILABLE' : 'INTERNAL',
        reason: publicReason(e),
        since: failingSince,
      };
    } finally {
      clearTimeout(timer);
      client?.close();
    }
  };
  return () => {
    if (last !== undefined && now() - last.at < reuseMs) return Promise.resolve(last.health);
    probing ??= probe().then((health) => {
      last = { health, at: now() };
      probing = undefined;
      return health;
    });
    return probing;
  };
}

/** A relay database file that cannot be made or is not a database: a start failure with its code and hint. */
export class DatabaseFileError extends Error {
  constructor(
    readonly code:
      | 'DB_FILE_UNWRITABLE'
      | 'DB_FILE_MALFORMED'
      | 'DB_SCHEMA_BEHIND'
      | 'DB_NOT_A_RELAY_DATABASE',
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'DatabaseFileError';
  }
}

/**
 * Make the relay's database file (or replica) readable and writable by its owner only (0600), its folder
 * made on first use (`file:.data/relay/history.db` on a fresh checkout): it holds API-key hashes,
 * Idempotency-Keys and the prompts of requests not published yet. SQLite gives its `-wal` and `-shm` files
 * the database file's mode. A file that was there is set to 0600 too when this user owns it (one another
 * user made is left as it is, rather than fail the start).
 */
export function ownerOnlyDatabase(path: string): void {
  const abs = resolve(path);
  try {
    mkdirSync(dirname(abs), { recursive: true });
    closeSync(openSync(abs, 'a', 0o600));
  } catch (e) {
    throw new DatabaseFileError(
      'DB_FILE_UNWRITABLE',
      `the database file ${abs} cannot be made or written (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      'pass a --db file:PATH in a folder this user may write',
    );
  }
  try {
    chmodSync(abs, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
  }
}

/**
 * Set an embedded replica's file and the files libSQL keeps beside it (its WAL, shared memory, sync
 * metadata) to 0600, those that exist and this user owns.
 */
function ownerOnlyFiles(path: string): void {
  const abs = resolve(path);
  for (const f of replicaFiles(abs)) {
    try {
      chmodSync(f, 0o600);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EPERM') throw e;
    }
  }
}

/** What `openHistory` takes beyond the database: for an embedded replica, how it is kept. */
export interface OpenHistoryOptions {
  /** Told of each replica made again while the relay runs (its broken one moved aside). */
  onReplicaRebuilt?: (r: ReplicaRebuilt) => void;
  /** Least time between two such rebuilds (default `REPLICA_REBUILD_INTERVAL_MS`). */
  replicaRebuildIntervalMs?: number;
  /** How often the replica's sync is tried from the traffic (default `REPLICA_SYNC_CHECK_MS`). */
  replicaSyncCheckMs?: number;
  /**
   * For a command that only reads (`keys list`, `history prune --dry-run`): nothing is written (no
   * migration, no file mode, no journal mode), and a database that lacks a migration of this code is
   * refused (`DB_SCHEMA_BEHIND`) rather than migrated behind the back of the relays running on it.
   */
  readOnly?: boolean;
}

/**
 * The history database, migrated. With `replicaPath`, an embedded replica of `dbUrl` (a libSQL
 * server): reads are served from the local file, writes (and the reads inside a write transaction)
 * go to the server and are read back at once; what other relays write arrives every `replicaSyncMs`.
 * The replica is brought up to date before the migrations run, so they see the server's schema. One
 * that breaks while the relay runs is made again from the server (`ReplicaKeeper`, `o`).
 */
export async function openHistory(
  dbUrl: string,
  authToken?: string,
  replicaPath?: string,
  replicaSyncMs = DEFAULT_REPLICA_SYNC_MS,
  serverTimeoutMs = SERVER_REQUEST_TIMEOUT_MS,
  o: OpenHistoryOptions = {},
) {
  if (replicaPath !== undefined && !(replicaSyncMs > 0)) {
    throw new RangeError('replicaSyncMs must be a positive number of milliseconds');
  }
  // A database file's folder is made on first use (`file:.data/relay/history.db` on a fresh checkout).
  const localFile = replicaPath ?? (isLocalFile(dbUrl) ? expandConfig({ url: dbUrl }, false).path : null);
  // A database file is made 0600 before it is opened; a replica's (which libSQL must create itself, as
  // it refuses to sync into a file it did not make) once it is synced, with the files beside it.
  if (replicaPath !== undefined) mkdirSync(dirname(resolve(replicaPath)), { recursive: true });
  else if (localFile && !o.readOnly) ownerOnlyDatabase(localFile);
  // A replica's file is only a copy of the server's database: one that is no longer a database (libSQL
  // left it malformed once the server compacted its log under a sync) is moved aside and made again,
  // rather than end every start with "database disk image is malformed".
  let rebuiltReplica: string | undefined;
  let opened: Client;
  if (replicaPath) {
    // Made (libSQL syncs it as it makes the client), synced, and its schema read (a sync finding nothing
    // new to apply reads nothing of the file).
    const openSynced = async () => {
      const c = createClient({
        url: `file:${replicaPath}`,
        syncUrl: dbUrl,
        syncInterval: replicaSyncMs / 1000,
        readYourWrites: true,
        ...(authToken ? { authToken } : {}),
      });
      try {
        await c.sync();
        await c.execute('SELECT count(*) FROM sqlite_master');
      } catch (e) {
        c.close();
        throw e;
      }
      ownerOnlyFiles(replicaPath);
      return c;
    };
    let first: Client;
    // The replica's sync metadata without its database file (the file removed by hand, or by a cleaner of
    // the folder): libSQL would take the empty file it makes for one already at the metadata's frame, and
    // read nothing of the server's history. What is left is moved aside, and the replica made again.
    const [replicaFile, ...beside] = replicaFiles(resolve(replicaPath));
    if (!existsSync(replicaFile as string) && beside.some((f) => existsSync(f))) {
      rebuiltReplica = moveAside(replicaPath);
    }
    try {
      first = await openSynced();
    } catch (e) {
      if (replicaBrokenCause(e) === undefined) throw e;
      rebuiltReplica = moveAside(replicaPath);
      first = await openSynced();
    }
    opened = new ReplicaKeeper(first, {
      path: replicaPath,
      open: openSynced,
      ...(o.onReplicaRebuilt ? { onRebuilt: o.onReplicaRebuilt } : {}),
      ...(o.replicaRebuildIntervalMs !== undefined ? { rebuildIntervalMs: o.replicaRebuildIntervalMs } : {}),
      ...(o.replicaSyncCheckMs !== undefined ? { syncCheckMs: o.replicaSyncCheckMs } : {}),
    });
  } else {
    opened = createClient({
      url: dbUrl,
      timeout: BUSY_TIMEOUT_MS,
      ...(authToken ? { authToken } : {}),
      // A server that never answers fails the request (as STORE_UNAVAILABLE) instead of holding it.
      ...(localFile ? {} : { fetch: boundedFetch(serverTimeoutMs) }),
    });
  }
  // This process's write transactions take turns, whatever the database: two of them would otherwise
  // meet as two connections or streams (SQLITE_BUSY), or, on a client of one connection (a replica,
  // `:memory:`), as TRANSACTION_ACTIVE. See SerializedWritesClient.
  const oneConnection = replicaPath !== undefined || dbUrl.includes(':memory:');
  const client = new SerializedWritesClient(opened, { oneConnection });
  // A local file runs in WAL mode: one fsync per commit (synchronous stays FULL, so an acknowledged
  // request survives power loss too), readers never block the writer; about 2.5x the accepted requests/s
  // of the rollback journal (edge/bench). The mode is stored in the file.
  if (!replicaPath && dbUrl.startsWith('file:')) {
    try {
      // Read only: the mode stays as it is, and the same read says whether the file is a database.
      await client.execute(o.readOnly ? 'PRAGMA journal_mode' : 'PRAGMA journal_mode=WAL');
    } catch (e) {
      client.close();
      // Another file at that path (a file that is not SQLite, or encrypted): said as such.
      if (!/SQLITE_NOTADB|file is not a database/i.test(String((e as Error)?.message ?? e))) throw e;
      throw new DatabaseFileError(
        'DB_FILE_MALFORMED',
        `${localFile ?? dbUrl} is not a SQLite database`,
        'pass the --db of the relay database, or a new path for a new one',
      );
    }
  }
  const migrated = o.readOnly ? [] : await applyMigrations(client, MIGRATIONS);
  // What the database lacks (read only: refused) and what a newer relay applied (the relay says so).
  const state = await migrationState(client, MIGRATIONS);
  if (state.missing.length > 0) {
    client.close();
    const where = localFile ?? redactDbUrl(dbUrl);
    throw state.missing.length === MIGRATIONS.length
      ? new DatabaseFileError(
          'DB_NOT_A_RELAY_DATABASE',
          `${where} holds no relay history (none of its migrations)`,
          "pass the --db of the relay's database",
        )
      : new DatabaseFileError(
          'DB_SCHEMA_BEHIND',
          `${where} lacks ${state.missing.length} migration(s) of this synod-relay (${state.missing.join(', ')}); a command that only reads does not migrate it`,
          'start this version of the relay on it once (it migrates the database), or use the synod-relay the relays on it run',
        );
  }
  // A local file (not a replica, whose file the client manages) is checked whenever health is asked.
  const checkFile = !replicaPath && localFile ? databaseFileCheck(localFile) : undefined;
  const store = new HistoryStore(drizzle(client, { schema: historySchema }), checkFile);
  // A replica's reads come from its file: whether its writes can reach the primary is asked apart.
  const primaryHealth = replicaPath ? primaryHealthCheck(dbUrl, authToken) : undefined;
  return {
    client,
    store,
    checkFile,
    primaryHealth,
    ...(opened instanceof ReplicaKeeper ? { replica: opened } : {}),
    ...(rebuiltReplica ? { rebuiltReplica } : {}),
    /**
     * The migrations this open applied (their tags, oldest first), the schema's last one this code knows,
     * and how many the database records past it (a newer relay migrated it).
     */
    migrations: { applied: migrated, schema: MIGRATIONS.at(-1)?.tag ?? null, newer: state.newer },
  };
}
