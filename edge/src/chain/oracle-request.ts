import { type ChainQuestionInput, chainQuestionInput, type Origin } from '@synod/shared';
import { type Address, encodeAbiParameters, type Hex, keccak256, parseAbiParameters } from 'viem';
import type { foundView } from '../views.ts';

/** The relay's public view of a request (history or admission log). */
export type FoundView = ReturnType<typeof foundView>;

/** One `LLMRequested` event of a SynodOracle, as the chain watcher read it from a confirmed block. */
export interface OracleRequestEvent {
  chainId: number;
  /** The oracle, lowercase. */
  contract: Address;
  requestNo: bigint;
  requester: Address;
  prompt: string;
  acceptedModels: readonly string[];
  maxTokens: number;
  temperatureCenti: number;
  quorum: number;
  fee: bigint;
  /** Unix seconds after which anyone may refund the request on chain. */
  deadline: bigint;
  /**
   * The oracle's hash of who asks what (`questionHashOf`): every settlement names it, so one signed for
   * this event can never settle another question a reorg put under the same number.
   */
  questionHash: Hex;
  txHash: Hex;
  logIndex: number;
  blockNumber: bigint;
  blockHash: Hex;
}

/** The decoded arguments of an `LLMRequested` log, as viem gives them. */
export type LLMRequestedArgs = Pick<
  OracleRequestEvent,
  | 'requestNo'
  | 'requester'
  | 'prompt'
  | 'acceptedModels'
  | 'maxTokens'
  | 'temperatureCenti'
  | 'quorum'
  | 'fee'
  | 'deadline'
  | 'questionHash'
>;

/** An event from its oracle, its decoded arguments and where it was mined. */
export function oracleRequestEvent(
  oracle: { chainId: number; contract: string },
  args: LLMRequestedArgs,
  at: { txHash: Hex; logIndex: number; blockNumber: bigint; blockHash: Hex },
): OracleRequestEvent {
  return {
    chainId: oracle.chainId,
    contract: oracle.contract.toLowerCase() as Address,
    requestNo: args.requestNo,
    requester: args.requester,
    prompt: args.prompt,
    acceptedModels: args.acceptedModels,
    maxTokens: args.maxTokens,
    temperatureCenti: args.temperatureCenti,
    quorum: args.quorum,
    fee: args.fee,
    deadline: args.deadline,
    questionHash: args.questionHash,
    ...at,
  };
}

/** The network request id of an on-chain request: `<chainId>:<contract>:<requestNo>`. */
export function chainRequestIdOf(e: Pick<OracleRequestEvent, 'chainId' | 'contract' | 'requestNo'>): string {
  return `${e.chainId}:${e.contract.toLowerCase()}:${e.requestNo}`;
}

/** The request's `origin`: the chain, the oracle, the request number and where the event was mined. */
export function chainOrigin(e: OracleRequestEvent): Origin {
  return {
    blockNumber: Number(e.blockNumber),
    chainId: e.chainId,
    contract: e.contract.toLowerCase(),
    kind: 'chain',
    requestNo: e.requestNo.toString(),
    txHash: e.txHash.toLowerCase(),
  };
}

/**
 * Whether the event's decoded strings are the bytes that were asked: the oracle's `questionHashOf`
 * recomputed from them equals the event's `questionHash`. Solidity's `string` holds any bytes, and viem
 * decodes ones that are not UTF-8 leniently (U+FFFD for each bad byte): such a request must be refused
 * (`INVALID_INPUT`), not answered as another prompt whose transcript could never match the question.
 */
export function decodedAsAsked(
  e: Pick<
    OracleRequestEvent,
    'requester' | 'prompt' | 'acceptedModels' | 'maxTokens' | 'temperatureCenti' | 'quorum' | 'questionHash'
  >,
): boolean {
  const encoded = encodeAbiParameters(QUESTION_PARAMETERS, [
    e.requester,
    e.prompt,
    e.acceptedModels,
    e.maxTokens,
    e.temperatureCenti,
    e.quorum,
  ]);
  return keccak256(encoded) === e.questionHash.toLowerCase();
}
const QUESTION_PARAMETERS = parseAbiParameters('address, string, string[], uint32, uint16, uint16');

