/**
 * `npm run chain:ask -- "prompt" [--models m1,m2] [--max-tokens N] [--quorum N]`: what a smart contract
 * does, from the command line, against the local network of `npm start`. It reads the chain and oracle
 * from .data/local/chain.json (SYNOD_DATA_DIR), funds a fresh account on the local anvil
 * (`fundedAccount`: development chains only), calls `callLLM`, and waits for the relay's bridge to
 * write the network's answer back (`LLMFulfilled`) or refund the request (`LLMRefunded`).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fundedAccount, rpcChain, synodOracleAbi } from '@synod/contracts';
import { type Address, createPublicClient, createWalletClient, http, type PublicClient } from 'viem';

const root = resolve(import.meta.dir, '..');
const data = resolve(process.env['SYNOD_DATA_DIR'] ?? join(root, '.data/local'));

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      models: { type: 'string', default: 'stories260K' },
      'max-tokens': { type: 'string', default: '48' },
      quorum: { type: 'string', default: '3' },
      'timeout-s': { type: 'string', default: '120' },
    },
  });
  const prompt = positionals.join(' ').trim();
  if (!prompt) {
    console.error('usage: npm run chain:ask -- "prompt" [--models m1,m2] [--max-tokens N] [--quorum N]');
    return 2;
  }
  let info: { rpc: string; chainId: number; oracle: Address; relay?: string };
  try {
    info = JSON.parse(readFileSync(join(data, 'chain.json'), 'utf8'));
  } catch {
    console.error(`no local chain found (${join(data, 'chain.json')}): run \`npm start\` first`);
    return 2;
  }
  const chain = rpcChain(info.chainId, info.rpc);
  const client = createPublicClient({ chain, transport: http(info.rpc), cacheTime: 0 }) as PublicClient;
  const { account } = await fundedAccount(info.rpc, '1');
  const wallet = createWalletClient({ chain, transport: http(info.rpc), account });
  const fee = await client.readContract({
    address: info.oracle,
    abi: synodOracleAbi,
    functionName: 'minFee',
  });
  const { request, result: requestNo } = await client.simulateContract({
    address: info.oracle,
    abi: synodOracleAbi,
    functionName: 'callLLM',
    args: [
      prompt,
      (values.models as string).split(',').map((m) => m.trim()),
      Number(values['max-tokens']),
      0,
      Number(values.quorum),
    ],
    account,
    value: fee,
  });
  const tx = await wallet.writeContract(request);
  const receipt = await client.waitForTransactionReceipt({ hash: tx });
  const id = `${info.chainId}:${info.oracle.toLowerCase()}:${requestNo}`;
  console.log(`callLLM #${requestNo} in block ${receipt.blockNumber} (tx ${tx}); network request ${id}`);
  const deadline = Date.now() + Number(values['timeout-s']) * 1000;
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

process.exit(await main());
