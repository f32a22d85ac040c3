import { BaseError } from 'viem';

/**
 * The most gas one transaction may use on chains with EIP-7825 (Ethereum from Fusaka on), whatever their
 * block gas limit. A `fulfill` whose answer needs more can never be mined there: the bridge refunds it
 * `ANSWER_TOO_LARGE` (edge/src/chain/chain-watcher.ts), and an auditor holds such a refund against this
 * bound and the block's gas limit (apps/verify/src/answer-fit.ts).
 */
export const MAX_TRANSACTION_GAS = 16_777_216n;

/** The refund reason of an answer whose `fulfill` cannot fit on the chain. */
export const ANSWER_TOO_LARGE = 'ANSWER_TOO_LARGE';

/** The most gas a `fulfill` may use: the block's gas limit, or `cap` if lower (bigints: no Math.min). */
export function fulfilGasLimit(blockGasLimit: bigint, cap: bigint = MAX_TRANSACTION_GAS): bigint {
  return blockGasLimit < cap ? blockGasLimit : cap;
}

/**
 * Whether a node's answer to a call or gas estimate says it ran out of gas, in the words nodes use ("out
 * of gas", "gas required exceeds allowance", "intrinsic gas too high", a gas limit above the block's or
 * the chain's transaction cap). Only the node's words: an HTTP error or a timeout never matches.
 */
export function saysOutOfGas(e: unknown): boolean {
  if (!(e instanceof BaseError)) return false;
  return e.walk((x) => x instanceof BaseError && OUT_OF_GAS.test(x.details ?? '')) !== null;
}
const OUT_OF_GAS =
  /out of gas|gas required exceeds|intrinsic gas too high|exceeds (?:the )?(?:block )?gas limit|gas limit (?:reached|too high)|gas_limit > /i;

/**
 * Mirrors SynodOracle.sol's `CALLBACK_CALL_OVERHEAD`: gas the callback's call costs beyond what it
 * forwards, held back by the oracle before it calls a consumer.
 */
export const CALLBACK_CALL_OVERHEAD = 10_000n;

/**
 * Mirrors SynodOracle.sol's `_settlementGas`: what a settlement spends on an answer (or reason) of
 * `length` bytes besides the callback, held back by the oracle before it calls a consumer.
 */
export function settlementGas(length: number): bigint {
  const w = BigInt(Math.ceil(length / 32) + 16);
  return 4n * 375n + w * (3n + 3n + 8n * 32n) + (2n * w * (2n * w)) / 512n + 5_000n;
}

/**
 * Gas a `fulfill` of a consumer contract's request spends outside what the oracle holds back for its
 * callback (`_callback`'s `required`): the transaction's intrinsic 21,000, its calldata, the reads and
 * writes before the callback (the request's slot, the bridge's balance from zero: 22,100), the consumer's
 * code size, and the event after it. Measured on anvil (Cancun) with a consumer whose callback burns all
 * its gas: 63,962 for an empty answer whose fee is the bridge's first since a withdrawal (47,468 for a
 * 17-byte answer otherwise); rounded up, so that an answer of a few dozen bytes fits too.
 */
export const FULFIL_TRANSACTION_OVERHEAD = 70_000n;

/**
 * The least gas a `fulfill` of a consumer contract's request with a short answer can be mined with, for an
 * oracle whose `callbackGasLimit()` is `callbackGasLimit`: the oracle's own requirement for an empty
 * answer (`callbackGasLimit * 64 / 63 + CALLBACK_CALL_OVERHEAD + _settlementGas(0)`) and the rest of the
 * transaction (`FULFIL_TRANSACTION_OVERHEAD`). A bridge allowed less (`maxSettlementGas`) could answer no
 * contract: every fulfil would revert `InsufficientGasForCallback` (about 294k at the default 200,000).
 */
export function leastFulfilGas(callbackGasLimit: number | bigint): bigint {
  return (
    (BigInt(callbackGasLimit) * 64n) / 63n +
    CALLBACK_CALL_OVERHEAD +
    settlementGas(0) +
    FULFIL_TRANSACTION_OVERHEAD
  );
}
