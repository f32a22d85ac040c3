/**
 * `synod-verify --chain RPC --oracle ADDR --relay URL`: audit what a SynodOracle wrote on chain. For each
 * `LLMFulfilled` event (from `--from-block`), the transcript of that chain request is fetched from a relay
 * and re-derived here; the answer, verdict digest and transcript root written on chain must be the ones
 * derived, and the transcript's request must be the question asked on chain (its `LLMRequested` event:
 * prompt, accepted models, max tokens, temperature, and the transaction that asked). Each `LLMRefunded`
 * event is checked as far as it can be from outside (refund-audit.ts): who sent it (the bridge, or anyone
 * after the deadline) and why. Nothing the relay or the bridge says is taken for true.
 */
import { synodOracleAbi } from '@synod/contracts/abi';
import {
  type Address,
  createPublicClient,
  decodeAbiParameters,
  type Hex,
  http,
  parseAbiParameters,
} from 'viem';
import { answerFit } from './answer-fit.ts';
import type { AskedBytes } from './asked-input.ts';
import { countSigner, fetchAndVerify, isEmpty, publishedCoordinator, type Verified } from './audit.ts';
import { type Asked, questionMismatches } from './chain-question.ts';
import { addAnswer, addRefund, type ChainAuditReport, emptyChainReport } from './chain-report.ts';
import { auditRefund, type Refund } from './refund-audit.ts';
import { type CoordinatorPin, reasonsOf, type VerifyReport } from './report.ts';
import { isRateLimited, VerifyInputError } from './verify-input.ts';

export interface ChainAuditOptions {
  rpcUrl: string;
  oracle: Address;
  /** Where the transcripts are read (any relay that stores them). */
  relay: string;
  fromBlock: bigint;
  /** Most settlements (answers and refunds) to check. */
  limit: number;
  timeoutS: number;
  /**
   * The coordinators every transcript (and a declined request's packet) must be signed by
   * (`--coordinator`); absent: none pinned. The relay is where transcripts are read, not necessarily the
   * one that coordinated them: what anchors an answer is the digest and root the oracle's bridge wrote.
   */
  coordinators?: readonly string[];
}

/** Blocks per `eth_getLogs` call: within what public RPC endpoints allow (read from the latest down). */
const LOG_WINDOW = 5_000n;

interface Fulfilled {
  requestNo: bigint;
  answer: string;
  verdictDigest: Hex;
  transcriptRoot: Hex;
}

/** The question of an `LLMRequested` event, with its strings as the bytes that were sent. */
type AskedOnChain = Asked & AskedBytes & { questionHash: Hex };

