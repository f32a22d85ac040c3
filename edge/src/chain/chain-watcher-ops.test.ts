/**
 * The chain watcher as its operator meets it: an RPC endpoint that fails, lies or changes chain, and a
 * bridge account that runs dry. A real anvil behind a fault-injecting proxy (chain-rpc-proxy.ts); the
 * relay's side (admission, lookup) is a double that holds each admitted request and the view the test
 * gives it, so each pass is about the chain only.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compileSolidity,
  fundedAccount,
  oracleSource,
  type RunningAnvil,
  startAnvil,
  synodOracleAbi,
} from '@synod/contracts';
import { leastFulfilGas } from '@synod/contracts/settlement-gas';
import type { RequestBody } from '@synod/shared';
import {
  type Address,
  createWalletClient,
  decodeFunctionData,
  encodeEventTopics,
  encodeFunctionData,
  type Hex,
  http,
  keccak256,
  parseEther,
  parseEventLogs,
  toHex,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import type { RequestDefaults } from '../inference-input.ts';
import { Metrics } from '../metrics.ts';
import { IntakeStore } from '../store/intake-store.ts';
import { openHistory } from '../store/open-history.ts';
import { waitUntil } from '../test-servers.ts';
import { ChainBridgeError } from './chain-errors.ts';
import { type RpcProxy, startRpcProxy } from './chain-rpc-proxy.ts';
import { ChainStore } from './chain-store.ts';
import { bridgeOptions, startTestChain, type TestChain } from './chain-test-helpers.ts';
import {
  ChainWatcher,
  type ChainWatcherOptions,
  HELD_LOOKUPS_PER_PASS,
  SETTLEMENT_SCANS_PER_PASS,
} from './chain-watcher.ts';
import { bridgeClients } from './clients.ts';
import type { FoundView } from './oracle-request.ts';
import { relayChainWatcher } from './relay-watcher.ts';

let chain: TestChain;
let proxy: RpcProxy;
let store: ChainStore;
const dir = mkdtempSync(join(tmpdir(), 'synod-chain-ops-'));
const closers: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  chain = await startTestChain();
  proxy = startRpcProxy(chain.anvil.url);
  const h = await openHistory(`file:${join(dir, 'history.db')}`);
  closers.push(() => h.client.close());
  store = new ChainStore(h.store.db);
});

afterAll(async () => {
  for (const c of closers.reverse()) await c();
  proxy?.stop();
  await chain?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const DEFAULTS: RequestDefaults = {
  knownModels: new Set(['stories260K']),
  defaultModels: ['stories260K'],
  embedders: [{ id: 'test-embedder', fileHash: 'ab'.repeat(32), bits: 64 }],
};

/** A consumer whose callback burns all the gas it is given: the dearest fulfil of a contract's request. */
const BURNER_SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
import "SynodOracle.sol";
contract Burner is ISynodConsumer {
    SynodOracle public immutable oracle;
    uint256 public spins;
    constructor(SynodOracle oracle_) { oracle = oracle_; }
    function ask(string calldata prompt, string[] calldata models) external payable returns (uint256) {
        return oracle.callLLM{value: msg.value}(prompt, models, 16, 0, 1);
    }
    function onLLMResult(uint256, bool, string calldata, bytes32, bytes32) external {
        while (true) spins++;
    }
}`;

/** The relay's side of a watcher: what was admitted, and the status each request shows (default pending). */
interface RelayDouble {
  admitted: Map<string, RequestBody>;
  status: Map<string, RelayStatus>;
  /** The request id of every admission asked for, in order (a replay too). */
  admissions: string[];
}

/** The status a request shows in the relay double: still moving, failed, or a verdict with a winner. */
type RelayStatus =
  | { status: 'failed'; error: string }
  | { status: 'pending' }
  | {
      status: 'verdict';
      verdict: { winner: { output: string }; verdictDigest: string; transcriptRoot: string };
    };

/** A verdict whose winning output is `output` (digests made up: the oracle stores them as they come). */
const verdictOf = (output: string): RelayStatus => ({
  status: 'verdict',
  verdict: { winner: { output }, verdictDigest: 'ab'.repeat(32), transcriptRoot: 'cd'.repeat(32) },
});

/**
 * A watcher of a fresh oracle over the proxy, reading from the oracle's deployment, its relay side a
 * double, its log kept; `o` overrides any option.
 */
async function opsWatcher(o: Partial<ChainWatcherOptions> = {}) {
  const oracle = await chain.deployAnother();
  const fromBlock = await chain.client.getBlockNumber({ cacheTime: 0 });
  const relay: RelayDouble = { admitted: new Map(), status: new Map(), admissions: [] };
  const logs: Record<string, unknown>[] = [];
  const idOf = (b: RequestBody) => {
    const origin = b.origin as { chainId: number; contract: string; requestNo: string };
    return `${origin.chainId}:${origin.contract}:${origin.requestNo}`;
  };
  const w = new ChainWatcher({
    ...bridgeClients(proxy.url, chain.anvil.chainId, chain.bridgeKey),
    oracle,
    chainId: chain.anvil.chainId,
    store,
    fromBlock,
    confirmations: 0,
    lookup: async (id) => {
      const body = relay.admitted.get(id);
      if (!body) return null;
      return { ...(relay.status.get(id) ?? { status: 'pending' }), request: body } as unknown as FoundView;
    },
    admit: async (a) => {
      const id = idOf(a.body);
      relay.admissions.push(id);
      const replayed = relay.admitted.has(id);
      relay.admitted.set(id, a.body);
      return replayed
        ? { kind: 'replayed', requestId: id }
        : { kind: 'created', requestId: id, usedToday: 1 };
    },
    defaults: async () => DEFAULTS,
    log: (e) => logs.push(e),
    ...o,
  });
  closers.push(() => w.stop());
  const requestId = (requestNo: bigint) => `${chain.anvil.chainId}:${oracle.toLowerCase()}:${requestNo}`;
  return { w, oracle, relay, logs, requestId };
}

/** The storage slot of `contract` whose low 20 bytes hold `address` (the oracle's `bridge`, found, not assumed). */
async function storageSlotHolding(contract: Address, address: Address): Promise<Hex> {
  for (let i = 0; i < 32; i++) {
    const slot = toHex(i, { size: 32 });
    const value = (await chain.rpc('eth_getStorageAt', [contract, slot, 'latest'])) as Hex;
    if (value.slice(-40).toLowerCase() === address.slice(2).toLowerCase()) return slot;
  }
  throw new Error(`no storage slot of ${contract} holds ${address}`);
}

const onChainStatus = async (oracle: Address, requestNo: bigint) =>
  (await chain.request(requestNo, oracle)).status;

const errorsIn = (logs: Record<string, unknown>[]) => logs.filter((l) => l.level === 'error');

/** The lines saying a request was settled on chain by a transaction this relay did not send. */
const saidByAnother = (logs: Record<string, unknown>[]) =>
  logs.filter((l) => l.code === 'SETTLED_BY_ANOTHER_ACCOUNT');

/** The oracle's owner (the test chain's requester deployed it) sets its bridge. */
const setBridge = async (oracle: Address, bridge: Address) => {
  const hash = await chain.requester.writeContract({
    address: oracle,
    abi: synodOracleAbi,
    functionName: 'setBridge',
    args: [bridge],
  });
  await chain.client.waitForTransactionReceipt({ hash, pollingInterval: 50 });
};

/** Pass after pass until `check` holds: a settlement sent in one pass is recorded in a later one, once mined. */
const pollUntil = (w: ChainWatcher, what: string, check: () => Promise<boolean>) =>
  waitUntil(
    what,
    async () => {
      await w.poll();
      return check();
    },
    30_000,
    50,
  );

/**
 * `n` requests to `oracle` mined in one block (automine off while they are sent), in the order sent: each
 * with its request number, transaction and log index, and the block.
 */
async function requestsInOneBlock(oracle: Address, n: number) {
  const send = async (prompt: string) => {
    const { request } = await chain.client.simulateContract({
      address: oracle,
      abi: synodOracleAbi,
      functionName: 'callLLM',
      args: [prompt, ['stories260K'], 16, 0, 3],
      account: chain.requester.account,
      value: 1_000n,
    });
    return chain.requester.writeContract(request);
  };
  await chain.rpc('evm_setAutomine', [false]);
  const sent: Hex[] = [];
  try {
    for (let i = 0; i < n; i++) sent.push(await send(`Request ${i} of ${n} in one block`));
    await chain.mine(1);
  } finally {
    await chain.rpc('evm_setAutomine', [true]);
  }
  const receipts = await Promise.all(sent.map((hash) => chain.client.waitForTransactionReceipt({ hash })));
  const number = receipts[0]?.blockNumber as bigint;
  expect(receipts.every((r) => r.blockNumber === number)).toBe(true);
  const requests = receipts.map((r) => {
    const [log] = parseEventLogs({ abi: synodOracleAbi, eventName: 'LLMRequested', logs: r.logs });
    if (!log) throw new Error(`no LLMRequested in ${r.transactionHash}`);
    return { requestNo: log.args.requestNo, txHash: r.transactionHash, logIndex: log.logIndex };
  });
  return { block: { number, hash: receipts[0]?.blockHash as Hex }, requests };
}

/** Whether none of these rows is pending any more. */
const allSettled = async (ids: string[]) => {
  const rows = await Promise.all(ids.map((id) => store.byRequestId(id)));
  return rows.every((r) => r?.status === 'fulfilled' || r?.status === 'refunded');
};

describe('chain watcher operations: the RPC endpoint', () => {
  test('another chain behind the RPC URL (a node restarted with another chain id) fails each pass with CHAIN_ID_MISMATCH and changes nothing', async () => {
    const { w, oracle, logs, requestId } = await opsWatcher();
    const { requestNo } = await chain.callLLM({
      prompt: 'Before the node restart',
      models: ['stories260K'],
      oracle,
    });
    await w.poll();
    const id = requestId(requestNo);
    expect((await store.byRequestId(id))?.status).toBe('pending');
    const cursor = await store.cursor(w.oracle);

    const other: RunningAnvil = await startAnvil({ chainId: chain.anvil.chainId + 1 });
    proxy.upstream = other.url;
    try {
      const errors = w.stats().errors;
      const lines = errorsIn(logs).length;
      await w.poll();
      await w.poll();
      await w.poll();
      expect(w.stats().errors).toBe(errors + 3);
      // Logged once for the spell, not once a pass.
      expect(errorsIn(logs).slice(lines)).toHaveLength(1);
      const failed = errorsIn(logs).at(-1);
      expect(failed).toMatchObject({ code: 'CHAIN_ID_MISMATCH' });
      // Nothing was taken for a reorg of this chain: the row and the cursor are as they were.
      expect((await store.byRequestId(id))?.status).toBe('pending');
      expect(await store.cursor(w.oracle)).toEqual(cursor);
      expect(w.stats().reorgs).toBe(0);
    } finally {
      proxy.upstream = chain.anvil.url;
      await other.stop();
    }
    const errors = w.stats().errors;
    await w.poll();
    expect(w.stats().errors).toBe(errors);
    expect(await onChainStatus(oracle, requestNo)).toBe(1);
    expect(logs.at(-1)).toMatchObject({
      level: 'info',
      msg: 'chain watcher passes work again',
      code: 'CHAIN_ID_MISMATCH',
      failures: 3,
    });
  });

  test('an RPC that is down (HTTP 503): passes fail with CHAIN_RPC_FAILED, logged once for the spell, and once more when it answers again', async () => {
    const { w, logs } = await opsWatcher();
    await w.poll();
    const lines = logs.length;
    // Every call answered 503, as a provider that is down answers.
    proxy.fault = () => ({ status: 503 });
    try {
      for (let i = 0; i < 5; i++) await w.poll();
    } finally {
      proxy.fault = undefined;
    }
    const during = logs.slice(lines);
    expect(during).toHaveLength(1);
    expect(during[0]).toMatchObject({
      level: 'error',
      msg: 'chain watcher pass failed',
      code: 'CHAIN_RPC_FAILED',
    });
    await w.poll();
    expect(logs.slice(lines + 1)).toEqual([
      expect.objectContaining({
        level: 'info',
        msg: 'chain watcher passes work again',
        code: 'CHAIN_RPC_FAILED',
        failures: 5,
      }),
    ]);
  });

  test('an RPC that refuses eth_getLogs over the default block range: the range is narrowed until it answers', async () => {
    const { w, oracle, logs, requestId } = await opsWatcher({ maxBlockRange: 2_000n });
    await chain.mine(300);
    const { requestNo } = await chain.callLLM({
      prompt: 'Behind a range limit',
      models: ['stories260K'],
      oracle,
    });
    // A provider that takes at most 100 blocks per eth_getLogs (many public endpoints limit this).
    proxy.fault = (call) => {
      if (call.method !== 'eth_getLogs') return undefined;
      const [filter] = call.params as [{ fromBlock: string; toBlock: string }];
      const span = Number(BigInt(filter.toBlock) - BigInt(filter.fromBlock)) + 1;
      return span > 100
        ? { error: { code: -32005, message: 'query exceeds max block range 100' } }
        : undefined;
    };
    try {
      await w.poll();
      await w.poll();
      expect((await store.byRequestId(requestId(requestNo)))?.status).toBe('pending');
      const head = await chain.client.getBlockNumber({ cacheTime: 0 });
      expect(BigInt((await store.cursor(w.oracle))?.blockNumber ?? 0)).toBe(head);
      expect(
        logs.some((l) => l.msg === 'the RPC refused a block range of eth_getLogs; reading narrower ranges'),
      ).toBe(true);
    } finally {
      proxy.fault = undefined;
    }
  });

  test('a long backlog is read over several passes, a bounded number of ranges each, the cursor kept between them', async () => {
    const { w, oracle, requestId } = await opsWatcher({ maxBlockRange: 10n, maxRangesPerPass: 3 });
    const first = await chain.callLLM({ prompt: 'Early in the backlog', models: ['stories260K'], oracle });
    await chain.mine(60);
    const last = await chain.callLLM({ prompt: 'Late in the backlog', models: ['stories260K'], oracle });
    const start = BigInt((await store.cursor(w.oracle))?.blockNumber ?? -1);
    const logsRead = () => proxy.calls.get('eth_getLogs') ?? 0;
    const before = logsRead();
    await w.poll();
    // One pass: three ranges of ten blocks, no more; what they held is recorded (and settled when it can
    // be) before the rest of the backlog is read.
    expect(logsRead() - before).toBe(3);
    expect((await store.byRequestId(requestId(first.requestNo)))?.status).toBe('pending');
    expect(await store.byRequestId(requestId(last.requestNo))).toBeNull();
    const after = BigInt((await store.cursor(w.oracle))?.blockNumber ?? -1);
    expect(after).toBeGreaterThan(start);
    for (let i = 0; i < 5; i++) await w.poll();
    expect((await store.byRequestId(requestId(last.requestNo)))?.status).toBe('pending');
  });

  test('a pass takes exactly maxEventsPerPass events, splitting a block; the next pass goes on inside it', async () => {
    const { w, oracle, relay, requestId } = await opsWatcher({ maxEventsPerPass: 2 });
    const { block, requests } = await requestsInOneBlock(oracle, 5);
    const ids = requests.map((r) => requestId(r.requestNo));
    const recorded = async () =>
      (await Promise.all(ids.map((id) => store.byRequestId(id)))).map((r) => r?.status ?? null);

    await w.poll();
    expect(await recorded()).toEqual(['pending', 'pending', null, null, null]);
    expect(await store.cursor(w.oracle)).toMatchObject({
      blockNumber: Number(block.number),
      blockHash: block.hash,
      logIndex: requests[1]?.logIndex,
    });
    await w.poll();
    expect(await recorded()).toEqual(['pending', 'pending', 'pending', 'pending', null]);
    expect((await store.cursor(w.oracle))?.logIndex).toBe(requests[3]?.logIndex as number);
    await w.poll();
    expect(await recorded()).toEqual(['pending', 'pending', 'pending', 'pending', 'pending']);
    // The block is read whole: the cursor is past it, and a further pass reads nothing again.
    expect(await store.cursor(w.oracle)).toMatchObject({ blockNumber: Number(block.number), logIndex: null });
    await w.poll();
    expect(w.stats().events).toBe(5);
    expect(relay.admissions).toEqual(ids);
    expect(w.stats().admitted).toBe(5);
  });

  test('a reorg that replaces the block under a cursor inside it marks its rows reorged; mined again, they are pending again', async () => {
    const { w, oracle, relay, requestId } = await opsWatcher({ maxEventsPerPass: 2 });
    const { block, requests } = await requestsInOneBlock(oracle, 5);
    const ids = requests.map((r) => requestId(r.requestNo));
    const recorded = async () =>
      (await Promise.all(ids.map((id) => store.byRequestId(id)))).map((r) => r?.status ?? null);
    const raws = await Promise.all(requests.map((r) => chain.rpc('eth_getRawTransactionByHash', [r.txHash])));
    await w.poll();
    expect((await store.cursor(w.oracle))?.logIndex).toBe(requests[1]?.logIndex as number);

    // Replace the block (and any above it) with empty ones: the cursor's block is gone.
    const head = await chain.client.getBlockNumber({ cacheTime: 0 });
    const reorgs = w.stats().reorgs;
    await chain.rpc('anvil_reorg', [Number(head - block.number) + 1, []]);
    await w.poll();
    expect(await recorded()).toEqual(['reorged', 'reorged', null, null, null]);
    expect(w.stats().reorgs).toBe(reorgs + 1);
    expect(await onChainStatus(oracle, requests[0]?.requestNo as bigint)).toBe(0);

    // The same transactions mined again, in one later block: read in budgets of two, each event once.
    await chain.rpc('evm_setAutomine', [false]);
    try {
      for (const raw of raws) await chain.rpc('eth_sendRawTransaction', [raw]);
      await chain.mine(1);
    } finally {
      await chain.rpc('evm_setAutomine', [true]);
    }
    const again = await chain.client.waitForTransactionReceipt({ hash: requests[4]?.txHash as Hex });
    expect(again.blockNumber).toBeGreaterThan(block.number);
    for (let i = 0; i < 3; i++) await w.poll();
    expect(await recorded()).toEqual(['pending', 'pending', 'pending', 'pending', 'pending']);
    expect((await store.byRequestId(ids[0] as string))?.blockNumber).toBe(Number(again.blockNumber));
    expect(await store.cursor(w.oracle)).toMatchObject({ logIndex: null });
    // Admitted once each: the two restored rows are the relay's already, and nothing is asked twice.
    expect(relay.admissions).toEqual(ids);
    expect(w.stats().admitted).toBe(5);
  });

  test('a reorg deeper than the reorg window is read again from where it began: a request mined in its first block is taken', async () => {
    const { w, oracle, relay, logs } = await opsWatcher({ reorgWindow: 2n });
    await w.poll();
    const start = await chain.client.getBlockNumber({ cacheTime: 0 });
    // The cursor stands on each of six blocks in turn (a pass a block, as a watcher polling each second).
    for (let i = 0; i < 6; i++) {
      await chain.mine(1);
      await w.poll();
    }
    expect((await store.cursor(w.oracle))?.blockNumber).toBe(Number(start) + 6);
    // The last five blocks replaced; the first new one holds a request. It lies below the cursor less
    // the window (2): a watcher reading back only that far never sees it.
    const prepared = await chain.requester.prepareTransactionRequest({
      to: oracle,
      data: encodeFunctionData({
        abi: synodOracleAbi,
        functionName: 'callLLM',
        args: ['Asked in a block a deep reorg made', ['stories260K'], 16, 0, 1],
      }),
      value: 1_000n,
      gas: 1_000_000n,
    });
    const raw = await chain.requester.signTransaction(prepared);
    await chain.rpc('anvil_reorg', [5, [[raw, 0]]]);
    const mined = await chain.client.getTransactionReceipt({ hash: keccak256(raw) });
    expect(mined.blockNumber).toBe(start + 2n);
    await w.poll();
    await w.poll();
    expect(relay.admissions).toHaveLength(1);
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: 'chain reorg under the cursor; reading again',
        from: Number(start) + 2,
      }),
    );
  });

  test('a chain now shorter than the cursor (a reorg to a shorter chain, an RPC behind) is read again from the fork, not from --from-block; a reset chain from the start', async () => {
    const { w, logs } = await opsWatcher({ reorgWindow: 2n });
    const fromBlock = Number(await chain.client.getBlockNumber({ cacheTime: 0 }));
    // The cursor stands on each of twelve blocks in turn.
    for (let i = 0; i < 12; i++) {
      await chain.mine(1);
      await w.poll();
    }
    const snapshot = await chain.rpc('evm_snapshot', []);
    const forkAt = Number(await chain.client.getBlockNumber({ cacheTime: 0 }));
    for (let i = 0; i < 4; i++) {
      await chain.mine(1);
      await w.poll();
    }
    const cursor = (await store.cursor(w.oracle))?.blockNumber as number;
    expect(cursor).toBe(forkAt + 4);
    // Back to four blocks below the cursor: its block is past the new head.
    expect(await chain.rpc('evm_revert', [snapshot])).toBe(true);
    await w.poll();
    const shorter = logs.filter((l) => l['msg'] === 'chain reorg under the cursor; reading again');
    expect(shorter).toHaveLength(1);
    // Read again from just above the newest block it stood on that is still there (the fork), not from
    // the oracle's first block: a long chain is not read again whole.
    expect(shorter[0]).toMatchObject({ cursor, from: forkAt + 1, head: forkAt });
    expect(shorter[0]).not.toHaveProperty('reset');
    expect(forkAt + 1).toBeGreaterThan(fromBlock + 2);
    // Nothing above the fork to read yet: the cursor went back to it, so the next pass takes no reorg.
    expect((await store.cursor(w.oracle))?.blockNumber).toBe(forkAt);
    await w.poll();
    expect(logs.filter((l) => l['msg'] === 'chain reorg under the cursor; reading again')).toHaveLength(1);

    // A watcher that knows no block it stood on (a restart), over a chain far shorter than its cursor:
    // taken for a reset chain, read from the start.
    const fresh = await opsWatcher({ reorgWindow: 2n });
    const start = await chain.client.getBlockNumber({ cacheTime: 0 });
    const early = await chain.rpc('evm_snapshot', []);
    await chain.mine(8);
    await fresh.w.poll();
    const far = (await store.cursor(fresh.w.oracle))?.blockNumber as number;
    const restarted = await opsWatcher({ reorgWindow: 2n, oracle: fresh.oracle, fromBlock: start });
    expect(await chain.rpc('evm_revert', [early])).toBe(true);
    await restarted.w.poll();
    expect(
      restarted.logs.find((l) => l['msg'] === 'chain reorg under the cursor; reading again'),
    ).toMatchObject({
      cursor: far,
      from: Number(start),
      reset: true,
    });
  });

  test('after a restart, an RPC whose head is behind the cursor (the chain still holding the events read) is waited for, nothing marked reorged', async () => {
    const first = await opsWatcher({ reorgWindow: 2n });
    const start = await chain.client.getBlockNumber({ cacheTime: 0 });
    const asked = await chain.callLLM({
      prompt: 'Read before the restart',
      models: ['stories260K'],
      oracle: first.oracle,
    });
    await chain.mine(1);
    const behind = await chain.rpc('evm_snapshot', []);
    await chain.mine(10);
    await first.w.poll();
    const id = first.requestId(asked.requestNo);
    expect((await store.byRequestId(id))?.status).toBe('pending');
    const cursor = (await store.cursor(first.w.oracle))?.blockNumber as number;
    // Started again (no block the cursor stood on known), over an RPC 10 blocks behind that cursor.
    const again = await opsWatcher({ reorgWindow: 2n, oracle: first.oracle, fromBlock: start });
    expect(await chain.rpc('evm_revert', [behind])).toBe(true);
    await again.w.poll();
    await again.w.poll();
    const waiting = again.logs.filter(
      (l) => l['msg'] === "the chain RPC's head is behind the read cursor; waiting for it",
    );
    expect(waiting).toHaveLength(1);
    expect(waiting[0]).toMatchObject({ cursor });
    expect(again.logs.some((l) => l['msg'] === 'chain reorg under the cursor; reading again')).toBe(false);
    expect((await store.byRequestId(id))?.status).toBe('pending');
    expect((await store.cursor(again.w.oracle))?.blockNumber).toBe(cursor);
  });

  test('a reorg deeper than every block the cursor stood on is said (CHAIN_REORG_TOO_DEEP) and read again from below the oldest', async () => {
    const { w, logs } = await opsWatcher({ reorgWindow: 2n });
    await chain.mine(2);
    await w.poll();
    const first = await chain.client.getBlockNumber({ cacheTime: 0 });
    for (const n of [1, 1, 4]) {
      await chain.mine(n);
      await w.poll();
    }
    // Every block from the first the cursor stood on is replaced (the oracle's own stays); the first new
    // one holds a transfer, so it is not the same empty block again.
    const transfer = await chain.requester.signTransaction(
      await chain.requester.prepareTransactionRequest({ to: chain.bridge.account.address, value: 1n }),
    );
    await chain.rpc('anvil_reorg', [7, [[transfer, 0]]]);
    await w.poll();
    expect(logs).toContainEqual(
      expect.objectContaining({ level: 'error', code: 'CHAIN_REORG_TOO_DEEP', from: Number(first) - 2 }),
    );
  });

  test('logs the RPC returns from outside the range asked (an unconfirmed block) are not acted on', async () => {
    const { w, oracle, logs, requestId } = await opsWatcher({ confirmations: 2 });
    await chain.mine(3);
    await w.poll();
    // A provider that ignores `toBlock`: it answers with logs up to the head.
    proxy.fault = (call) => {
      if (call.method !== 'eth_getLogs') return undefined;
      const [filter] = call.params as [Record<string, unknown>];
      return { params: [{ ...filter, toBlock: 'latest' }] };
    };
    try {
      const { requestNo } = await chain.callLLM({
        prompt: 'Not yet confirmed',
        models: ['stories260K'],
        oracle,
      });
      await w.poll();
      expect(await store.byRequestId(requestId(requestNo))).toBeNull();
      expect(logs.some((l) => l.msg === 'the RPC returned logs outside the range asked; ignored')).toBe(true);
      await chain.mine(2);
      await w.poll();
      expect((await store.byRequestId(requestId(requestNo)))?.status).toBe('pending');
    } finally {
      proxy.fault = undefined;
    }
  });
});

describe('chain watcher operations: the bridge account', () => {
  test('an unfunded bridge: one error a pass (BRIDGE_UNFUNDED, logged once a spell), the balance read at once and low; refunded, it settles', async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher({ balanceCheckMs: 3_600_000 });
    const asked: { requestNo: bigint }[] = [];
    for (const p of ['First', 'Second', 'Third']) {
      asked.push(await chain.callLLM({ prompt: `${p} to refund`, models: ['stories260K'], oracle }));
    }
    await w.poll();
    expect(w.stats().bridge?.low).toBe(false);
    const bridge = chain.bridge.account.address;
    const funded = await chain.client.getBalance({ address: bridge });
    await chain.rpc('anvil_setBalance', [bridge, '0x0']);
    try {
      for (const a of asked)
        relay.status.set(requestId(a.requestNo), { status: 'failed', error: 'NO_NODES' });
      const before = errorsIn(logs).length;
      const counted = w.stats().errors;
      // Three passes, one line: a spell of BRIDGE_UNFUNDED is logged once (each pass still counts it).
      await w.poll();
      await w.poll();
      await w.poll();
      const errors = errorsIn(logs).slice(before);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ code: 'BRIDGE_UNFUNDED' });
      expect(w.stats().errors).toBe(counted + 3);
      expect(w.stats().bridge?.low).toBe(true);
      for (const a of asked) expect(await onChainStatus(oracle, a.requestNo)).toBe(1);
    } finally {
      await chain.rpc('anvil_setBalance', [
        bridge,
        `0x${(funded > 0n ? funded : parseEther('100')).toString(16)}`,
      ]);
    }
    await w.poll();
    await w.poll();
    for (const a of asked) expect(await onChainStatus(oracle, a.requestNo)).toBe(3);
    expect(w.stats().bridge?.low).toBe(false);
    expect(logs.some((l) => l.msg === 'the bridge balance is sufficient again')).toBe(true);
  });
});

describe('chain watcher operations: starting', () => {
  test("a relay whose bridge key is not the oracle's bridge() refuses to start (BRIDGE_MISMATCH), naming both accounts", async () => {
    const { oracle } = await opsWatcher();
    const other = generatePrivateKey();
    const otherAccount = privateKeyToAccount(other).address;
    const { w } = await opsWatcher({ ...bridgeClients(proxy.url, chain.anvil.chainId, other), oracle });
    const e = await w.start().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ChainBridgeError);
    expect(e).toMatchObject({
      code: 'BRIDGE_MISMATCH',
      details: { oracle, oracleBridge: chain.bridge.account.address, account: otherAccount },
    });
    const err = e as ChainBridgeError;
    expect(err.message).toContain(chain.bridge.account.address);
    expect(err.message).toContain(otherAccount);
    expect(err.hint).toContain(`setBridge(${otherAccount})`);
    expect(err.hint).toContain("the key of the oracle's bridge account");
  });

  test('a contract that is no SynodOracle at --oracle refuses to start (ORACLE_NOT_FOUND)', async () => {
    const { Empty } = compileSolidity({
      'Empty.sol':
        '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\ncontract Empty { uint256 public x; }',
    });
    if (!Empty) throw new Error('Empty did not compile');
    const receipt = await chain.client.waitForTransactionReceipt({
      hash: await chain.requester.deployContract({ abi: Empty.abi, bytecode: Empty.bytecode }),
      pollingInterval: 50,
    });
    const { w } = await opsWatcher({ oracle: receipt.contractAddress as Address });
    const e = await w.check().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ChainBridgeError);
    expect(e).toMatchObject({ code: 'ORACLE_NOT_FOUND' });
    expect((e as Error).message).toContain('is not a SynodOracle');
  });
});

/** An account the oracle's owner makes the bridge: not this relay's. */
const DEAD = '0x000000000000000000000000000000000000dEaD' as const;

describe("chain watcher operations: the oracle's bridge changed under a running relay", () => {
  test('a fulfil reverting NotBridge reads bridge() at once: BRIDGE_MISMATCH logged once a spell, nothing sent meanwhile, in the stats; set back, it settles and says so', async () => {
    let clock = 1_800_000_000_000;
    const { w, oracle, relay, logs, requestId } = await opsWatcher({ now: () => clock });
    await w.check();
    const { requestNo } = await chain.callLLM({
      prompt: 'Refused for a while',
      models: ['stories260K'],
      oracle,
    });
    await w.poll();
    await setBridge(oracle, DEAD);
    const lines = logs.length;
    const sent = proxy.calls.get('eth_sendRawTransaction') ?? 0;
    try {
      relay.status.set(requestId(requestNo), verdictOf('An answer'));
      // Within bridgeCheckMs of the start: the fulfil's simulation reverts NotBridge, which reads it at once.
      for (let i = 0; i < 3; i++) await w.poll();
      const errors = errorsIn(logs.slice(lines));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({
        code: 'BRIDGE_MISMATCH',
        oracle,
        oracleBridge: DEAD,
        account: chain.bridge.account.address,
      });
      expect(String(errors[0]?.hint)).toContain(`setBridge(${chain.bridge.account.address})`);
      expect(w.stats().bridgeMismatch).toMatchObject({
        oracleBridge: DEAD,
        account: chain.bridge.account.address,
      });
      // Three passes, three failures counted, no transaction sent, the request still pending.
      expect(proxy.calls.get('eth_sendRawTransaction') ?? 0).toBe(sent);
      expect(await onChainStatus(oracle, requestNo)).toBe(1);
      // Nothing more is simulated for it while the mismatch lasts.
      const simulated = proxy.calls.get('eth_call') ?? 0;
      await w.poll();
      expect(proxy.calls.get('eth_call') ?? 0).toBe(simulated);
    } finally {
      await setBridge(oracle, chain.bridge.account.address);
    }
    // Read again bridgeCheckMs (30 s) later: the spell is over, said once, and the fulfil goes through.
    clock += 30_000;
    await pollUntil(w, 'the fulfil', async () => (await onChainStatus(oracle, requestNo)) === 2);
    expect(w.stats().bridgeMismatch).toBeNull();
    expect(logs.slice(lines)).toContainEqual(
      expect.objectContaining({
        level: 'info',
        msg: "the oracle's bridge is this relay's account again; settling resumes",
        code: 'BRIDGE_MISMATCH',
      }),
    );
    expect(errorsIn(logs.slice(lines))).toHaveLength(1);
  });

  test('while another account is the bridge, refunds before the deadline wait and the events after them are read; a refund past its deadline is sent', async () => {
    const clock = 1_800_000_000_000;
    const { w, oracle, logs, requestId } = await opsWatcher({ now: () => clock });
    await w.check();
    await setBridge(oracle, DEAD);
    // Both refused as they are read (a model nobody serves), the second behind the first.
    const first = await chain.callLLM({ prompt: 'Unknown model, first', models: ['no-such-model'], oracle });
    const second = await chain.callLLM({
      prompt: 'Unknown model, second',
      models: ['no-such-model'],
      oracle,
    });
    // Not read at once (bridgeCheckMs has not passed): the first refund reverts NotExpired, which reads
    // bridge() at once; the pass goes on reading and records the second.
    await w.poll();
    expect(await store.byRequestId(requestId(first.requestNo))).toMatchObject({ status: 'pending' });
    expect(await store.byRequestId(requestId(second.requestNo))).toMatchObject({ status: 'pending' });
    expect(errorsIn(logs).map((l) => l.code)).toEqual(['BRIDGE_MISMATCH']);
    expect(w.stats().bridgeMismatch).not.toBeNull();
    // Past the first's deadline anyone may refund: the relay does, not being the bridge. Past the
    // second's too: mined a second later than the first, its deadline is a second later (were the next
    // block's time the first's deadline + 1, the second would not be past its own, and with no block
    // mined after it, never would be).
    const { deadline } = await chain.request(second.requestNo, oracle);
    expect(deadline).toBeGreaterThanOrEqual((await chain.request(first.requestNo, oracle)).deadline);
    await chain.rpc('evm_setNextBlockTimestamp', [Number(deadline) + 1]);
    await chain.mine(1);
    await pollUntil(w, 'refunded', async () => (await onChainStatus(oracle, first.requestNo)) === 3);
    expect((await settlementsOf(oracle, first.requestNo)).refunds).toEqual(['UNKNOWN_MODEL']);
    await pollUntil(w, 'recorded', () =>
      allSettled([requestId(first.requestNo), requestId(second.requestNo)]),
    );
    // The second's deadline passed too: refunded.
    expect(await onChainStatus(oracle, second.requestNo)).toBe(3);
    expect(errorsIn(logs).filter((l) => l.code !== 'BRIDGE_MISMATCH')).toEqual([]);
    await setBridge(oracle, chain.bridge.account.address);
  });
});

/**
 * The request numbers the watcher asks the oracle's `requests(n)` of (its on-chain lookups of a row), in
 * the order asked, while `f` runs.
 */
async function requestsLookedUp(f: () => Promise<void>): Promise<{ looked: bigint[]; calls: number }> {
  const looked: bigint[] = [];
  let calls = 0;
  proxy.fault = (call) => {
    calls++;
    if (call.method !== 'eth_call') return undefined;
    const [tx] = call.params as [{ data?: Hex; input?: Hex }];
    const data = tx.data ?? tx.input;
    if (data === undefined) return undefined;
    try {
      const d = decodeFunctionData({ abi: synodOracleAbi, data });
      if (d.functionName === 'requests') looked.push(d.args[0]);
    } catch {}
    return undefined;
  };
  try {
    await f();
  } finally {
    proxy.fault = undefined;
  }
  return { looked, calls };
}

describe("chain watcher operations: many rows held back while another account is the oracle's bridge", () => {
  // A pass read the first 64 pending rows, and read on only while a page made progress: 64 fulfils held
  // back hid every row behind them for good (no refund past its deadline, no lookup on chain), and each
  // held row cost a block and a receipt read every pass.
  test('more held-back fulfils than a page: a refund behind them past its deadline is sent; each settlement check looks up at most HELD_LOOKUPS_PER_PASS rows, going on after the last, and the passes between cost no call per row', async () => {
    let clock = 1_800_000_000_000;
    const { w, oracle, relay, logs, requestId } = await opsWatcher({ now: () => clock });
    await w.check();
    // More than a page (64), and with the refund a whole number of checks' lookups (9 × 8).
    const HELD = 71;
    const { requests } = await requestsInOneBlock(oracle, HELD + 1);
    await w.poll();
    const ids = requests.map((r) => requestId(r.requestNo));
    expect(ids.every((id) => relay.admitted.has(id))).toBe(true);
    await setBridge(oracle, DEAD);
    try {
      // bridgeCheckMs (30 s) later, the pass reads bridge() first: nothing is simulated, the fulfils wait.
      clock += 30_000;
      for (const id of ids.slice(0, HELD)) relay.status.set(id, verdictOf('Held back'));
      const refundNo = requests[HELD]?.requestNo as bigint;
      relay.status.set(requestId(refundNo), { status: 'failed', error: 'FAILED' });
      const sent = proxy.calls.get('eth_sendRawTransaction') ?? 0;
      const checks: bigint[][] = [];
      // A settlement check each (settledCheckMs, 30 s): eight rows looked up, the next check the next eight.
      for (let i = 0; i < Math.ceil((HELD + 1) / HELD_LOOKUPS_PER_PASS); i++) {
        const { looked } = await requestsLookedUp(() => w.poll());
        checks.push(looked);
        clock += 30_000;
      }
      expect(w.stats().bridgeMismatch).toMatchObject({ oracleBridge: DEAD });
      // Every row once, oldest first, eight a check; then from the oldest again at once.
      expect(checks.map((c) => c.length)).toEqual(checks.map(() => HELD_LOOKUPS_PER_PASS));
      expect(checks.flat()).toEqual(requests.map((r) => r.requestNo));
      const again = await requestsLookedUp(() => w.poll());
      expect(again.looked).toEqual(requests.slice(0, HELD_LOOKUPS_PER_PASS).map((r) => r.requestNo));
      // Between settlement checks: no lookup, and a bounded number of calls in all (not a few a row).
      const between = await requestsLookedUp(() => w.poll());
      expect(between.looked).toEqual([]);
      expect(between.calls).toBeLessThan(HELD_LOOKUPS_PER_PASS + 8);
      expect(proxy.calls.get('eth_sendRawTransaction') ?? 0).toBe(sent);
      // Past the deadline, the refund behind the held fulfils is anyone's to send: the relay sends it.
      const { deadline } = await chain.request(refundNo, oracle);
      await chain.rpc('evm_setNextBlockTimestamp', [Number(deadline) + 1]);
      await chain.mine(1);
      await pollUntil(w, 'the refund', () => allSettled([requestId(refundNo)]));
      expect((await settlementsOf(oracle, refundNo)).refunds).toEqual(['FAILED']);
      expect(proxy.calls.get('eth_sendRawTransaction') ?? 0).toBe(sent + 1);
      for (const r of requests.slice(0, HELD)) expect(await onChainStatus(oracle, r.requestNo)).toBe(1);
      expect(errorsIn(logs).filter((l) => l.code !== 'BRIDGE_MISMATCH')).toEqual([]);
    } finally {
      await setBridge(oracle, chain.bridge.account.address);
    }
  }, 60_000);
});

describe('chain watcher operations: settlements in flight', () => {
  /** Mine blocks only when told to, for the duration of `f`. */
  async function withoutAutomine(f: () => Promise<void>): Promise<void> {
    await chain.rpc('evm_setAutomine', [false]);
    try {
      await f();
    } finally {
      proxy.fault = undefined;
      await chain.rpc('evm_setAutomine', [true]);
    }
  }

  test('a settlement waiting in the mempool at the fees the chain asks is not re-sent with ever higher fees; once fees rise it is', async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher({ replaceAfterMs: 0 });
    const { requestNo } = await chain.callLLM({
      prompt: 'Waiting in the mempool',
      models: ['stories260K'],
      oracle,
    });
    await w.poll();
    const id = requestId(requestNo);
    relay.status.set(id, { status: 'failed', error: 'NO_NODES' });
    await withoutAutomine(async () => {
      await w.poll();
      const first = (await store.byRequestId(id))?.fulfilledTx as `0x${string}`;
      const sent = await chain.client.getTransaction({ hash: first });
      for (let i = 0; i < 5; i++) await w.poll();
      // Fees did not rise: more would not get it mined sooner, and would only cost more once it is.
      expect(w.stats().replaced).toBe(0);
      expect((await store.byRequestId(id))?.fulfilledTx).toBe(first);
      expect(
        logs.some((l) => l.msg === 'a settlement waits in the mempool although its fees are current'),
      ).toBe(true);

      // The chain's fees rise above what the transaction offers (its RPC says so: anvil would drop
      // the transaction rather than keep it below a higher base fee): it is re-sent above them.
      const tip = (sent.maxFeePerGas ?? 0n) * 4n;
      proxy.fault = (call) =>
        call.method === 'eth_maxPriorityFeePerGas' ? { result: () => `0x${tip.toString(16)}` } : undefined;
      await w.poll();
      expect(w.stats().replaced).toBe(1);
      const second = (await store.byRequestId(id))?.fulfilledTx as `0x${string}`;
      const replacement = await chain.client.getTransaction({ hash: second });
      expect(replacement.nonce).toBe(sent.nonce);
      expect(replacement.maxFeePerGas).toBeGreaterThan(tip);
      await chain.mine(1);
    });
    await w.poll();
    expect(await onChainStatus(oracle, requestNo)).toBe(3);
    expect((await store.byRequestId(id))?.status).toBe('refunded');
  });

  test("while another account is the oracle's bridge, a fulfil waiting in the mempool is not re-sent with higher fees (it would revert NotBridge); once the bridge is back, it is", async () => {
    let clock = 1_800_000_000_000;
    const { w, oracle, relay, requestId } = await opsWatcher({ replaceAfterMs: 0, now: () => clock });
    await w.check();
    const { requestNo } = await chain.callLLM({
      prompt: 'Waiting while the bridge changes',
      models: ['stories260K'],
      oracle,
    });
    await w.poll();
    const id = requestId(requestNo);
    relay.status.set(id, verdictOf('An answer'));
    // The owner's change of the bridge, written straight into its storage slot while the fulfil waits
    // (a block mining setBridge could mine the waiting fulfil before it).
    const slot = await storageSlotHolding(oracle, chain.bridge.account.address);
    const setBridgeSlot = async (to: Address) => {
      const was = (await chain.rpc('eth_getStorageAt', [oracle, slot, 'latest'])) as Hex;
      await chain.rpc('anvil_setStorageAt', [
        oracle,
        slot,
        `${was.slice(0, 26)}${to.slice(2).toLowerCase()}`,
      ]);
    };
    await withoutAutomine(async () => {
      await w.poll();
      const first = (await store.byRequestId(id))?.fulfilledTx as Hex;
      const sent = await chain.client.getTransaction({ hash: first });
      await setBridgeSlot('0x000000000000000000000000000000000000dEaD');
      // The chain's fees rise above what the fulfil offers: it would be re-sent, were it not to revert.
      const tip = (sent.maxFeePerGas ?? 0n) * 4n;
      proxy.fault = (call) =>
        call.method === 'eth_maxPriorityFeePerGas' ? { result: () => `0x${tip.toString(16)}` } : undefined;
      clock += 60_000; // past bridgeCheckMs: the next pass reads bridge() again
      await w.poll();
      await w.poll();
      expect(w.stats().bridgeMismatch).toMatchObject({ account: chain.bridge.account.address });
      expect(w.stats().replaced).toBe(0);
      expect((await store.byRequestId(id))?.fulfilledTx).toBe(first);
      // The bridge is this relay's again: the waiting fulfil is re-sent above the chain's fees.
      await setBridgeSlot(chain.bridge.account.address);
      clock += 60_000;
      await w.poll();
      expect(w.stats().bridgeMismatch).toBeNull();
      expect(w.stats().replaced).toBe(1);
      const second = (await store.byRequestId(id))?.fulfilledTx as Hex;
      expect((await chain.client.getTransaction({ hash: second })).nonce).toBe(sent.nonce);
      await chain.mine(1);
    });
    await w.poll();
    expect(await onChainStatus(oracle, requestNo)).toBe(2);
  });

  test('the deadline passes while a settlement is in flight and someone else refunds first: recorded as refunded, no error', async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher();
    const { requestNo } = await chain.callLLM({
      prompt: 'Refunded by another',
      models: ['stories260K'],
      oracle,
    });
    await w.poll();
    const id = requestId(requestNo);
    relay.status.set(id, { status: 'failed', error: 'NO_NODES' });
    const { deadline, questionHash } = await chain.request(requestNo, oracle);
    const errors = w.stats().errors;
    await withoutAutomine(async () => {
      await w.poll();
      const ours = (await store.byRequestId(id))?.fulfilledTx as `0x${string}`;
      const sent = await chain.client.getTransaction({ hash: ours });
      await chain.rpc('evm_setNextBlockTimestamp', [Number(deadline) + 1]);
      // Anyone may refund after the deadline, with any reason: the requester does, paying a higher tip,
      // so first, with a reason holding a NUL (libSQL reads a text up to it) and a terminal's escape.
      await chain.requester.writeContract({
        address: oracle,
        abi: synodOracleAbi,
        functionName: 'refund',
        args: [requestNo, questionHash, 'EXPIRED\u0000\u001b[2K'],
        gas: 300_000n,
        maxFeePerGas: (sent.maxFeePerGas ?? 0n) * 2n,
        maxPriorityFeePerGas: (sent.maxPriorityFeePerGas ?? 0n) * 2n + 1n,
      });
      await chain.mine(1);
    });
    for (let i = 0; i < 3; i++) await w.poll();
    const row = await store.byRequestId(id);
    expect(row?.status).toBe('refunded');
    const refunds = await chain.client.getContractEvents({
      address: oracle,
      abi: synodOracleAbi,
      eventName: 'LLMRefunded',
      args: { requestNo },
      fromBlock: 0n,
      strict: true,
    });
    expect(refunds.map((r) => r.args.reason)).toEqual(['EXPIRED\u0000\u001b[2K']);
    expect(row?.fulfilledTx).toBe(refunds[0]?.transactionHash.toLowerCase());
    // The reason recorded is the one on chain, not what the relay had meant to send: whole, its control
    // characters escaped.
    expect(row?.refundReason).toBe('EXPIRED\\u0000\\u001b[2K');
    expect(w.stats().errors).toBe(errors);
    expect(errorsIn(logs)).toEqual([]);
    // Its own refund reverted (or dropped): the requester's is said, once, with who sent it.
    expect(saidByAnother(logs)).toEqual([
      expect.objectContaining({
        level: 'warn',
        requestId: id,
        kind: 'refunded',
        tx: row?.fulfilledTx,
        from: chain.requester.account.address,
        fromThisAccount: false,
      }),
    ]);
  });
});

/** The reasons of the oracle's `LLMRefunded` events for a request, and how many `LLMFulfilled` it has. */
async function settlementsOf(oracle: Address, requestNo: bigint) {
  const q = {
    address: oracle,
    abi: synodOracleAbi,
    args: { requestNo },
    fromBlock: 0n,
    strict: true,
  } as const;
  const refunds = await chain.client.getContractEvents({ ...q, eventName: 'LLMRefunded' });
  const fulfils = await chain.client.getContractEvents({ ...q, eventName: 'LLMFulfilled' });
  return {
    refunds: refunds.map((r) => r.args.reason),
    fulfils: fulfils.length,
    refundTxs: refunds.map((r) => r.transactionHash.toLowerCase()),
  };
}

describe('chain watcher operations: answers the chain cannot take', () => {
  /** The chain's block gas limit is `gas` for the duration of `f` (anvil's `evm_setBlockGasLimit`). */
  async function withBlockGasLimit(gas: bigint, f: () => Promise<void>): Promise<void> {
    const was = (await chain.client.getBlock({ blockTag: 'latest' })).gasLimit;
    await chain.rpc('evm_setBlockGasLimit', [toHex(gas)]);
    try {
      await f();
    } finally {
      await chain.rpc('evm_setBlockGasLimit', [toHex(was)]);
    }
  }

  test('a winning answer whose fulfil needs more gas than a block holds is refunded ANSWER_TOO_LARGE; a short one is fulfilled', async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher();
    await withBlockGasLimit(400_000n, async () => {
      const asked = async (prompt: string) =>
        (await chain.callLLM({ prompt, models: ['stories260K'], oracle })).requestNo;
      const short = await asked('A short story');
      // About 19 KiB: the call's data fits in a block of 400k gas, its execution (the event's log) not.
      const long = await asked('A long story');
      // About 38 KiB: not even the call's data fits (its intrinsic gas is above the block's).
      const longer = await asked('A longer story');
      await w.poll();
      relay.status.set(requestId(short), verdictOf('Once upon a time.'));
      relay.status.set(requestId(long), verdictOf('Once upon a time. '.repeat(1_050)));
      relay.status.set(requestId(longer), verdictOf('Once upon a time. '.repeat(2_100)));
      await pollUntil(w, 'settled', () => allSettled([short, long, longer].map(requestId)));
      expect(await onChainStatus(oracle, short)).toBe(2);
      for (const n of [long, longer]) {
        expect(await onChainStatus(oracle, n)).toBe(3);
        expect((await settlementsOf(oracle, n)).refunds).toEqual(['ANSWER_TOO_LARGE']);
        expect(await store.byRequestId(requestId(n))).toMatchObject({
          status: 'refunded',
          refundReason: 'ANSWER_TOO_LARGE',
        });
      }
      expect((await store.byRequestId(requestId(short)))?.refundReason).toBeNull();
      expect(errorsIn(logs)).toEqual([]);
      expect(logs.filter((l) => l.code === 'ANSWER_TOO_LARGE')).toHaveLength(2);
    });
  });

  test("a fulfil whose gas is above the bridge's own limit (maxSettlementGas) is refunded ANSWER_TOO_LARGE; one within it is fulfilled", async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher({ maxSettlementGas: 300_000n });
    const within = (await chain.callLLM({ prompt: 'Within budget', models: ['stories260K'], oracle }))
      .requestNo;
    const over = (await chain.callLLM({ prompt: 'Over budget', models: ['stories260K'], oracle })).requestNo;
    await w.poll();
    relay.status.set(requestId(within), verdictOf('Once upon a time. '.repeat(50)));
    // About 16 KiB: some 680k gas on this chain (which takes 30M a block).
    relay.status.set(requestId(over), verdictOf('Once upon a time. '.repeat(900)));
    await pollUntil(w, 'settled', () => allSettled([within, over].map(requestId)));
    expect(await onChainStatus(oracle, within)).toBe(2);
    expect(await onChainStatus(oracle, over)).toBe(3);
    expect((await settlementsOf(oracle, over)).refunds).toEqual(['ANSWER_TOO_LARGE']);
    expect(errorsIn(logs)).toEqual([]);
  });

  test("a consumer contract's fulfil whose answer leaves its callback short of gas (InsufficientGasForCallback) is refunded ANSWER_TOO_LARGE, and the consumer hears it", async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher({ maxSettlementGas: 300_000n });
    const compiled = compileSolidity({
      'SynodOracle.sol': oracleSource(),
      'AskSynod.sol': readFileSync(
        new URL('../../../contracts/src/examples/AskSynod.sol', import.meta.url),
        'utf8',
      ),
    });
    const asking = compiled.AskSynod;
    if (!asking) throw new Error('AskSynod did not compile');
    const deployed = await chain.client.waitForTransactionReceipt({
      hash: await chain.requester.deployContract({
        abi: asking.abi,
        bytecode: asking.bytecode,
        args: [oracle],
      }),
      pollingInterval: 50,
    });
    const consumer = deployed.contractAddress as Address;
    const ask = async (prompt: string) => {
      const { request, result } = await chain.client.simulateContract({
        address: consumer,
        abi: asking.abi,
        functionName: 'ask',
        args: [prompt, ['stories260K'], 48],
        value: 1_000n,
        account: chain.requester.account,
      });
      await chain.client.waitForTransactionReceipt({
        hash: await chain.requester.writeContract(request),
        pollingInterval: 50,
      });
      return result as bigint;
    };
    const short = await ask('A short story for a contract');
    const long = await ask('A long story for a contract');
    await w.poll();
    relay.status.set(requestId(short), verdictOf('Once upon a time.'));
    // About 5 KiB: its calldata leaves less than the callback's 200k of the 300k the bridge spends.
    relay.status.set(requestId(long), verdictOf('Once upon a time. '.repeat(280)));
    await pollUntil(w, 'settled', () => allSettled([short, long].map(requestId)));
    expect(await onChainStatus(oracle, short)).toBe(2);
    expect(await onChainStatus(oracle, long)).toBe(3);
    const refunds = await chain.client.getContractEvents({
      address: oracle,
      abi: synodOracleAbi,
      eventName: 'LLMRefunded',
      args: { requestNo: long },
      fromBlock: 0n,
      strict: true,
    });
    expect(refunds.map((r) => [r.args.reason, r.args.callbackOk])).toEqual([['ANSWER_TOO_LARGE', true]]);
    expect(await store.byRequestId(requestId(long))).toMatchObject({ status: 'refunded', callbackOk: true });
    const tooLarge = logs.find((l) => l.code === 'ANSWER_TOO_LARGE');
    expect(tooLarge?.revert).toBe('InsufficientGasForCallback');
    expect(errorsIn(logs)).toEqual([]);
  });

  test("below the least gas a fulfil with a consumer's callback takes (maxSettlementGas), the relay refuses to start (SETTLEMENT_GAS_TOO_LOW); at exactly that, a consumer whose callback burns all its gas gets a short answer", async () => {
    const least = leastFulfilGas(200_000);
    const below = await opsWatcher({ maxSettlementGas: least - 1n });
    const e = await below.w.check().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ChainBridgeError);
    expect(e).toMatchObject({
      code: 'SETTLEMENT_GAS_TOO_LOW',
      details: { callbackGasLimit: 200_000, leastFulfilGas: least.toString() },
    });
    expect((e as ChainBridgeError).hint).toContain(`at least ${least}`);

    const { w, oracle, relay, logs, requestId } = await opsWatcher({ maxSettlementGas: least });
    await w.check();
    const { Burner } = compileSolidity({
      'SynodOracle.sol': oracleSource(),
      'Burner.sol': BURNER_SOURCE,
    });
    if (!Burner) throw new Error('Burner did not compile');
    const deployed = await chain.client.waitForTransactionReceipt({
      hash: await chain.requester.deployContract({
        abi: Burner.abi,
        bytecode: Burner.bytecode,
        args: [oracle],
      }),
      pollingInterval: 50,
    });
    const consumer = deployed.contractAddress as Address;
    const { request, result } = await chain.client.simulateContract({
      address: consumer,
      abi: Burner.abi,
      functionName: 'ask',
      args: ['A short story for a burner', ['stories260K']],
      value: 1_000n,
      account: chain.requester.account,
    });
    await chain.client.waitForTransactionReceipt({
      hash: await chain.requester.writeContract(request),
      pollingInterval: 50,
    });
    const requestNo = result as bigint;
    await w.poll();
    // The bridge's first fee on this oracle: its balance slot written from zero, the dearest fulfil.
    relay.status.set(requestId(requestNo), verdictOf('Once upon a time.'));
    await pollUntil(w, 'settled', () => allSettled([requestId(requestNo)]));
    expect(await onChainStatus(oracle, requestNo)).toBe(2);
    const [fulfilled] = await chain.client.getContractEvents({
      address: oracle,
      abi: synodOracleAbi,
      eventName: 'LLMFulfilled',
      args: { requestNo },
      fromBlock: 0n,
      strict: true,
    });
    // The callback ran with its whole callbackGasLimit and used it up: the row keeps what the event says.
    expect(fulfilled?.args).toMatchObject({ answer: 'Once upon a time.', callbackOk: false });
    expect(await store.byRequestId(requestId(requestNo))).toMatchObject({
      status: 'fulfilled',
      callbackOk: false,
    });
    const receipt = await chain.client.getTransactionReceipt({ hash: fulfilled?.transactionHash as Hex });
    expect(receipt.gasUsed).toBeLessThan(least);
    expect(logs.filter((l) => l.code === 'ANSWER_TOO_LARGE')).toEqual([]);
    expect(errorsIn(logs)).toEqual([]);
  });

  test('a fulfil the RPC fails to simulate for no reason of its size (HTTP 503, an internal error, "out of gas" to every call) is not refunded; it is fulfilled once the RPC answers', async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher();
    const { requestNo } = await chain.callLLM({ prompt: 'A flaky RPC', models: ['stories260K'], oracle });
    await w.poll();
    const answer = 'Once upon a time. '.repeat(200);
    relay.status.set(requestId(requestNo), verdictOf(answer));
    // Only the calls that carry this answer fail: any smaller one the watcher tries goes through.
    const carriesAnswer = (call: { method: string; params: unknown[] }) =>
      (call.method === 'eth_call' || call.method === 'eth_estimateGas') &&
      JSON.stringify(call.params).length > 4_000;
    proxy.fault = (call) => (carriesAnswer(call) ? { status: 503 } : undefined);
    try {
      await w.poll();
      await w.poll();
      expect(await onChainStatus(oracle, requestNo)).toBe(1);
      expect(errorsIn(logs).length).toBeGreaterThan(0);
      proxy.fault = (call) =>
        carriesAnswer(call) ? { error: { code: -32603, message: 'internal error' } } : undefined;
      await w.poll();
      expect(await onChainStatus(oracle, requestNo)).toBe(1);
      // A node that says "out of gas" to every call, however small: not taken for an answer too large.
      proxy.fault = (call) =>
        call.method === 'eth_call' || call.method === 'eth_estimateGas'
          ? { error: { code: -32000, message: 'out of gas' } }
          : undefined;
      await w.poll();
      expect(await onChainStatus(oracle, requestNo)).toBe(1);
    } finally {
      proxy.fault = undefined;
    }
    await pollUntil(w, 'fulfilled', () => allSettled([requestId(requestNo)]));
    expect(await onChainStatus(oracle, requestNo)).toBe(2);
    expect((await settlementsOf(oracle, requestNo)).refunds).toEqual([]);
  });
});

describe('chain watcher operations: requests settled on chain by someone else', () => {
  /** Refund a request as its requester, after its deadline (anyone may then); the refund's hash. */
  async function refundAfterDeadline(oracle: Address, requestNo: bigint): Promise<`0x${string}`> {
    const { deadline, questionHash } = await chain.request(requestNo, oracle);
    const now = (await chain.client.getBlock({ blockTag: 'latest' })).timestamp;
    if (now <= deadline) await chain.rpc('evm_setNextBlockTimestamp', [Number(deadline) + 1]);
    const hash = await chain.requester.writeContract({
      address: oracle,
      abi: synodOracleAbi,
      functionName: 'refund',
      args: [requestNo, questionHash, 'EXPIRED'],
    });
    await chain.client.waitForTransactionReceipt({ hash, pollingInterval: 50 });
    return hash;
  }

  test('a request refunded on chain before its event was read is recorded refunded, never admitted to the network', async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher();
    const { requestNo } = await chain.callLLM({
      prompt: 'Refunded before read',
      models: ['stories260K'],
      oracle,
    });
    const refund = await refundAfterDeadline(oracle, requestNo);
    await w.poll();
    const id = requestId(requestNo);
    expect(relay.admitted.has(id)).toBe(false);
    expect(w.stats().admitted).toBe(0);
    const row = await store.byRequestId(id);
    expect(row?.status).toBe('refunded');
    expect(row?.fulfilledTx).toBe(refund.toLowerCase());
    expect(row?.refundReason).toBe('EXPIRED');
    expect(w.stats().refunded).toBe(1);
    await w.poll();
    expect((await settlementsOf(oracle, requestNo)).refunds).toEqual(['EXPIRED']);
    expect(errorsIn(logs)).toEqual([]);
    // Anyone may refund after the deadline; this relay had not settled it by then: said, once, with who.
    expect(saidByAnother(logs)).toEqual([
      expect.objectContaining({
        level: 'warn',
        msg: 'a chain request was settled on chain before its event was read; recorded, not computed',
        requestId: id,
        kind: 'refunded',
        tx: refund,
        from: chain.requester.account.address,
        fromThisAccount: false,
      }),
    ]);
  });

  test('a request fulfilled on chain before its event was read (another relay with the bridge key) is recorded, and said as a warning with the sender (SETTLED_BY_ANOTHER_ACCOUNT)', async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher();
    const { requestNo } = await chain.callLLM({
      prompt: 'Fulfilled elsewhere',
      models: ['stories260K'],
      oracle,
    });
    const { questionHash } = await chain.request(requestNo, oracle);
    const hash = await chain.bridge.writeContract({
      address: oracle,
      abi: synodOracleAbi,
      functionName: 'fulfill',
      args: [
        requestNo,
        questionHash,
        'Answered by another relay',
        `0x${'ab'.repeat(32)}`,
        `0x${'cd'.repeat(32)}`,
      ],
    });
    await chain.client.waitForTransactionReceipt({ hash, pollingInterval: 50 });
    await w.poll();
    const id = requestId(requestNo);
    expect(relay.admitted.has(id)).toBe(false);
    expect(await store.byRequestId(id)).toMatchObject({
      status: 'fulfilled',
      fulfilledTx: hash.toLowerCase(),
    });
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        msg: 'a chain request was settled on chain before its event was read; recorded, not computed',
        code: 'SETTLED_BY_ANOTHER_ACCOUNT',
        requestId: id,
        kind: 'fulfilled',
        tx: hash,
        from: chain.bridge.account.address,
        fromThisAccount: true,
      }),
    );
    await w.poll();
    expect(saidByAnother(logs)).toHaveLength(1);
    expect(errorsIn(logs)).toEqual([]);
  });

  test('a request refunded on chain while the network computes it: its verdict is not sent, the row recorded refunded', async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher();
    const { requestNo } = await chain.callLLM({
      prompt: 'Refunded while computed',
      models: ['stories260K'],
      oracle,
    });
    await w.poll();
    const id = requestId(requestNo);
    expect(relay.admitted.has(id)).toBe(true);
    const refund = await refundAfterDeadline(oracle, requestNo);
    relay.status.set(id, verdictOf('An answer too late'));
    await pollUntil(w, 'refunded', () => allSettled([id]));
    const row = await store.byRequestId(id);
    expect(row?.status).toBe('refunded');
    expect(row?.fulfilledTx).toBe(refund.toLowerCase());
    expect(row?.refundReason).toBe('EXPIRED');
    expect(await settlementsOf(oracle, requestNo)).toMatchObject({ refunds: ['EXPIRED'], fulfils: 0 });
    expect(errorsIn(logs)).toEqual([]);
    // Found as its fulfil was simulated (NotPending): said, once, with who refunded it.
    await w.poll();
    expect(saidByAnother(logs)).toEqual([
      expect.objectContaining({
        level: 'warn',
        code: 'SETTLED_BY_ANOTHER_ACCOUNT',
        requestId: id,
        kind: 'refunded',
        tx: refund,
        from: chain.requester.account.address,
        fromThisAccount: false,
      }),
    ]);
  });

  test("a request fulfilled by the account the oracle's owner made the bridge, while this relay waits with its verdict: recorded at the next settlement check, said once with the sender, nothing sent", async () => {
    let clock = 1_800_000_000_000;
    const { w, oracle, relay, logs, requestId } = await opsWatcher({ now: () => clock });
    await w.check();
    const { requestNo } = await chain.callLLM({
      prompt: 'Answered by the new bridge',
      models: ['stories260K'],
      oracle,
    });
    await w.poll();
    const id = requestId(requestNo);
    const other = await fundedAccount(chain.anvil.url);
    const otherBridge = createWalletClient({
      chain: chain.chain,
      transport: http(chain.anvil.url),
      account: other.account,
    });
    await setBridge(oracle, other.account.address);
    const sent = proxy.calls.get('eth_sendRawTransaction') ?? 0;
    try {
      relay.status.set(id, verdictOf('An answer of this relay'));
      // Its fulfil reverts NotBridge: held back, the mismatch said.
      await w.poll();
      expect(w.stats().bridgeMismatch).toMatchObject({ oracleBridge: other.account.address });
      const { questionHash } = await chain.request(requestNo, oracle);
      const theirs = await otherBridge.writeContract({
        address: oracle,
        abi: synodOracleAbi,
        functionName: 'fulfill',
        args: [
          requestNo,
          questionHash,
          'An answer of the new bridge',
          `0x${'ab'.repeat(32)}`,
          `0x${'cd'.repeat(32)}`,
        ],
      });
      await chain.client.waitForTransactionReceipt({ hash: theirs, pollingInterval: 50 });
      // Between settlement checks a held-back row is not looked up on chain.
      await w.poll();
      expect(await store.byRequestId(id)).toMatchObject({ status: 'pending', fulfilledTx: null });
      expect(saidByAnother(logs)).toEqual([]);
      clock += 30_000;
      await w.poll();
      expect(await store.byRequestId(id)).toMatchObject({
        status: 'fulfilled',
        fulfilledTx: theirs.toLowerCase(),
        callbackOk: true,
      });
      await w.poll();
      expect(saidByAnother(logs)).toEqual([
        expect.objectContaining({
          level: 'warn',
          code: 'SETTLED_BY_ANOTHER_ACCOUNT',
          requestId: id,
          kind: 'fulfilled',
          tx: theirs,
          from: other.account.address,
          fromThisAccount: false,
        }),
      ]);
      expect(proxy.calls.get('eth_sendRawTransaction') ?? 0).toBe(sent);
    } finally {
      await setBridge(oracle, chain.bridge.account.address);
    }
  });

  test("a refund of this relay's that a reorg replaced with the requester's (after the deadline): recorded as the chain holds it, and said once with the sender", async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher({ settledCheckMs: 0 });
    const { requestNo } = await chain.callLLM({
      prompt: 'Refunded twice over a reorg',
      models: ['stories260K'],
      oracle,
    });
    await w.poll();
    const id = requestId(requestNo);
    const { deadline, questionHash } = await chain.request(requestNo, oracle);
    await chain.rpc('evm_setNextBlockTimestamp', [Number(deadline) + 1]);
    await chain.mine(1);
    relay.status.set(id, { status: 'failed', error: 'NO_NODES' });
    await pollUntil(w, 'refunded by this relay', () => allSettled([id]));
    const ours = (await store.byRequestId(id))?.fulfilledTx as Hex;
    const { blockNumber } = await chain.client.getTransactionReceipt({ hash: ours });
    // The new chain from the refund's block on holds the requester's refund in its place.
    const theirs = await chain.requester.signTransaction(
      await chain.requester.prepareTransactionRequest({
        to: oracle,
        data: encodeFunctionData({
          abi: synodOracleAbi,
          functionName: 'refund',
          args: [requestNo, questionHash, 'EXPIRED'],
        }),
        gas: 300_000n,
      }),
    );
    const head = await chain.client.getBlockNumber({ cacheTime: 0 });
    await chain.rpc('anvil_reorg', [Number(head - blockNumber) + 1, [[theirs, 0]]]);
    expect((await settlementsOf(oracle, requestNo)).refundTxs).toEqual([keccak256(theirs)]);
    await w.poll();
    await w.poll();
    expect(await store.byRequestId(id)).toMatchObject({
      status: 'refunded',
      fulfilledTx: keccak256(theirs),
      refundReason: 'EXPIRED',
    });
    expect(saidByAnother(logs)).toEqual([
      expect.objectContaining({
        level: 'warn',
        code: 'SETTLED_BY_ANOTHER_ACCOUNT',
        requestId: id,
        kind: 'refunded',
        tx: keccak256(theirs),
        from: chain.requester.account.address,
        fromThisAccount: false,
      }),
    ]);
  });
});

describe('chain watcher operations: /metrics', () => {
  test("the relay's watcher publishes its passes, failures, last clean pass, head and cursor", async () => {
    const h = await openHistory(`file:${join(dir, 'relay.db')}`);
    closers.push(() => h.client.close());
    const oracle = await chain.deployAnother();
    const fromBlock = await chain.client.getBlockNumber({ cacheTime: 0 });
    const metrics = new Metrics();
    let clock = 1_800_000_000_000;
    const w = relayChainWatcher(
      {
        ...bridgeOptions(chain, { confirmations: 1, pollMs: 3_600_000 }),
        rpcUrl: proxy.url,
        oracle,
        fromBlock,
      },
      {
        store: h.store,
        intake: new IntakeStore(h.client),
        network: { admitted: async () => undefined, servedModels: async () => new Set(['stories260K']) },
        config: { defaultModels: ['stories260K'], embedders: DEFAULTS.embedders },
        admitter: { admit: async () => ({ kind: 'quota-exceeded', quotaPerDay: 0, day: '2026-01-01' }) },
        now: () => clock,
        metrics,
      },
    );
    closers.push(() => w.stop());
    const labels = `{oracle="${chain.anvil.chainId}:${oracle.toLowerCase()}"}`;
    const metric = (name: string) =>
      metrics
        .render()
        .split('\n')
        .find((l) => l.startsWith(`${name}${labels} `))
        ?.split(' ')[1];
    await chain.mine(3);
    await w.poll();
    const head = await chain.client.getBlockNumber({ cacheTime: 0 });
    expect(metric('synod_chain_watcher_passes_total')).toBe('1');
    expect(metric('synod_chain_watcher_errors_total')).toBe('0');
    expect(metric('synod_chain_watcher_last_ok_seconds')).toBe(String(clock / 1000));
    expect(metric('synod_chain_head_block')).toBe(String(head));
    expect(metric('synod_chain_cursor_block')).toBe(String(head - 1n));

    // The RPC answers 503 to everything: the pass fails, and /metrics says so.
    proxy.fault = () => ({ status: 503 });
    try {
      clock += 60_000;
      await w.poll();
    } finally {
      proxy.fault = undefined;
    }
    expect(metric('synod_chain_watcher_passes_total')).toBe('2');
    expect(metric('synod_chain_watcher_errors_total')).toBe('1');
    expect(metric('synod_chain_watcher_last_ok_seconds')).toBe(String((clock - 60_000) / 1000));
    expect(metric('synod_chain_bridge_mismatch')).toBe('0');

    // The oracle's owner gives the bridge to another account: 1 from the next read of bridge() on.
    const setBridge = async (bridge: Address) =>
      chain.client.waitForTransactionReceipt({
        hash: await chain.requester.writeContract({
          address: oracle,
          abi: synodOracleAbi,
          functionName: 'setBridge',
          args: [bridge],
        }),
        pollingInterval: 50,
      });
    await setBridge('0x000000000000000000000000000000000000dEaD');
    clock += 60_000;
    await w.poll();
    expect(metric('synod_chain_bridge_mismatch')).toBe('1');
    expect(metric('synod_chain_watcher_errors_total')).toBe('2');
    await setBridge(chain.bridge.account.address);
    clock += 60_000;
    await w.poll();
    expect(metric('synod_chain_bridge_mismatch')).toBe('0');
    expect(metric('synod_chain_watcher_last_ok_seconds')).toBe(String(clock / 1000));
  });
});

describe('chain watcher operations: requests settled before their event is read', () => {
  // The case it is for is a relay that was down or behind, so the settlement is usually far from the
  // event. Behind an RPC that takes at most 100 blocks per eth_getLogs (as many public endpoints do), the
  // settlement's event was looked up from the request's block to the head in one call, refused every
  // pass: the row stayed pending for good.
  test('a request refunded long before its event is read, behind an RPC that takes 100 blocks per eth_getLogs: recorded, never computed', async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher({ maxBlockRange: 50n });
    const { requestNo } = await chain.callLLM({
      prompt: 'Refunded while the relay was down',
      models: ['stories260K'],
      oracle,
    });
    // The relay is down; the deadline passes, the requester refunds; the chain goes on.
    await chain.mine(150);
    const { deadline, questionHash } = await chain.request(requestNo, oracle);
    await chain.rpc('evm_setNextBlockTimestamp', [Number(deadline) + 1]);
    await chain.client.waitForTransactionReceipt({
      hash: await chain.requester.writeContract({
        address: oracle,
        abi: synodOracleAbi,
        functionName: 'refund',
        args: [requestNo, questionHash, 'EXPIRED'],
      }),
    });
    await chain.mine(150);
    proxy.fault = (call) => {
      if (call.method !== 'eth_getLogs') return undefined;
      const [filter] = call.params as [{ fromBlock: string; toBlock?: string }];
      const to =
        filter.toBlock === undefined || filter.toBlock === 'latest'
          ? Number.MAX_SAFE_INTEGER
          : Number(BigInt(filter.toBlock));
      const span = to - Number(BigInt(filter.fromBlock)) + 1;
      return span > 100
        ? { error: { code: -32005, message: 'query exceeds max block range 100' } }
        : undefined;
    };
    try {
      for (let i = 0; i < 12; i++) await w.poll().catch(() => {});
    } finally {
      proxy.fault = undefined;
    }
    const head = await chain.client.getBlockNumber({ cacheTime: 0 });
    expect(relay.admitted.has(requestId(requestNo))).toBe(false);
    expect(BigInt((await store.cursor(w.oracle))?.blockNumber ?? 0)).toBe(head);
    expect(errorsIn(logs)).toEqual([]);
    expect(await store.byRequestId(requestId(requestNo))).toMatchObject({
      status: 'refunded',
      refundReason: 'EXPIRED',
    });
  }, 60_000);

  // A request settled on chain whose settlement event the node does not show (yet) is looked up again
  // at each check. The lookup walked from the request's block to the head at every one: unbounded calls
  // a check, and the same walk again and again. It reads at most maxRangesPerPass ranges a check, and
  // the next check goes on from where it stopped.
  test('a settlement event not shown yet is looked up a bounded number of ranges a check, each check going on from the last', async () => {
    const { w, oracle, requestId } = await opsWatcher({
      maxBlockRange: 10n,
      maxRangesPerPass: 3,
      reorgWindow: 5n,
    });
    const { requestNo, blockNumber } = await chain.callLLM({
      prompt: 'Refunded, its event not shown',
      models: ['stories260K'],
      oracle,
    });
    await chain.mine(150);
    const { deadline, questionHash } = await chain.request(requestNo, oracle);
    await chain.rpc('evm_setNextBlockTimestamp', [Number(deadline) + 1]);
    const refund = await chain.requester.writeContract({
      address: oracle,
      abi: synodOracleAbi,
      functionName: 'refund',
      args: [requestNo, questionHash, 'EXPIRED'],
    });
    await chain.client.waitForTransactionReceipt({ hash: refund });
    await chain.mine(5);
    const refunded = encodeEventTopics({ abi: synodOracleAbi, eventName: 'LLMRefunded' })[0];
    /** The fromBlock of each lookup of the refund's event in the pass now running. */
    let lookups: bigint[] = [];
    proxy.fault = (call) => {
      if (call.method !== 'eth_getLogs') return undefined;
      const [filter] = call.params as [{ fromBlock: string; topics?: (string | null)[] }];
      if (filter.topics?.[0] !== refunded) return undefined;
      lookups.push(BigInt(filter.fromBlock));
      // The node does not show the refund's event.
      return { result: () => [] };
    };
    const passes: bigint[][] = [];
    try {
      for (let i = 0; i < 4; i++) {
        lookups = [];
        await w.poll();
        passes.push(lookups);
      }
    } finally {
      proxy.fault = undefined;
    }
    const id = requestId(requestNo);
    expect((await store.byRequestId(id))?.status).toBe('pending');
    // Each check reads at most three ranges (the first pass checks the row twice), and goes on from
    // where the last one stopped: no block read twice.
    expect(passes.map((p) => p.length)).toEqual([6, 3, 3, 3]);
    expect(passes.flat()).toEqual(Array.from({ length: 15 }, (_, i) => blockNumber + BigInt(i) * 10n));
    // Shown again: found a few checks later, recorded as the refund it is.
    await pollUntil(w, 'refunded', () => allSettled([id]));
    expect((await store.byRequestId(id))?.fulfilledTx).toBe(refund.toLowerCase());
  }, 60_000);
});

describe('chain watcher operations: lookups of settlement events a pass', () => {
  // A request the oracle holds settled whose settlement event the node does not show was looked for at
  // every sight of its row, each lookup up to maxRangesPerPass eth_getLogs: a Workers run (whose lookups
  // start again from the request's block) could spend its budget of subrequests on them every run.
  test('requests refunded before their events are read, their refunds not shown: at most SETTLEMENT_SCANS_PER_PASS lookups a pass; shown again, all are recorded, none computed', async () => {
    const { w, oracle, relay, logs, requestId } = await opsWatcher();
    const n = SETTLEMENT_SCANS_PER_PASS + 4;
    const { requests } = await requestsInOneBlock(oracle, n);
    const first = await chain.request(requests[0]?.requestNo as bigint, oracle);
    await chain.rpc('evm_setNextBlockTimestamp', [Number(first.deadline) + 1]);
    for (const r of requests) {
      const { questionHash } = await chain.request(r.requestNo, oracle);
      await chain.client.waitForTransactionReceipt({
        hash: await chain.requester.writeContract({
          address: oracle,
          abi: synodOracleAbi,
          functionName: 'refund',
          args: [r.requestNo, questionHash, 'EXPIRED'],
        }),
        pollingInterval: 50,
      });
    }
    const refunded = encodeEventTopics({ abi: synodOracleAbi, eventName: 'LLMRefunded' })[0];
    let lookups = 0;
    proxy.fault = (call) => {
      if (call.method !== 'eth_getLogs') return undefined;
      const [filter] = call.params as [{ topics?: (string | null)[] }];
      if (filter.topics?.[0] !== refunded) return undefined;
      lookups++;
      return { result: () => [] };
    };
    const passes: number[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        lookups = 0;
        await w.poll();
        passes.push(lookups);
      }
    } finally {
      proxy.fault = undefined;
    }
    // Each lookup one range here (2,000 blocks a call): at most eight a pass.
    expect(passes).toEqual([SETTLEMENT_SCANS_PER_PASS, SETTLEMENT_SCANS_PER_PASS, SETTLEMENT_SCANS_PER_PASS]);
    const ids = requests.map((r) => requestId(r.requestNo));
    expect((await Promise.all(ids.map((id) => store.byRequestId(id)))).map((r) => r?.status)).toEqual(
      ids.map(() => 'pending'),
    );
    await pollUntil(w, 'all recorded', () => allSettled(ids));
    for (const id of ids) {
      expect(await store.byRequestId(id)).toMatchObject({ status: 'refunded', refundReason: 'EXPIRED' });
    }
    expect(relay.admitted.size).toBe(0);
    expect(errorsIn(logs)).toEqual([]);
  }, 60_000);
});

describe('chain watcher operations: settlements recorded before their event could be read', () => {
  // A settlement the RPC showed neither the receipt nor the event of (a node behind a load balancer,
  // say) is recorded as the oracle's status says, its callback's outcome and a refund's reason unknown.
  // They stayed unknown for good: the later checks read its receipt or event, and kept nothing of it.
  test("a settlement recorded without its receipt or event takes callbackOk (and a refund's reason) from a later check: from its receipt, or from its event", async () => {
    const { w, oracle, relay, requestId } = await opsWatcher({ settledCheckMs: 0 });
    const answered = await chain.callLLM({
      prompt: 'Answered, its receipt unseen',
      models: ['stories260K'],
      oracle,
    });
    const refused = await chain.callLLM({
      prompt: 'Refunded, its receipt unseen',
      models: ['stories260K'],
      oracle,
    });
    await w.poll();
    const fulfilledId = requestId(answered.requestNo);
    const refundedId = requestId(refused.requestNo);
    relay.status.set(fulfilledId, verdictOf('An answer'));
    relay.status.set(refundedId, { status: 'failed', error: 'NO_NODES' });
    const requestTxs = new Set([answered.txHash, refused.txHash].map((h) => h.toLowerCase()));
    const settledTopics = new Set(
      (['LLMFulfilled', 'LLMRefunded'] as const).map(
        (eventName) => encodeEventTopics({ abi: synodOracleAbi, eventName })[0],
      ),
    );
    /** The RPC shows no transaction nor receipt but the requests', and no settlement event, while it holds. */
    let hidden: (hash: string) => boolean = (hash) => !requestTxs.has(hash);
    let eventsHidden = true;
    proxy.fault = (call) => {
      if (call.method === 'eth_getTransactionReceipt' || call.method === 'eth_getTransactionByHash') {
        return hidden(String(call.params[0]).toLowerCase()) ? { result: () => null } : undefined;
      }
      if (call.method !== 'eth_getLogs' || !eventsHidden) return undefined;
      const [filter] = call.params as [{ topics?: (string | null)[] }];
      return settledTopics.has(filter.topics?.[0] as Hex) ? { result: () => [] } : undefined;
    };
    try {
      await pollUntil(w, 'both recorded', () => allSettled([fulfilledId, refundedId]));
      const fulfilled = await store.byRequestId(fulfilledId);
      const refunded = await store.byRequestId(refundedId);
      expect(fulfilled).toMatchObject({ status: 'fulfilled', callbackOk: null });
      expect(refunded).toMatchObject({ status: 'refunded', refundReason: null, callbackOk: null });
      // The fulfil's receipt still unseen, its event seen; the refund's receipt seen.
      const fulfilTx = fulfilled?.fulfilledTx as string;
      hidden = (hash) => hash === fulfilTx;
      eventsHidden = false;
      await w.poll();
    } finally {
      proxy.fault = undefined;
    }
    const { refunds } = await settlementsOf(oracle, refused.requestNo);
    expect(await store.byRequestId(fulfilledId)).toMatchObject({ status: 'fulfilled', callbackOk: true });
    expect(await store.byRequestId(refundedId)).toMatchObject({
      status: 'refunded',
      refundReason: refunds[0],
      callbackOk: true,
    });
    expect(refunds[0]).toBeString();
  });
});
