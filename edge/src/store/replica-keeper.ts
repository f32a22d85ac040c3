/**
 * An embedded replica that is made again from its server when its file breaks, at the start or while
 * the relay runs, without a restart. Kept apart from open-history.ts, which opens it.
 */
import { renameSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type {
  Client,
  InArgs,
  InStatement,
  Replicated,
  ResultSet,
  Transaction,
  TransactionMode,
} from '@libsql/client';

/**
 * SQLite's words for a file that is not (or no longer) a sound database, and libSQL's for a replica whose
 * file could not take the server's frames (`Injector error`, or a sync's
 * `Replication(Injector(Sqlite(SqliteFailure(… "database disk image is malformed"))))`: its file or its
 * sync metadata broken). None of them is a server out of reach.
 */
const MALFORMED =
  /database disk image is malformed|SQLITE_CORRUPT|SQLITE_NOTADB|file is not a database|Injector error|without a wal_index/i;

/** How deep a chain of causes is followed (drizzle's query error wraps the client's). */
const MAX_DEPTH = 5;

/** The error in `e`'s chain of causes that says the replica's own file is broken, or undefined. */
export function replicaBrokenCause(e: unknown): Error | undefined {
  let at: unknown = e;
  for (let depth = 0; depth < MAX_DEPTH && at instanceof Error; depth++) {
    const code = (at as { code?: unknown }).code;
    if (code === 'REPLICA_BROKEN') return at;
    if (MALFORMED.test(at.message) || (typeof code === 'string' && MALFORMED.test(code))) return at;
    at = at.cause;
  }
  return undefined;
}

/** The files libSQL keeps for an embedded replica at `abs`: its database, WAL, shared memory, sync metadata. */
export function replicaFiles(abs: string): string[] {
  return [abs, `${abs}-wal`, `${abs}-shm`, `${abs}-info`, `${abs}-client_wal_index`];
}

/**
 * Move an embedded replica's file, and the files libSQL keeps beside it, aside (`<file>.malformed-<ms>`,
 * kept for a look) so that a new replica is made at its path. Returns the new name of the database
 * file, or of the first file beside it moved when it was not there (its sync metadata left alone), or
 * undefined when nothing was there.
 */
export function moveAside(path: string, now = Date.now()): string | undefined {
  const abs = resolve(path);
  const suffix = `.malformed-${now}`;
  // The first file moved (the database file when it was there): a name that exists.
  let first: string | undefined;
  for (const f of replicaFiles(abs)) {
    try {
      renameSync(f, `${f}${suffix}`);
      first ??= `${f}${suffix}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return first;
}

/**
 * The embedded replica is broken (its file no longer a sound database, or it can take no more of the
 * server's frames) and is being made again from the server: a request may well succeed if retried
 * shortly (503 STORE_UNAVAILABLE, see `storeUnreachableCause`).
 */
export class ReplicaBrokenError extends Error {
  readonly code = 'REPLICA_BROKEN';
  constructor(cause: unknown) {
    super(
      `the embedded replica is broken (${String((cause as Error)?.message ?? cause).slice(0, 200)}): it is being made again from the server`,
      { cause },
    );
    this.name = 'ReplicaBrokenError';
  }
}

/**
 * Which file is at `path` now (its device and inode), or undefined when none is. A replica's file removed
 * while libSQL holds it open is not seen by libSQL: it goes on with the removed file, or a new empty one
 * it makes at the path, and its reads stop following the server without any error.
 */
export function fileIdentity(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** A replica made again while the relay ran: where the broken one went, and what said it was broken. */
export interface ReplicaRebuilt {
  movedTo: string | undefined;
  cause: string;
}

/** Least time between two rebuilds of a replica (the first one, once it breaks, is at once). */
export const REPLICA_REBUILD_INTERVAL_MS = 10_000;

/**
 * How often the replica's own sync is tried, from the traffic: libSQL reports none of its periodic syncs'
 * failures, and a replica whose file broke under a sync can go on answering reads, stale.
 */
export const REPLICA_SYNC_CHECK_MS = 5_000;

export interface ReplicaKeeperOptions {
  /** The replica's file (`--replica`). */
  path: string;
  /** Opens the replica at `path`, synced from the server; throws when it cannot (the server out of reach). */
  open: () => Promise<Client>;
  rebuildIntervalMs?: number;
  syncCheckMs?: number;
  onRebuilt?: (r: ReplicaRebuilt) => void;
  now?: () => number;
}

/**
 * The libSQL client of an embedded replica, made again when it breaks. An operation failing with a
 * broken-replica error (`replicaBrokenCause`), a sync tried now and then (`syncCheckMs`), or its file
 * found removed or replaced (`fileIdentity`, as often) marks it broken: that operation fails with `ReplicaBrokenError`, and the next one first moves the replica's
 * files aside and opens a fresh replica at its path, synced from the server (at most once per
 * `rebuildIntervalMs`; until one succeeds, operations fail with `ReplicaBrokenError`). A server out of
 * reach is not a broken replica: its errors pass through as they are, and nothing is made again.
 *
 * Meant to sit under a `SerializedWritesClient` of one connection, so that no operation nor transaction
 * is under way on the replica when it is replaced (its `sync()` never replaces it).
 */
export class ReplicaKeeper implements Client {
  #current: Client | undefined;
  #broken: Error | undefined;
  #lastAttempt = Number.NEGATIVE_INFINITY;
  #lastCheck: number;
  /** The replica's file as it was opened (`fileIdentity`), checked as often as its sync. */
  #identity: string | undefined;
  #lastFileCheck: number;
  #checking: Promise<void> | undefined;
  #rebuilding: Promise<void> | undefined;
  #closed = false;
  readonly #o: Required<Omit<ReplicaKeeperOptions, 'onRebuilt'>> & Pick<ReplicaKeeperOptions, 'onRebuilt'>;

  /** `first`: the replica as opened at the start. */
  constructor(first: Client, o: ReplicaKeeperOptions) {
    this.#current = first;
    this.#o = {
      rebuildIntervalMs: REPLICA_REBUILD_INTERVAL_MS,
      syncCheckMs: REPLICA_SYNC_CHECK_MS,
      now: Date.now,
      ...o,
    };
    this.#lastCheck = this.#o.now();
    this.#lastFileCheck = this.#lastCheck;
    this.#identity = fileIdentity(resolve(o.path));
  }

  /** The replica in use now (a new one after each rebuild), undefined while a rebuild has not succeeded. */
  get current(): Client | undefined {
    return this.#current;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get protocol(): string {
    return 'file';
  }

  #fail(e: unknown): never {
    const broken = replicaBrokenCause(e);
    if (broken === undefined) throw e;
    this.#broken ??= broken;
    throw e instanceof ReplicaBrokenError ? e : new ReplicaBrokenError(e);
  }

  async #rebuild(): Promise<void> {
    const cause = this.#broken as Error;
    this.#lastAttempt = this.#o.now();
    // A sync check still under way ends before its client is closed.
    await this.#checking;
    this.#current?.close();
    this.#current = undefined;
    const movedTo = moveAside(this.#o.path, this.#o.now());
    try {
      this.#current = await this.#o.open();
    } catch (e) {
      throw new ReplicaBrokenError(e);
    }
    this.#broken = undefined;
    this.#lastCheck = this.#o.now();
    this.#lastFileCheck = this.#lastCheck;
    this.#identity = fileIdentity(resolve(this.#o.path));
    this.#o.onRebuilt?.({ movedTo, cause: cause.message });
  }

  /** The replica to run an operation on: made again first if it broke (and may be made again now). */
  async #client(): Promise<Client> {
    this.#checkFile();
    if (!this.#closed && this.#broken && this.#o.now() - this.#lastAttempt >= this.#o.rebuildIntervalMs) {
      this.#rebuilding ??= this.#rebuild().finally(() => {
        this.#rebuilding = undefined;
      });
      await this.#rebuilding;
    }
    const c = this.#current;
    if (c === undefined) throw new ReplicaBrokenError(this.#broken);
    this.#checkSync(c);
    return c;
  }

  /**
   * Whether the replica's file is still the one opened, at most once per `syncCheckMs`: one removed or
   * replaced (by hand, or by a cleaner of its folder) marks the replica broken, to be made again.
   */
  #checkFile(): void {
    if (this.#closed || this.#broken || this.#current === undefined) return;
    if (this.#o.now() - this.#lastFileCheck < this.#o.syncCheckMs) return;
    this.#lastFileCheck = this.#o.now();
    const abs = resolve(this.#o.path);
    const now = fileIdentity(abs);
    if (now === this.#identity) return;
    this.#broken = new Error(
      now === undefined
        ? `the replica's file ${abs} was removed while the relay ran`
        : `the replica's file ${abs} was removed or replaced while the relay ran (another file is at its path)`,
    );
  }

  /** Try the replica's sync, in the background, at most once per `syncCheckMs`: a broken one is marked. */
  #checkSync(c: Client): void {
    if (this.#closed || this.#checking || this.#o.now() - this.#lastCheck < this.#o.syncCheckMs) return;
    this.#lastCheck = this.#o.now();
    this.#checking = c
      .sync()
      .then(
        () => undefined,
        (e: unknown) => {
          const broken = replicaBrokenCause(e);
          if (broken && c === this.#current) this.#broken ??= broken;
        },
      )
      .finally(() => {
        this.#checking = undefined;
      });
  }

  async #run<T>(op: (c: Client) => Promise<T>): Promise<T> {
    const c = await this.#client();
    try {
      return await op(c);
    } catch (e) {
      return this.#fail(e);
    }
  }

  execute(stmt: InStatement): Promise<ResultSet>;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  execute(stmt: InStatement | string, args?: InArgs): Promise<ResultSet> {
    return this.#run((c) => (typeof stmt === 'string' ? c.execute(stmt, args) : c.execute(stmt)));
  }

  batch(stmts: Array<InStatement | [string, InArgs?]>, mode?: TransactionMode): Promise<ResultSet[]> {
    return this.#run((c) => c.batch(stmts, mode));
  }

  migrate(stmts: InStatement[]): Promise<ResultSet[]> {
    return this.#run((c) => c.migrate(stmts));
  }

  executeMultiple(sql: string): Promise<void> {
    return this.#run((c) => c.executeMultiple(sql));
  }

  async transaction(mode?: TransactionMode): Promise<Transaction> {
    const tx = await this.#run((c) => c.transaction(mode));
    return new WatchedTransaction(tx, (e) => this.#fail(e));
  }

  /** The replica's sync now (never makes it again: it may run beside an operation; the next one does). */
  async sync(): Promise<Replicated> {
    const c = this.#current;
    if (c === undefined) throw new ReplicaBrokenError(this.#broken);
    try {
      return await c.sync();
    } catch (e) {
      return this.#fail(e);
    }
  }

  close(): void {
    this.#closed = true;
    this.#current?.close();
  }

  reconnect(): void {
    this.#current?.reconnect();
  }
}

/** A transaction of the replica whose broken-replica errors mark it broken (made again after it ends). */
class WatchedTransaction implements Transaction {
  constructor(
    private readonly tx: Transaction,
    private readonly fail: (e: unknown) => never,
  ) {}

  get closed(): boolean {
    return this.tx.closed;
  }

  #watch<T>(p: Promise<T>): Promise<T> {
    return p.catch(this.fail);
  }

  execute(stmt: InStatement): Promise<ResultSet> {
    return this.#watch(this.tx.execute(stmt));
  }

  batch(stmts: InStatement[]): Promise<ResultSet[]> {
    return this.#watch(this.tx.batch(stmts));
  }

  executeMultiple(sql: string): Promise<void> {
    return this.#watch(this.tx.executeMultiple(sql));
  }

  commit(): Promise<void> {
    return this.#watch(this.tx.commit());
  }

  rollback(): Promise<void> {
    return this.#watch(this.tx.rollback());
  }

  close(): void {
    this.tx.close();
  }
}
