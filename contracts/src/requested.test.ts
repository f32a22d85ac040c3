/**
 * The request number of a `callLLM` comes from its receipt: a simulation's return value is a guess made
 * before sending, and two askers at once were both told the same number (`npm run chain:ask` then
 * waited for, and printed, the other's answer).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  http,
  type PublicClient,
  parseEther,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { fundedAccount, type RunningAnvil, startAnvil } from './anvil.ts';
import { rpcChain } from './chain.ts';
import { deployOracle } from './deploy.ts';
import { synodOracleAbi } from './oracle-abi.ts';
import { NoOracleRequestError, requestedNumbers } from './requested.ts';

let anvil: RunningAnvil;
let client: PublicClient;

beforeAll(async () => {
  anvil = await startAnvil();
  client = createPublicClient({
    chain: rpcChain(anvil.chainId, anvil.url),
    transport: http(anvil.url),
    pollingInterval: 25,
  }) as PublicClient;
}, 60_000);
afterAll(async () => {
  await anvil?.stop();
});

async function wallet() {
  const { key } = await fundedAccount(anvil.url, '10');
  return createWalletClient({
    account: privateKeyToAccount(key),
    chain: rpcChain(anvil.chainId, anvil.url),
    transport: http(anvil.url),
  });
}

describe('requestedNumbers', () => {
  test('two askers in one block were both promised one number; their receipts tell each its own', async () => {
    const owner = await wallet();
    const oracle = await deployOracle(owner, client, { bridge: owner.account.address });
    const askers = await Promise.all([wallet(), wallet()]);
    const test = createTestClient({ mode: 'anvil', transport: http(anvil.url) });
    await test.setAutomine(false);
    try {
      const sent = await Promise.all(
        askers.map(async (w, i) => {
          const { request, result } = await client.simulateContract({
            address: oracle,
            abi: synodOracleAbi,
            functionName: 'callLLM',
            args: [`prompt ${i}`, ['stories260K'], 16, 0, 1],
            account: w.account,
          });
          return { predicted: result, hash: await w.writeContract(request) };
        }),
      );
      await test.mine({ blocks: 1 });
      const receipts = await Promise.all(sent.map((s) => client.waitForTransactionReceipt({ hash: s.hash })));
      // The guess was the same for both, so it is wrong for one of them.
      expect(sent[0]?.predicted).toBe(sent[1]?.predicted as bigint);
      const numbers = receipts.map((r) => requestedNumbers(r, oracle));
      expect(numbers.every((n) => n.length === 1)).toBe(true);
      expect(new Set(numbers.map((n) => n[0])).size).toBe(2);
      // Each number holds its own asker's question.
      for (const [i, n] of numbers.entries()) {
        const logs = await client.getContractEvents({
          address: oracle,
          abi: synodOracleAbi,
          eventName: 'LLMRequested',
          args: { requestNo: n[0] as bigint },
          fromBlock: receipts[i]?.blockNumber,
        });
        expect(logs[0]?.args.prompt).toBe(`prompt ${i}`);
      }
    } finally {
      await test.setAutomine(true);
    }
  }, 60_000);

  test("a transaction that logged no request of this oracle (a transfer, another oracle's request) throws NO_ORACLE_REQUEST", async () => {
    const owner = await wallet();
    const [oracle, other] = [
      await deployOracle(owner, client, { bridge: owner.account.address }),
      await deployOracle(owner, client, { bridge: owner.account.address }),
    ];
    const transfer = await client.waitForTransactionReceipt({
      hash: await owner.sendTransaction({ to: owner.account.address, value: parseEther('0.1') }),
    });
    expect(() => requestedNumbers(transfer, oracle)).toThrow(NoOracleRequestError);
    const { request } = await client.simulateContract({
      address: other,
      abi: synodOracleAbi,
      functionName: 'callLLM',
      args: ['elsewhere', ['stories260K'], 16, 0, 1],
      account: owner.account,
    });
    const elsewhere = await client.waitForTransactionReceipt({ hash: await owner.writeContract(request) });
    expect(requestedNumbers(elsewhere, other)).toHaveLength(1);
    let caught: unknown;
    try {
      requestedNumbers(elsewhere, oracle);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(NoOracleRequestError);
    expect((caught as NoOracleRequestError).code).toBe('NO_ORACLE_REQUEST');
  }, 60_000);
});
