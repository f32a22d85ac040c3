import type { Client } from '@libsql/client';
import type { MachineStore, StoredMachine } from './machine-store.ts';

/**
 * Lifecycle machines in libSQL: a headless node's own file, or the relay's history database (two
 * relays over one database each restore only their own machines: rows are keyed by owner).
 */
export class LibsqlMachineStore implements MachineStore {
  #ready: Promise<void> | undefined;

  constructor(private readonly client: Client) {}

  #init(): Promise<void> {
    this.#ready ??= this.client
      .execute(
        `CREATE TABLE IF NOT EXISTS synod_machines (
          owner TEXT NOT NULL,
          request_id TEXT NOT NULL,
          state TEXT NOT NULL,
          updated_at INTEGER NOT NULL,
          PRIMARY KEY (owner, request_id)
        )`,
      )
      .then(() => undefined);
    return this.#ready;
  }

  async load(owner: string): Promise<StoredMachine[]> {
    await this.#init();
    const r = await this.client.execute({
      sql: 'SELECT request_id, state FROM synod_machines WHERE owner = ? ORDER BY updated_at',
      args: [owner],
    });
    return r.rows.map((row) => ({ requestId: String(row['request_id']), state: String(row['state']) }));
  }

  async save(owner: string, requestId: string, state: string, now: number): Promise<void> {
    await this.#init();
    await this.client.execute({
      sql: `INSERT INTO synod_machines (owner, request_id, state, updated_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (owner, request_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
      args: [owner, requestId, state, now],
    });
  }

  async delete(owner: string, requestId: string): Promise<void> {
    await this.#init();
    await this.client.execute({
      sql: 'DELETE FROM synod_machines WHERE owner = ? AND request_id = ?',
      args: [owner, requestId],
    });
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
