import { synodOracleAbi } from '@synod/contracts/abi';
import { type Address, BlockNotFoundError, type Hex, type PublicClient } from 'viem';
import { refusedByRpc } from './chain-errors.ts';
import type { OracleRef } from './chain-store.ts';
import { type OracleRequestEvent, oracleRequestEvent } from './oracle-request.ts';

/** Reads of one block range before giving up on a chain that keeps changing (the next pass tries again). */
const RANGE_READ_ATTEMPTS = 3;

export interface OracleEventReaderOptions {
  /** The chain's JSON-RPC. */
  client: PublicClient;
  oracle: Address;
  ref: OracleRef;
  /** Told each time a range is read again because the chain changed while it was read. */
  onReread?: () => void;
  log?: (entry: Record<string, unknown>) => void;
}

/**
 * How the chain watcher reads SynodOracle's `LLMRequested` events: a block range at a time, each range's
 * events and its last block's hash taken from one chain even while the chain changes under the reads.
 */
export class OracleEventReader {
  readonly #o: OracleEventReaderOptions;

  constructor(o: OracleEventReaderOptions) {
    this.#o = o;
  }

  /**
   * The `LLMRequested` events of blocks `from`..`to` and the hash of block `to`, both of one chain, or
   * null when the chain kept changing while they were read. Logs are read by block number: a reorg
   * between reading them and reading `to`'s hash (or an RPC behind a load balancer answering from two
   * forks) would pair one fork's events with the other fork's hash, and the cursor would then vouch for
   * blocks whose events were never read. So `to`'s hash is read before and after the logs, and each
   * log's block must be the chain's block at its height; if anything disagrees the range is read again.
   */
  async readRange(
    from: bigint,
    to: bigint,
  ): Promise<{ events: OracleRequestEvent[]; toHash: Hex } | 'refused' | null> {
    for (let attempt = 1; attempt <= RANGE_READ_ATTEMPTS; attempt++) {
      const before = await this.blockHash(to);
      // The chain became shorter than `to` since the head was read: the next pass starts over.
      if (before === null) return null;
      const logs = await this.#o.client
        .getContractEvents({
          address: this.#o.oracle,
          abi: synodOracleAbi,
          eventName: 'LLMRequested',
          fromBlock: from,
          toBlock: to,
          strict: true,
        })
        .catch((e: unknown) => {
          if (to > from && refusedByRpc(e)) return 'refused' as const;
          throw e;
        });
      if (logs === 'refused') return 'refused';
      const events: OracleRequestEvent[] = [];
      // An RPC that ignores the filter (or lies): a log of another block is not confirmed, or not read
      // for this range, and one of another contract is not the oracle's; neither is acted on.
      const stray = logs.filter(
        (l) =>
          l.blockNumber === null ||
          l.blockNumber < from ||
          l.blockNumber > to ||
          l.address.toLowerCase() !== this.#o.ref.contract,
      );
      if (stray.length > 0) {
        this.#o.log?.({
          level: 'warn',
          msg: 'the RPC returned logs outside the range asked; ignored',
          from: Number(from),
          to: Number(to),
          ignored: stray.length,
        });
      }
      for (const l of logs) {
        if (l.removed || l.blockHash === null || l.transactionHash === null || l.logIndex === null) continue;
        if (stray.includes(l)) continue;
        events.push(
          oracleRequestEvent(this.#o.ref, l.args, {
            txHash: l.transactionHash,
            logIndex: l.logIndex,
            blockNumber: l.blockNumber,
            blockHash: l.blockHash,
          }),
        );
      }
      if ((await this.#onChainNow(events)) && (await this.blockHash(to)) === before) {
        return { events, toHash: before };
      }
      this.#o.onReread?.();
      this.#o.log?.({
        level: 'warn',
        msg: 'the chain changed while its events were read; reading them again',
        from: Number(from),
        to: Number(to),
        attempt,
      });
    }
    return null;
  }

  /** Whether every event's block is the chain's block at its height now. */
  async #onChainNow(events: readonly OracleRequestEvent[]): Promise<boolean> {
    const blocks = new Map(events.map((e) => [e.blockNumber, e.blockHash.toLowerCase()]));
    const held = await Promise.all(
      [...blocks].map(async ([n, hash]) => (await this.blockHash(n))?.toLowerCase() === hash),
    );
    return held.every(Boolean);
  }

  /** The hash of the chain's block at `height`, or null if the chain is not that long. */
  async blockHash(height: bigint): Promise<Hex | null> {
    // A missing block means the chain is shorter; any other RPC error fails the pass.
    const block = await this.#o.client.getBlock({ blockNumber: height }).catch((e: unknown) => {
      if (e instanceof BlockNotFoundError) return null;
      throw e;
    });
    return block?.hash ?? null;
  }
}
