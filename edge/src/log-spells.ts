/**
 * Failures that repeat, logged once a spell: the chain watcher's passes run every second, and a failure
 * that lasts (an RPC down, the bridge unfunded, a settlement the oracle refuses) logged at every pass made
 * thousands of identical lines an hour. Each spell, by key, is logged at its first failure, again every
 * `repeatEveryMs` while it lasts (with how many failures were not logged since), and once when it ends.
 * Bounded: at most `maxSpells` spells are followed (the oldest forgotten first).
 */
export class LogSpells {
  readonly #spells = new Map<string, Spell>();

  constructor(
    private readonly now: () => number,
    private readonly repeatEveryMs = 300_000,
    private readonly maxSpells = 1_024,
  ) {}

  /**
   * A failure under `key`. `log` is true for the spell's first failure and for the first after each
   * `repeatEveryMs`; `unlogged` is how many failed since the last line that was logged.
   */
  failed(key: string): { log: boolean; unlogged: number; failures: number; sinceMs: number } {
    const t = this.now();
    let s = this.#spells.get(key);
    if (s === undefined) {
      if (this.#spells.size >= this.maxSpells) {
        const oldest = this.#spells.keys().next().value;
        if (oldest !== undefined) this.#spells.delete(oldest);
      }
      s = { since: t, failures: 0, loggedAt: t, unlogged: 0 };
      this.#spells.set(key, s);
      s.failures++;
      return { log: true, unlogged: 0, failures: 1, sinceMs: 0 };
    }
    s.failures++;
    if (t - s.loggedAt >= this.repeatEveryMs) {
      const unlogged = s.unlogged;
      s.loggedAt = t;
      s.unlogged = 0;
      return { log: true, unlogged, failures: s.failures, sinceMs: t - s.since };
    }
    s.unlogged++;
    return { log: false, unlogged: s.unlogged, failures: s.failures, sinceMs: t - s.since };
  }

  /** The spell under `key` is over: how long it lasted and how many failures it had; null if none. */
  ended(key: string): { forMs: number; failures: number } | null {
    const s = this.#spells.get(key);
    if (s === undefined) return null;
    this.#spells.delete(key);
    return { forMs: this.now() - s.since, failures: s.failures };
  }

  /** Spells followed now. */
  get size(): number {
    return this.#spells.size;
  }
}

interface Spell {
  since: number;
  failures: number;
  loggedAt: number;
  unlogged: number;
}
