import type { Hex } from 'viem';
import type { OracleRequestEvent } from './oracle-request.ts';

/**
 * Most oracle events one scheduled run takes. Each costs the run about ten subrequests (its row, its
 * lookup, its admission transaction over libSQL's HTTP protocol, the oracle's record of it, its block's
 * hash), and a Workers run has a budget of them (1,000 on the paid plan): a busier oracle is read over
 * several runs, a minute apart, rather than failing every run at the same range.
 */
export const WORKER_EVENTS_PER_PASS = 50;

/**
 * The events of a range a pass takes with `left` events of its budget: all of them if they fit, else
 * those up to the block of the `left`-th (in chain order), that block's events all included, with that
 * block as where the cursor stops (its hash as the range read it: each event's block was checked to be
 * the chain's). At least one block's events, so that a block of more events than the budget is still
 * read.
 */
export function withinBudget(
  events: readonly OracleRequestEvent[],
  left: number,
): { events: OracleRequestEvent[]; lastBlock?: { number: bigint; hash: Hex } } {
  if (events.length <= left) return { events: [...events] };
  const ordered = [...events].sort((a, b) =>
    a.blockNumber !== b.blockNumber ? (a.blockNumber < b.blockNumber ? -1 : 1) : a.logIndex - b.logIndex,
  );
  const cut = ordered[Math.max(0, Math.floor(left) - 1)] as OracleRequestEvent;
  const taken = ordered.filter((e) => e.blockNumber <= cut.blockNumber);
  return { events: taken, lastBlock: { number: cut.blockNumber, hash: cut.blockHash } };
}