/** Audit the oracle's settlements (see the file's header). An unreadable chain throws. */
export async function auditChain(o: ChainAuditOptions): Promise<ChainAuditReport> {
  const client = createPublicClient({ transport: http(o.rpcUrl, { timeout: o.timeoutS * 1000 }) });
  let chainId: number;
  let latest: bigint;
  try {
    [chainId, latest] = await Promise.all([client.getChainId(), client.getBlockNumber()]);
  } catch (e) {
    throw new VerifyInputError(
      `could not read the chain at ${o.rpcUrl}: ${(e as Error).message.split('\n')[0]}`,
    );
  }
  const oracle = o.oracle.toLowerCase() as Address;
  // An address with no contract has no events: its audit would pass having read nothing.
  let code: Hex | undefined;
  try {
    code = await client.getCode({ address: oracle });
  } catch (e) {
    throw new VerifyInputError(
      `could not read the chain at ${o.rpcUrl}: ${(e as Error).message.split('\n')[0]}`,
    );
  }
  if (code === undefined || code === '0x') {
    throw new VerifyInputError(
      `--oracle ${oracle} has no contract code on chain ${chainId} (at block ${latest}): not a SynodOracle there; check the address and the chain`,
    );
  }
  const relay = o.relay.replace(/\/+$/, '');
  const fulfilled: Fulfilled[] = [];
  const refunded: Refund[] = [];
  const asked = new Map<bigint, AskedOnChain>();
  const full = () => fulfilled.length + refunded.length >= o.limit;
  // Newest first, as --limit promises: windows from the latest block down to --from-block, each one's
  // settlements from the last mined, so a long history's new answers are never left behind its old.
  let limited: string | null = null;
  let oldest: bigint | null = null;
  for (let to = latest; to >= o.fromBlock; ) {
    if (full()) {
      // Blocks below those read are left: said, whether or not they hold any settlement.
      limited = `stopped at --limit ${o.limit}: blocks ${o.fromBlock} to ${to} were not read`;
      break;
    }
    const from = to - LOG_WINDOW + 1n > o.fromBlock ? to - LOG_WINDOW + 1n : o.fromBlock;
    const range = { address: oracle, abi: synodOracleAbi, fromBlock: from, toBlock: to } as const;
    let requested: Awaited<
      ReturnType<typeof client.getContractEvents<typeof synodOracleAbi, 'LLMRequested'>>
    >;
    let answered: Awaited<ReturnType<typeof client.getContractEvents<typeof synodOracleAbi, 'LLMFulfilled'>>>;
    let refunds: Awaited<ReturnType<typeof client.getContractEvents<typeof synodOracleAbi, 'LLMRefunded'>>>;
    try {
      [requested, answered, refunds] = await Promise.all([
        client.getContractEvents({ ...range, eventName: 'LLMRequested' }),
        client.getContractEvents({ ...range, eventName: 'LLMFulfilled' }),
        client.getContractEvents({ ...range, eventName: 'LLMRefunded' }),
      ]);
    } catch (e) {
      throw new VerifyInputError(
        `could not read the oracle's events: ${(e as Error).message.split('\n')[0]}`,
      );
    }
    for (const ev of requested) {
      if (ev.args.requestNo !== undefined) asked.set(ev.args.requestNo, askedOf(ev));
    }
    // Answers and refunds, the last mined first, up to the limit between them.
    const settled = [...answered, ...refunds].sort((x, y) =>
      x.blockNumber === y.blockNumber ? y.logIndex - x.logIndex : x.blockNumber < y.blockNumber ? 1 : -1,
    );
    for (const ev of settled) {
      if (ev.args.requestNo === undefined) continue;
      if (full()) {
        limited = `stopped at --limit ${o.limit}: settlements mined before the oldest audited (block ${oldest}) were not audited`;
        break;
      }
      oldest = ev.blockNumber;
      if (ev.eventName === 'LLMRefunded') {
        refunded.push({
          requestNo: ev.args.requestNo,
          reason: ev.args.reason ?? '',
          txHash: ev.transactionHash,
        });
        continue;
      }
      const a = ev.args;
      if (a.requestNo === undefined) continue;
      fulfilled.push({
        requestNo: a.requestNo,
        answer: a.answer ?? '',
        verdictDigest: a.verdictDigest ?? '0x',
        transcriptRoot: a.transcriptRoot ?? '0x',
      });
    }
    if (limited !== null) break;
    to = from - 1n;
  }
  const pinned: CoordinatorPin | null =
    o.coordinators === undefined
      ? null
      : { ids: o.coordinators, by: 'the coordinator pinned by --coordinator' };
  // What the relay says it is, for the report: a relay that cannot say is read for transcripts all the same.
  const published = await publishedCoordinator(relay, o.timeoutS).catch((e: unknown) => {
    if (e instanceof VerifyInputError) return null;
    throw e;
  });
  const report = emptyChainReport(`${relay} for oracle ${oracle} on chain ${chainId}`, { published, pinned });
  report.limited = limited;
  // Asked before --from-block: its LLMRequested is looked up by its (indexed) request number.
  const askedFor = async (requestNo: bigint): Promise<AskedOnChain | undefined> => {
    if (!asked.has(requestNo)) {
      // A chain that cannot be read here is the audit's failure, not "never asked".
      const [ev] = await client
        .getContractEvents({
          address: oracle,
          abi: synodOracleAbi,
          eventName: 'LLMRequested',
          args: { requestNo },
          fromBlock: 0n,
        })
        .catch((e: Error) => {
          throw new VerifyInputError(
            `could not read the oracle's LLMRequested event ${requestNo}: ${e.message.split('\n')[0]}`,
          );
        });
      if (ev) asked.set(requestNo, askedOf(ev));
    }
    return asked.get(requestNo);
  };
  for (const f of fulfilled) {
    const requestId = `${chainId}:${oracle}:${f.requestNo}`;
    const question = await askedFor(f.requestNo);
    try {
      const audited = await auditFulfilled(
        relay,
        requestId,
        f,
        question,
        o.timeoutS,
        pinned,
        report.signedBy,
      );
      addAnswer(report, requestId, audited.report, audited.reasons);
    } catch (e) {
      // The relay rate-limited its transcript past the retries: not checked, neither held nor failed.
      if (!isRateLimited(e)) throw e;
      report.unchecked.push({ requestId, why: (e as Error).message });
    }
  }
  const bridges = refunded.length > 0 ? await bridgeChanges(client, oracle) : [];
  for (const r of refunded) {
    const requestId = `${chainId}:${oracle}:${r.requestNo}`;
    let sent: { from: Address; blockNumber: bigint | null; transactionIndex: number | null };
    try {
      sent = await client.getTransaction({ hash: r.txHash });
    } catch (e) {
      throw new VerifyInputError(
        `could not read the refund transaction ${r.txHash}: ${(e as Error).message.split('\n')[0]}`,
      );
    }
    const sender = sent.from.toLowerCase() as Address;
    const bridge = bridgeAt(bridges, sent.blockNumber ?? latest, sent.transactionIndex ?? 0);
    const question = await askedFor(r.requestNo);
    // When it was mined (its block's time): an answer the relay reached only after it was not withheld.
    const refundedAt =
      sent.blockNumber === null
        ? undefined
        : Number((await client.getBlock({ blockNumber: sent.blockNumber })).timestamp) * 1000;
    let audited: Awaited<ReturnType<typeof auditRefund>>;
    try {
      audited = await auditRefund({
        relay,
        requestId,
        refund: r,
        sender,
        byBridge: bridge === sender,
        asked: question,
        timeoutS: o.timeoutS,
        pinned,
        signedBy: report.signedBy,
        ...(refundedAt === undefined ? {} : { refundedAt }),
        ...(question && sent.blockNumber !== null
          ? {
              fit: (answer) =>
                answerFit(client, {
                  oracle,
                  requestNo: r.requestNo,
                  questionHash: question.questionHash,
                  answer: answer.output,
                  verdictDigest: answer.verdictDigest,
                  transcriptRoot: answer.transcriptRoot,
                  refundBlock: sent.blockNumber as bigint,
                  // At the end of the block before the refund's: the state the fulfil is estimated on.
                  bridge: bridgeAt(bridges, sent.blockNumber as bigint, 0),
                }),
            }
          : {}),
      });
    } catch (e) {
      if (!isRateLimited(e)) throw e;
      report.unchecked.push({ requestId, why: (e as Error).message });
      continue;
    }
    addRefund(report, audited);
  }
  if (isEmpty(report)) {
    report.nothing = `the oracle wrote no settlement (LLMFulfilled or LLMRefunded) from block ${o.fromBlock} to ${latest}`;
  }
  return report;
}

