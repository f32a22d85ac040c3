/**
 * AskSynod.sol, the example consumer, on a real chain (anvil): asked through it, answered by the
 * oracle's bridge (a long answer too), refunded and repaid, and guarded against callers other than the
 * oracle.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import {
  type Abi,
  type Address,
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  getAddress,
  type Hex,
  http,
  keccak256,
  type PublicClient,
  parseEther,
  toHex,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { fundedAccount, type RunningAnvil, startAnvil } from '../anvil.ts';
import { rpcChain } from '../chain.ts';
import { compileSolidity, oracleSource } from '../compile.ts';
import { deployOracle } from '../deploy.ts';
import { synodOracleAbi } from '../oracle-abi.ts';

const MIN_FEE = parseEther('0.01');
const MODELS = ['stories260K'];
const Status = { None: 0, Pending: 1, Answered: 2, Refunded: 3, Repaid: 4 } as const;

let anvil: RunningAnvil;
let client: PublicClient;
let abi: Abi;
let bytecode: Hex;

beforeAll(async () => {
  anvil = await startAnvil();
  client = createPublicClient({
    chain: rpcChain(anvil.chainId, anvil.url),
    transport: http(anvil.url),
    pollingInterval: 25,
  }) as PublicClient;
  const compiled = compileSolidity({
    'SynodOracle.sol': oracleSource(),
    'AskSynod.sol': readFileSync(new URL('./AskSynod.sol', import.meta.url), 'utf8'),
  });
  const c = compiled['AskSynod'];
  if (!c) throw new Error('AskSynod did not compile');
  ({ abi, bytecode } = c);
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
type Wallet = Awaited<ReturnType<typeof wallet>>;

async function mined(hash: Hex) {
  const r = await client.waitForTransactionReceipt({ hash });
  expect(r.status).toBe('success');
  return r;
}

async function errorName(attempt: Promise<unknown>): Promise<string | undefined> {
  try {
    await attempt;
  } catch (e) {
    const reverted =
      e instanceof BaseError ? e.walk((x) => x instanceof ContractFunctionRevertedError) : null;
    if (reverted instanceof ContractFunctionRevertedError) return reverted.data?.errorName;
    throw e;
  }
  throw new Error('expected a revert');
}

/**
 * An oracle (bridge: its own account; `callbackGasLimit` and the deadline's `timeoutSeconds` its defaults
 * unless given) and an AskSynod on it.
 */
async function setup(callbackGasLimit?: number, timeoutSeconds?: bigint) {
  const [owner, bridge, asker, stranger] = await Promise.all([wallet(), wallet(), wallet(), wallet()]);
  const oracle = await deployOracle(owner, client, {
    bridge: bridge.account.address,
    minFee: MIN_FEE,
    ...(callbackGasLimit !== undefined ? { callbackGasLimit } : {}),
    ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
  });
  const receipt = await mined(await owner.deployContract({ abi, bytecode, args: [oracle] }));
  const asking = getAddress(receipt.contractAddress as Address);
  return { oracle, asking, bridge, asker, stranger };
}

async function ask(s: Awaited<ReturnType<typeof setup>>, prompt: string): Promise<bigint> {
  const { request, result } = await client.simulateContract({
    address: s.asking,
    abi,
    functionName: 'ask',
    args: [prompt, MODELS, 48],
    value: MIN_FEE,
    account: s.asker.account,
  });
  await mined(await s.asker.writeContract(request));
  return result as bigint;
}

async function question(asking: Address, n: bigint) {
  const [asker, fee, status, answerHash, verdictDigest] = (await client.readContract({
    address: asking,
    abi,
    functionName: 'questions',
    args: [n],
  })) as [Address, bigint, number, Hex, Hex];
  return { asker, fee, status, answerHash, verdictDigest };
}

