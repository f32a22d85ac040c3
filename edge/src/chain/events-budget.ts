import type { Hex } from 'viem';
import type { OracleRequestEvent } from './oracle-request.ts';

/**
 * Most oracle events one scheduled run takes. Each costs the run about ten subrequests (its row, its
 * lookup, its admission transaction over libSQL's HTTP protocol, the oracle's record of it, its block's
 * hash), and a Workers run has a budget of them (1,000 on the paid plan): a busier oracle is read over
 * several runs, a minute apart, rather than failing every run at the same range, however many events
 * one block holds.
 */
export const WORKER_EVENTS_PER_PASS = 50;

/**
 * Where a range's reading stopped: a block (its hash as the range read it: each event's block was
 * checked to be the chain's) and, when only part of its events were taken, the log index of the last
 * one taken (null when the block was taken whole).
 */
export interface ReadCut {
  number: bigint;
  hash: Hex;
  logIndex: number | null;
}

/** A cursor inside a block: that block's events at or below `logIndex` were taken by an earlier pass. */
export interface ReadResume {
  blockNumber: bigint;
  logIndex: number;
}

/** Chain order: by block, then by log index. */
const inChainOrder = (a: OracleRequestEvent, b: OracleRequestEvent) =>
  a.blockNumber !== b.blockNumber ? (a.blockNumber < b.blockNumber ? -1 : 1) : a.logIndex - b.logIndex;

/**
 * The events of a range a pass takes with `left` events of its budget, in chain order (block, then log
 * index). Those of `resume`'s block at or below its log index are skipped first (an earlier pass took
 * them). Then all of them if they fit, with no cut: the range ends where it was asked to. Else exactly
 * the first `left` (at least one, so that every pass moves on), and the cut where they end: the block
 * of the last one taken, with its log index when the block's other events are left for the next pass,
 * or null when that event was the block's last.
 */
export function withinBudget(
  events: readonly OracleRequestEvent[],
  left: number,
  resume?: ReadResume,
): { events: OracleRequestEvent[]; cut?: ReadCut } {
  const ordered = events
    .filter(
      (e) => resume === undefined || e.blockNumber !== resume.blockNumber || e.logIndex > resume.logIndex,
    )
    .sort(inChainOrder);
  if (ordered.length <= left) return { events: ordered };
  const n = Math.max(1, Math.floor(left));
  const last = ordered[n - 1] as OracleRequestEvent;
  const next = ordered[n] as OracleRequestEvent;
  return {
    events: ordered.slice(0, n),
    cut: {
      number: last.blockNumber,
      hash: last.blockHash,
      logIndex: next.blockNumber === last.blockNumber ? last.logIndex : null,
    },
  };
}
