/**
 * A spell of failures at one bootstrap address, from its first failed dial until the peer it names is
 * reached. Its failures are of two kinds: `dial` (nothing listens there, the dial policy refuses it, the
 * network is down: `BOOTSTRAP_DIAL_FAILED`) and `mismatch` (another peer answers there:
 * `BOOTSTRAP_PEER_MISMATCH`). An address whose failure flaps between the two (a port taken by another
 * peer now and then) redials every few seconds: each change of kind logged made a line every redial. So a
 * spell is logged at its first failure, a change of kind within it at most once a
 * `KIND_CHANGE_LOG_EVERY_MS` (the rest counted), and its end once, with how long it lasted and its counts.
 */

export type BootstrapFailureKind = 'dial' | 'mismatch';

/** Within a spell, a change of kind is logged at most this often (the first failure always is). */
export const KIND_CHANGE_LOG_EVERY_MS = 60_000;

/** What a spell came to: `attempts` failed (`dialFailures` + `mismatches`), its kind changed `kindChanges` times. */
export interface BootstrapSpellCounts {
  sinceMs: number;
  attempts: number;
  dialFailures: number;
  mismatches: number;
  kindChanges: number;
}

export class BootstrapFailureSpell {
  readonly #since: number;
  #kind: BootstrapFailureKind;
  #dialFailures = 0;
  #mismatches = 0;
  #kindChanges = 0;
  #loggedAt: number;
  /** The kind the spell's last line named: a failure of another kind is news until a line names it. */
  #loggedKind: BootstrapFailureKind;

  /** The spell's first failure, at `now`: logged. */
  constructor(kind: BootstrapFailureKind, now: number) {
    this.#since = now;
    this.#loggedAt = now;
    this.#kind = kind;
    this.#loggedKind = kind;
    this.#count(kind);
  }

  /** The kind of its latest failure. */
  get kind(): BootstrapFailureKind {
    return this.#kind;
  }

  /**
   * Another failure, at `now`. `changed`: of another kind than the one before (what a status line that
   * shows the latest should take); `log`: of another kind than the spell's last line named, at least
   * `KIND_CHANGE_LOG_EVERY_MS` after that line, to be logged (with `counts`). A change within the minute
   * is so said at the first failure of that kind after it, however long the kind then stays.
   */
  failed(kind: BootstrapFailureKind, now: number): { changed: boolean; log: boolean } {
    this.#count(kind);
    const changed = kind !== this.#kind;
    if (changed) {
      this.#kind = kind;
      this.#kindChanges++;
    }
    if (kind === this.#loggedKind || now - this.#loggedAt < KIND_CHANGE_LOG_EVERY_MS) {
      return { changed, log: false };
    }
    this.#loggedAt = now;
    this.#loggedKind = kind;
    return { changed, log: true };
  }

  /** Its counts so far, `sinceMs` its length at `now`. */
  counts(now: number): BootstrapSpellCounts {
    return {
      sinceMs: now - this.#since,
      attempts: this.#dialFailures + this.#mismatches,
      dialFailures: this.#dialFailures,
      mismatches: this.#mismatches,
      kindChanges: this.#kindChanges,
    };
  }

  #count(kind: BootstrapFailureKind): void {
    if (kind === 'dial') this.#dialFailures++;
    else this.#mismatches++;
  }
}
