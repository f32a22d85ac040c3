import { describe, expect, test } from 'bun:test';
import type { Hex } from 'viem';
import { CursorCheckpoints } from './cursor-checkpoints.ts';

const hashOf = (fork: string, n: bigint) => `0x${fork}${n.toString(16).padStart(63, '0')}` as Hex;

/** A chain whose blocks from `forkAt` on were replaced (fork `b`), counting the hashes read. */
function chain(forkAt: bigint, head: bigint) {
  const reads: bigint[] = [];
  return {
    reads,
    blockHash: async (n: bigint) => {
      reads.push(n);
      if (n > head) return null;
      return hashOf(n >= forkAt ? 'b' : 'a', n);
    },
  };
}

/** Checkpoints at every `step`-th block of fork `a`, up to `top`. */
function standingOn(top: bigint, step: bigint, max?: number) {
  const c = new CursorCheckpoints(max);
  for (let n = step; n <= top; n += step) c.add(n, hashOf('a', n));
  return c;
}

describe('CursorCheckpoints', () => {
  test('no checkpoint under the window: nothing to say (the window alone is read again)', async () => {
    const c = standingOn(100n, 10n);
    expect(await c.forkBelow(5n, 64n, chain(0n, 200n).blockHash)).toBeNull();
    expect(await new CursorCheckpoints().forkBelow(1_000n, 64n, chain(0n, 2_000n).blockHash)).toBeNull();
  });

  test('a reorg deeper than the window is read again from just above the newest checkpoint it left', async () => {
    const c = standingOn(5_000n, 10n);
    expect(c.size).toBe(500);
    const ch = chain(3_005n, 6_000n);
    // The cursor at 5,000; the window of 64 would read from 4,936: the fork is far below it.
    expect(await c.forkBelow(4_936n, 64n, ch.blockHash)).toEqual({ from: 3_001n, unknown: false });
    // Stepping back then halving: a few reads, not one per checkpoint.
    expect(ch.reads.length).toBeLessThanOrEqual(20);
  });

  test('every checkpoint replaced: unknown, from the oldest less the window', async () => {
    const c = standingOn(1_000n, 10n);
    expect(await c.forkBelow(900n, 64n, chain(0n, 2_000n).blockHash)).toEqual({
      from: 10n - 64n,
      unknown: true,
    });
  });

  test('a chain now shorter than a checkpoint counts it replaced', async () => {
    const c = standingOn(1_000n, 100n);
    expect(await c.forkBelow(950n, 64n, chain(10_000n, 450n).blockHash)).toEqual({
      from: 401n,
      unknown: false,
    });
  });

  test('the cursor going back drops the checkpoints of the old chain; the oldest go past the bound', async () => {
    const c = standingOn(100n, 10n);
    c.add(55n, hashOf('b', 55n));
    expect(c.size).toBe(6);
    // 10..50 of fork a and 55 of fork b remain (60..100 of fork a went): on the chain of fork b from 52,
    // 55 is the newest that holds; on one where 55 was replaced again, 50.
    expect(await c.forkBelow(60n, 5n, chain(52n, 200n).blockHash)).toEqual({ from: 56n, unknown: false });
    expect(await c.forkBelow(60n, 5n, async (n) => (n <= 50n ? hashOf('a', n) : hashOf('c', n)))).toEqual({
      from: 51n,
      unknown: false,
    });

    const bounded = standingOn(1_000n, 1n, 512);
    expect(bounded.size).toBe(512);
    // The oldest kept is block 489: a reorg from block 1 is beyond every one of them.
    expect(await bounded.forkBelow(900n, 64n, chain(1n, 2_000n).blockHash)).toEqual({
      from: 489n - 64n,
      unknown: true,
    });
  });
});
