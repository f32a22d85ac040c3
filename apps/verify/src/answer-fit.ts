/**
 * Whether a winning answer's `fulfill` could have been mined when the bridge refunded it
 * `ANSWER_TOO_LARGE`: its gas estimated on the chain as it was just before the refund's block (the
 * request still pending), from the account that was the oracle's bridge then (a fulfil's gas does not
 * depend on who sends it, and the refund's sender may have been made bridge within the refund's block;
 * the caller passes that bridge, from the oracle's `BridgeChanged` events it already holds),
 * against the most gas a `fulfill` may use there (the block's gas limit, or EIP-7825's per-transaction
 * cap if lower: `fulfilGasLimit`). The node needs the state of that block (an archive node, or a chain
 * young enough for a full node to hold it).
 */
import { synodOracleAbi } from '@synod/contracts/abi';
import { fulfilGasLimit, saysOutOfGas } from '@synod/contracts/settlement-gas';
import { type Address, BaseError, ContractFunctionRevertedError, type Hex, type PublicClient } from 'viem';

export type AnswerFit =
  /** It fits: `gas` of at most `limit`. */
  | { kind: 'fits'; gas: bigint; limit: bigint }
  /** It does not: the node said so (`why`), while the same `fulfill` with an empty answer fits. */
  | { kind: 'too-large'; limit: bigint; why: string }
  /** The chain could not tell (state pruned, the node down, another revert). */
  | { kind: 'unknown'; why: string };

export interface FulfilAsked {
  oracle: Address;
  requestNo: bigint;
  questionHash: Hex;
  answer: string;
  verdictDigest: Hex;
  transcriptRoot: Hex;
  /** The block the refund was mined in: the estimate runs on the state of the block before it. */
  refundBlock: bigint;
  /**
   * The oracle's bridge at the end of the block before `refundBlock` (the caller holds the oracle's
   * `BridgeChanged` history: chain-audit.ts); undefined: it had none, and the fit cannot be told.
   */
  bridge: Address | undefined;
}

type FitClient = Pick<PublicClient, 'getBlock' | 'estimateContractGas'>;

const ZERO = `0x${'00'.repeat(32)}` as Hex;

export async function answerFit(client: FitClient, f: FulfilAsked): Promise<AnswerFit> {
  const blockNumber = f.refundBlock - 1n;
  let limit: bigint;
  try {
    limit = fulfilGasLimit((await client.getBlock({ blockNumber })).gasLimit);
  } catch (e) {
    return { kind: 'unknown', why: `block ${blockNumber} could not be read: ${firstLine(e)}` };
  }
  const bridge = f.bridge;
  if (bridge === undefined)
    return { kind: 'unknown', why: `the oracle had no bridge at block ${blockNumber}` };
  const estimate = (answer: string, verdictDigest: Hex, transcriptRoot: Hex) =>
    client.estimateContractGas({
      account: bridge,
      address: f.oracle,
      abi: synodOracleAbi,
      functionName: 'fulfill',
      args: [f.requestNo, f.questionHash, answer, verdictDigest, transcriptRoot],
      blockNumber,
    });
  let gas: bigint;
  try {
    gas = await estimate(f.answer, f.verdictDigest, f.transcriptRoot);
  } catch (e) {
    if (!saysOutOfGas(e) && !callbackShort(e))
      return { kind: 'unknown', why: `its fulfil could not be estimated: ${firstLine(e)}` };
    // Out of gas for this answer; an empty one must fit, else the request itself could not be settled.
    const empty = await estimate('', ZERO, ZERO).then(
      (g) => g <= limit,
      () => false,
    );
    return empty
      ? { kind: 'too-large', limit, why: firstLine(e) }
      : { kind: 'unknown', why: `not even an empty answer could be estimated: ${firstLine(e)}` };
  }
  if (gas > limit) return { kind: 'too-large', limit, why: `it needs ${gas} gas` };
  return { kind: 'fits', gas, limit };
}

/** The oracle's refusal to call back with less gas than the asker's `callbackGasLimit`. */
function callbackShort(e: unknown): boolean {
  const reverted = e instanceof BaseError ? e.walk((x) => x instanceof ContractFunctionRevertedError) : null;
  return (reverted as ContractFunctionRevertedError | null)?.data?.errorName === 'InsufficientGasForCallback';
}

const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0] ?? '';