/** The oracle's bound on a refund's reason (`MAX_REASON_BYTES`): a longer one reverts (`BadReason`). */
export const MAX_REASON_BYTES = 64;

/** A refund reason the oracle takes: the stable code itself, or `FAILED` for anything that is not one. */
export function refundReason(code: string): string {
  return /^[A-Z0-9_]+$/.test(code) && code.length <= MAX_REASON_BYTES ? code : 'FAILED';
}

/**
 * The event as the relay's request input (the same `POST /v1/inference` validates; `chainQuestionInput`
 * from @synod/shared, which synod-verify checks refunds for invalid input by): the prompt, the accepted
 * models, `maxTokens`, the temperature (hundredths on chain) and the quorum; everything else takes the
 * relay's documented defaults.
 */
export function oracleRequestInput(e: OracleRequestEvent): ChainQuestionInput {
  return chainQuestionInput(e);
}

/**
 * Whether a request the relay already holds under a chain request id is the event's. After a reorg the
 * same request number can come back holding another request (someone else's `callLLM` took the number):
 * that one must not get the first one's answer. Nor must the same question asked in another transaction
 * (another requester, or another fee): the request packet the nodes answered names the first
 * transaction (`origin.txHash`), which is no longer on chain, so an auditor could not tie the answer to
 * the request that holds the number (synod-verify --chain fails it). Only the same transaction, mined
 * again in another block, is the same request.
 */
export function sameRequest(held: FoundView['request'], e: OracleRequestEvent): boolean {
  const asked = oracleRequestInput(e);
  return (
    held.origin.kind === 'chain' &&
    held.origin.txHash === e.txHash.toLowerCase() &&
    held.prompt === asked.prompt &&
    held.messages === undefined &&
    held.acceptedModels.length === asked.models.length &&
    held.acceptedModels.every((m, i) => m === asked.models[i]) &&
    held.params.maxTokens === asked.params.maxTokens &&
    held.params.temperature === asked.params.temperature &&
    held.frame.quorum === asked.frame.quorum
  );
}

/** What to write back on chain for a request, given its view in the relay (null: not found). */
export type Settlement =
  | { kind: 'wait' }
  | { kind: 'fulfill'; answer: string; verdictDigest: Hex; transcriptRoot: Hex }
  | { kind: 'refund'; reason: string };

/**
 * Settle a request once the network is done with it: a verdict with a winner fulfils with the winner's
 * output, its verdict digest and the transcript's Merkle root; no consensus, expiry or failure refund
 * with the stable code. Anything still moving (queued, pending, sealed) waits.
 */
export function settlementFor(view: Pick<FoundView, 'status' | 'error' | 'verdict'> | null): Settlement {
  if (view === null) return { kind: 'wait' };
  switch (view.status) {
    case 'verdict': {
      const v = view.verdict;
      if (!v?.winner || !v.verdictDigest || !v.transcriptRoot)
        return { kind: 'refund', reason: 'NO_CONSENSUS' };
      return {
        kind: 'fulfill',
        answer: v.winner.output,
        verdictDigest: bytes32(v.verdictDigest),
        transcriptRoot: bytes32(v.transcriptRoot),
      };
    }
    case 'no-consensus':
      return { kind: 'refund', reason: 'NO_CONSENSUS' };
    case 'expired':
      return { kind: 'refund', reason: view.error ?? 'EXPIRED' };
    case 'failed':
      return { kind: 'refund', reason: view.error ?? 'FAILED' };
    default:
      return { kind: 'wait' };
  }
}

/** A 64-hex digest as a Solidity bytes32. */
export function bytes32(hex: string): Hex {
  const h = hex.startsWith('0x') ? hex.slice(2) : hex;
  if (!/^[0-9a-f]{64}$/.test(h)) throw new TypeError(`not a 32-byte hex digest: ${hex.slice(0, 80)}`);
  return `0x${h}`;
}
