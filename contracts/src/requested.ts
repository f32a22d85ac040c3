import { type Address, isAddressEqual, parseEventLogs, type TransactionReceipt } from 'viem';
import { synodOracleAbi } from './oracle-abi.ts';

/** A `callLLM` transaction whose receipt logs no request of the oracle (reverted, or another contract). */
export class NoOracleRequestError extends Error {
  readonly code = 'NO_ORACLE_REQUEST';
  constructor(readonly transactionHash: string) {
    super(`transaction ${transactionHash} logged no LLMRequested event of the oracle`);
    this.name = 'NoOracleRequestError';
  }
}

/**
 * The request numbers a mined transaction was given by the oracle at `oracle`: its `LLMRequested` logs,
 * in log order. The number a `callLLM` simulation returns is a guess made before sending: another
 * request mined first takes it (two askers at once were both told the same number, and one then waited
 * for, and printed, the other's answer). Throws `NoOracleRequestError` when there is none.
 */
export function requestedNumbers(
  receipt: Pick<TransactionReceipt, 'logs' | 'status' | 'transactionHash'>,
  oracle: Address,
): [bigint, ...bigint[]] {
  const [first, ...more] =
    receipt.status === 'success'
      ? parseEventLogs({ abi: synodOracleAbi, eventName: 'LLMRequested', logs: receipt.logs })
          .filter((l) => isAddressEqual(l.address, oracle))
          .map((l) => l.args.requestNo)
      : [];
  if (first === undefined) throw new NoOracleRequestError(receipt.transactionHash);
  return [first, ...more];
}
