#!/usr/bin/env bun
/**
 * `synod-oracle deploy`: put a SynodOracle on an EVM chain (root script `npm run oracle -- deploy …`).
 * The deployer's private key comes from an environment variable, never from a flag; the oracle's
 * address and deployment block are printed as JSON (what the relay's --oracle and --from-block take).
 */
import { parseArgs } from 'node:util';
import { type Address, createPublicClient, createWalletClient, type Hex, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { rpcChain } from './chain.ts';
import { deployOracle } from './deploy.ts';

const HELP = `synod-oracle deploy --rpc URL --chain-id N --bridge ADDR [options]

  --rpc URL              the chain's JSON-RPC URL
  --chain-id N           its chain id (checked against the RPC)
  --bridge ADDR          the account the relay's chain watcher settles with
  --min-fee WEI          least fee of a callLLM                               [0]
  --timeout S            seconds until anyone may refund a pending request    [3600]
  --callback-gas N       gas given to a consumer's onLLMResult                [200000]
  --key-env VAR          environment variable with the deployer's private key [SYNOD_DEPLOYER_KEY]
  --help`;

export async function main(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  if (argv[0] === '--help') {
    console.log(HELP);
    return 0;
  }
  if (argv[0] !== 'deploy') {
    console.error(argv[0] === undefined ? HELP : `unknown command ${argv[0]}\n\n${HELP}`);
    return 2;
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv.slice(1),
      strict: true,
      options: {
        rpc: { type: 'string' },
        'chain-id': { type: 'string' },
        bridge: { type: 'string' },
        'min-fee': { type: 'string', default: '0' },
        timeout: { type: 'string', default: '3600' },
        'callback-gas': { type: 'string', default: '200000' },
        'key-env': { type: 'string', default: 'SYNOD_DEPLOYER_KEY' },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (e) {
    console.error(`synod-oracle: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values['help']) {
    console.log(HELP);
    return 0;
  }
  const fail = (msg: string) => {
    console.error(`synod-oracle: ${msg}`);
    return 2;
  };
  const rpc = values['rpc'] as string | undefined;
  const chainId = Number(values['chain-id']);
  const bridge = values['bridge'] as string | undefined;
  const key = env[values['key-env'] as string];
  if (!rpc || !/^https?:\/\//.test(rpc)) return fail('--rpc must be an http(s) URL');
  if (!Number.isSafeInteger(chainId) || chainId < 1) return fail('--chain-id must be a positive integer');
  if (!bridge || !/^0x[0-9a-fA-F]{40}$/.test(bridge)) return fail('--bridge must be a 0x address');
  if (!key || !/^0x[0-9a-fA-F]{64}$/.test(key)) {
    return fail(`set the deployer's private key (0x + 64 hex) in $${values['key-env']}`);
  }
  for (const flag of ['min-fee', 'timeout', 'callback-gas']) {
    if (!/^\d{1,30}$/.test(values[flag] as string)) return fail(`--${flag} must be a whole number`);
  }
  const callbackGas = Number(values['callback-gas']);
  if (callbackGas > 0xffffffff) return fail('--callback-gas must fit in 32 bits');
  const chain = rpcChain(chainId, rpc);
  const client = createPublicClient({ chain, transport: http(rpc) });
  const actual = await client.getChainId();
  if (actual !== chainId) return fail(`the RPC serves chain ${actual}, not ${chainId}`);
  const wallet = createWalletClient({
    chain,
    transport: http(rpc),
    account: privateKeyToAccount(key as Hex),
  });
  // The relay's --from-block: any block up to the deployment's will do; this one is known before it.
  const fromBlock = await client.getBlockNumber();
  const oracle = await deployOracle(wallet, client, {
    bridge: bridge as Address,
    minFee: BigInt(values['min-fee'] as string),
    timeoutSeconds: BigInt(values['timeout'] as string),
    callbackGasLimit: callbackGas,
  });
  console.log(JSON.stringify({ oracle, chainId, fromBlock: Number(fromBlock), bridge }));
  return 0;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2), process.env));
