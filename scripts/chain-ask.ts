/**
 * `npm run chain:ask -- "prompt" [--models m1,m2] [--max-tokens N] [--quorum N] [--timeout-s N]
 * [--rpc URL --chain-id N --oracle ADDR] [--relay URL]`: what a smart contract does, from the command
 * line, against the local network of `npm start`. It reads the chain and oracle from
 * .data/local/chain.json (SYNOD_DATA_DIR; `{rpc, chainId, oracle, fromBlock, relay}`, written by `npm
 * start`), each overridden by its flag (with all of --rpc, --chain-id and --oracle the file is not read),
 * funds a fresh account on the chain (`fundedAccount`, anvil's `anvil_setBalance`: development chains
 * only), calls `callLLM`, and waits for the relay's bridge to write the network's answer back
 * (`LLMFulfilled`) or refund the request (`LLMRefunded`).
 * Exit codes: 0 answered (or `--help`), 1 refunded, no answer in time or no request logged by the
 * transaction, 2 bad usage or no chain to ask.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  fundedAccount,
  NoOracleRequestError,
  requestedNumbers,
  rpcChain,
  synodOracleAbi,
} from '@synod/contracts';
import { FRAME_BOUNDS, InferenceParamsSchema, LIMITS } from '@synod/shared';
import { type Address, createPublicClient, createWalletClient, http, type PublicClient } from 'viem';

const root = resolve(import.meta.dir, '..');
const data = resolve(process.env['SYNOD_DATA_DIR'] ?? join(root, '.data/local'));

const USAGE =
  'usage: npm run chain:ask -- "prompt" [--models m1,m2] [--max-tokens N] [--quorum N] [--timeout-s N] [--rpc URL --chain-id N --oracle ADDR] [--relay URL]';

/** Where to ask: what chain.json holds (`npm start` writes it), or the flags. */
interface ChainInfo {
  rpc: string;
  chainId: number;
  oracle: Address;
  relay?: string;
}

/** Bad usage: its message is the one line printed before exit 2. */
class UsageError extends Error {}

