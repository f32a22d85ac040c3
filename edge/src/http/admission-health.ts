import type { Admitter } from '../relay/network.ts';
import { publicReason } from './errors.ts';

/** Why new requests are not being stored: the latest admission's failure. */
export interface AdmissionFailure {
  /** When it failed (the app's clock). */
  at: number;
  reason: string;
  /** Set when the failure is the write /healthz tried itself (`failing`'s probe), not an admission's. */
  probe?: true;
}

/**
 * How long an admission that could not be stored keeps `/healthz` at 503 before the database is asked
 * again (unless one is stored since): past it, `/healthz` tries a write of its own (`failing`'s probe),
 * at most once per this interval, and holds the 503 for as long as that write fails too. A relay its load
 * balancer took out of rotation is sent no admission that could say the database takes writes again.
 */
export const ADMISSION_FAILURE_HOLD_MS = 5_000;

/**
 * Whether the relay is storing new requests, as its latest admission went: a database that still
 * answers reads while it refuses every write (a full disk, a database file gone) is down for what a
 * relay is for. `watch` wraps the app's admitter; `/healthz` reports `failing(probe)`: the latest
 * failure, held for `ADMISSION_FAILURE_HOLD_MS`, unless an admission has been stored since; then the
 * probe's write, which either clears it or holds it again.
 */
/**
 * How long `/healthz` waits for its write probe: a database server that takes the write and never
 * answers (an embedded replica's primary hung) fails it rather than hold `/healthz`.
 */
export const PROBE_TIMEOUT_MS = 2_000;

export class AdmissionHealth {
  readonly #now: () => number;
  #failure: AdmissionFailure | null = null;
  #failures = 0;
  #probing: Promise<void> | undefined;

  readonly #probeTimeoutMs: number;

  constructor(now: () => number, o: { probeTimeoutMs?: number } = {}) {
    this.#now = now;
    this.#probeTimeoutMs = o.probeTimeoutMs ?? PROBE_TIMEOUT_MS;
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

  /** `probe`, failed with a timeout past `#probeTimeoutMs`. */
  #bounded(probe: () => Promise<void>): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new Error(`PROBE_TIMEOUT: the write probe got no answer within ${this.#probeTimeoutMs} ms`)),
        this.#probeTimeoutMs,
      );
    });
    return Promise.race([probe(), timedOut]).finally(() => clearTimeout(timer));
  }

  /**
   * The latest failure while it holds, or null (an admission stored since, or none failed). Once a
   * failure has held `ADMISSION_FAILURE_HOLD_MS`, `probe` (a write of the relay's own) is tried, one at a
   * time: written, the failure is cleared; failing, it holds again from now, with the probe's reason.
   * Without a probe, a failure that has held is cleared.
   */
  async failing(probe?: () => Promise<void>): Promise<AdmissionFailure | null> {
    const f = this.#failure;
    if (f === null || this.#now() - f.at < ADMISSION_FAILURE_HOLD_MS) return f;
    if (probe === undefined) {
      this.#failure = null;
      return null;
    }
    this.#probing ??= this.#bounded(probe)
      .then(
        () => {
          if (this.#failure === f) this.#failure = null;
        },
        (e: unknown) => {
          // An admission stored or failed meanwhile says more than the probe.
          if (this.#failure === f) this.#failure = { at: this.#now(), reason: publicReason(e), probe: true };
        },
      )
      .finally(() => {
        this.#probing = undefined;
      });
    await this.#probing;
    return this.#failure;
  }
}
