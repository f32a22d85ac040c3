/**
 * Lines that would repeat, logged at most once every `everyMs` for each key: the first is logged, the
 * others within `everyMs` of the last logged one are counted, and the next line logged says how many
 * were not (`take`'s answer). A node logs evidence against throwaway keys and failed re-embeddings this
 * way: each can come once a packet.
 */
export class LineLimit<K> {
  readonly #last = new Map<K, { at: number; unlogged: number }>();

  constructor(private readonly everyMs: number) {}

  /** A line for `key` at `now`: null when it is not to be logged (counted), else how many were not since. */
  take(key: K, now: number): number | null {
    const last = this.#last.get(key);
    if (last !== undefined && now - last.at < this.everyMs) {
      last.unlogged++;
      return null;
    }
    this.#last.set(key, { at: now, unlogged: 0 });
    return last?.unlogged ?? 0;
  }

  /** Start `key` afresh: its next line is logged at once (a spell of failures ended). */
  forget(key: K): void {
    this.#last.delete(key);
  }
}
