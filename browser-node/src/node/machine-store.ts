/**
 * Where a node keeps its lifecycle machines between steps, so a restart resumes in-flight requests (or
 * expires them cleanly). One row per (owner node id, request id): the serialized machine state.
 * Implementations: `MemoryMachineStore` (ephemeral nodes and tests), `LibsqlMachineStore` (headless
 * nodes and relays, libSQL file or server; machine-store-libsql.ts), IndexedDB in the browser
 * (machine-store-idb.ts).
 */
export interface StoredMachine {
  requestId: string;
  state: string;
}

export interface MachineStore {
  /** Every machine saved by `owner`. */
  load(owner: string): Promise<StoredMachine[]>;
  save(owner: string, requestId: string, state: string, now: number): Promise<void>;
  delete(owner: string, requestId: string): Promise<void>;
  close(): Promise<void>;
}

export class MemoryMachineStore implements MachineStore {
  readonly #rows = new Map<string, Map<string, string>>();

  async load(owner: string): Promise<StoredMachine[]> {
    return [...(this.#rows.get(owner) ?? new Map<string, string>())].map(([requestId, state]) => ({
      requestId,
      state,
    }));
  }

  async save(owner: string, requestId: string, state: string): Promise<void> {
    let m = this.#rows.get(owner);
    if (!m) {
      m = new Map();
      this.#rows.set(owner, m);
    }
    m.set(requestId, state);
  }

  async delete(owner: string, requestId: string): Promise<void> {
    this.#rows.get(owner)?.delete(requestId);
  }

  async close(): Promise<void> {}
}
