/**
 * `synod-verify --chain RPC --oracle ADDR --relay URL`: audit what a SynodOracle wrote on chain. For each
 * `LLMFulfilled` event (from `--from-block`), the transcript of that chain request is fetched from a relay
 * and re-derived here; the answer, verdict digest and transcript root written on chain must be the ones
 * derived, and the transcript's request must be the question asked on chain (its `LLMRequested` event:
 * prompt, accepted models, max tokens, temperature, and the transaction that asked). Nothing the relay or
 * the bridge says is taken for true.
 */
import { synodOracleAbi } from '@synod/contracts/abi';
import { verifyTranscript } from '@synod/shared';
import { type Address, createPublicClient, type Hex, http } from 'viem';
import { checkAttestations } from './attestations.ts';
import type { AuditFailure, AuditReport } from './audit.ts';
import { getText } from './audit.ts';
import { readVerifyInput, VerifyInputError } from './verify-input.ts';

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

interface Asked {
  prompt: string;
  acceptedModels: readonly string[];
  maxTokens: number;
  temperatureCenti: number;
  txHash: Hex;
}

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
      const [ev] = await client
        .getContractEvents({
          address: oracle,
          abi: synodOracleAbi,
          eventName: 'LLMRequested',
          args: { requestNo: f.requestNo },
          fromBlock: 0n,
        })
        .catch(() => []);
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
  const reasons: string[] = [];
  let input: ReturnType<typeof readVerifyInput>;
  try {
    input = readVerifyInput(
      await getText(`${relay}/v1/verify/${encodeURIComponent(requestId)}`, timeoutS, 'transcript'),
    );
  } catch (e) {
    if (e instanceof VerifyInputError) return { requestId, reasons: [e.message] };
    throw e;
  }
  const check = await verifyTranscript(input.transcript);
  if (!check.ok)
    return { requestId, reasons: [`does not hold: ${check.error.code}: ${check.error.message}`] };
  if (check.requestId !== requestId) reasons.push(`the transcript is of another request, ${check.requestId}`);
  const attested = await checkAttestations(input.attestations ?? [], check.requestId, {
    verdictDigest: check.verdictDigest,
    root: check.root,
  });
  for (const bad of attested.invalid) {
    reasons.push(`an attestation from ${bad.from.slice(0, 16)}… does not hold: ${bad.why}`);
  }
  const onChain = (what: string, given: string, derived: string | null) => {
    if (given !== derived)
      reasons.push(`${what} on chain ${given} is not the derived ${derived ?? '(none)'}`);
  };
  onChain('the verdict digest', f.verdictDigest.slice(2).toLowerCase(), check.verdictDigest);
  onChain('the transcript root', f.transcriptRoot.slice(2).toLowerCase(), check.root);
  const winner = check.verdict.winner;
  if (!winner) reasons.push('an answer was written on chain, but the derived verdict has no winner');
  else if (winner.output !== f.answer) {
    reasons.push(
      `the answer on chain is not the winner's output (${JSON.stringify(clip(f.answer))} vs ${JSON.stringify(clip(winner.output))})`,
    );
  }
  // The question answered must be the one asked on chain.
  const request = (
    input.transcript as { packets?: { type?: string; body?: Record<string, unknown> }[] }
  ).packets?.find((p) => p.type === 'request')?.body;
  if (!asked) reasons.push('the oracle has no LLMRequested event for this request number');
  else if (request) {
    const params = request['params'] as { maxTokens?: number; temperature?: number } | undefined;
    const origin = request['origin'] as { txHash?: string } | undefined;
    if (request['prompt'] !== asked.prompt)
      reasons.push('the transcript answers another prompt than the one asked on chain');
    if (JSON.stringify(request['acceptedModels']) !== JSON.stringify(asked.acceptedModels)) {
      reasons.push('the transcript accepts other models than the ones asked for on chain');
    }
    if (params?.maxTokens !== asked.maxTokens || params?.temperature !== asked.temperatureCenti / 100) {
      reasons.push('the transcript was generated with other parameters than the ones asked for on chain');
    }
    if (origin?.txHash !== asked.txHash.toLowerCase()) {
      reasons.push(`the transcript's request names transaction ${origin?.txHash}, not ${asked.txHash}`);
    }
  }
  for (const [what, given, derived] of [
    ["the relay's verdict digest", input.claimed.verdictDigest, check.verdictDigest],
    ["the relay's transcript root", input.claimed.root, check.root],
  ] as const) {
    if (given !== undefined && given !== derived)
      reasons.push(`${what} ${given} is not the derived ${derived}`);
  }
  return reasons.length > 0 ? { requestId, reasons } : null;
}

/** The question of an `LLMRequested` event. */
function askedOf(
  a: {
    prompt?: string | undefined;
    acceptedModels?: readonly string[] | undefined;
    maxTokens?: number | undefined;
    temperatureCenti?: number | undefined;
  },
  txHash: Hex,
): Asked {
  return {
    prompt: a.prompt ?? '',
    acceptedModels: a.acceptedModels ?? [],
    maxTokens: Number(a.maxTokens),
    temperatureCenti: Number(a.temperatureCenti),
    txHash,
  };
}

const clip = (s: string) => (s.length > 60 ? `${s.slice(0, 60)}…` : s);