/** A flag's value as a whole number in [min, max]. */
function whole(flag: string, text: string, min: number, max: number): number {
  const n = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
  if (n >= min && n <= max) return n;
  throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, got "${text}"`);
}

/** The command line, checked before anything is read or sent. */
function options(args: string[]) {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(args);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) return null;
  const maxTokens = InferenceParamsSchema.shape.maxTokens;
  const models = values.models.split(',').map((m) => m.trim());
  if (models.some((m) => m === '') || models.length > LIMITS.maxAcceptedModels) {
    throw new UsageError(
      `--models must be 1-${LIMITS.maxAcceptedModels} comma-separated model ids without empty entries, got "${values.models}"`,
    );
  }
  const url = (flag: string, text: string | undefined) => {
    if (text !== undefined && !/^https?:\/\/\S+$/.test(text))
      throw new UsageError(`${flag} must be an http(s) URL, got "${text}"`);
    return text;
  };
  const oracle = values.oracle;
  if (oracle !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(oracle)) {
    throw new UsageError(`--oracle must be a 0x address, got "${oracle}"`);
  }
  const chainId = values['chain-id'];
  return {
    chain: {
      rpc: url('--rpc', values.rpc),
      chainId: chainId === undefined ? undefined : whole('--chain-id', chainId, 1, 999_999_999),
      oracle: oracle as Address | undefined,
      relay: url('--relay', values.relay),
    },
    prompt: positionals.join(' ').trim(),
    models,
    maxTokens: whole('--max-tokens', values['max-tokens'], maxTokens.minValue ?? 1, maxTokens.maxValue ?? 1),
    quorum: whole('--quorum', values.quorum, FRAME_BOUNDS.quorum.min, FRAME_BOUNDS.quorum.max),
    timeoutS: whole('--timeout-s', values['timeout-s'], 1, 86_400),
  };
}

async function main(): Promise<number> {
  let opts: ReturnType<typeof options>;
  try {
    opts = options(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`chain:ask: ${e.message}`);
    return 2;
  }
  if (opts === null) {
    console.log(USAGE);
    return 0;
  }
  const { prompt, models, maxTokens, quorum, timeoutS } = opts;
  if (!prompt) {
    console.error(USAGE);
    return 2;
  }
  const flags = opts.chain;
  let info: ChainInfo;
  if (flags.rpc !== undefined && flags.chainId !== undefined && flags.oracle !== undefined) {
    info = { rpc: flags.rpc, chainId: flags.chainId, oracle: flags.oracle };
  } else {
    try {
      info = JSON.parse(readFileSync(join(data, 'chain.json'), 'utf8'));
    } catch {
      console.error(
        `no local chain found (${join(data, 'chain.json')}): run \`npm start\` first, or give --rpc, --chain-id and --oracle`,
      );
      return 2;
    }
  }
  info = {
    rpc: flags.rpc ?? info.rpc,
    chainId: flags.chainId ?? info.chainId,
    oracle: flags.oracle ?? info.oracle,
    ...((flags.relay ?? info.relay) !== undefined ? { relay: flags.relay ?? info.relay } : {}),
  };
  const chain = rpcChain(info.chainId, info.rpc);
  const client = createPublicClient({ chain, transport: http(info.rpc), cacheTime: 0 }) as PublicClient;
  // chain.json outlives `npm start`: without a chain behind it, say so rather than fail inside viem.
  const served = await client.getChainId().catch(() => null);
  if (served === null) {
    console.error(
      flags.rpc === undefined
        ? `chain:ask: the local chain at ${info.rpc} does not answer: is \`npm start\` running?`
        : `chain:ask: the chain at ${info.rpc} (--rpc) does not answer`,
    );
    return 2;
  }
  if (served !== info.chainId) {
    console.error(`chain:ask: the chain at ${info.rpc} is chain ${served}, not ${info.chainId}`);
    return 2;
  }
  const { account } = await fundedAccount(info.rpc, '1');
  const wallet = createWalletClient({ chain, transport: http(info.rpc), account });
  const fee = await client.readContract({
    address: info.oracle,
    abi: synodOracleAbi,
    functionName: 'minFee',
  });
  const { request } = await client.simulateContract({
    address: info.oracle,
    abi: synodOracleAbi,
    functionName: 'callLLM',
    args: [prompt, models, maxTokens, 0, quorum],
    account,
    value: fee,
  });
  const tx = await wallet.writeContract(request);
  const receipt = await client.waitForTransactionReceipt({ hash: tx });
  // The number the oracle gave this transaction, from its receipt: the simulation's is a guess, taken by
  // whichever request is mined first.
  let requestNo: bigint;
  try {
    [requestNo] = requestedNumbers(receipt, info.oracle);
  } catch (e) {
    if (!(e instanceof NoOracleRequestError)) throw e;
    console.error(`chain:ask: ${e.message} (status ${receipt.status})`);
    return 1;
  }
  const id = `${info.chainId}:${info.oracle.toLowerCase()}:${requestNo}`;
  console.log(`callLLM #${requestNo} in block ${receipt.blockNumber} (tx ${tx}); network request ${id}`);
  const deadline = Date.now() + timeoutS * 1000;
  while (Date.now() < deadline) {
    const [fulfilled] = await client.getContractEvents({
      address: info.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMFulfilled',
      args: { requestNo },
      fromBlock: receipt.blockNumber,
    });
    if (fulfilled) {
      const a = fulfilled.args;
      console.log(
        `\nanswer (block ${fulfilled.blockNumber}, tx ${fulfilled.transactionHash}):\n\n${a.answer}\n`,
      );
      console.log(`verdict digest   ${a.verdictDigest}\ntranscript root  ${a.transcriptRoot}`);
      const verifyUrl = `${info.relay ?? '<relay>'}/v1/verify/${id}`;
      console.log(`re-verify        ${verifyUrl}`);
      console.log(`  on your side:   npm run verify -- ${verifyUrl} --expect-digest ${a.verdictDigest}`);
      return 0;
    }
    const [refunded] = await client.getContractEvents({
      address: info.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMRefunded',
      args: { requestNo },
      fromBlock: receipt.blockNumber,
    });
    if (refunded) {
      console.log(`refunded: ${refunded.args.reason} (tx ${refunded.transactionHash})`);
      return 1;
    }
    await Bun.sleep(500);
  }
  console.error('no answer on chain in time; is `npm start` running?');
  return 1;
}

function parseOptions(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      models: { type: 'string', default: 'stories260K' },
      'max-tokens': { type: 'string', default: '48' },
      quorum: { type: 'string', default: '3' },
      'timeout-s': { type: 'string', default: '120' },
      rpc: { type: 'string' },
      'chain-id': { type: 'string' },
      oracle: { type: 'string' },
      relay: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
}

process.exit(await main());
