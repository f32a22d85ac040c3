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

  test('past the budget, the range ends at the last event that fits: its block whole when it ends there', () => {
    const taken = withinBudget([at(5, 0), at(6, 3), at(6, 4), at(9, 0)], 3);
    expect(where(taken.events)).toEqual(['5:0', '6:3', '6:4']);
    expect(taken.cut).toEqual({ number: 6n, hash: at(6, 0).blockHash, logIndex: null });
  });

  test('a block of more events than the budget is split at the budget, the cut at the last log index taken', () => {
    const events = [at(4, 0), at(4, 1), at(4, 2), at(8, 0)];
    const taken = withinBudget(events, 2);
    expect(where(taken.events)).toEqual(['4:0', '4:1']);
    expect(taken.cut).toEqual({ number: 4n, hash: at(4, 0).blockHash, logIndex: 1 });
    // At least one event, whatever is left of the budget.
    expect(where(withinBudget(events, 0).events)).toEqual(['4:0']);
    expect(withinBudget(events, 0).cut).toMatchObject({ number: 4n, logIndex: 0 });
  });

  test('a resume inside a block skips its events at or below the cut, and takes the rest as usual', () => {
    const events = [at(4, 0), at(4, 1), at(4, 2), at(4, 3), at(8, 0)];
    const resume = { blockNumber: 4n, logIndex: 1 };
    const rest = withinBudget(events, 10, resume);
    expect(where(rest.events)).toEqual(['4:2', '4:3', '8:0']);
    expect(rest.cut).toBeUndefined();
    const next = withinBudget(events, 1, resume);
    expect(where(next.events)).toEqual(['4:2']);
    expect(next.cut).toEqual({ number: 4n, hash: at(4, 0).blockHash, logIndex: 2 });
    // The block's last event ends it whole.
    const last = withinBudget(events, 2, resume);
    expect(where(last.events)).toEqual(['4:2', '4:3']);
    expect(last.cut).toEqual({ number: 4n, hash: at(4, 0).blockHash, logIndex: null });
    // Only that block's events are skipped: other blocks' low log indexes are not.
    expect(where(withinBudget([at(3, 0), at(4, 1), at(5, 0)], 10, resume).events)).toEqual(['3:0', '5:0']);
  });

  test('events the RPC returned out of order are taken in chain order', () => {
    const taken = withinBudget([at(9, 0), at(6, 4), at(5, 0), at(6, 3)], 2);
    expect(where(taken.events)).toEqual(['5:0', '6:3']);
    expect(taken.cut).toEqual({ number: 6n, hash: at(6, 0).blockHash, logIndex: 3 });
    expect(where(withinBudget([at(9, 0), at(6, 4), at(5, 0)], 5).events)).toEqual(['5:0', '6:4', '9:0']);
  });
});
