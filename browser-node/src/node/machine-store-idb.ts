import type { MachineStore, StoredMachine } from './machine-store.ts';

/**
 * Lifecycle machines in IndexedDB: the browser node's store, so a reloaded tab resumes its in-flight
 * requests (or expires them cleanly). One object store, keyed by `[owner, requestId]`; an index on
 * `[owner, updatedAt]` gives `load()` the same order as the libSQL store (oldest write first).
 *
 * Every call is one IndexedDB transaction; `save` resolves when its transaction has committed, so a
 * `persist` effect really is a write-ahead barrier. Browser-only (uses `indexedDB`); a `factory` can be
 * passed for another IndexedDB implementation.
 */
export const IDB_MACHINE_STORE = 'machines';
const BY_OWNER = 'by-owner-updated';
const VERSION = 1;

interface Row {
  owner: string;
  requestId: string;
  state: string;
  updatedAt: number;
}

export interface IdbMachineStoreOptions {
  /** Database name. Default `synod-node`. */
  name?: string;
  factory?: IDBFactory;
}

export class IdbMachineStore implements MachineStore {
  readonly name: string;
  readonly #factory: IDBFactory;
  #db: Promise<IDBDatabase> | undefined;
  #closed = false;

  constructor(options: IdbMachineStoreOptions = {}) {
    this.name = options.name ?? 'synod-node';
    const factory = options.factory ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
    if (factory === undefined) throw new Error('IndexedDB is not available here: pass a factory');
    this.#factory = factory;
  }

  async load(owner: string): Promise<StoredMachine[]> {
    const rows = await this.#tx('readonly', (store) =>
      store.index(BY_OWNER).getAll(IDBKeyRange.bound([owner, -Infinity], [owner, Infinity])),
    );
    return (rows as Row[]).map((r) => ({ requestId: r.requestId, state: r.state }));
  }

  async save(owner: string, requestId: string, state: string, now: number): Promise<void> {
    const row: Row = { owner, requestId, state, updatedAt: now };
    await this.#tx('readwrite', (store) => store.put(row));
  }

  async delete(owner: string, requestId: string): Promise<void> {
    await this.#tx('readwrite', (store) => store.delete([owner, requestId]));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const db = this.#db;
    this.#db = undefined;
    if (db !== undefined) (await db.catch(() => null))?.close();
  }

  /** Delete the whole database (tests, "forget this node"). */
  static async destroy(name = 'synod-node', factory: IDBFactory = indexedDB): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const req = factory.deleteDatabase(name);
      req.onsuccess = () => resolve();
      req.onerror = () => reject(req.error);
      req.onblocked = () => resolve();
    });
  }

  #open(): Promise<IDBDatabase> {
    if (this.#closed) return Promise.reject(new Error('the machine store is closed'));
    this.#db ??= new Promise<IDBDatabase>((resolve, reject) => {
      const req = this.#factory.open(this.name, VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains(IDB_MACHINE_STORE)) {
          const store = db.createObjectStore(IDB_MACHINE_STORE, { keyPath: ['owner', 'requestId'] });
          store.createIndex(BY_OWNER, ['owner', 'updatedAt']);
        }
      };
      req.onsuccess = () => {
        const db = req.result;
        // Another tab upgrading the schema: let it, and reopen on the next call.
        db.onversionchange = () => {
          db.close();
          this.#db = undefined;
        };
        resolve(db);
      };
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error(`IndexedDB ${this.name} is blocked by another tab`));
    });
    return this.#db;
  }

  async #tx<T>(mode: IDBTransactionMode, op: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.#open();
    return new Promise<T>((resolve, reject) => {
      const tx = db.transaction(IDB_MACHINE_STORE, mode);
      const req = op(tx.objectStore(IDB_MACHINE_STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error ?? req.error);
      tx.onabort = () => reject(tx.error ?? new Error('the IndexedDB transaction was aborted'));
    });
  }
}
