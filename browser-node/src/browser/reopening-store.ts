import { type MachineStore, MemoryMachineStore, type StoredMachine } from '../node/machine-store.ts';
import { IdbMachineStore } from '../node/machine-store-idb.ts';

/**
 * The tab's machine store (IndexedDB), reopened when the browser closes the connection under it: the
 * site's data cleared by the contributor, the database deleted. An `IdbMachineStore` keeps its
 * connection, and every transaction on one the browser has closed fails (InvalidStateError, "the
 * database connection is closing"), so the node would fail every step, and serve nothing, until a
 * reload. Here such a failure opens the database again (created afresh if it was deleted) and the call
 * is tried once more on it.
 */
export class ReopeningIdbStore implements MachineStore {
  readonly #name: string | undefined;
  #store: IdbMachineStore;
  #closed = false;

  constructor(name?: string) {
    this.#name = name;
    this.#store = this.#open();
  }

  load(owner: string): Promise<StoredMachine[]> {
    return this.#run((s) => s.load(owner));
  }

  save(owner: string, requestId: string, state: string, now: number): Promise<void> {
    return this.#run((s) => s.save(owner, requestId, state, now));
  }

  delete(owner: string, requestId: string): Promise<void> {
    return this.#run((s) => s.delete(owner, requestId));
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#store.close();
  }

  #open(): IdbMachineStore {
    return new IdbMachineStore(this.#name === undefined ? {} : { name: this.#name });
  }

  async #run<T>(op: (store: IdbMachineStore) => Promise<T>): Promise<T> {
    const store = this.#store;
    try {
      return await op(store);
    } catch (e) {
      if (this.#closed || !(e instanceof DOMException && e.name === 'InvalidStateError')) throw e;
      // Concurrent calls that failed on the same closed connection reopen it once.
      if (this.#store === store) {
        void store.close().catch(() => {});
        this.#store = this.#open();
      }
      return op(this.#store);
    }
  }
}

/** Where a tab keeps its machines: IndexedDB, or memory when the browser gives the page none. */
export interface TabStore {
  store: MachineStore;
  /** Whether a reload keeps them (IndexedDB). */
  persistent: boolean;
  /** Why IndexedDB could not be used, when it could not. */
  reason: string | null;
}

/**
 * The tab's machine store: IndexedDB (reopened if the browser closes it), opened and read once here, so
 * a browser that gives the page none (no `indexedDB`, a private window that refuses to open one,
 * storage blocked for the site) is found out now. Then the machines are kept in memory: the tab can
 * serve all the same, but a reload loses the requests in flight (they are withheld, never signed
 * twice: a reloaded tab does not know them, and takes no request twice).
 */
export async function openTabStore(name: string | undefined, owner: string): Promise<TabStore> {
  let store: ReopeningIdbStore | null = null;
  try {
    store = new ReopeningIdbStore(name);
    await store.load(owner);
    return { store, persistent: true, reason: null };
  } catch (e) {
    await store?.close().catch(() => {});
    return {
      store: new MemoryMachineStore(),
      persistent: false,
      reason: e instanceof Error ? e.message : String(e),
    };
  }
}
