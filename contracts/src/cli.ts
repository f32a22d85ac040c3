#!/usr/bin/env bun
/**
 * `synod-oracle deploy`: put a SynodOracle on an EVM chain (root script `npm run oracle -- deploy …`).
 * The deployer's private key comes from an environment variable, never from a flag; the oracle's
 * address and deployment block are printed as JSON (what the relay's --oracle and --from-block take).
 */
import { parseArgs } from 'node:util';
import { type Address, BaseError, createPublicClient, createWalletClient, type Hex, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { rpcChain } from './chain.ts';
import { deployOracle } from './deploy.ts';

/** SynodOracle.sol's deployment bounds (`MAX_CALLBACK_GAS_LIMIT`, `MIN_TIMEOUT`, `MAX_TIMEOUT`). */
const MAX_CALLBACK_GAS_LIMIT = 10_000_000;
const MIN_TIMEOUT = 60n;
const MAX_TIMEOUT = 365n * 24n * 3600n;

const HELP = `synod-oracle deploy --rpc URL --chain-id N --bridge ADDR [options]

  --rpc URL              the chain's JSON-RPC URL
  --chain-id N           its chain id (checked against the RPC)
  --bridge ADDR          the account the relay's chain watcher settles with
                         (not the zero address)
  --min-fee WEI          least fee of a callLLM (0: the bridge pays every
                         settlement's gas for free requests, warned)          [0]
  --timeout S            seconds until anyone may refund a pending request,
                         60 to 31536000 (a year)                              [3600]
  --callback-gas N       gas given to a consumer's onLLMResult, at most
                         10000000 (a settlement must fit one transaction)     [200000]
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
  // The contract refuses it too (BadConfig): with no bridge nobody could fulfil, and every request
  // would wait for its deadline.
  if (/^0x0{40}$/.test(bridge)) {
    return fail("--bridge must not be the zero address: give the account of the relay's chain watcher");
  }
  if (!key || !/^0x[0-9a-fA-F]{64}$/.test(key)) {
    return fail(`set the deployer's private key (0x + 64 hex) in $${values['key-env']}`);
  }
  for (const flag of ['min-fee', 'timeout', 'callback-gas']) {
    if (!/^\d{1,30}$/.test(values[flag] as string)) return fail(`--${flag} must be a whole number`);
  }
  // The contract's own bounds (SynodOracle.sol refuses others with BadConfig): said here, before a
  // transaction is sent, with why.
  const callbackGas = Number(values['callback-gas']);
  if (callbackGas > MAX_CALLBACK_GAS_LIMIT) {
    return fail(
      `--callback-gas must be at most ${MAX_CALLBACK_GAS_LIMIT}: a settlement carries it and up to about 3M gas more, and must fit one transaction (EIP-7825 caps one at 2^24 gas); with more no settlement of a contract's request could be mined, and its fee would be locked`,
    );
  }
  const timeout = BigInt(values['timeout'] as string);
  if (timeout < MIN_TIMEOUT || timeout > MAX_TIMEOUT) {
    return fail(`--timeout must be ${MIN_TIMEOUT} to ${MAX_TIMEOUT} seconds (a minute to a year)`);
  }
  const minFee = BigInt(values['min-fee'] as string);
  if (minFee >= 2n ** 96n) return fail('--min-fee must be below 2^96 wei (a fee is held in 96 bits)');
  if (minFee === 0n) {
    console.error(
      'synod-oracle: warning: --min-fee 0: anyone may ask for free, and the bridge pays the gas of every settlement (about 140k gas each, more with a long answer); set a fee that covers it',
    );
  }
  try {
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
      minFee,
      timeoutSeconds: timeout,
      callbackGasLimit: callbackGas,
    });
    console.log(JSON.stringify({ oracle, chainId, fromBlock: Number(fromBlock), bridge }));
    return 0;
  } catch (e) {
    // One line, without the RPC's URL (a provider's URL often holds its API key) nor a stack trace.
    console.error(`synod-oracle: CHAIN_RPC_FAILED: ${rpcFailure(e, rpc)}`);
    return 1;
  }
}

/** What went wrong talking to the chain, in one line, the RPC's URL left out. */
function rpcFailure(e: unknown, rpc: string): string {
  const short =
    e instanceof BaseError ? e.shortMessage : e instanceof Error ? e.message : String(e ?? 'unknown error');
  const cause = e instanceof BaseError && e.details && e.details !== short ? ` (${e.details})` : '';
  return `${short}${cause}`.split(rpc).join('<the --rpc URL>').replace(/\s+/g, ' ').slice(0, 300);
}

if (import.meta.main) process.exit(await main(process.argv.slice(2), process.env));