/** The oracle's `BridgeChanged` events (its constructor emits the first): who the bridge was, when. */
interface BridgeChange {
  bridge: Address;
  blockNumber: bigint;
  transactionIndex: number;
}

async function bridgeChanges(
  client: ReturnType<typeof createPublicClient>,
  oracle: Address,
): Promise<BridgeChange[]> {
  const events = await client
    .getContractEvents({ address: oracle, abi: synodOracleAbi, eventName: 'BridgeChanged', fromBlock: 0n })
    .catch((e: Error) => {
      throw new VerifyInputError(
        `could not read the oracle's BridgeChanged events: ${e.message.split('\n')[0]}`,
      );
    });
  return events.map((ev) => ({
    bridge: (ev.args.bridge ?? '0x').toLowerCase() as Address,
    blockNumber: ev.blockNumber,
    transactionIndex: ev.transactionIndex,
  }));
}

/** The bridge when the transaction at (block, index) ran: the last change before it (undefined: none). */
function bridgeAt(
  changes: BridgeChange[],
  blockNumber: bigint,
  transactionIndex: number,
): Address | undefined {
  let bridge: Address | undefined;
  for (const c of changes) {
    if (
      c.blockNumber < blockNumber ||
      (c.blockNumber === blockNumber && c.transactionIndex < transactionIndex)
    )
      bridge = c.bridge;
  }
  return bridge;
}

