import type { Address, PublicClient } from 'viem';

/** The bridge account's balance as last read, and the minimum it is held against. */
export interface BridgeBalance {
  address: Address;
  wei: bigint;
  minimumWei: bigint;
  low: boolean;
  /** When it was read (`now()`). */
  at: number;
}

/** Settlements the default minimum bridge balance keeps in reserve. */
export const DEFAULT_RESERVE_SETTLEMENTS = 10n;
/** Gas budgeted per settlement for that default: `fulfill` with a consumer callback (of up to 500k). */
export const SETTLEMENT_GAS_BUDGET = 1_000_000n;

export interface BridgeBalanceMonitorOptions {
  client: Pick<PublicClient, 'getBalance' | 'getGasPrice'>;
  /** The bridge account (the oracle's `bridge`, which pays for every settlement). */
  address: Address;
  /** Below this (wei) the balance is low. Default: `DEFAULT_RESERVE_SETTLEMENTS` settlements of `SETTLEMENT_GAS_BUDGET` gas at the gas price of each read. */
  minimum?: bigint;
  now: () => number;
  log?: (entry: Record<string, unknown>) => void;
  /** Told each time the balance was read. */
  onBalance?(b: BridgeBalance): void;
}

/**
 * Watches the chain bridge account's balance: an unfunded bridge cannot settle anything, and its
 * operator should hear of it before requests start waiting. Each `check` reads the balance, holds it
 * against the minimum, logs a warning when it falls below and a line when it is back above (once per
 * change, not per read), and tells `onBalance` (the relay's `/metrics`).
 */
export class BridgeBalanceMonitor {
  readonly #o: BridgeBalanceMonitorOptions;
  #last: BridgeBalance | null = null;

  constructor(o: BridgeBalanceMonitorOptions) {
    this.#o = o;
  }

  /** The last read, or null before the first. */
  get last(): BridgeBalance | null {
    return this.#last;
  }

  async check(): Promise<BridgeBalance> {
    const { client, address } = this.#o;
    const wei = await client.getBalance({ address });
    const minimumWei =
      this.#o.minimum ?? DEFAULT_RESERVE_SETTLEMENTS * SETTLEMENT_GAS_BUDGET * (await client.getGasPrice());
    const b: BridgeBalance = { address, wei, minimumWei, low: wei < minimumWei, at: this.#o.now() };
    const was = this.#last;
    this.#last = b;
    if (b.low && !was?.low) {
      this.#o.log?.({
        level: 'warn',
        msg: 'the bridge balance is low: settlements may fail; fund the bridge account',
        bridge: address,
        balanceWei: wei.toString(),
        minimumWei: minimumWei.toString(),
      });
    } else if (!b.low && was?.low) {
      this.#o.log?.({
        level: 'info',
        msg: 'the bridge balance is sufficient again',
        balanceWei: wei.toString(),
      });
    }
    this.#o.onBalance?.(b);
    return b;
  }
}
