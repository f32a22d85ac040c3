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
