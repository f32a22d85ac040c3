import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import {
  type Address,
  type Chain,
  createPublicClient,
  createTestClient,
  createWalletClient,
  getAddress,
  type Hex,
  http,
  keccak256,
  parseAbi,
  parseEther,
  parseEventLogs,
  toHex,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { type RunningAnvil, startAnvil } from './anvil.ts';
import { rpcChain } from './chain.ts';
import { type CompiledContract, compileSolidity, oracleSource } from './compile.ts';
import { deployOracle } from './deploy.ts';
import { synodOracleAbi } from './oracle-abi.ts';

// A fulfil sent with the gas estimated while the consumer's callback was cheap must still
// be mined (callbackOk false) once the callback burns all it is given, for every answer length.
const SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
import "SynodOracle.sol";
contract Flip is ISynodConsumer {
    SynodOracle public immutable oracle;
    bool public greedy;
    uint256 public spins;
    constructor(SynodOracle oracle_) { oracle = oracle_; }
    function ask() external payable returns (uint256) {
        string[] memory m = new string[](1);
        m[0] = "stories260K";
        return oracle.callLLM{value: msg.value}("q", m, 64, 0, 1);
    }
    function setGreedy(bool g) external { greedy = g; }
    function onLLMResult(uint256, bool, string calldata, bytes32, bytes32) external {
        while (greedy) { spins++; }
    }
}
`;
const abi = parseAbi(['function ask() payable returns (uint256)', 'function setGreedy(bool)']);

let anvil: RunningAnvil;
let chain: Chain;
let compiled: Record<string, CompiledContract>;

beforeAll(async () => {
  anvil = await startAnvil();
  chain = rpcChain(anvil.chainId, anvil.url);
  compiled = compileSolidity({ 'SynodOracle.sol': oracleSource(), 'Flip.sol': SOURCE });
});
afterAll(async () => {
  await anvil?.stop();
});

async function trial(callbackGasLimit: number, length: number, char = 'a') {
  const client = createPublicClient({ chain, transport: http(anvil.url), pollingInterval: 25 });
  const tc = createTestClient({ mode: 'anvil', chain, transport: http(anvil.url) });
  const wallet = async () => {
    const account = privateKeyToAccount(generatePrivateKey());
    await tc.setBalance({ address: account.address, value: parseEther('1000') });
    return createWalletClient({ account, chain, transport: http(anvil.url) });
  };
  const [owner, bridge] = await Promise.all([wallet(), wallet()]);
  const oracle = await deployOracle(owner, client, { bridge: bridge.account.address, callbackGasLimit });
  const flip = compiled['Flip'];
  if (!flip) throw new Error('no Flip');
  const r = await client.waitForTransactionReceipt({
    hash: await owner.deployContract({ abi: flip.abi, bytecode: flip.bytecode, args: [oracle] }),
  });
  const consumer = getAddress(r.contractAddress as Address);
  const { request, result: requestNo } = await client.simulateContract({
    address: consumer,
    abi,
    functionName: 'ask',
    account: owner.account,
  });
  await client.waitForTransactionReceipt({ hash: await owner.writeContract(request) });
  const [, , , , questionHash] = (await client.readContract({
    address: oracle,
    abi: synodOracleAbi,
    functionName: 'requests',
    args: [requestNo],
  })) as unknown as unknown[];
  const answer = char.repeat(length);
  const settle = {
    address: oracle,
    abi: synodOracleAbi,
    functionName: 'fulfill',
    args: [requestNo, questionHash as Hex, answer, keccak256(toHex('v')), keccak256(toHex('t'))],
    account: bridge.account,
  } as const;
  const gas = await client.estimateContractGas(settle);
  await client.waitForTransactionReceipt({
    hash: await owner.writeContract({ address: consumer, abi, functionName: 'setGreedy', args: [true] }),
  });
  const hash = await bridge.writeContract({ ...settle, gas });
  const receipt = await client.waitForTransactionReceipt({ hash });
  const events = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMFulfilled' });
  return { status: receipt.status, gas, used: receipt.gasUsed, callbackOk: events[0]?.args.callbackOk };
}

describe('_settlementGas holds for every answer length with a callback greedy only when mined', () => {
  const lengths = [0, 1, 31, 32, 33, 100, 1_000, 2_048, 4_096, 10_000, 16_384, 30_000, 50_000, 70_000];
  for (const cb of [0, 1, 21_000, 200_000, 1_000_000]) {
    for (const length of lengths) {
      test(`callbackGasLimit ${cb}, ${length} bytes`, async () => {
        const t = await trial(cb, length);
        expect(t.status).toBe('success');
        expect(t.callbackOk).toBe(false);
      }, 60_000);
    }
  }
});
