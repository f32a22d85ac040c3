import type { InStatement, InValue } from '@libsql/client';
import { expandConfig } from '@libsql/core/config';
import Database from 'libsql';
import { type AdmissionOutcome, decideAndWrite, type IntakeEntry, type SqlRunner } from './intake-store.ts';

type Statement = ReturnType<Database.Database['prepare']>;

/** Statements kept prepared (the batch INSERTs differ by row count; a few dozen shapes recur). */
const PREPARED_LIMIT = 64;

/**
 * `IntakeStore.admit` on a synchronous libSQL connection of its own, for the admission writer thread:
 * the same decisions and statements (`decideAndWrite`), without the async client's per-statement
 * wrapping, and with each statement shape prepared once. Nothing else runs on that thread, so blocking
 * it for the length of a transaction is what it is for.
 */
export class SyncIntakeWriter {
  readonly #db: Database.Database;
  readonly #prepared = new Map<string, Statement>();
  readonly #runner: SqlRunner;

  /** Open a local database file (`file:` URL, already migrated). */
  constructor(url: string, busyTimeoutMs: number) {
    const { scheme, path } = expandConfig({ url }, false);
    if (scheme !== 'file' || path === '' || path.includes(':memory:')) {
      throw new TypeError(`the admission writer needs a local database file, not ${url}`);
    }
    this.#db = new Database(path, { timeout: busyTimeoutMs });
    this.#runner = {
      execute: async (stmt: InStatement) => {
        const { sql, args } = typeof stmt === 'string' ? { sql: stmt, args: [] } : stmt;
        const s = this.#statement(sql);
        const params = (Array.isArray(args) ? args : [args ?? []]) as InValue[];
        if (s.reader) return { rows: s.all(params) as Record<string, unknown>[] };
        s.run(params);
        return { rows: [] };
      },
    };
  }

  /** One write transaction for the batch: all of it is committed, or none (the error is rethrown). */
  async admit(batch: readonly IntakeEntry[], coordinator: string, now: number): Promise<AdmissionOutcome[]> {
    if (batch.length === 0) return [];
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const outcomes = await decideAndWrite(this.#runner, batch, coordinator, now);
      this.#db.exec('COMMIT');
      return outcomes;
    } catch (e) {
      try {
        if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      } catch {
        // SQLite already ended the transaction; the error that matters is the first one.
      }
      throw e;
    }
  }

  close(): void {
    this.#prepared.clear();
    this.#db.close();
  }

  #statement(sql: string): Statement {
    let s = this.#prepared.get(sql);
    if (s === undefined) {
      s = this.#db.prepare(sql);
      if (this.#prepared.size >= PREPARED_LIMIT) {
        const oldest = this.#prepared.keys().next().value;
        if (oldest !== undefined) this.#prepared.delete(oldest);
      }
      this.#prepared.set(sql, s);
    }
    return s;
  }
}
