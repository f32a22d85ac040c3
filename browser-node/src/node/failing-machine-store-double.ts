import { MemoryMachineStore } from './machine-store.ts';

/**
 * For tests: a test double of a machine store whose writes fail on demand, as a database under load
 * refuses them (`SQLITE_BUSY`) or a server that went away. Rows are kept in memory (a
 * `MemoryMachineStore`); `failSaves(n, when)` makes the next `n` saves whose state `when` picks throw
 * (`Infinity`: every one from now on), `heal()` ends that. `failed` counts the writes it refused.
 */
export class FailingMachineStoreDouble extends MemoryMachineStore {
  #left = 0;
  #when: (state: string) => boolean = () => true;
  failed = 0;

  failSaves(n: number, when: (state: string) => boolean = () => true): void {
    this.#left = n;
    this.#when = when;
  }

  heal(): void {
    this.#left = 0;
  }

  override async save(owner: string, requestId: string, state: string): Promise<void> {
    if (this.#left > 0 && this.#when(state)) {
      this.#left--;
      this.failed++;
      throw new Error('SQLITE_BUSY: database is locked (FailingMachineStoreDouble)');
    }
    await super.save(owner, requestId, state);
  }
}
