/**
 * Listeners grouped by a key (a request id, say): `add` returns its own unsubscribe, and a key's set is
 * dropped with its last listener, so subscribing and leaving never accumulates empty entries. `emit`
 * calls every listener of a key; one that throws is reported to `onError` (when given) and does not stop
 * the others.
 */
export class KeyedListeners<T> {
  readonly #sets = new Map<string, Set<(value: T) => void>>();

  add(key: string, listener: (value: T) => void): () => void {
    let set = this.#sets.get(key);
    if (!set) {
      set = new Set();
      this.#sets.set(key, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.#sets.get(key) === set) this.#sets.delete(key);
    };
  }

  /** Whether the key has listeners (to skip computing a value nobody hears). */
  has(key: string): boolean {
    return this.#sets.has(key);
  }

  emit(key: string, value: T, onError?: (e: unknown) => void): void {
    const set = this.#sets.get(key);
    if (!set) return;
    for (const l of [...set]) {
      try {
        l(value);
      } catch (e) {
        if (!onError) throw e;
        onError(e);
      }
    }
  }

  /** Keys with at least one listener. */
  get size(): number {
    return this.#sets.size;
  }
}
