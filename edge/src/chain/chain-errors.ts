/**
 * What the chain watcher makes of a failed chain call: a stable code for its log lines (`codeOf`), the
 * oracle's custom error it reverted with (`revertName`), and the failures it acts on (an RPC that refuses
 * a block range, a call short of gas, a bridge account that cannot pay).
 */
import { synodOracleAbi } from '@synod/contracts/abi';
import { saysOutOfGas } from '@synod/contracts/settlement-gas';
import {
  type Address,
  BaseError,
  BlockNotFoundError,
  ContractFunctionRevertedError,
  ContractFunctionZeroDataError,
  decodeErrorResult,
  ExecutionRevertedError,
  type Hex,
  HttpRequestError,
  InsufficientFundsError,
  RpcRequestError,
  TimeoutError,
} from 'viem';
import { chainErrorText } from './rpc-errors.ts';

/**
 * Why the chain watcher cannot run against the configured chain (`CHAIN_ID_MISMATCH`,
 * `ORACLE_NOT_FOUND`, `CHAIN_RPC_FAILED`: its RPC could not be read on start; `SETTLEMENT_GAS_TOO_LOW`:
 * `maxSettlementGas` below what any fulfil of a contract's request takes), or cannot settle on it now
 * (`BRIDGE_UNFUNDED`: the bridge account cannot pay; `BRIDGE_MISMATCH`: the relay's account is not the
 * oracle's `bridge()`, on start or since the oracle's owner changed it).
 */
export class ChainBridgeError extends Error {
  constructor(
    readonly code:
      | 'CHAIN_ID_MISMATCH'
      | 'ORACLE_NOT_FOUND'
      | 'CHAIN_RPC_FAILED'
      | 'BRIDGE_UNFUNDED'
      | 'BRIDGE_MISMATCH'
      | 'SETTLEMENT_GAS_TOO_LOW',
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'ChainBridgeError';
  }
}

/** The oracle's custom error a call reverted with (a contract call, or a raw `eth_call`), if any. */
export function revertName(e: unknown): string | undefined {
  if (!(e instanceof BaseError)) return undefined;
  const decoded = e.walk((x) => x instanceof ContractFunctionRevertedError);
  if (decoded instanceof ContractFunctionRevertedError && decoded.data?.errorName)
    return decoded.data.errorName;
  const raw = e.walk((x) => typeof (x as { data?: unknown }).data === 'string');
  const data = (raw as { data?: unknown } | null)?.data;
  if (typeof data !== 'string' || !data.startsWith('0x') || data.length < 10) return undefined;
  try {
    return decodeErrorResult({ abi: synodOracleAbi, data: data as Hex }).errorName;
  } catch {
    return undefined;
  }
}

/**
 * Whether a call or gas estimate failed for want of gas, as the node answered it (not an HTTP error or
 * a timeout, nor an account that cannot pay): the oracle's `InsufficientGasForCallback`, or the node's
 * words (`saysOutOfGas`).
 */
export function outOfGas(e: unknown): boolean {
  if (!(e instanceof BaseError)) return false;
  if (e.walk((x) => x instanceof HttpRequestError || x instanceof TimeoutError)) return false;
  if (cannotPay(e)) return false;
  return revertName(e) === 'InsufficientGasForCallback' || saysOutOfGas(e);
}

/**
 * The relay's bridge account is not the oracle's `bridge()`: every fulfil would revert `NotBridge`, and
 * every refund before its deadline `NotExpired`.
 */
export function bridgeMismatch(oracle: Address, oracleBridge: Address, account: Address): ChainBridgeError {
  return new ChainBridgeError(
    'BRIDGE_MISMATCH',
    `the oracle's bridge is ${oracleBridge}, not this relay's bridge account ${account}: it can fulfil nothing, nor refund before a deadline`,
    { oracle, oracleBridge, account },
    `start the relay with the key of the oracle's bridge account (${oracleBridge}), or have the oracle's owner call setBridge(${account})`,
  );
}

