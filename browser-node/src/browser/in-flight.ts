import { type LifecycleState, restoreState } from '@synod/shared';
import type { MachineStore, StoredMachine } from '../node/machine-store.ts';

/**
 * A tab's in-flight work across a reload. The node machines of requests this tab took (inferring, or
 * committed and holding the reveal material until the seal) are in its IndexedDB store; only a serving
 * driver can carry them on, and a driver restarted as a follower cannot step them at all.
 */

/** Unfinished node machines of `owner` whose request can still be revealed at `now`. */
export async function inFlightNodeWork(store: MachineStore, owner: string, now: number): Promise<number> {
  let n = 0;
  for (const row of await store.load(owner)) {
    const s = parsed(row);
    if (s === null || s.role !== 'node' || s.outcome !== null || s.request === null) continue;
    const request = s.request.packet.body;
    // The seal comes by createdAt + maxTimeMs at the latest, and the reveal window runs from it.
    if (now < request.createdAt + request.frame.maxTimeMs + request.frame.revealWindowMs) n++;
  }
  return n;
}

/**
 * The store as a follower driver sees it: without node machines, which it cannot step (they stay
 * stored, for the serving driver that follows).
 */
export class FollowerStoreView implements MachineStore {
  readonly #store: MachineStore;

  constructor(store: MachineStore) {
    this.#store = store;
  }

  async load(owner: string): Promise<StoredMachine[]> {
    return (await this.#store.load(owner)).filter((row) => parsed(row)?.role !== 'node');
  }

  save(owner: string, requestId: string, state: string, now: number): Promise<void> {
    return this.#store.save(owner, requestId, state, now);
  }

  delete(owner: string, requestId: string): Promise<void> {
    return this.#store.delete(owner, requestId);
  }

  /** The underlying store stays open: the browser node closes it. */
  async close(): Promise<void> {}
}

function parsed(row: StoredMachine): LifecycleState | null {
  try {
    return restoreState(row.state);
  } catch {
    // The driver drops unreadable states itself (with a warning) when it restores.
    return null;
  }
}
