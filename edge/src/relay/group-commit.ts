import type { Admission, AdmissionOutcome } from '../store/intake-store.ts';

/** Writes one batch of admissions in one transaction (`IntakeStore.admit`, bound to a coordinator). */
export type AdmitBatch = (batch: readonly Admission[]) => Promise<AdmissionOutcome[]>;

export interface GroupCommitOptions {
  /** Most admissions in one transaction. Default 512. */
  maxBatch?: number;
  /**
   * Runs a flush after the current event-loop turn, so every request parsed in that turn joins it.
   * Default: `setImmediate` where it exists (Bun, Node), else `setTimeout(0)`.
   */
  defer?: (run: () => void) => void;
}

interface Waiting {
  admission: Admission;
  resolve: (o: AdmissionOutcome) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit of the accept path: every admission that arrives while a batch is being written waits
 * for the next batch, and each batch is one transaction (one fsync) however many requests it holds.
 * An idle relay writes a request alone, at once; a loaded one writes hundreds per commit. Each caller's
 * promise settles only after its batch committed (or failed: then every admission of that batch is
 * rejected with the same error and none of them was written, the transaction being all or nothing).
 * Batches are written one at a time, in arrival order.
 */
export class GroupCommit {
  #waiting: Waiting[] = [];
  #flushing = false;
  #scheduled = false;
  readonly #maxBatch: number;
  readonly #defer: (run: () => void) => void;
  #stats = { batches: 0, admissions: 0, largest: 0 };

  constructor(
    private readonly write: AdmitBatch,
    o: GroupCommitOptions = {},
  ) {
    this.#maxBatch = o.maxBatch ?? 512;
    const g = globalThis as { setImmediate?: (f: () => void) => unknown };
    this.#defer =
      o.defer ?? (g.setImmediate ? (f) => void g.setImmediate?.(f) : (f) => void setTimeout(f, 0));
  }

  admit(admission: Admission): Promise<AdmissionOutcome> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ admission, resolve, reject });
      this.#schedule();
    });
  }

  /** Batches written, admissions in them, and the largest batch so far. */
  stats(): { batches: number; admissions: number; largest: number } {
    return { ...this.#stats };
  }

  #schedule(): void {
    if (this.#flushing || this.#scheduled) return;
    this.#scheduled = true;
    this.#defer(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting.splice(0, this.#maxBatch);
        let outcomes: AdmissionOutcome[];
        try {
          outcomes = await this.write(batch.map((w) => w.admission));
          if (outcomes.length !== batch.length) {
            throw new Error(`a batch of ${batch.length} got ${outcomes.length} outcomes`);
          }
        } catch (e) {
          for (const w of batch) w.reject(e);
          continue;
        }
        this.#stats.batches++;
        this.#stats.admissions += batch.length;
        this.#stats.largest = Math.max(this.#stats.largest, batch.length);
        batch.forEach((w, i) => {
          w.resolve(outcomes[i] as AdmissionOutcome);
        });
      }
    } finally {
      this.#flushing = false;
    }
  }
}