/**
 * Whether the RPC refused an `eth_getLogs` call for its size: a JSON-RPC error (not a timeout or an
 * HTTP error such as 429 or 503, which a narrower range would not cure) whose words say so, as
 * providers put it ("exceed maximum block range: 5000", "query returned more than 10000 results",
 * "Log response size exceeded", "block range is too wide"). Other refusals ("header not found" from a
 * lagging node) fail the pass as before rather than narrow the range for good.
 */
export function refusedByRpc(e: unknown): boolean {
  if (!(e instanceof BaseError)) return false;
  if (e.walk((x) => x instanceof HttpRequestError || x instanceof TimeoutError)) return false;
  const refused = e.walk((x) => x instanceof RpcRequestError);
  return refused instanceof RpcRequestError && RANGE_REFUSAL.test(refused.details);
}
const RANGE_REFUSAL = /range|limit|exceed|more than|too (?:many|large|wide|big)|size/i;

/**
 * A stable code for a log entry: the error's own (`ChainBridgeError`, `SynodError`); else
 * `CHAIN_CALL_REVERTED` with the oracle's custom error decoded by its ABI (`revert`: `NotBridge`,
 * `NotPending`, …, rather than viem's "custom error 0x7fea9dc5…"); else `CHAIN_RPC_FAILED` for a chain
 * call that failed on its way (HTTP, a timeout, a JSON-RPC error); else `CHAIN_WATCHER_FAILED`.
 */
export function codeOf(e: unknown): { code: string; revert?: string } {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return { code };
  const revert = revertName(e);
  if (revert !== undefined) return { code: 'CHAIN_CALL_REVERTED', revert };
  // A block the chain no longer has at that number (a reorg under way), or not yet (an RPC node behind).
  if (blockGone(e)) return { code: 'CHAIN_BLOCK_NOT_FOUND' };
  if (e instanceof BaseError) {
    const reverted = e.walk(
      (x) => x instanceof ContractFunctionRevertedError || x instanceof ExecutionRevertedError,
    );
    return { code: reverted === null ? 'CHAIN_RPC_FAILED' : 'CHAIN_CALL_REVERTED' };
  }
  return { code: 'CHAIN_WATCHER_FAILED' };
}

/**
 * Whether a call failed on its way to the chain or in the node (HTTP, a timeout, a JSON-RPC error), not
 * in the contract called (a revert, or no data returned: a contract without that function).
 */
export function rpcFailed(e: unknown): boolean {
  if (!(e instanceof BaseError)) return false;
  const inContract = e.walk(
    (x) =>
      x instanceof ContractFunctionRevertedError ||
      x instanceof ContractFunctionZeroDataError ||
      x instanceof ExecutionRevertedError,
  );
  if (inContract !== null) return false;
  return (
    e.walk(
      (x) => x instanceof HttpRequestError || x instanceof TimeoutError || x instanceof RpcRequestError,
    ) !== null
  );
}

/**
 * Whether the RPC had no block where one was asked for (viem's `BlockNotFoundError`): after a shallow
 * reorg, the block a settlement was mined in, or a node behind its peers. Passing: the next pass reads again.
 */
export function blockGone(e: unknown): boolean {
  return e instanceof BaseError && e.walk((x) => x instanceof BlockNotFoundError) !== null;
}

/**
 * Whether a transaction failed because the bridge account cannot pay its gas: viem's
 * `InsufficientFundsError`, or a node's refusal that says so (`eth_sendRawTransaction` errors are not
 * mapped to it).
 */
export function cannotPay(e: unknown): boolean {
  if (!(e instanceof BaseError)) return false;
  return (
    e.walk(
      (x) =>
        x instanceof InsufficientFundsError ||
        (x instanceof BaseError && InsufficientFundsError.nodeMessage.test(x.details.toLowerCase())),
    ) !== null
  );
}

/**
 * An error for the log: viem's short message and, when it says more, the node's own words (never
 * viem's whole message, with the RPC URL: see `chainErrorText`).
 */
export function describe(e: unknown): string {
  return chainErrorText(e);
}
