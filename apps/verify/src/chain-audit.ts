/**
 * `synod-verify --chain RPC --oracle ADDR --relay URL`: audit what a SynodOracle wrote on chain. For each
 * `LLMFulfilled` event (from `--from-block`), the transcript of that chain request is fetched from a relay
 * and re-derived here; the answer, verdict digest and transcript root written on chain must be the ones
 * derived, and the transcript's request must be the question asked on chain (its `LLMRequested` event:
 * prompt, accepted models, max tokens, temperature, and the transaction that asked). Nothing the relay or
 * the bridge says is taken for true.
 */
import { synodOracleAbi } from '@synod/contracts/abi';
import { type Address, createPublicClient, type Hex, http } from 'viem';
import { type AuditFailure, type AuditReport, fetchAndVerify, type Verified } from './audit.ts';
import { type Asked, questionMismatches } from './chain-question.ts';
import { reasonsOf } from './report.ts';
import { VerifyInputError } from './verify-input.ts';

export interface ChainAuditOptions {
  rpcUrl: string;
  oracle: Address;
  /** Where the transcripts are read (any relay that stores them). */
  relay: string;
  fromBlock: bigint;
  /** Most fulfilled requests to check. */
  limit: number;
  timeoutS: number;
}

/** Blocks per `eth_getLogs` call: within what public RPC endpoints allow. */
const LOG_WINDOW = 5_000n;

interface Fulfilled {
  requestNo: bigint;
  answer: string;
  verdictDigest: Hex;
  transcriptRoot: Hex;
}

/** Audit the oracle's fulfilled requests (see the file's header). An unreadable chain or relay throws. */
export async function auditChain(o: ChainAuditOptions): Promise<AuditReport> {
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
  const relay = o.relay.replace(/\/+$/, '');
  const fulfilled: Fulfilled[] = [];
  const asked = new Map<bigint, Asked>();
  for (let from = o.fromBlock; from <= latest && fulfilled.length < o.limit; from += LOG_WINDOW) {
    const to = from + LOG_WINDOW - 1n < latest ? from + LOG_WINDOW - 1n : latest;
    const range = { address: oracle, abi: synodOracleAbi, fromBlock: from, toBlock: to } as const;
    let requested: Awaited<
      ReturnType<typeof client.getContractEvents<typeof synodOracleAbi, 'LLMRequested'>>
    >;
    let answered: Awaited<ReturnType<typeof client.getContractEvents<typeof synodOracleAbi, 'LLMFulfilled'>>>;
    try {
      [requested, answered] = await Promise.all([
        client.getContractEvents({ ...range, eventName: 'LLMRequested' }),
        client.getContractEvents({ ...range, eventName: 'LLMFulfilled' }),
      ]);
    } catch (e) {
      throw new VerifyInputError(
        `could not read the oracle's events: ${(e as Error).message.split('\n')[0]}`,
      );
    }
    for (const ev of requested) {
      if (ev.args.requestNo !== undefined) asked.set(ev.args.requestNo, askedOf(ev.args, ev.transactionHash));
    }
    for (const ev of answered) {
      const a = ev.args;
      if (a.requestNo === undefined || fulfilled.length >= o.limit) continue;
      fulfilled.push({
        requestNo: a.requestNo,
        answer: a.answer ?? '',
        verdictDigest: a.verdictDigest ?? '0x',
        transcriptRoot: a.transcriptRoot ?? '0x',
      });
    }
  }
  const report: AuditReport = {
    relay: `${relay} for oracle ${oracle} on chain ${chainId}`,
    checked: 0,
    held: 0,
    failures: [],
  };
  for (const f of fulfilled) {
    const requestId = `${chainId}:${oracle}:${f.requestNo}`;
    // Asked before --from-block: its LLMRequested is looked up by its (indexed) request number.
    if (!asked.has(f.requestNo)) {
      // A chain that cannot be read here is the audit's failure, not "never asked".
      const [ev] = await client
        .getContractEvents({
          address: oracle,
          abi: synodOracleAbi,
          eventName: 'LLMRequested',
          args: { requestNo: f.requestNo },
          fromBlock: 0n,
        })
        .catch((e: Error) => {
          throw new VerifyInputError(
            `could not read the oracle's LLMRequested event ${f.requestNo}: ${e.message.split('\n')[0]}`,
          );
        });
      if (ev) asked.set(f.requestNo, askedOf(ev.args, ev.transactionHash));
    }
    const failure = await auditFulfilled(relay, requestId, f, asked.get(f.requestNo), o.timeoutS);
    report.checked++;
    if (failure) report.failures.push(failure);
    else report.held++;
  }
  return report;
}

async function auditFulfilled(
  relay: string,
  requestId: string,
  f: Fulfilled,
  asked: Asked | undefined,
  timeoutS: number,
): Promise<AuditFailure | null> {
  let verified: Verified;
  try {
    verified = await fetchAndVerify(`${relay}/v1/verify/${encodeURIComponent(requestId)}`, timeoutS);
  } catch (e) {
    if (e instanceof VerifyInputError) return { requestId, reasons: [e.message] };
    throw e;
  }
  const { input, report } = verified;
  const check = report.check;
  // The question is compared either way: what the transcript claims was asked is worth naming too.
  if (!check.ok)
    return { requestId, reasons: [...reasonsOf(report), ...questionMismatches(input.transcript, asked)] };
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
  return reasons.length > 0 ? { requestId, reasons } : null;
}

/** The question of an `LLMRequested` event. */
function askedOf(
  a: {
    prompt?: string | undefined;
    acceptedModels?: readonly string[] | undefined;
    maxTokens?: number | undefined;
    temperatureCenti?: number | undefined;
    quorum?: number | undefined;
  },
  txHash: Hex,
): Asked {
  return {
    prompt: a.prompt ?? '',
    acceptedModels: a.acceptedModels ?? [],
    maxTokens: Number(a.maxTokens),
    temperatureCenti: Number(a.temperatureCenti),
    quorum: Number(a.quorum),
    txHash,
  };
}

const clip = (s: string) => (s.length > 60 ? `${s.slice(0, 60)}…` : s);
