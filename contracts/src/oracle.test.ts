import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import {
  type Address,
  BaseError,
  type Chain,
  ContractFunctionRevertedError,
  createPublicClient,
  createTestClient,
  createWalletClient,
  decodeErrorResult,
  encodeAbiParameters,
  encodeDeployData,
  encodeFunctionData,
  getAddress,
  type Hex,
  type HttpTransport,
  http,
  isAddressEqual,
  keccak256,
  type PrivateKeyAccount,
  type PublicClient,
  parseAbi,
  parseAbiParameters,
  parseEther,
  parseEventLogs,
  type TestClient,
  type TransactionReceipt,
  toHex,
  type WalletClient,
  zeroAddress,
  zeroHash,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { type RunningAnvil, startAnvil } from './anvil.ts';
import { rpcChain } from './chain.ts';
import { type CompiledContract, compileOracle, compileSolidity, oracleSource } from './compile.ts';
import { deployOracle, type OracleSettings } from './deploy.ts';
import { synodOracleAbi } from './oracle-abi.ts';

// ---------------------------------------------------------------------------------------------------
// Test doubles: consumer contracts of the oracle, compiled together with SynodOracle.sol.
// ---------------------------------------------------------------------------------------------------

const CONSUMER_DOUBLES_SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import "SynodOracle.sol";

/// What every consumer double shares: the oracle it trusts, and \`ask\`, which calls callLLM as itself.
abstract contract ConsumerDoubleBase is ISynodConsumer {
    SynodOracle public immutable oracle;

    constructor(SynodOracle oracle_) {
        oracle = oracle_;
    }

    function ask(string calldata prompt, string[] calldata models) external payable returns (uint256) {
        return oracle.callLLM{value: msg.value}(prompt, models, 64, 0, 1);
    }
}

/// Test double: asks the oracle itself and records the last onLLMResult it received (oracle only).
contract RecordingConsumerDouble is ConsumerDoubleBase {
    error NotOracle();

    uint256 public calls;
    uint256 public lastRequestNo;
    bool public lastFulfilled;
    string public lastAnswer;
    bytes32 public lastVerdictDigest;
    bytes32 public lastTranscriptRoot;

    constructor(SynodOracle oracle_) ConsumerDoubleBase(oracle_) {}

    function onLLMResult(
        uint256 requestNo,
        bool fulfilled,
        string calldata answer,
        bytes32 verdictDigest,
        bytes32 transcriptRoot
    ) external {
        if (msg.sender != address(oracle)) revert NotOracle();
        calls++;
        lastRequestNo = requestNo;
        lastFulfilled = fulfilled;
        lastAnswer = answer;
        lastVerdictDigest = verdictDigest;
        lastTranscriptRoot = transcriptRoot;
    }

    function last() external view returns (uint256, uint256, bool, string memory, bytes32, bytes32) {
        return (calls, lastRequestNo, lastFulfilled, lastAnswer, lastVerdictDigest, lastTranscriptRoot);
    }

    /// Collect a refund credited to this contract by the oracle.
    function withdrawFromOracle() external {
        oracle.withdraw();
    }

    receive() external payable {}
}

/// Test double: its onLLMResult always reverts.
contract RevertingConsumerDouble is ConsumerDoubleBase {
    error Refused();


    constructor(SynodOracle oracle_) ConsumerDoubleBase(oracle_) {}

    function onLLMResult(uint256, bool, string calldata, bytes32, bytes32) external pure {
        revert Refused();
    }
}

/// Test double: its onLLMResult loops until it runs out of gas.
contract GasBurningConsumerDouble is ConsumerDoubleBase {
    uint256 public spins;

    constructor(SynodOracle oracle_) ConsumerDoubleBase(oracle_) {}

    function onLLMResult(uint256, bool, string calldata, bytes32, bytes32) external {
        while (true) {
            spins++;
        }
    }
}

/// Test double: its onLLMResult returns at once, or, once setGreedy(true) was called, burns all the gas
/// it is given: a callback that is cheap when a settlement's gas is estimated and costly when it is mined.
contract FlippingConsumerDouble is ConsumerDoubleBase {
    bool public greedy;
    uint256 public spins;

    constructor(SynodOracle oracle_) ConsumerDoubleBase(oracle_) {}

    function setGreedy(bool greedy_) external {
        greedy = greedy_;
    }

    function onLLMResult(uint256, bool, string calldata, bytes32, bytes32) external {
        while (greedy) {
            spins++;
        }
    }
}

/// Test double: its onLLMResult needs 300,000 gas (it reverts with less) and counts successful calls.
contract GasHungryConsumerDouble is ConsumerDoubleBase {
    uint256 public calls;

    constructor(SynodOracle oracle_) ConsumerDoubleBase(oracle_) {}

    function onLLMResult(uint256, bool, string calldata, bytes32, bytes32) external {
        require(gasleft() >= 300_000, "starved");
        calls++;
    }
}
`;

/** The doubles' ABIs, written by hand so viem types the calls (a mismatch with the source fails the call). */
const consumerDoubleAbi = parseAbi([
  'constructor(address oracle)',
  'error NotOracle()',
  'error Refused()',
  'function ask(string prompt, string[] models) payable returns (uint256)',
  'function onLLMResult(uint256 requestNo, bool fulfilled, string answer, bytes32 verdictDigest, bytes32 transcriptRoot)',
  'function last() view returns (uint256 calls, uint256 requestNo, bool fulfilled, string answer, bytes32 verdictDigest, bytes32 transcriptRoot)',
  'function withdrawFromOracle()',
  'function calls() view returns (uint256)',
  'function setGreedy(bool greedy)',
]);

type ConsumerDouble =
  | 'RecordingConsumerDouble'
  | 'RevertingConsumerDouble'
  | 'GasBurningConsumerDouble'
  | 'GasHungryConsumerDouble'
  | 'FlippingConsumerDouble';

// ---------------------------------------------------------------------------------------------------
// Chain, accounts and small helpers.
// ---------------------------------------------------------------------------------------------------

type Wallet = WalletClient<HttpTransport, Chain, PrivateKeyAccount>;

/** SynodOracle.Status */
const Status = { None: 0, Pending: 1, Fulfilled: 2, Refunded: 3 } as const;

const TIMEOUT = 600n;
const MIN_FEE = parseEther('0.01');
const MODELS = ['stories260K', 'tinyllama-1.1b'] as const;
const ANSWER = 'The answer is 42.';
const DIGEST = keccak256(toHex('verdict'));
const ROOT = keccak256(toHex('transcript'));

let anvil: RunningAnvil;
let chain: Chain;
let client: PublicClient<HttpTransport, Chain>;
let testClient: TestClient<'anvil', HttpTransport, Chain>;
let doubles: Record<string, CompiledContract>;

/** A fresh random account holding 100 ETH. */
async function fundedWallet(): Promise<Wallet> {
  const account = privateKeyToAccount(generatePrivateKey());
  await testClient.setBalance({ address: account.address, value: parseEther('100') });
  return createWalletClient({ account, chain, transport: http(anvil.url) });
}

interface Fixture {
  oracle: Address;
  owner: Wallet;
  bridge: Wallet;
  user: Wallet;
  stranger: Wallet;
}

/** A freshly deployed oracle (minFee 0.01 ETH, timeout 600 s unless overridden) and fresh accounts. */
async function setup(settings: Omit<OracleSettings, 'bridge'> = {}): Promise<Fixture> {
  const [owner, bridge, user, stranger] = await Promise.all([
    fundedWallet(),
    fundedWallet(),
    fundedWallet(),
    fundedWallet(),
  ]);
  const oracle = await deployOracle(owner, client, {
    bridge: bridge.account.address,
    minFee: MIN_FEE,
    timeoutSeconds: TIMEOUT,
    ...settings,
  });
  return { oracle, owner, bridge, user, stranger };
}

/** Wait for a transaction and require that it succeeded. */
async function mined(hash: Hex): Promise<TransactionReceipt> {
  const receipt = await client.waitForTransactionReceipt({ hash });
  expect(receipt.status).toBe('success');
  return receipt;
}

interface Revert {
  errorName: string | undefined;
  args: readonly unknown[] | undefined;
}

/** Await a contract call expected to revert, and return the decoded custom error. */
async function revertOf(attempt: Promise<unknown>): Promise<Revert> {
  try {
    await attempt;
  } catch (e) {
    if (e instanceof BaseError) {
      const reverted = e.walk((x) => x instanceof ContractFunctionRevertedError);
      if (reverted instanceof ContractFunctionRevertedError) {
        return { errorName: reverted.data?.errorName, args: reverted.data?.args };
      }
    }
    throw e;
  }
  throw new Error('expected the call to revert, but it succeeded');
}

/** Just the error name of a call expected to revert. */
async function errorNameOf(attempt: Promise<unknown>): Promise<string | undefined> {
  return (await revertOf(attempt)).errorName;
}

type CallLLMArgs = readonly [
  prompt: string,
  acceptedModels: readonly string[],
  maxTokens: number,
  temperatureCenti: number,
  quorum: number,
];

const validRequest: CallLLMArgs = ['Once upon a time', MODELS, 256, 70, 3];

/** Simulate `callLLM` from the fixture's user (no transaction); resolves with the would-be requestNo. */
function simulateCallLLM(f: Fixture, args: CallLLMArgs, value: bigint = MIN_FEE) {
  return client.simulateContract({
    address: f.oracle,
    abi: synodOracleAbi,
    functionName: 'callLLM',
    args,
    value,
    account: f.user.account,
  });
}

/** Send `callLLM` (simulated first, for its return value) and wait for it to be mined. */
async function callLLM(
  f: Fixture,
  args: CallLLMArgs = validRequest,
  value: bigint = MIN_FEE,
  from: Wallet = f.user,
): Promise<{ requestNo: bigint; receipt: TransactionReceipt }> {
  const { request, result } = await client.simulateContract({
    address: f.oracle,
    abi: synodOracleAbi,
    functionName: 'callLLM',
    args,
    value,
    account: from.account,
  });
  const receipt = await mined(await from.writeContract(request));
  return { requestNo: result, receipt };
}

/** The bridge's (or `from`'s) fulfil, mined; `gas` fixed, or estimated when absent. */
async function fulfill(
  f: Fixture,
  requestNo: bigint,
  from: Wallet = f.bridge,
  gas?: bigint,
): Promise<TransactionReceipt> {
  return mined(
    await from.writeContract({
      address: f.oracle,
      abi: synodOracleAbi,
      functionName: 'fulfill',
      args: [requestNo, await questionOf(f, requestNo), ANSWER, DIGEST, ROOT],
      ...(gas !== undefined ? { gas } : {}),
    }),
  );
}

async function refund(
  f: Fixture,
  requestNo: bigint,
  reason: string,
  from: Wallet = f.bridge,
): Promise<TransactionReceipt> {
  return mined(
    await from.writeContract({
      address: f.oracle,
      abi: synodOracleAbi,
      functionName: 'refund',
      args: [requestNo, await questionOf(f, requestNo), reason],
    }),
  );
}

async function simulateFulfill(f: Fixture, requestNo: bigint, from: Wallet) {
  return client.simulateContract({
    address: f.oracle,
    abi: synodOracleAbi,
    functionName: 'fulfill',
    args: [requestNo, await questionOf(f, requestNo), ANSWER, DIGEST, ROOT],
    account: from.account,
  });
}

async function simulateRefund(f: Fixture, requestNo: bigint, from: Wallet) {
  return client.simulateContract({
    address: f.oracle,
    abi: synodOracleAbi,
    functionName: 'refund',
    args: [requestNo, await questionOf(f, requestNo), 'TIMEOUT'],
    account: from.account,
  });
}

async function requestOf(f: Fixture, requestNo: bigint) {
  const [requester, fee, deadline, status, questionHash] = await client.readContract({
    address: f.oracle,
    abi: synodOracleAbi,
    functionName: 'requests',
    args: [requestNo],
  });
  return { requester, fee, deadline, status, questionHash };
}

/** The question a settlement of `requestNo` must name, as the oracle holds it (zero for an unknown number). */
async function questionOf(f: Fixture, requestNo: bigint): Promise<Hex> {
  return (await requestOf(f, requestNo)).questionHash;
}

/** `questionHashOf` computed off chain: the ABI encoding of who asks and what, hashed. */
function questionHash(
  requester: Address,
  [prompt, models, maxTokens, temperatureCenti, quorum]: CallLLMArgs,
): Hex {
  return keccak256(
    encodeAbiParameters(parseAbiParameters('address, string, string[], uint32, uint16, uint16'), [
      requester,
      prompt,
      models,
      maxTokens,
      temperatureCenti,
      quorum,
    ]),
  );
}

function balanceIn(f: Fixture, account: Address): Promise<bigint> {
  return client.readContract({
    address: f.oracle,
    abi: synodOracleAbi,
    functionName: 'balances',
    args: [account],
  });
}

async function blockTime(receipt: TransactionReceipt): Promise<bigint> {
  return (await client.getBlock({ blockNumber: receipt.blockNumber })).timestamp;
}

/** Move the chain's clock forward and mine a block at the new time. */
async function advanceTime(seconds: bigint): Promise<void> {
  await testClient.increaseTime({ seconds: Number(seconds) });
  await testClient.mine({ blocks: 1 });
}

/** Deploy one of the consumer doubles against the fixture's oracle (from the fixture's user). */
async function deployConsumer(f: Fixture, name: ConsumerDouble): Promise<Address> {
  const compiled = doubles[name];
  if (compiled === undefined) throw new Error(`${name} was not compiled`);
  const hash = await f.user.deployContract({
    abi: consumerDoubleAbi,
    bytecode: compiled.bytecode,
    args: [f.oracle],
  });
  const receipt = await mined(hash);
  if (!receipt.contractAddress) throw new Error(`${name} deployment has no address`);
  return getAddress(receipt.contractAddress);
}

/** Have a consumer double call `callLLM` itself (it becomes the requester). */
async function consumerAsks(f: Fixture, consumer: Address): Promise<bigint> {
  const { request, result } = await client.simulateContract({
    address: consumer,
    abi: consumerDoubleAbi,
    functionName: 'ask',
    args: ['Summarise the white paper', MODELS],
    value: MIN_FEE,
    account: f.user.account,
  });
  await mined(await f.user.writeContract(request));
  return result;
}

async function lastResultOf(consumer: Address) {
  const [calls, requestNo, fulfilled, answer, verdictDigest, transcriptRoot] = await client.readContract({
    address: consumer,
    abi: consumerDoubleAbi,
    functionName: 'last',
  });
  return { calls, requestNo, fulfilled, answer, verdictDigest, transcriptRoot };
}

beforeAll(async () => {
  anvil = await startAnvil();
  chain = rpcChain(anvil.chainId, anvil.url);
  // Automine answers at once, but a receipt can lag the hash by a moment: poll often, not every 4 s.
  client = createPublicClient({ chain, transport: http(anvil.url), pollingInterval: 25 });
  testClient = createTestClient({ mode: 'anvil', chain, transport: http(anvil.url) });
  doubles = compileSolidity({
    'SynodOracle.sol': oracleSource(),
    'ConsumerDoubles.sol': CONSUMER_DOUBLES_SOURCE,
  });
});

afterAll(async () => {
  await anvil?.stop();
});

// ---------------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------------

describe('deployment', () => {
  test('the constructor stores owner, bridge and settings and emits BridgeChanged', async () => {
    const f = await setup({ callbackGasLimit: 123_456 });
    const read = <N extends 'owner' | 'bridge' | 'minFee' | 'timeout' | 'callbackGasLimit' | 'nextRequestNo'>(
      functionName: N,
    ) => client.readContract({ address: f.oracle, abi: synodOracleAbi, functionName });
    expect(await read('owner')).toBe(f.owner.account.address);
    expect(await read('bridge')).toBe(f.bridge.account.address);
    expect(await read('minFee')).toBe(MIN_FEE);
    expect(await read('timeout')).toBe(TIMEOUT);
    expect(await read('callbackGasLimit')).toBe(123_456);
    expect(await read('nextRequestNo')).toBe(1n);
    const logs = await client.getContractEvents({
      address: f.oracle,
      abi: synodOracleAbi,
      eventName: 'BridgeChanged',
      fromBlock: 0n,
    });
    expect(logs.map((l) => l.args.bridge)).toEqual([f.bridge.account.address]);
  });

  test('settings out of bounds revert BadConfig: a callback no settlement could carry, a deadline under a minute or over a year, a zero bridge', async () => {
    const owner = await fundedWallet();
    const { bytecode } = compileOracle();
    const outcome = async (timeout: bigint, callbackGas: number, bridge: Address = owner.account.address) => {
      const data = encodeDeployData({
        abi: synodOracleAbi,
        bytecode,
        args: [bridge, 0n, timeout, callbackGas],
      });
      try {
        await client.call({ account: owner.account, data });
        return 'deployed';
      } catch (e) {
        const raw = (e as BaseError).walk((x) => typeof (x as { data?: unknown }).data === 'string') as {
          data: Hex;
        } | null;
        if (!raw) throw e;
        return decodeErrorResult({ abi: synodOracleAbi, data: raw.data }).errorName;
      }
    };
    const year = 365n * 24n * 3600n;
    expect(await outcome(60n, 10_000_000)).toBe('deployed');
    expect(await outcome(year, 0)).toBe('deployed');
    expect(await outcome(60n, 10_000_001)).toBe('BadConfig');
    expect(await outcome(59n, 200_000)).toBe('BadConfig');
    expect(await outcome(year + 1n, 200_000)).toBe('BadConfig');
    expect(await outcome(2n ** 64n - 1n, 200_000)).toBe('BadConfig');
    expect(await outcome(60n, 200_000, zeroAddress)).toBe('BadConfig');
    // The bounds are public, for tools to read off a deployed oracle.
    const f = await setup();
    const bound = (functionName: 'MAX_CALLBACK_GAS_LIMIT' | 'MIN_TIMEOUT' | 'MAX_TIMEOUT') =>
      client.readContract({ address: f.oracle, abi: synodOracleAbi, functionName });
    expect(await bound('MAX_CALLBACK_GAS_LIMIT')).toBe(10_000_000);
    expect(await bound('MIN_TIMEOUT')).toBe(60n);
    expect(await bound('MAX_TIMEOUT')).toBe(year);
  });
});

describe('callLLM', () => {
  test('numbers requests 1, 2, 3 and returns the number it assigned', async () => {
    const f = await setup();
    const numbers: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const { requestNo, receipt } = await callLLM(f);
      const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRequested' });
      expect(event?.args.requestNo).toBe(requestNo);
      numbers.push(requestNo);
    }
    expect(numbers).toEqual([1n, 2n, 3n]);
    expect(
      await client.readContract({ address: f.oracle, abi: synodOracleAbi, functionName: 'nextRequestNo' }),
    ).toBe(4n);
  });

  test('emits LLMRequested with every argument, fee and deadline = block time + timeout', async () => {
    const f = await setup();
    const fee = MIN_FEE * 3n;
    const { requestNo, receipt } = await callLLM(f, ['Why is the sky blue?', MODELS, 512, 150, 5], fee);
    const events = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRequested' });
    expect(events).toHaveLength(1);
    expect(isAddressEqual(events[0]?.address ?? zeroAddress, f.oracle)).toBe(true);
    expect(events[0]?.args).toEqual({
      requestNo,
      requester: f.user.account.address,
      prompt: 'Why is the sky blue?',
      acceptedModels: [...MODELS],
      maxTokens: 512,
      temperatureCenti: 150,
      quorum: 5,
      fee,
      deadline: (await blockTime(receipt)) + TIMEOUT,
      questionHash: questionHash(f.user.account.address, ['Why is the sky blue?', MODELS, 512, 150, 5]),
    });
  });

  test('stores requester, fee, deadline and status Pending; the requests(n) getter returns that tuple', async () => {
    const f = await setup();
    const fee = MIN_FEE + 7n;
    const { requestNo, receipt } = await callLLM(f, validRequest, fee);
    const raw = await client.readContract({
      address: f.oracle,
      abi: synodOracleAbi,
      functionName: 'requests',
      args: [requestNo],
    });
    expect(raw).toEqual([
      f.user.account.address,
      fee,
      (await blockTime(receipt)) + TIMEOUT,
      Status.Pending,
      questionHash(f.user.account.address, validRequest),
    ]);
    // The fee is held by the oracle until settlement; nobody's withdrawable balance changes yet.
    expect(await client.getBalance({ address: f.oracle })).toBe(fee);
    expect(await balanceIn(f, f.user.account.address)).toBe(0n);
    expect(await balanceIn(f, f.bridge.account.address)).toBe(0n);
  });

  test('requests(n) of a number never assigned is the zero struct with status None', async () => {
    const f = await setup();
    expect(await requestOf(f, 1n)).toEqual({
      requester: zeroAddress,
      fee: 0n,
      deadline: 0n,
      status: Status.None,
      questionHash: zeroHash,
    });
  });

  test('a fee below minFee reverts with FeeTooLow(minFee); exactly minFee is accepted', async () => {
    const f = await setup();
    expect(await revertOf(simulateCallLLM(f, validRequest, MIN_FEE - 1n))).toEqual({
      errorName: 'FeeTooLow',
      args: [MIN_FEE],
    });
    expect(await errorNameOf(simulateCallLLM(f, validRequest, 0n))).toBe('FeeTooLow');
    expect((await simulateCallLLM(f, validRequest, MIN_FEE)).result).toBe(1n);
  });

  test('a fee that does not fit in uint96 reverts with FeeTooHigh', async () => {
    const f = await setup({ minFee: 0n });
    const tooMuch = 2n ** 96n;
    await testClient.setBalance({ address: f.user.account.address, value: tooMuch * 2n });
    expect(await errorNameOf(simulateCallLLM(f, validRequest, tooMuch))).toBe('FeeTooHigh');
    expect((await simulateCallLLM(f, validRequest, tooMuch - 1n)).result).toBe(1n);
  });

  test('an empty prompt or one of 32,769 bytes reverts with BadPrompt; 32,768 bytes is accepted', async () => {
    const f = await setup();
    const [, models, maxTokens, temp, quorum] = validRequest;
    const withPrompt = (prompt: string): CallLLMArgs => [prompt, models, maxTokens, temp, quorum];
    expect(await errorNameOf(simulateCallLLM(f, withPrompt('')))).toBe('BadPrompt');
    expect(await errorNameOf(simulateCallLLM(f, withPrompt('a'.repeat(32_769))))).toBe('BadPrompt');
    // The bound is on UTF-8 bytes, not characters: 10,923 three-byte characters are 32,769 bytes.
    expect(await errorNameOf(simulateCallLLM(f, withPrompt('€'.repeat(10_923))))).toBe('BadPrompt');
    const longest = 'a'.repeat(32_768);
    const { receipt } = await callLLM(f, withPrompt(longest));
    const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRequested' });
    expect(event?.args.prompt).toBe(longest);
  });

  test('0 or 17 models, an empty model id or a 129-byte model id revert with BadModels; 16 ids of 128 bytes are accepted', async () => {
    const f = await setup();
    const [prompt, , maxTokens, temp, quorum] = validRequest;
    const withModels = (models: readonly string[]): CallLLMArgs => [prompt, models, maxTokens, temp, quorum];
    const ids = (n: number, len: number) => Array.from({ length: n }, (_, i) => String(i).padStart(len, 'm'));
    expect(await errorNameOf(simulateCallLLM(f, withModels([])))).toBe('BadModels');
    expect(await errorNameOf(simulateCallLLM(f, withModels(ids(17, 8))))).toBe('BadModels');
    expect(await errorNameOf(simulateCallLLM(f, withModels(['stories260K', ''])))).toBe('BadModels');
    expect(await errorNameOf(simulateCallLLM(f, withModels(['stories260K', 'x'.repeat(129)])))).toBe(
      'BadModels',
    );
    const widest = ids(16, 128);
    const { receipt } = await callLLM(f, withModels(widest));
    const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRequested' });
    expect(event?.args.acceptedModels).toEqual(widest);
  });

  test('maxTokens 0 or 4097, temperatureCenti 201, quorum 0 or 65 revert naming the parameter and its bound; 4096/200/64 are accepted', async () => {
    const f = await setup();
    const [prompt, models] = validRequest;
    const withParams = (maxTokens: number, temp: number, quorum: number): CallLLMArgs => [
      prompt,
      models,
      maxTokens,
      temp,
      quorum,
    ];
    for (const [maxTokens, temp, quorum, errorName, bound] of [
      [0, 0, 1, 'BadMaxTokens', 4096],
      [4097, 0, 1, 'BadMaxTokens', 4096],
      [16, 201, 1, 'BadTemperature', 200],
      [16, 0, 0, 'BadQuorum', 64],
      [16, 0, 65, 'BadQuorum', 64],
    ] as const) {
      expect(await revertOf(simulateCallLLM(f, withParams(maxTokens, temp, quorum)))).toEqual({
        errorName,
        args: [bound],
      });
    }
    const { receipt } = await callLLM(f, withParams(4096, 200, 64));
    const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRequested' });
    expect(event?.args).toMatchObject({ maxTokens: 4096, temperatureCenti: 200, quorum: 64 });
    expect((await simulateCallLLM(f, withParams(1, 0, 1))).result).toBe(2n);
  });

  test('a refused request consumes no request number', async () => {
    const f = await setup();
    await expect(
      f.user.writeContract({
        address: f.oracle,
        abi: synodOracleAbi,
        functionName: 'callLLM',
        args: ['', MODELS, 16, 0, 1],
        value: MIN_FEE,
      }),
    ).rejects.toThrow('BadPrompt');
    expect((await callLLM(f)).requestNo).toBe(1n);
  });
});

describe('fulfill', () => {
  test('only the bridge may fulfill: the owner, the requester and strangers get NotBridge', async () => {
    const f = await setup();
    const { requestNo } = await callLLM(f);
    for (const w of [f.owner, f.user, f.stranger]) {
      expect(await errorNameOf(simulateFulfill(f, requestNo, w))).toBe('NotBridge');
    }
    expect((await requestOf(f, requestNo)).status).toBe(Status.Pending);
  });

  test('the bridge fulfils: status Fulfilled, fee credited to the bridge, LLMFulfilled with callbackOk true for an EOA', async () => {
    const f = await setup();
    const fee = MIN_FEE * 2n;
    const { requestNo } = await callLLM(f, validRequest, fee);
    const receipt = await fulfill(f, requestNo);
    const events = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMFulfilled' });
    expect(events.map((e) => e.args)).toEqual([
      {
        requestNo,
        requester: f.user.account.address,
        answer: ANSWER,
        verdictDigest: DIGEST,
        transcriptRoot: ROOT,
        callbackOk: true,
      },
    ]);
    expect((await requestOf(f, requestNo)).status).toBe(Status.Fulfilled);
    expect(await balanceIn(f, f.bridge.account.address)).toBe(fee);
    expect(await balanceIn(f, f.user.account.address)).toBe(0n);
  });

  test('fees of several fulfilled requests accumulate in the bridge balance', async () => {
    const f = await setup();
    const a = await callLLM(f, validRequest, MIN_FEE);
    const b = await callLLM(f, validRequest, MIN_FEE * 5n);
    await fulfill(f, b.requestNo);
    await fulfill(f, a.requestNo);
    expect(await balanceIn(f, f.bridge.account.address)).toBe(MIN_FEE * 6n);
  });

  test('a request settles once: a second fulfill or a refund reverts with NotPending(n)', async () => {
    const f = await setup();
    const { requestNo } = await callLLM(f);
    await fulfill(f, requestNo);
    expect(await revertOf(simulateFulfill(f, requestNo, f.bridge))).toEqual({
      errorName: 'NotPending',
      args: [requestNo],
    });
    expect(await revertOf(simulateRefund(f, requestNo, f.bridge))).toEqual({
      errorName: 'NotPending',
      args: [requestNo],
    });
    await advanceTime(TIMEOUT + 1n);
    expect(await errorNameOf(simulateRefund(f, requestNo, f.stranger))).toBe('NotPending');
    expect(await balanceIn(f, f.bridge.account.address)).toBe(MIN_FEE);
    expect(await balanceIn(f, f.user.account.address)).toBe(0n);
  });

  test('an unknown request number reverts with NotPending', async () => {
    const f = await setup();
    await callLLM(f);
    expect(await revertOf(simulateFulfill(f, 2n, f.bridge))).toEqual({ errorName: 'NotPending', args: [2n] });
    expect(await revertOf(simulateFulfill(f, 0n, f.bridge))).toEqual({ errorName: 'NotPending', args: [0n] });
  });
});

describe('refund', () => {
  test('the bridge refunds before the deadline: status Refunded, fee credited to the requester, LLMRefunded', async () => {
    const f = await setup();
    const fee = MIN_FEE * 4n;
    const { requestNo } = await callLLM(f, validRequest, fee);
    const receipt = await refund(f, requestNo, 'NO_QUORUM');
    const events = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRefunded' });
    expect(events.map((e) => e.args)).toEqual([
      { requestNo, requester: f.user.account.address, reason: 'NO_QUORUM', callbackOk: true },
    ]);
    expect((await requestOf(f, requestNo)).status).toBe(Status.Refunded);
    expect(await balanceIn(f, f.user.account.address)).toBe(fee);
    expect(await balanceIn(f, f.bridge.account.address)).toBe(0n);
  });

  test('a refund happens once: a second refund or a fulfill reverts with NotPending', async () => {
    const f = await setup();
    const { requestNo } = await callLLM(f);
    await refund(f, requestNo, 'NO_QUORUM');
    expect(await revertOf(simulateRefund(f, requestNo, f.bridge))).toEqual({
      errorName: 'NotPending',
      args: [requestNo],
    });
    expect(await errorNameOf(simulateFulfill(f, requestNo, f.bridge))).toBe('NotPending');
    expect(await balanceIn(f, f.user.account.address)).toBe(MIN_FEE);
  });

  test('a stranger (or the requester) cannot refund before the deadline: NotExpired(n, deadline)', async () => {
    const f = await setup();
    const { requestNo } = await callLLM(f);
    const { deadline } = await requestOf(f, requestNo);
    for (const w of [f.stranger, f.user, f.owner]) {
      expect(await revertOf(simulateRefund(f, requestNo, w))).toEqual({
        errorName: 'NotExpired',
        args: [requestNo, deadline],
      });
    }
    await advanceTime(TIMEOUT / 2n);
    expect(await errorNameOf(simulateRefund(f, requestNo, f.stranger))).toBe('NotExpired');
    expect((await requestOf(f, requestNo)).status).toBe(Status.Pending);
  });

  test('after the deadline anyone may refund; the fee goes to the requester, not the caller', async () => {
    const f = await setup();
    const { requestNo } = await callLLM(f);
    const { deadline } = await requestOf(f, requestNo);
    await advanceTime(TIMEOUT + 1n);
    const receipt = await refund(f, requestNo, 'TIMEOUT', f.stranger);
    expect(await blockTime(receipt)).toBeGreaterThan(deadline);
    const events = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRefunded' });
    expect(events.map((e) => e.args)).toEqual([
      { requestNo, requester: f.user.account.address, reason: 'TIMEOUT', callbackOk: true },
    ]);
    expect((await requestOf(f, requestNo)).status).toBe(Status.Refunded);
    expect(await balanceIn(f, f.user.account.address)).toBe(MIN_FEE);
    expect(await balanceIn(f, f.stranger.account.address)).toBe(0n);
    expect(await errorNameOf(simulateRefund(f, requestNo, f.stranger))).toBe('NotPending');
  });

  test('the bridge may still fulfil a request past its deadline if nobody refunded it', async () => {
    const f = await setup();
    const { requestNo } = await callLLM(f);
    await advanceTime(TIMEOUT + 1n);
    await fulfill(f, requestNo);
    expect((await requestOf(f, requestNo)).status).toBe(Status.Fulfilled);
    expect(await balanceIn(f, f.bridge.account.address)).toBe(MIN_FEE);
  });

  // After the deadline anyone refunds and picks the reason: a 30 KB one made every consumer that emits or
  // stores it run out of callback gas (callbackOk false), so its refund was never seen.
  test('a reason over MAX_REASON_BYTES (64) reverts with BadReason, from the bridge or anyone; 64 bytes is accepted', async () => {
    const f = await setup();
    expect(
      await client.readContract({ address: f.oracle, abi: synodOracleAbi, functionName: 'MAX_REASON_BYTES' }),
    ).toBe(64n);
    const consumer = await deployConsumer(f, 'RecordingConsumerDouble');
    const requestNo = await consumerAsks(f, consumer);
    const question = await questionOf(f, requestNo);
    const attempt = (from: Wallet, reason: string) =>
      client.simulateContract({
        address: f.oracle,
        abi: synodOracleAbi,
        functionName: 'refund',
        args: [requestNo, question, reason],
        account: from.account,
      });
    expect(await errorNameOf(attempt(f.bridge, 'X'.repeat(65)))).toBe('BadReason');
    await advanceTime(TIMEOUT + 1n);
    expect(await errorNameOf(attempt(f.stranger, 'x'.repeat(30_000)))).toBe('BadReason');
    // 22 three-byte characters are 66 bytes: the bound is in bytes.
    expect(await errorNameOf(attempt(f.stranger, '€'.repeat(22)))).toBe('BadReason');
    expect((await requestOf(f, requestNo)).status).toBe(Status.Pending);
    const reason = 'R'.repeat(64);
    const receipt = await refund(f, requestNo, reason, f.stranger);
    const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRefunded' });
    expect(event?.args).toEqual({ requestNo, requester: getAddress(consumer), reason, callbackOk: true });
    expect(await lastResultOf(consumer)).toMatchObject({ calls: 1n, fulfilled: false, answer: reason });
  });

  test('refunding an unknown request number reverts with NotPending', async () => {
    const f = await setup();
    expect(await revertOf(simulateRefund(f, 9n, f.bridge))).toEqual({ errorName: 'NotPending', args: [9n] });
    expect(await errorNameOf(simulateRefund(f, 9n, f.stranger))).toBe('NotPending');
  });
});

describe('the question a settlement names', () => {
  const QUESTION_A: CallLLMArgs = ['Question A: what is 2+2?', MODELS, 64, 0, 1];
  const QUESTION_B: CallLLMArgs = ['Question B: whom do I pay?', MODELS, 64, 0, 1];

  test('questionHashOf is the hash emitted in LLMRequested and stored; who asks and every argument change it', async () => {
    const f = await setup();
    const { requestNo, receipt } = await callLLM(f, QUESTION_A);
    const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRequested' });
    const expected = questionHash(f.user.account.address, QUESTION_A);
    expect(event?.args.questionHash).toBe(expected);
    expect(await questionOf(f, requestNo)).toBe(expected);
    const onChain = (requester: Address, args: CallLLMArgs) =>
      client.readContract({
        address: f.oracle,
        abi: synodOracleAbi,
        functionName: 'questionHashOf',
        args: [requester, ...args],
      });
    expect(await onChain(f.user.account.address, QUESTION_A)).toBe(expected);
    const [prompt, models, maxTokens, temperatureCenti, quorum] = QUESTION_A;
    const variants: [Address, CallLLMArgs][] = [
      [f.stranger.account.address, QUESTION_A],
      [f.user.account.address, [`${prompt}?`, models, maxTokens, temperatureCenti, quorum]],
      [f.user.account.address, [prompt, [...models].reverse(), maxTokens, temperatureCenti, quorum]],
      [f.user.account.address, [prompt, models, maxTokens + 1, temperatureCenti, quorum]],
      [f.user.account.address, [prompt, models, maxTokens, temperatureCenti + 1, quorum]],
      [f.user.account.address, [prompt, models, maxTokens, temperatureCenti, quorum + 1]],
    ];
    const hashes = await Promise.all(variants.map(([who, args]) => onChain(who, args)));
    expect(new Set([expected, ...hashes]).size).toBe(variants.length + 1);
    expect(hashes).toEqual(variants.map(([who, args]) => questionHash(who, args)));
  });

  test('a fulfil or refund naming another question reverts with QuestionMismatch(n, the question held); nothing changes', async () => {
    const f = await setup();
    const { requestNo } = await callLLM(f, QUESTION_A);
    const held = await questionOf(f, requestNo);
    const other = questionHash(f.user.account.address, QUESTION_B);
    const settle = (functionName: 'fulfill' | 'refund', from: Wallet) =>
      functionName === 'fulfill'
        ? client.simulateContract({
            address: f.oracle,
            abi: synodOracleAbi,
            functionName,
            args: [requestNo, other, ANSWER, DIGEST, ROOT],
            account: from.account,
          })
        : client.simulateContract({
            address: f.oracle,
            abi: synodOracleAbi,
            functionName,
            args: [requestNo, other, 'NO_CONSENSUS'],
            account: from.account,
          });
    const mismatch = { errorName: 'QuestionMismatch', args: [requestNo, held] };
    expect(await revertOf(settle('fulfill', f.bridge))).toEqual(mismatch);
    expect(await revertOf(settle('refund', f.bridge))).toEqual(mismatch);
    await advanceTime(TIMEOUT + 1n);
    expect(await revertOf(settle('refund', f.stranger))).toEqual(mismatch);
    expect((await requestOf(f, requestNo)).status).toBe(Status.Pending);
    // Naming the question held, it settles.
    await fulfill(f, requestNo);
    expect((await requestOf(f, requestNo)).status).toBe(Status.Fulfilled);
  });

  test('a fulfil signed for one question, mined again after a reorg gave its number to another question, reverts', async () => {
    const f = await setup();
    const rpc = (method: string, params: unknown[]) => client.request({ method, params } as never);
    const a = await callLLM(f, QUESTION_A);
    const fulfilA = await fulfill(f, a.requestNo);
    const rawFulfil = (await rpc('eth_getRawTransactionByHash', [fulfilA.transactionHash])) as Hex;
    // On the new chain the requester's same nonce asks question B, which gets number 1 in its turn, and
    // the bridge's signed fulfil of A is mined after it.
    const { nonce } = await client.getTransaction({ hash: a.receipt.transactionHash });
    const rawB = await f.user.signTransaction(
      await f.user.prepareTransactionRequest({
        to: f.oracle,
        data: encodeFunctionData({ abi: synodOracleAbi, functionName: 'callLLM', args: QUESTION_B }),
        value: MIN_FEE,
        nonce,
        gas: 1_000_000n,
      }),
    );
    const head = await client.getBlockNumber({ cacheTime: 0 });
    await rpc('anvil_reorg', [
      Number(head - a.receipt.blockNumber) + 1,
      [
        [rawB, 0],
        [rawFulfil, 1],
      ],
    ]);
    const replayed = await client.getTransactionReceipt({ hash: fulfilA.transactionHash });
    expect(replayed.blockHash).not.toBe(fulfilA.blockHash);
    expect(replayed.status).toBe('reverted');
    expect(await requestOf(f, a.requestNo)).toMatchObject({
      status: Status.Pending,
      questionHash: questionHash(f.user.account.address, QUESTION_B),
    });
    expect(
      await client.getContractEvents({
        address: f.oracle,
        abi: synodOracleAbi,
        eventName: 'LLMFulfilled',
        fromBlock: 0n,
      }),
    ).toEqual([]);
    expect(await balanceIn(f, f.bridge.account.address)).toBe(0n);
  });
});

describe('withdraw', () => {
  test('pays out exactly the balance (net of gas), zeroes it and emits Withdrawn', async () => {
    const f = await setup();
    const fee = MIN_FEE * 3n + 11n;
    const { requestNo } = await callLLM(f, validRequest, fee);
    await fulfill(f, requestNo);
    const bridge = f.bridge.account.address;
    expect(await balanceIn(f, bridge)).toBe(fee);

    const receipt = await mined(
      await f.bridge.writeContract({ address: f.oracle, abi: synodOracleAbi, functionName: 'withdraw' }),
    );
    const before = await client.getBalance({ address: bridge, blockNumber: receipt.blockNumber - 1n });
    const after = await client.getBalance({ address: bridge, blockNumber: receipt.blockNumber });
    expect(after - before).toBe(fee - receipt.gasUsed * receipt.effectiveGasPrice);
    expect(await balanceIn(f, bridge)).toBe(0n);
    expect(await client.getBalance({ address: f.oracle })).toBe(0n);
    const events = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'Withdrawn' });
    expect(events.map((e) => e.args)).toEqual([{ account: bridge, amount: fee }]);
  });

  test('a requester withdraws a refunded fee', async () => {
    const f = await setup();
    const { requestNo } = await callLLM(f, validRequest, MIN_FEE * 2n);
    await refund(f, requestNo, 'NO_QUORUM');
    const receipt = await mined(
      await f.user.writeContract({ address: f.oracle, abi: synodOracleAbi, functionName: 'withdraw' }),
    );
    const user = f.user.account.address;
    const before = await client.getBalance({ address: user, blockNumber: receipt.blockNumber - 1n });
    const after = await client.getBalance({ address: user, blockNumber: receipt.blockNumber });
    expect(after - before).toBe(MIN_FEE * 2n - receipt.gasUsed * receipt.effectiveGasPrice);
    expect(await balanceIn(f, user)).toBe(0n);
  });

  test('with nothing to withdraw (never credited, or already withdrawn) it reverts with NothingToWithdraw', async () => {
    const f = await setup();
    const withdrawFrom = (w: Wallet) =>
      client.simulateContract({
        address: f.oracle,
        abi: synodOracleAbi,
        functionName: 'withdraw',
        account: w.account,
      });
    expect(await errorNameOf(withdrawFrom(f.stranger))).toBe('NothingToWithdraw');
    const { requestNo } = await callLLM(f);
    // A pending request's fee is not withdrawable by anyone yet.
    expect(await errorNameOf(withdrawFrom(f.bridge))).toBe('NothingToWithdraw');
    expect(await errorNameOf(withdrawFrom(f.user))).toBe('NothingToWithdraw');
    await fulfill(f, requestNo);
    await mined(
      await f.bridge.writeContract({ address: f.oracle, abi: synodOracleAbi, functionName: 'withdraw' }),
    );
    expect(await errorNameOf(withdrawFrom(f.bridge))).toBe('NothingToWithdraw');
  });
});

describe('setBridge', () => {
  test('only the owner may change the bridge: others get NotOwner', async () => {
    const f = await setup();
    for (const w of [f.bridge, f.user, f.stranger]) {
      const attempt = client.simulateContract({
        address: f.oracle,
        abi: synodOracleAbi,
        functionName: 'setBridge',
        args: [w.account.address],
        account: w.account,
      });
      expect(await errorNameOf(attempt)).toBe('NotOwner');
    }
    expect(
      await client.readContract({ address: f.oracle, abi: synodOracleAbi, functionName: 'bridge' }),
    ).toBe(f.bridge.account.address);
  });

  test('not even the owner may set the zero address (nobody could fulfil): BadConfig, the bridge unchanged', async () => {
    const f = await setup();
    const attempt = client.simulateContract({
      address: f.oracle,
      abi: synodOracleAbi,
      functionName: 'setBridge',
      args: [zeroAddress],
      account: f.owner.account,
    });
    expect(await errorNameOf(attempt)).toBe('BadConfig');
    expect(
      await client.readContract({ address: f.oracle, abi: synodOracleAbi, functionName: 'bridge' }),
    ).toBe(f.bridge.account.address);
  });

  test('the owner changes it: BridgeChanged is emitted, the new bridge can fulfil and the old cannot', async () => {
    const f = await setup();
    const newBridge = await fundedWallet();
    const { requestNo } = await callLLM(f);
    const receipt = await mined(
      await f.owner.writeContract({
        address: f.oracle,
        abi: synodOracleAbi,
        functionName: 'setBridge',
        args: [newBridge.account.address],
      }),
    );
    const events = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'BridgeChanged' });
    expect(events.map((e) => e.args)).toEqual([{ bridge: newBridge.account.address }]);
    expect(
      await client.readContract({ address: f.oracle, abi: synodOracleAbi, functionName: 'bridge' }),
    ).toBe(newBridge.account.address);

    expect(await errorNameOf(simulateFulfill(f, requestNo, f.bridge))).toBe('NotBridge');
    // The old bridge is now a stranger for refunds too.
    expect(await errorNameOf(simulateRefund(f, requestNo, f.bridge))).toBe('NotExpired');
    await fulfill(f, requestNo, newBridge);
    expect((await requestOf(f, requestNo)).status).toBe(Status.Fulfilled);
    expect(await balanceIn(f, newBridge.account.address)).toBe(MIN_FEE);
    expect(await balanceIn(f, f.bridge.account.address)).toBe(0n);
  });
});

describe('consumer callbacks', () => {
  test('a consumer contract that calls callLLM is the recorded requester', async () => {
    const f = await setup();
    const consumer = await deployConsumer(f, 'RecordingConsumerDouble');
    const requestNo = await consumerAsks(f, consumer);
    expect(requestNo).toBe(1n);
    expect(await requestOf(f, requestNo)).toMatchObject({
      requester: consumer,
      fee: MIN_FEE,
      status: Status.Pending,
    });
  });

  test('on fulfil the recording consumer receives (n, true, answer, digest, root) and callbackOk is true', async () => {
    const f = await setup();
    const consumer = await deployConsumer(f, 'RecordingConsumerDouble');
    await consumerAsks(f, consumer);
    const requestNo = await consumerAsks(f, consumer);
    expect(await lastResultOf(consumer)).toMatchObject({ calls: 0n });
    const receipt = await fulfill(f, requestNo);
    expect(await lastResultOf(consumer)).toEqual({
      calls: 1n,
      requestNo,
      fulfilled: true,
      answer: ANSWER,
      verdictDigest: DIGEST,
      transcriptRoot: ROOT,
    });
    const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMFulfilled' });
    expect(event?.args.callbackOk).toBe(true);
    expect((await requestOf(f, requestNo)).status).toBe(Status.Fulfilled);
  });

  test('on refund the recording consumer receives (n, false, reason, 0, 0), callbackOk is true, and it can withdraw the fee', async () => {
    const f = await setup();
    const consumer = await deployConsumer(f, 'RecordingConsumerDouble');
    const requestNo = await consumerAsks(f, consumer);
    await advanceTime(TIMEOUT + 1n);
    const receipt = await refund(f, requestNo, 'TIMEOUT', f.stranger);
    expect(await lastResultOf(consumer)).toEqual({
      calls: 1n,
      requestNo,
      fulfilled: false,
      answer: 'TIMEOUT',
      verdictDigest: zeroHash,
      transcriptRoot: zeroHash,
    });
    const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRefunded' });
    expect(event?.args).toEqual({
      requestNo,
      requester: getAddress(consumer),
      reason: 'TIMEOUT',
      callbackOk: true,
    });
    expect(await balanceIn(f, consumer)).toBe(MIN_FEE);

    await mined(
      await f.user.writeContract({
        address: consumer,
        abi: consumerDoubleAbi,
        functionName: 'withdrawFromOracle',
      }),
    );
    expect(await balanceIn(f, consumer)).toBe(0n);
    expect(await client.getBalance({ address: consumer })).toBe(MIN_FEE);
  });

  test('the recording consumer only trusts the oracle: a stranger calling onLLMResult directly reverts', async () => {
    const f = await setup();
    const consumer = await deployConsumer(f, 'RecordingConsumerDouble');
    const attempt = client.simulateContract({
      address: consumer,
      abi: consumerDoubleAbi,
      functionName: 'onLLMResult',
      args: [1n, true, 'forged', DIGEST, ROOT],
      account: f.stranger.account,
    });
    expect(await errorNameOf(attempt)).toBe('NotOracle');
    expect(await lastResultOf(consumer)).toMatchObject({ calls: 0n, answer: '' });
  });

  for (const name of ['RevertingConsumerDouble', 'GasBurningConsumerDouble'] as const) {
    test(`a ${name} does not block fulfil: the tx succeeds, status Fulfilled, callbackOk false, fee credited`, async () => {
      const f = await setup();
      const consumer = await deployConsumer(f, name);
      const requestNo = await consumerAsks(f, consumer);
      const receipt = await fulfill(f, requestNo);
      const events = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMFulfilled' });
      expect(events.map((e) => e.args)).toEqual([
        {
          requestNo,
          requester: getAddress(consumer),
          answer: ANSWER,
          verdictDigest: DIGEST,
          transcriptRoot: ROOT,
          callbackOk: false,
        },
      ]);
      expect((await requestOf(f, requestNo)).status).toBe(Status.Fulfilled);
      expect(await balanceIn(f, f.bridge.account.address)).toBe(MIN_FEE);
    });

    test(`a ${name} does not block refund: the tx succeeds, status Refunded, callbackOk false, fee credited`, async () => {
      const f = await setup();
      const consumer = await deployConsumer(f, name);
      const requestNo = await consumerAsks(f, consumer);
      const receipt = await refund(f, requestNo, 'NO_QUORUM');
      const events = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRefunded' });
      expect(events.map((e) => e.args)).toEqual([
        { requestNo, requester: getAddress(consumer), reason: 'NO_QUORUM', callbackOk: false },
      ]);
      expect((await requestOf(f, requestNo)).status).toBe(Status.Refunded);
      expect(await balanceIn(f, consumer)).toBe(MIN_FEE);
    });
  }

  test('the gas-burning consumer gets at most callbackGasLimit gas', async () => {
    const limit = 100_000;
    const f = await setup({ callbackGasLimit: limit });
    const consumer = await deployConsumer(f, 'GasBurningConsumerDouble');
    const requestNo = await consumerAsks(f, consumer);
    const receipt = await fulfill(f, requestNo, f.bridge, 2_000_000n);
    // The callback burns all it is given; with 2M gas offered, the whole fulfil stays far below it.
    expect(receipt.gasUsed).toBeGreaterThan(BigInt(limit));
    expect(receipt.gasUsed).toBeLessThan(BigInt(limit) + 150_000n);
    const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMFulfilled' });
    expect(event?.args.callbackOk).toBe(false);
  });

  test('a callback needing 300k gas (under a 1M callbackGasLimit) runs when the settler offers enough gas', async () => {
    const f = await setup({ callbackGasLimit: 1_000_000 });
    const consumer = await deployConsumer(f, 'GasHungryConsumerDouble');
    const requestNo = await consumerAsks(f, consumer);
    const receipt = await fulfill(f, requestNo, f.bridge, 2_000_000n);
    const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMFulfilled' });
    expect(event?.args.callbackOk).toBe(true);
    expect(
      await client.readContract({ address: consumer, abi: consumerDoubleAbi, functionName: 'calls' }),
    ).toBe(1n);
  });

  // The EVM forwards at most 63/64 of the gas left, and eth_estimateGas finds the least gas at which the
  // outer call does not revert: without a check, an honest bridge or refunder using estimated gas would
  // starve a callback that fits in callbackGasLimit (callbackOk false, the answer lost). The oracle
  // reverts with InsufficientGasForCallback instead, so estimation covers the callback.
  test('a settlement given too little gas for the callback reverts instead of starving it', async () => {
    const f = await setup({ callbackGasLimit: 1_000_000 });
    const consumer = await deployConsumer(f, 'GasHungryConsumerDouble');
    const requestNo = await consumerAsks(f, consumer);
    const starved = client.simulateContract({
      address: f.oracle,
      abi: synodOracleAbi,
      functionName: 'fulfill',
      args: [requestNo, await questionOf(f, requestNo), ANSWER, DIGEST, ROOT],
      account: f.bridge.account,
      gas: 400_000n,
    });
    const r = await revertOf(starved);
    expect(r.errorName).toBe('InsufficientGasForCallback');
    // The callback's gas and its call's overhead, and what the answer's encoding and event cost
    // (`_settlementGas`: 16 words more than the answer's, 4 x 375 + 262 a word + the memory growth).
    const words = BigInt(Math.ceil(new TextEncoder().encode(ANSWER).length / 32) + 16);
    const settlementGas = 4n * 375n + words * 262n + (2n * words) ** 2n / 512n + 5_000n;
    expect(r.args).toEqual([(1_000_000n * 64n) / 63n + 10_000n + settlementGas]);
    expect((await requestOf(f, requestNo)).status).toBe(Status.Pending);
  });

  // The settlement emits its event after the callback: the gas for it must be held back before the call,
  // or a callback cheap when the gas was estimated and costly when mined makes the whole settlement run
  // out of gas (the request stays pending, the bridge pays for a failed transaction, every retry fails).
  // `_settlementGas` must hold for every callback gas limit and every answer length.
  const answers: readonly (readonly [string, string])[] = [
    ['a short answer', 'Once upon a time.'],
    ...[0, 1, 31, 32, 33, 100, 1_000, 2_048, 4_096, 10_000, 16_384, 30_000, 50_000, 70_000].map(
      (length) => [`a ${length}-byte answer`, 'a'.repeat(length)] as const,
    ),
  ];
  for (const callbackGasLimit of [0, 1, 21_000, 200_000, 1_000_000]) {
    for (const [what, answer] of answers) {
      test(`${what} settled with the gas estimated for a cheap callback holds when the callback burns all it gets (callbackGasLimit ${callbackGasLimit})`, async () => {
        const f = await setup({ callbackGasLimit });
        const consumer = await deployConsumer(f, 'FlippingConsumerDouble');
        const requestNo = await consumerAsks(f, consumer);
        const settle = {
          address: f.oracle,
          abi: synodOracleAbi,
          functionName: 'fulfill',
          args: [requestNo, await questionOf(f, requestNo), answer, DIGEST, ROOT],
          account: f.bridge.account,
        } as const;
        const gas = await client.estimateContractGas(settle);
        await mined(
          await f.user.writeContract({
            address: consumer,
            abi: consumerDoubleAbi,
            functionName: 'setGreedy',
            args: [true],
          }),
        );
        const receipt = await mined(await f.bridge.writeContract({ ...settle, gas }));
        expect(receipt.status).toBe('success');
        const [event] = parseEventLogs({
          abi: synodOracleAbi,
          logs: receipt.logs,
          eventName: 'LLMFulfilled',
        });
        expect(event?.args.callbackOk).toBe(false);
        expect(event?.args.answer).toBe(answer);
        expect((await requestOf(f, requestNo)).status).toBe(Status.Fulfilled);
      }, 60_000);
    }
  }

  test('a bridge fulfil sent with estimated gas gives the consumer its full callbackGasLimit', async () => {
    const f = await setup({ callbackGasLimit: 1_000_000 });
    const consumer = await deployConsumer(f, 'GasHungryConsumerDouble');
    const requestNo = await consumerAsks(f, consumer);
    const receipt = await fulfill(f, requestNo);
    const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMFulfilled' });
    expect(event?.args.callbackOk).toBe(true);
  });

  test('a stranger refund after the deadline sent with estimated gas cannot starve the callback', async () => {
    const f = await setup({ callbackGasLimit: 1_000_000 });
    const consumer = await deployConsumer(f, 'GasHungryConsumerDouble');
    const requestNo = await consumerAsks(f, consumer);
    await advanceTime(TIMEOUT + 1n);
    const receipt = await refund(f, requestNo, 'TIMEOUT', f.stranger);
    const [event] = parseEventLogs({ abi: synodOracleAbi, logs: receipt.logs, eventName: 'LLMRefunded' });
    expect(event?.args.callbackOk).toBe(true);
  });
});
