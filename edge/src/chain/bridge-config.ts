import { type Address, type Hex, parseEther } from 'viem';

/** The relay's chain bridge settings (a SynodOracle on an EVM chain; see chain-watcher.ts). */
export interface ChainBridgeOptions {
  rpcUrl: string;
  chainId: number;
  oracle: Address;
  /** Private key of the oracle's `bridge` account. */
  bridgeKey: Hex;
  confirmations?: number;
  fromBlock?: bigint;
  pollMs?: number;
  /** A settlement still in the mempool this long is re-sent with higher fees (default 60 s). */
  replaceAfterMs?: number;
  /** Below this (wei) the bridge balance is reported low; default: 10 settlements at the gas price. */
  minBridgeBalance?: bigint;
  /** Most gas one `fulfill` may use; a larger one is refunded `ANSWER_TOO_LARGE` (default 2^24). */
  maxSettlementGas?: bigint;
  /**
   * Requests per UTC day admitted from the oracle, all its requesters together (default 1,000,000); past
   * it, each is refunded `QUOTA_EXCEEDED`.
   */
  dailyQuota?: number;
  /** Most events one pass takes (the runtime's, not a setting: a Workers cron run's subrequest budget). */
  maxEventsPerPass?: number;
}

/** The settings as text, as flags or environment variables give them. */
export interface ChainBridgeInput {
  rpcUrl?: string | undefined;
  chainId?: string | undefined;
  oracle?: string | undefined;
  bridgeKey?: string | undefined;
  confirmations?: string | undefined;
  fromBlock?: string | undefined;
  replaceAfterS?: string | undefined;
  /** In ether, as a decimal (`0.5`). */
  minBridgeBalance?: string | undefined;
  /** Gas, a whole number. */
  maxSettlementGas?: string | undefined;
  /** Requests a day, a whole number. */
  dailyQuota?: string | undefined;
}

/**
 * Validate the bridge settings, naming each by what the caller calls it (`names`: a flag such as
 * `--chain-rpc`, or a variable such as `SYNOD_CHAIN_RPC`). Undefined when the bridge is not configured
 * (no RPC, chain id or oracle given), the options when all is well, else `{ error }` saying what is wrong.
 */
export function parseChainBridge(
  input: ChainBridgeInput,
  names: Record<keyof ChainBridgeInput, string>,
): ChainBridgeOptions | undefined | { error: string } {
  const { rpcUrl, chainId, oracle, bridgeKey } = input;
  if (rpcUrl === undefined && chainId === undefined && oracle === undefined) return undefined;
  if (rpcUrl === undefined || chainId === undefined || oracle === undefined) {
    return { error: `${names.rpcUrl}, ${names.chainId} and ${names.oracle} go together` };
  }
  if (!/^https?:\/\/\S+$/.test(rpcUrl)) return { error: `${names.rpcUrl} must be an http(s) URL` };
  if (!/^[1-9]\d{0,15}$/.test(chainId)) return { error: `${names.chainId} must be a positive integer` };
  if (!/^0x[0-9a-fA-F]{40}$/.test(oracle)) return { error: `${names.oracle} must be a 0x address` };
  if (bridgeKey === undefined || !/^0x[0-9a-fA-F]{64}$/.test(bridgeKey)) {
    return { error: `${names.bridgeKey} must hold the bridge account's private key (0x + 64 hex)` };
  }
  const confirmations = Number(input.confirmations ?? '2');
  if (!/^\d{1,4}$/.test(input.confirmations ?? '2') || confirmations > 1000) {
    return { error: `${names.confirmations} must be a whole number from 0 to 1000` };
  }
  const fromBlock = input.fromBlock ?? '0';
  if (!/^\d{1,20}$/.test(fromBlock)) return { error: `${names.fromBlock} must be a block number` };
  const replaceAfterS = Number(input.replaceAfterS ?? '60');
  if (!/^\d{1,5}$/.test(input.replaceAfterS ?? '60') || replaceAfterS < 1 || replaceAfterS > 86_400) {
    return { error: `${names.replaceAfterS} must be a whole number of seconds from 1 to 86400` };
  }
  const minBalance = input.minBridgeBalance;
  if (minBalance !== undefined && !/^\d{1,30}(?:\.\d{1,18})?$/.test(minBalance)) {
    return { error: `${names.minBridgeBalance} must be an amount of ether, such as 0.5` };
  }
  const maxGas = input.maxSettlementGas;
  // At least what a fulfil of a short answer with a callback takes; at most what any chain takes.
  if (maxGas !== undefined && (!/^\d{1,10}$/.test(maxGas) || Number(maxGas) < 100_000)) {
    return { error: `${names.maxSettlementGas} must be a whole amount of gas from 100000 to 9999999999` };
  }
  const dailyQuota = input.dailyQuota;
  if (dailyQuota !== undefined && (!/^\d{1,10}$/.test(dailyQuota) || Number(dailyQuota) < 1)) {
    return { error: `${names.dailyQuota} must be a whole number of requests a day from 1 to 9999999999` };
  }
  return {
    ...(minBalance !== undefined ? { minBridgeBalance: parseEther(minBalance) } : {}),
    ...(dailyQuota !== undefined ? { dailyQuota: Number(dailyQuota) } : {}),
    ...(maxGas !== undefined ? { maxSettlementGas: BigInt(maxGas) } : {}),
    rpcUrl,
    chainId: Number(chainId),
    oracle: oracle as Address,
    bridgeKey: bridgeKey as Hex,
    confirmations,
    fromBlock: BigInt(fromBlock),
    replaceAfterMs: replaceAfterS * 1000,
  };
}
