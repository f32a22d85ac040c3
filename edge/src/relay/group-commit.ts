import type { Admission, AdmissionOutcome } from '../store/intake-store.ts';

/**
 * Writes one batch of admissions in one transaction (`IntakeStore.admit`, bound to a coordinator; on
 * the writer thread, `SyncIntakeWriter.admit` over `IntakeEntry`s).
 */
export type AdmitBatch<T = Admission> = (batch: readonly T[]) => Promise<AdmissionOutcome[]>;

export interface GroupCommitOptions {
  /** Most admissions in one batch. Default 512. */
  maxBatch?: number;
  /**
   * Hand a batch over as soon as this many admissions wait, without waiting for the end of the turn.
   * Default `maxBatch`.
   */
  flushAt?: number;
  /**
   * Hand the next batch over while earlier ones are still being written. Only for a writer that
   * writes what it is given in order on its own (the admission writer thread). Default false: one
   * batch at a time, and what arrives meanwhile joins the next.
   */
  pipelined?: boolean;
  /**
   * Runs a flush after the current event-loop turn, so every request parsed in that turn joins it.
   * Default: `setImmediate` where it exists (Bun, Node), else `setTimeout(0)`.
   */
  defer?: (run: () => void) => void;
}

interface Waiting<T> {
  admission: T;
  resolve: (o: AdmissionOutcome) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit of the accept path: admissions are handed to the writer in batches, and each batch is
 * one transaction (one fsync) however many requests it holds. An idle relay writes a request alone, at
 * once; a loaded one writes hundreds per commit. Each caller's promise settles only after its batch
 * committed (or failed: then every admission of that batch is rejected with the same error and none of
 * them was written, the transaction being all or nothing).
 *
 * By default batches are written one at a time, in arrival order, and everything that arrives while one
 * is written waits for the next. `pipelined` (with `flushAt`) instead hands batches over as they fill,
 * for a writer on another thread that batches again on its side: the HTTP thread then goes on parsing
 * while the writer commits.
 */
export class GroupCommit<T = Admission> {
  #waiting: Waiting<T>[] = [];
  #writing = 0;
  #scheduled = false;
  readonly #maxBatch: number;
  readonly #flushAt: number;
  readonly #pipelined: boolean;
  readonly #defer: (run: () => void) => void;
  #stats = { batches: 0, admissions: 0, largest: 0 };

  constructor(
    private readonly write: AdmitBatch<T>,
    o: GroupCommitOptions = {},
  ) {
    this.#maxBatch = o.maxBatch ?? 512;
    this.#flushAt = Math.min(o.flushAt ?? this.#maxBatch, this.#maxBatch);
    this.#pipelined = o.pipelined ?? false;
    const g = globalThis as { setImmediate?: (f: () => void) => unknown };
    this.#defer =
      o.defer ?? (g.setImmediate ? (f) => void g.setImmediate?.(f) : (f) => void setTimeout(f, 0));
  }

  admit(admission: T): Promise<AdmissionOutcome> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ admission, resolve, reject });
      if (this.#waiting.length >= this.#flushAt && this.#canWrite()) this.#flush();
      else this.#schedule();
    });
  }

  /** Batches written, admissions in them, and the largest batch so far. */
  stats(): { batches: number; admissions: number; largest: number } {
    return { ...this.#stats };
  }

  #canWrite(): boolean {
    return this.#pipelined || this.#writing === 0;
  }

  #schedule(): void {
    if (this.#scheduled || !this.#canWrite()) return;
    this.#scheduled = true;
    this.#defer(() => {
      this.#scheduled = false;
      if (this.#canWrite()) this.#flush();
    });
  }

  /** Hand over what waits, in batches of at most maxBatch. */
  #flush(): void {
    while (this.#waiting.length > 0 && this.#canWrite()) {
      void this.#writeBatch(this.#waiting.splice(0, this.#maxBatch));
    }
  }

  async #writeBatch(batch: Waiting<T>[]): Promise<void> {
    this.#writing++;
    try {
      const outcomes = await this.write(batch.map((w) => w.admission));
      if (outcomes.length !== batch.length) {
        throw new Error(`a batch of ${batch.length} got ${outcomes.length} outcomes`);
      }
      this.#stats.batches++;
      this.#stats.admissions += batch.length;
      this.#stats.largest = Math.max(this.#stats.largest, batch.length);
      batch.forEach((w, i) => {
        w.resolve(outcomes[i] as AdmissionOutcome);
      });
    } catch (e) {
      for (const w of batch) w.reject(e);
    } finally {
      this.#writing--;
      if (this.#waiting.length > 0) this.#schedule();
    }
  }
}
