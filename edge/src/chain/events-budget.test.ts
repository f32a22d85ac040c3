import { describe, expect, test } from 'bun:test';
import type { Hex } from 'viem';
import { withinBudget } from './events-budget.ts';
import type { OracleRequestEvent } from './oracle-request.ts';

/** An event at `block`, `logIndex`: only where it is matters here. */
const at = (block: number, logIndex: number) =>
  ({
    blockNumber: BigInt(block),
    blockHash: `0x${block.toString(16).padStart(64, '0')}` as Hex,
    logIndex,
  }) as OracleRequestEvent;

const where = (events: readonly OracleRequestEvent[]) => events.map((e) => `${e.blockNumber}:${e.logIndex}`);

describe('withinBudget', () => {
  test('events that fit are all taken, and the range ends where it was asked to', () => {
    const events = [at(5, 0), at(7, 1)];
    expect(withinBudget(events, 2)).toEqual({ events });
    expect(withinBudget([], 0)).toEqual({ events: [] });
  });

  test('past the budget, the range ends at the block of the last event that fits, that block whole', () => {
    const taken = withinBudget([at(5, 0), at(6, 3), at(6, 4), at(9, 0)], 2);
    expect(where(taken.events)).toEqual(['5:0', '6:3', '6:4']);
    expect(taken.lastBlock).toEqual({ number: 6n, hash: at(6, 0).blockHash });
  });

  test('a block of more events than the budget is still read, whole (else the watcher could never pass it)', () => {
    const taken = withinBudget([at(4, 0), at(4, 1), at(4, 2), at(8, 0)], 1);
    expect(where(taken.events)).toEqual(['4:0', '4:1', '4:2']);
    expect(taken.lastBlock?.number).toBe(4n);
  });

  test('events the RPC returned out of order are taken in chain order', () => {
    const taken = withinBudget([at(9, 0), at(6, 4), at(5, 0), at(6, 3)], 2);
    expect(where(taken.events)).toEqual(['5:0', '6:3', '6:4']);
    expect(taken.lastBlock?.number).toBe(6n);
  });
});
