import type {
  Client,
  InArgs,
  InStatement,
  Replicated,
  ResultSet,
  Transaction,
  TransactionMode,
} from '@libsql/client';
import { Mutex, type MutexInterface, withTimeout } from 'async-mutex';

/**
 * A write that waited too long for the process's write lock: a transaction was left open, or code
 * inside a transaction wrote through the client instead of the transaction (which could never go on).
 */
export class WriteLockTimeoutError extends Error {
  readonly code = 'WRITE_LOCK_TIMEOUT';
  constructor(readonly waitedMs: number) {
    super(`waited ${waitedMs} ms for the database write lock`);
    this.name = 'WriteLockTimeoutError';
  }
}

/** Rejection of a timed-out acquire (async-mutex hands back the error it was given; one is enough). */
const TIMED_OUT = new Error('write lock timed out');

/**
 * A statement that only reads (goes straight to the pool, never waits for the write lock): a SELECT, or
 * a WITH whose statement writes nothing (`IntakeStore.queued` is one). Anything else takes the lock.
 */
export function readsOnly(sql: string): boolean {
  if (/^\s*select\b/i.test(sql)) return true;
  return /^\s*with\b/i.test(sql) && !/\b(?:insert|update|delete|replace)\b/i.test(sql);
}

function sqlOf(stmt: InStatement | string): string {
  return typeof stmt === 'string' ? stmt : stmt.sql;
}

/**
 * One writer at a time within this process, whatever the database: a local file, a libSQL server, an
 * embedded replica.
 *
 * A write transaction holds its connection (a file client's pooled connection, a server's stream)
 * across `await`s. Two write transactions (or a transaction and a plain INSERT) of one process would
 * then meet as two connections: on a local file the second gets `SQLITE_BUSY` at once, or, with a busy
 * timeout, blocks the only thread until the timeout, since the first cannot finish while it waits; on a
 * server, one that read before it writes (a deferred transaction or batch) is refused `SQLITE_BUSY` when
 * it asks for the write lock another stream holds. Either database takes one writer at a time anyway,
 * so queueing them here costs no parallelism. So every write here (an `execute` that is not a SELECT,
 * `batch`, `migrate`, `executeMultiple`, a non-read transaction from begin to commit/rollback/close)
 * takes one FIFO lock first. Reads go straight through (in WAL mode a reader never waits for the
 * writer), except on a client of one connection (`oneConnection`: an embedded replica, `:memory:`),
 * where an open transaction holds the only connection and anything else fails `TRANSACTION_ACTIVE`: there
 * reads take the lock too.
 *
 * Other writers to the same database (the admission writer thread, a second relay) are separate
 * processes or threads: against them the connections' busy timeout (a file) or the server's lock queue
 * applies.
 */
export class SerializedWritesClient implements Client {
  readonly #lock: MutexInterface;
  readonly #timeoutMs: number;
  readonly #readsWait: boolean;

  /**
   * `lockTimeoutMs`: how long a write may wait for the lock before failing (default 30 s).
   * `oneConnection`: the client has a single connection (an embedded replica, `:memory:`): reads and
   * read transactions take the lock too.
   */
  constructor(
    readonly inner: Client,
    o: { lockTimeoutMs?: number; oneConnection?: boolean } = {},
  ) {
    this.#timeoutMs = o.lockTimeoutMs ?? 30_000;
    this.#readsWait = o.oneConnection ?? false;
    this.#lock = withTimeout(new Mutex(), this.#timeoutMs, TIMED_OUT);
  }

  async #acquire(): Promise<() => void> {
    try {
      return await this.#lock.acquire();
    } catch (e) {
      throw e === TIMED_OUT ? new WriteLockTimeoutError(this.#timeoutMs) : e;
    }
  }

  async #exclusive<T>(run: () => Promise<T>): Promise<T> {
    const release = await this.#acquire();
    try {
      return await run();
    } finally {
      release();
    }
  }

  get closed(): boolean {
    return this.inner.closed;
  }

  get protocol(): string {
    return this.inner.protocol;
  }

  execute(stmt: InStatement): Promise<ResultSet>;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  execute(stmt: InStatement | string, args?: InArgs): Promise<ResultSet> {
    const run = () => (typeof stmt === 'string' ? this.inner.execute(stmt, args) : this.inner.execute(stmt));
    return readsOnly(sqlOf(stmt)) && !this.#readsWait ? run() : this.#exclusive(run);
  }

  batch(stmts: Array<InStatement | [string, InArgs?]>, mode?: TransactionMode): Promise<ResultSet[]> {
    const run = () => this.inner.batch(stmts, mode);
    return mode === 'read' && !this.#readsWait ? run() : this.#exclusive(run);
  }

  migrate(stmts: InStatement[]): Promise<ResultSet[]> {
    return this.#exclusive(() => this.inner.migrate(stmts));
  }

  executeMultiple(sql: string): Promise<void> {
    return this.#exclusive(() => this.inner.executeMultiple(sql));
  }

  async transaction(mode: TransactionMode = 'write'): Promise<Transaction> {
    if (mode === 'read' && !this.#readsWait) return this.inner.transaction(mode);
    const release = await this.#acquire();
    try {
      return new LockedTransaction(await this.inner.transaction(mode), release);
    } catch (e) {
      release();
      throw e;
    }
  }

  sync(): Promise<Replicated> {
    return this.inner.sync();
  }

  close(): void {
    this.inner.close();
  }

  reconnect(): void {
    this.inner.reconnect();
  }
}

/** A transaction that gives the write lock back when it ends, however it ends. */
class LockedTransaction implements Transaction {
  #release: (() => void) | null;

  constructor(
    private readonly tx: Transaction,
    release: () => void,
  ) {
    this.#release = release;
  }

  get closed(): boolean {
    return this.tx.closed;
  }

  execute(stmt: InStatement): Promise<ResultSet> {
    return this.tx.execute(stmt);
  }

  batch(stmts: InStatement[]): Promise<ResultSet[]> {
    return this.tx.batch(stmts);
  }

  executeMultiple(sql: string): Promise<void> {
    return this.tx.executeMultiple(sql);
  }

  async commit(): Promise<void> {
    try {
      await this.tx.commit();
    } finally {
      this.#end();
    }
  }

  async rollback(): Promise<void> {
    try {
      await this.tx.rollback();
    } finally {
      this.#end();
    }
  }

  close(): void {
    try {
      this.tx.close();
    } finally {
      this.#end();
    }
  }

  #end(): void {
    const release = this.#release;
    this.#release = null;
    release?.();
  }
}
