/**
 * Keys in birth order, earliest first, for the Gun bounds' caps (gun-bounds.ts): a binary min-heap on
 * (bornAt, seq). Removal is lazy: the owner says which entries are still live, and `peek` discards the
 * others when they reach the top; `rebuild` drops them all at once.
 */
export interface Birth {
  readonly key: string;
  readonly bornAt: number;
  /** Arrival number: breaks ties between equal births (earlier arrival first) and tells entries apart. */
  readonly seq: number;
}

const before = (a: Birth, b: Birth): boolean =>
  a.bornAt < b.bornAt || (a.bornAt === b.bornAt && a.seq < b.seq);

export class BirthOrder {
  #heap: Birth[] = [];

  get size(): number {
    return this.#heap.length;
  }

  push(birth: Birth): void {
    const heap = this.#heap;
    heap.push(birth);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  /** The earliest live entry (stale ones on top are dropped), or undefined. */
  peek(live: (birth: Birth) => boolean): Birth | undefined {
    while (this.#heap.length > 0 && !live(this.#heap[0]!)) this.#popTop();
    return this.#heap[0];
  }

  /** Keep only the live entries. */
  rebuild(live: (birth: Birth) => boolean): void {
    const kept = this.#heap.filter(live);
    this.#heap = kept;
    for (let i = (kept.length >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  #popTop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    heap[0] = last;
    this.#down(0);
  }

  #down(start: number): void {
    const heap = this.#heap;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let first = i;
      if (left < heap.length && before(heap[left]!, heap[first]!)) first = left;
      if (right < heap.length && before(heap[right]!, heap[first]!)) first = right;
      if (first === i) return;
      [heap[i], heap[first]] = [heap[first]!, heap[i]!];
      i = first;
    }
  }
}
