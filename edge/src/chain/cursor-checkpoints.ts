import type { Hex } from 'viem';

/** Blocks the cursor stood on that a watcher keeps, to find where a deep reorg began. */
export const CHECKPOINTS = 512;

/** Where to read again from after a reorg: see `CursorCheckpoints.forkBelow`. */
export interface Fork {
  from: bigint;
  /** Every checkpoint below was replaced too: the reorg is deeper than the watcher has seen. */
  unknown: boolean;
}

/**
 * The blocks a chain watcher's read cursor stood on in this process, oldest first, at most `max` (their
 * hashes as read). After a reorg under the cursor, where it began is found among them (`forkBelow`),
 * so a reorg deeper than the watcher's reorg window is read again from where it began.
 */
export class CursorCheckpoints {
  readonly #list: { number: bigint; hash: Hex }[] = [];

  constructor(readonly max = CHECKPOINTS) {}

  get size(): number {
    return this.#list.length;
  }

  /** The cursor stood on `number` (hash as read): kept as a checkpoint, the oldest out past `max`. */
  add(number: bigint, hash: Hex): void {
    // The cursor went back (a reorg read again): checkpoints at or above it are of the old chain.
    while ((this.#list.at(-1)?.number ?? -1n) >= number) this.#list.pop();
    this.#list.push({ number, hash: hash.toLowerCase() as Hex });
    if (this.#list.length > this.max) this.#list.shift();
  }

  /**
   * Where to read again from after a reorg under the cursor, when it may reach below `below`: just above
   * the newest checkpoint under `below` whose block is still the chain's (`blockHash`: the chain's hash
   * at a height, null past its head), found by stepping back exponentially, then halving: a few block
   * reads. Null when no checkpoint lies under `below` (none in this process yet, or none so old);
   * `unknown` when every one of them was replaced too (the reorg is deeper than this process has seen:
   * `from` is then the oldest checkpoint's height less `reorgWindow`).
   */
  async forkBelow(
    below: bigint,
    reorgWindow: bigint,
    blockHash: (height: bigint) => Promise<Hex | null>,
  ): Promise<Fork | null> {
    const under = this.#list.filter((c) => c.number < below);
    if (under.length === 0) return null;
    const holds = async (i: number) => {
      const c = under[i] as { number: bigint; hash: Hex };
      return (await blockHash(c.number))?.toLowerCase() === c.hash;
    };
    // The newest checkpoint that holds: step back 1, 2, 4, … from the newest, then halve the gap.
    let bad = under.length;
    let step = 1;
    let good = -1;
    for (let i = under.length - 1; i >= 0; i = bad - step) {
      if (await holds(i)) {
        good = i;
        break;
      }
      bad = i;
      step *= 2;
      if (i === 0) break;
      if (bad - step < 0) step = bad;
    }
    if (good === -1) {
      const oldest = under[0] as { number: bigint };
      return { from: oldest.number - reorgWindow, unknown: true };
    }
    while (bad - good > 1) {
      const mid = Math.floor((good + bad) / 2);
      if (await holds(mid)) good = mid;
      else bad = mid;
    }
    return { from: (under[good] as { number: bigint }).number + 1n, unknown: false };
  }
}
