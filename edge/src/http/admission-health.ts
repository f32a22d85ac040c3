import type { Admitter } from '../relay/network.ts';
import { publicReason } from './errors.ts';

/** Why new requests are not being stored: the latest admission's failure. */
export interface AdmissionFailure {
  /** When it failed (the app's clock). */
  at: number;
  reason: string;
}

/**
 * How long an admission that could not be stored keeps `/healthz` at 503 (unless one is stored since):
 * long enough for a load balancer to see it, short enough that a relay drained of traffic is asked
 * again soon (nothing but an admission would clear it).
 */
export const ADMISSION_FAILURE_HOLD_MS = 5_000;

/**
 * Whether the relay is storing new requests, as its latest admission went: a database that still
 * answers reads while it refuses every write (a full disk, a database file gone) is down for what a
 * relay is for. `watch` wraps the app's admitter; `/healthz` reports `failing()`: the latest failure,
 * for `ADMISSION_FAILURE_HOLD_MS` after it, unless an admission has been stored since.
 */
export class AdmissionHealth {
  readonly #now: () => number;
  #failure: AdmissionFailure | null = null;
  #failures = 0;

  constructor(now: () => number) {
    this.#now = now;
  }

  watch(admitter: Admitter): Admitter {
    return {
      admit: async (admission) => {
        try {
          const outcome = await admitter.admit(admission);
          this.#failure = null;
          return outcome;
        } catch (e) {
          this.#failure = { at: this.#now(), reason: publicReason(e) };
          this.#failures++;
          throw e;
        }
      },
    };
  }

  /** Admissions that could not be stored, since the start (`synod_admission_failures_total`). */
  get failures(): number {
    return this.#failures;
  }

  /** The latest admission's failure while it holds, or null (one committed since, or none failed). */
  failing(): AdmissionFailure | null {
    const f = this.#failure;
    if (f !== null && this.#now() - f.at >= ADMISSION_FAILURE_HOLD_MS) this.#failure = null;
    return this.#failure;
  }
}