/** The bridge's `fulfill` or `refund` of request `n`, naming the question the oracle holds under it. */
async function settle(
  by: Wallet,
  oracle: Address,
  fn: 'fulfill' | 'refund',
  n: bigint,
  rest: readonly unknown[],
) {
  const [, , , , question] = await client.readContract({
    address: oracle,
    abi: synodOracleAbi,
    functionName: 'requests',
    args: [n],
  });
  return by.writeContract({
    address: oracle,
    abi: synodOracleAbi,
    functionName: fn,
    args: [n, question, ...rest] as never,
  });
}

describe('AskSynod, the example consumer', () => {
  test('asked through it, answered through the oracle: the answer emitted, its hash and digest kept', async () => {
    const s = await setup();
    const n = await ask(s, 'Once upon a time');
    expect(await question(s.asking, n)).toMatchObject({
      asker: s.asker.account.address,
      fee: MIN_FEE,
      status: Status.Pending,
    });
    // The oracle sees the example contract as the requester.
    const [requester] = (await client.readContract({
      address: s.oracle,
      abi: synodOracleAbi,
      functionName: 'requests',
      args: [n],
    })) as readonly [Address, ...unknown[]];
    expect(requester).toBe(s.asking);

    // A long answer (2 KiB) still fits the callback's gas budget, since it is emitted, not stored.
    const answer = 'Once upon a time there was a little boat. '.repeat(48);
    const digest = keccak256(toHex('verdict'));
    const root = keccak256(toHex('transcript'));
    const receipt = await mined(await settle(s.bridge, s.oracle, 'fulfill', n, [answer, digest, root]));
    const q = await question(s.asking, n);
    expect(q).toMatchObject({
      status: Status.Answered,
      answerHash: keccak256(toHex(answer)),
      verdictDigest: digest,
    });
    const answered = await client.getContractEvents({
      address: s.asking,
      abi,
      eventName: 'Answered',
      blockHash: receipt.blockHash,
    });
    expect((answered[0]?.args as unknown as { answer?: string } | undefined)?.answer).toBe(answer);
    const [fulfilled] = await client.getContractEvents({
      address: s.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMFulfilled',
      blockHash: receipt.blockHash,
    });
    expect(fulfilled?.args.callbackOk).toBe(true);
  });

  test('refunded: the asker, and only the asker, gets the fee back, once', async () => {
    const s = await setup();
    const n = await ask(s, 'Tell me a story');
    await mined(await settle(s.bridge, s.oracle, 'refund', n, ['NO_CONSENSUS']));
    expect((await question(s.asking, n)).status).toBe(Status.Refunded);
    const claim = (by: Wallet) =>
      by.writeContract({ address: s.asking, abi, functionName: 'claimRefund', args: [n] });
    expect(await errorName(claim(s.stranger))).toBe('NotAsker');
    const before = await client.getBalance({ address: s.asker.account.address });
    const receipt = await mined(await claim(s.asker));
    const after = await client.getBalance({ address: s.asker.account.address });
    expect(after - before + receipt.gasUsed * receipt.effectiveGasPrice).toBe(MIN_FEE);
    expect((await question(s.asking, n)).status).toBe(Status.Repaid);
    expect(await errorName(claim(s.asker))).toBe('NotRefundable');
  });

  // The question stayed Pending when the refund's callback could not run (callbackOk false), while the
  // oracle credited the fee to AskSynod: claimRefund refused (NotRefundable) and the fee was stuck.
  test('a refund whose callback could not run is still repaid: claimRefund asks the oracle', async () => {
    // 5,000 gas is too little for AskSynod's callback: the oracle refunds, the callback fails.
    const s = await setup(5_000);
    const n = await ask(s, 'Tell me a story');
    const receipt = await mined(await settle(s.bridge, s.oracle, 'refund', n, ['NO_CONSENSUS']));
    const [refunded] = await client.getContractEvents({
      address: s.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMRefunded',
      blockHash: receipt.blockHash,
    });
    expect(refunded?.args.callbackOk).toBe(false);
    expect((await question(s.asking, n)).status).toBe(Status.Pending);
    const claim = (by: Wallet) =>
      by.writeContract({ address: s.asking, abi, functionName: 'claimRefund', args: [n] });
    expect(await errorName(claim(s.stranger))).toBe('NotAsker');
    const before = await client.getBalance({ address: s.asker.account.address });
    const paid = await mined(await claim(s.asker));
    const after = await client.getBalance({ address: s.asker.account.address });
    expect(after - before + paid.gasUsed * paid.effectiveGasPrice).toBe(MIN_FEE);
    expect((await question(s.asking, n)).status).toBe(Status.Repaid);
    expect(await errorName(claim(s.asker))).toBe('NotRefundable');
  });

  test('a question still pending at the oracle, or answered there, is not refundable', async () => {
    const s = await setup(5_000);
    const n = await ask(s, 'Hello');
    const claim = () =>
      s.asker.writeContract({ address: s.asking, abi, functionName: 'claimRefund', args: [n] });
    expect(await errorName(claim())).toBe('NotRefundable');
    // Answered, its callback starved: still not refundable here (the bridge earned the fee).
    await mined(
      await settle(s.bridge, s.oracle, 'fulfill', n, ['an answer', keccak256('0x01'), keccak256('0x02')]),
    );
    expect((await question(s.asking, n)).status).toBe(Status.Pending);
    expect(await errorName(claim())).toBe('NotRefundable');
  });

  // No bridge ever settled it: claimRefund refused (NotRefundable) until someone called the oracle's
  // refund by hand, naming the question's hash from `requests(n)`.
  test('a question unanswered past its deadline is refunded and repaid by claimRefund alone', async () => {
    const s = await setup(undefined, 60n);
    const n = await ask(s, 'Tell me a story');
    const claim = () =>
      s.asker.writeContract({ address: s.asking, abi, functionName: 'claimRefund', args: [n] });
    expect(await errorName(claim())).toBe('NotRefundable');
    await client.request({ method: 'evm_increaseTime' as never, params: [61] as never });
    await client.request({ method: 'evm_mine' as never, params: [] as never });
    const before = await client.getBalance({ address: s.asker.account.address });
    const paid = await mined(await claim());
    const after = await client.getBalance({ address: s.asker.account.address });
    expect(after - before + paid.gasUsed * paid.effectiveGasPrice).toBe(MIN_FEE);
    expect((await question(s.asking, n)).status).toBe(Status.Repaid);
    const [refunded] = await client.getContractEvents({
      address: s.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMRefunded',
      blockHash: paid.blockHash,
    });
    expect(refunded?.args).toMatchObject({ reason: 'DEADLINE_PASSED', callbackOk: true });
    expect(await errorName(claim())).toBe('NotRefundable');
  });

  // What the contract's comment promises at the oracle's default callback gas (200,000).
  test('the callback takes a 16 KiB answer at the default callback gas; 20 KiB runs out of it', async () => {
    const s = await setup();
    for (const [kib, ok] of [
      [16, true],
      [20, false],
    ] as const) {
      const n = await ask(s, 'Tell me a long story');
      const answer = 'a'.repeat(kib * 1024);
      const receipt = await mined(
        await settle(s.bridge, s.oracle, 'fulfill', n, [answer, keccak256('0x01'), keccak256('0x02')]),
      );
      const [fulfilled] = await client.getContractEvents({
        address: s.oracle,
        abi: synodOracleAbi,
        eventName: 'LLMFulfilled',
        blockHash: receipt.blockHash,
      });
      expect(fulfilled?.args.callbackOk).toBe(ok);
      expect((await question(s.asking, n)).status).toBe(ok ? Status.Answered : Status.Pending);
    }
  });

  test('only the oracle may deliver results or send it ether', async () => {
    const s = await setup();
    const n = await ask(s, 'Hello');
    expect(
      await errorName(
        s.stranger.writeContract({
          address: s.asking,
          abi,
          functionName: 'onLLMResult',
          args: [n, true, 'forged answer', keccak256(toHex('x')), keccak256(toHex('y'))],
        }),
      ),
    ).toBe('NotOracle');
    expect((await question(s.asking, n)).status).toBe(Status.Pending);
    await expect(s.stranger.sendTransaction({ to: s.asking, value: 1n })).rejects.toThrow();
  });
});