async function auditFulfilled(
  relay: string,
  requestId: string,
  f: Fulfilled,
  asked: Asked | undefined,
  timeoutS: number,
  pinned: CoordinatorPin | null,
  signedBy: Record<string, number>,
): Promise<{ reasons: string[]; report: VerifyReport | null }> {
  let verified: Verified;
  try {
    verified = await fetchAndVerify(`${relay}/v1/verify/${encodeURIComponent(requestId)}`, timeoutS, pinned);
  } catch (e) {
    if (e instanceof VerifyInputError && !isRateLimited(e)) return { reasons: [e.message], report: null };
    throw e;
  }
  const { input, report } = verified;
  countSigner(signedBy, report);
  const check = report.check;
  // The question is compared either way: what the transcript claims was asked is worth naming too.
  if (!check.ok)
    return { reasons: [...reasonsOf(report), ...questionMismatches(input.transcript, asked)], report };
  // What the oracle wrote must be what is derived here (the answer compared whole, shown clipped).
  const output = check.verdict.winner?.output;
  for (const [what, given, derived] of [
    ['the verdict digest on chain', f.verdictDigest.slice(2).toLowerCase(), check.verdictDigest],
    ['the transcript root on chain', f.transcriptRoot.slice(2).toLowerCase(), check.root],
  ] as const) {
    report.comparisons.push({ what, given, derived, match: given === derived });
  }
  report.comparisons.push({
    what: 'the answer on chain',
    given: JSON.stringify(clip(f.answer)),
    derived: output === undefined ? null : JSON.stringify(clip(output)),
    match: output === f.answer,
  });
  const reasons = reasonsOf(report);
  if (check.requestId !== requestId)
    reasons.unshift(`the transcript is of another request, ${check.requestId}`);
  reasons.push(...questionMismatches(input.transcript, asked));
  return { reasons, report };
}

/** The non-indexed members of `LLMRequested`, its strings read as the bytes that were sent. */
const REQUESTED_BYTES = parseAbiParameters(
  'bytes, bytes[], uint32, uint16, uint16, uint256, uint64, bytes32',
);

/** The question of an `LLMRequested` event. */
export function askedOf(ev: {
  args: {
    prompt?: string | undefined;
    acceptedModels?: readonly string[] | undefined;
    maxTokens?: number | undefined;
    temperatureCenti?: number | undefined;
    quorum?: number | undefined;
    questionHash?: Hex | undefined;
  };
  data: Hex;
  transactionHash: Hex;
}): AskedOnChain {
  const a = ev.args;
  const [promptBytes, modelBytes] = decodeAbiParameters(REQUESTED_BYTES, ev.data);
  return {
    prompt: a.prompt ?? '',
    acceptedModels: a.acceptedModels ?? [],
    maxTokens: Number(a.maxTokens),
    temperatureCenti: Number(a.temperatureCenti),
    quorum: Number(a.quorum),
    questionHash: a.questionHash ?? '0x',
    txHash: ev.transactionHash,
    promptBytes,
    modelBytes,
  };
}

const clip = (s: string) => (s.length > 60 ? `${s.slice(0, 60)}…` : s);
