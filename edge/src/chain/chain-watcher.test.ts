import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { synodOracleAbi } from '@synod/contracts/abi';
import {
  BlockNotFoundError,
  encodeAbiParameters,
  encodeFunctionData,
  getAddress,
  HttpRequestError,
  InvalidParamsRpcError,
  keccak256,
  parseAbiParameters,
  parseEventLogs,
  toFunctionSelector,
  toHex,
} from 'viem';
import { edgeError } from '../http/errors.ts';
import { relayDefaults } from '../inference-input.ts';
import { startTestNetwork, type TestNetwork } from '../test-helpers.ts';
import { waitUntil } from '../test-servers.ts';
import { findView } from '../views.ts';
import { type BridgeBalance, DEFAULT_RESERVE_SETTLEMENTS, SETTLEMENT_GAS_BUDGET } from './bridge-balance.ts';
import { ChainBridgeError } from './chain-errors.ts';
import { ChainStore } from './chain-store.ts';
import { bridgeOptions, startTestChain, type TestChain } from './chain-test-helpers.ts';
import { ChainWatcher, type ChainWatcherOptions } from './chain-watcher.ts';
import { bridgeClients } from './clients.ts';
import { oracleRequestEvent } from './oracle-request.ts';
import { relayChainWatcher } from './relay-watcher.ts';

let chain: TestChain;
let net: TestNetwork;
let watcher: ChainWatcher;

beforeAll(async () => {
  chain = await startTestChain();
  net = await startTestNetwork({
    chain: bridgeOptions(chain, {
      confirmations: 2,
      // Passes are driven by the tests (`poll`), so each step is observed in order.
      pollMs: 3_600_000,
      // A settlement found still in the mempool is replaced at once (only when automine is off here).
      replaceAfterMs: 0,
    }),
  });
  const w = net.relay.chainWatcher;
  if (!w) throw new Error('the relay started without its chain watcher');
  watcher = w;
});

afterAll(async () => {
  await net?.close();
  await chain?.stop();
});

/** The oracle's events of one kind for one request number. */
const eventsOf = <E extends 'LLMFulfilled' | 'LLMRefunded' | 'LLMRequested'>(
  eventName: E,
  requestNo: bigint,
  oracle: `0x${string}` = chain.oracle,
) =>
  chain.client.getContractEvents({
    address: oracle,
    abi: synodOracleAbi,
    eventName,
    // Every one of these events has `requestNo` as its first indexed argument.
    args: { requestNo } as never,
    fromBlock: 0n,
    strict: true,
  });

const requestIdOf = (requestNo: bigint) =>
  `${chain.anvil.chainId}:${chain.oracle.toLowerCase()}:${requestNo}`;

/** Poll the watcher until `check` holds (each pass reads events and settles what is done). */
async function pollUntil(
  what: string,
  check: () => Promise<boolean>,
  w: ChainWatcher = watcher,
): Promise<void> {
  await waitUntil(
    what,
    async () => {
      await w.poll();
      return check();
    },
    90_000,
    200,
  );
}

/**
 * A watcher of another SynodOracle (`chain.deployAnother()`) over the relay's real history, admission
 * path and defaults, beside the relay's own watcher; `o` overrides any option (e.g. a lookup double).
 */
function sideWatcher(oracle: `0x${string}`, o: Partial<ChainWatcherOptions> = {}): ChainWatcher {
  const relay = net.relay;
  const embedder = net.servings[0]?.embedder;
  if (!embedder) throw new Error('the test network has no serving node');
  return new ChainWatcher({
    ...bridgeClients(chain.anvil.url, chain.anvil.chainId, chain.bridgeKey),
    oracle,
    chainId: chain.anvil.chainId,
    store: new ChainStore(relay.store.db),
    lookup: (id) => findView(relay.store, relay.intake, id),
    admit: (a) => relay.admissions.admit(a),
    admitted: (ids) => relay.network.admitted(ids),
    defaults: () => relayDefaults(relay.network, { defaultModels: ['stories260K'], embedders: [embedder] }),
    confirmations: 2,
    ...o,
  });
}

/**
 * A request on a fresh side oracle (`chain.deployAnother()`), settled by a side watcher that checks
 * settlements on every pass: fulfilled when `model` is served, else refunded (UNKNOWN_MODEL).
 */
async function settledOnSideOracle(prompt: string, model: string, o: Partial<ChainWatcherOptions> = {}) {
  const oracle = await chain.deployAnother();
  const store = new ChainStore(net.relay.store.db);
  const logs: Record<string, unknown>[] = [];
  const w = sideWatcher(oracle, { confirmations: 0, settledCheckMs: 0, log: (e) => logs.push(e), ...o });
  const { requestNo, blockNumber, txHash } = await chain.callLLM({ prompt, models: [model], oracle });
  const requestId = `${chain.anvil.chainId}:${oracle.toLowerCase()}:${requestNo}`;
  const settled = model === 'stories260K' ? 'fulfilled' : 'refunded';
  // The fulfil lands in a later block than the request (the reorg tests cut between the two).
  if (settled === 'fulfilled') await chain.mine(1);
  await pollUntil(settled, async () => (await store.byRequestId(requestId))?.status === settled, w);
  const tx = (await store.byRequestId(requestId))?.fulfilledTx as `0x${string}`;
  return { oracle, store, logs, w, requestNo, requestId, blockNumber, txHash, tx };
}

/**
 * A `callLLM` signed by the requester and not sent (for `anvil_reorg` to mine on a new chain), with
 * `nonce` when given (the nonce of a request the new chain replaces).
 */
async function signedCallLLM(
  oracle: `0x${string}`,
  prompt: string,
  o: { models?: string[]; quorum?: number; nonce?: number } = {},
): Promise<`0x${string}`> {
  const request = await chain.requester.prepareTransactionRequest({
    to: oracle,
    data: encodeFunctionData({
      abi: synodOracleAbi,
      functionName: 'callLLM',
      args: [prompt, o.models ?? ['stories260K'], 16, 0, o.quorum ?? 3],
    }),
    value: 1_000n,
    gas: 1_000_000n,
    ...(o.nonce !== undefined ? { nonce: o.nonce } : {}),
  });
  return chain.requester.signTransaction(request);
}

/**
 * Replace the chain from `fromBlock` on (up to the head) with as many new blocks, the first holding
 * `first` and the second `second`: signed transactions, as a reorg deeper than the confirmations.
 */
async function reorgFrom(fromBlock: bigint, first: `0x${string}`, second: `0x${string}`): Promise<void> {
  const head = await chain.client.getBlockNumber({ cacheTime: 0 });
  await chain.rpc('anvil_reorg', [
    Number(head - fromBlock) + 1,
    [
      [first, 0],
      [second, 1],
    ],
  ]);
}

describe('chain bridge: SynodOracle requests answered by the network', () => {
  test('a confirmed callLLM becomes a network request and is fulfilled once with the verdict', async () => {
    const { requestNo } = await chain.callLLM({ prompt: 'Once upon a time', models: ['stories260K'] });
    const requestId = requestIdOf(requestNo);
    // Not yet `confirmations` deep: nothing happens.
    await watcher.poll();
    expect(await new ChainStore(net.relay.store.db).byRequestId(requestId)).toBeNull();
    await chain.mine(2);
    await pollUntil(
      'the request is fulfilled on chain',
      async () => (await chain.request(requestNo)).status === 2,
    );

    const events = await eventsOf('LLMFulfilled', requestNo);
    expect(events).toHaveLength(1);
    const view = (await (await fetch(`${net.relay.url}/v1/inference/${requestId}`)).json()) as {
      status: string;
      request: { acceptedModels: string[] };
      verdict: { verdictDigest: string; transcriptRoot: string; winner: { output: string } };
    };
    expect(view.status).toBe('verdict');
    // Not settled yet as the relay sees it (its fulfil not confirmed): said so.
    expect((view as { chain?: { status: string } }).chain?.status).toBe('pending');
    const e = events[0]?.args;
    expect(e?.answer).toBe(view.verdict.winner.output);
    expect(e?.verdictDigest).toBe(`0x${view.verdict.verdictDigest}`);
    expect(e?.transcriptRoot).toBe(`0x${view.verdict.transcriptRoot}`);
    // The history lists it as a chain request.
    const listed = (await (await fetch(`${net.relay.url}/v1/history?origin=chain`)).json()) as {
      items: { requestId: string; origin: string }[];
    };
    expect(listed.items.find((i) => i.requestId === requestId)?.origin).toBe('chain');
    // Anyone can re-derive the answer from the stored transcript.
    const verified = (await (await fetch(`${net.relay.url}/v1/verify/${requestId}`)).json()) as {
      ok: boolean;
    };
    expect(verified.ok).toBe(true);
    // The oracle's address as a block explorer or viem prints it (EIP-55 checksum) names it too.
    const [chainId, address, number] = requestId.split(':') as [string, `0x${string}`, string];
    const checksummed = `${chainId}:${getAddress(address)}:${number}`;
    expect(checksummed).not.toBe(requestId);
    const viaChecksum = await fetch(`${net.relay.url}/v1/verify/${checksummed}`);
    expect(viaChecksum.status).toBe(200);
    expect(((await viaChecksum.json()) as { ok: boolean }).ok).toBe(true);

    // The row is settled once the settling transaction is `confirmations` deep itself.
    const store = new ChainStore(net.relay.store.db);
    expect((await store.byRequestId(requestId))?.status).toBe('pending');
    await chain.mine(2);
    await watcher.poll();
    const row = await store.byRequestId(requestId);
    expect(row?.status).toBe('fulfilled');
    expect(row?.fulfilledTx).toBe(events[0]?.transactionHash ?? '');
    // The request's view says how it was settled on chain, beside the verdict.
    const settled = (await (await fetch(`${net.relay.url}/v1/inference/${requestId}`)).json()) as {
      chain?: unknown;
    };
    expect(settled.chain).toEqual({
      status: 'fulfilled',
      txHash: row?.txHash,
      blockNumber: row?.blockNumber,
      settlementTx: row?.fulfilledTx,
      refundReason: null,
      // The requester is an account: no callback ran, and its event says none failed.
      callbackOk: true,
    });
    expect(events[0]?.args.callbackOk).toBe(true);
    // More passes change nothing: settled exactly once.
    const before = watcher.stats();
    await chain.mine(3);
    await watcher.poll();
    expect(watcher.stats().fulfilled).toBe(before.fulfilled);
    expect(await chain.request(requestNo)).toMatchObject({ status: 2 });
  });

  // A model named twice broke a rule of the request body only the dispatcher checked: the request was
  // admitted, dropped as unsignable, and never answered or refunded.
  for (const [what, models, reason] of [
    ['an unknown model', ['no-such-model'], 'UNKNOWN_MODEL'],
    ['a model named twice', ['stories260K', 'stories260K'], 'INVALID_INPUT'],
  ] as const) {
    test(`a request the relay refuses (${what}) is refunded with its reason and never stored`, async () => {
      const { requestNo } = await chain.callLLM({ prompt: 'Hello', models: [...models] });
      const requestId = requestIdOf(requestNo);
      await chain.mine(2);
      await pollUntil('the request is refunded', async () => (await chain.request(requestNo)).status === 3);
      const events = await eventsOf('LLMRefunded', requestNo);
      expect(events.map((e) => e.args.reason)).toEqual([reason]);
      expect(
        await chain.client.readContract({
          address: chain.oracle,
          abi: synodOracleAbi,
          functionName: 'balances',
          args: [chain.requester.account.address],
        }),
      ).toBeGreaterThanOrEqual(1_000n);
      expect((await fetch(`${net.relay.url}/v1/inference/${requestId}`)).status).toBe(404);
      await chain.mine(2);
      await watcher.poll();
      const row = await new ChainStore(net.relay.store.db).byRequestId(requestId);
      expect(row?.status).toBe('refunded');
      expect(row?.refundReason).toBe(reason);
      // Its 404 says what became of it, and why: the reason its refund's event gives.
      const missing = await fetch(`${net.relay.url}/v1/inference/${requestId}`);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({
        error: {
          code: 'NOT_FOUND',
          details: {
            chain: {
              status: 'refunded',
              settlementTx: row?.fulfilledTx,
              txHash: row?.txHash,
              refundReason: reason,
              callbackOk: true,
            },
          },
          hint: expect.stringContaining('Refunded event'),
        },
      });
      // The verifier's route says the same (it was a bare 404).
      const unverifiable = await fetch(`${net.relay.url}/v1/verify/${requestId}`);
      expect(unverifiable.status).toBe(404);
      expect(await unverifiable.json()).toMatchObject({
        error: { code: 'NOT_FOUND', details: { chain: { status: 'refunded', refundReason: reason } } },
      });
    });
  }

  test("past the oracle's daily quota (--chain-daily-quota) a request is refunded QUOTA_EXCEEDED at once, its fee credited; the ones before it are answered", async () => {
    const oracle = await chain.deployAnother();
    const relay = net.relay;
    const embedder = net.servings[0]?.embedder;
    if (!embedder) throw new Error('the test network has no serving node');
    // The relay's own watcher as the relay builds it, over a side oracle, with a quota of 2 a day.
    const logs: Record<string, unknown>[] = [];
    const w = relayChainWatcher(
      { ...bridgeOptions(chain, { confirmations: 0, pollMs: 3_600_000 }), oracle, dailyQuota: 2 },
      {
        store: relay.store,
        intake: relay.intake,
        network: relay.network,
        config: { defaultModels: ['stories260K'], embedders: [embedder] },
        admitter: relay.admissions,
        now: () => Date.now(),
        log: (e) => logs.push(e),
      },
    );
    const asked = [];
    for (const prompt of ['Once upon a time', 'The cat', 'A dog']) {
      asked.push(await chain.callLLM({ prompt, models: ['stories260K'], oracle }));
    }
    const third = asked[2]?.requestNo as bigint;
    await pollUntil(
      'the third is refunded',
      async () => (await chain.request(third, oracle)).status === 3,
      w,
    );
    expect((await eventsOf('LLMRefunded', third, oracle)).map((e) => e.args.reason)).toEqual([
      'QUOTA_EXCEEDED',
    ]);
    // The operator reads why in the log.
    expect(logs.find((l) => l['msg'] === 'chain refund sent')).toMatchObject({ reason: 'QUOTA_EXCEEDED' });
    expect(
      await chain.client.readContract({
        address: oracle,
        abi: synodOracleAbi,
        functionName: 'balances',
        args: [chain.requester.account.address],
      }),
    ).toBeGreaterThanOrEqual(1_000n);
    await chain.mine(1);
    for (const { requestNo } of asked.slice(0, 2)) {
      await pollUntil(
        'the first two are answered',
        async () => (await chain.request(requestNo, oracle)).status === 2,
        w,
      );
    }
  });

  test("a prompt longer than the model's context is refunded DECLINED as soon as the nodes declined it", async () => {
    const started = Date.now();
    const prompt = 'Once upon a time, there was a little girl who liked to play. '.repeat(300);
    const { requestNo } = await chain.callLLM({ prompt, models: ['stories260K'] });
    const requestId = requestIdOf(requestNo);
    await chain.mine(2);
    await pollUntil('the request is refunded', async () => (await chain.request(requestNo)).status === 3);
    // The relay's default maxTimeMs is 30 s: nothing waited for it.
    expect(Date.now() - started).toBeLessThan(25_000);
    expect((await eventsOf('LLMRefunded', requestNo)).map((e) => e.args.reason)).toEqual(['DECLINED']);
    await chain.mine(2);
    await watcher.poll();
    const view = (await (await fetch(`${net.relay.url}/v1/inference/${requestId}`)).json()) as {
      status: string;
      error: string;
      declines: { reason: string }[];
    };
    expect(view).toMatchObject({
      status: 'expired',
      error: 'DECLINED',
      chain: { status: 'refunded', refundReason: 'DECLINED' },
    });
    expect(view.declines.length).toBeGreaterThanOrEqual(3);
    // No verdict to verify: why, the signed request packet and the nodes' signed declines.
    const noVerdict = await fetch(`${net.relay.url}/v1/verify/${requestId}`);
    expect(noVerdict.status).toBe(409);
    const details = ((await noVerdict.json()) as { error: { details: Record<string, unknown> } }).error
      .details;
    expect(details).toMatchObject({ status: 'expired', error: 'DECLINED', request: { type: 'request' } });
    expect((details['declines'] as unknown[]).length).toBeGreaterThanOrEqual(3);
  });

  // Solidity's `string` holds any bytes; viem decodes them leniently (U+FFFD for each bad byte), so the
  // network used to answer a prompt nobody asked, and no transcript could match the event's questionHash.
  test('a prompt that is not UTF-8 is refunded INVALID_INPUT, never answered as decoded', async () => {
    // "Hi \xff\xfe there": the prompt's bytes as a `bytes` value, sent under callLLM's selector.
    const prompt = '0x486920fffe207468657265';
    const args = encodeAbiParameters(parseAbiParameters('bytes, string[], uint32, uint16, uint16'), [
      prompt,
      ['stories260K'],
      16,
      0,
      3,
    ]);
    const selector = toFunctionSelector(
      'callLLM(string prompt, string[] acceptedModels, uint32 maxTokens, uint16 temperatureCenti, uint16 quorum)',
    );
    const hash = await chain.requester.sendTransaction({
      to: chain.oracle,
      data: `${selector}${args.slice(2)}`,
      value: 1_000n,
    });
    const receipt = await chain.client.waitForTransactionReceipt({ hash });
    expect(receipt.status).toBe('success');
    const [requested] = parseEventLogs({
      abi: synodOracleAbi,
      logs: receipt.logs,
      eventName: 'LLMRequested',
    });
    const requestNo = requested?.args.requestNo ?? 0n;
    expect(requested?.args.prompt).toBe('Hi \ufffd\ufffd there');
    await chain.mine(2);
    await pollUntil('the request is settled', async () => (await chain.request(requestNo)).status >= 2);
    expect((await chain.request(requestNo)).status).toBe(3);
    expect((await eventsOf('LLMRefunded', requestNo)).map((e) => e.args.reason)).toEqual(['INVALID_INPUT']);
    expect((await fetch(`${net.relay.url}/v1/inference/${requestIdOf(requestNo)}`)).status).toBe(404);
  });

  test('after a crash between recording, claiming and sending, a restart admits, releases and settles once', async () => {
    const store = new ChainStore(net.relay.store.db);
    const { requestNo } = await chain.callLLM({ prompt: 'Once upon a time', models: ['stories260K'] });
    const requestId = requestIdOf(requestNo);
    await chain.mine(2);
    // What a relay killed mid-way leaves behind: the event recorded but not admitted, and a settlement
    // claimed under a transaction hash that never reached the chain.
    const [log] = await eventsOf('LLMRequested', requestNo);
    if (!log) throw new Error('no LLMRequested event');
    expect(
      await store.recordRequest(
        oracleRequestEvent(watcher.oracle, log.args, {
          txHash: log.transactionHash,
          logIndex: log.logIndex,
          blockNumber: log.blockNumber,
          blockHash: log.blockHash,
        }),
        Date.now(),
      ),
    ).toBe('new');
    const lost = `0x${'ab'.repeat(32)}`;
    expect(await store.claim(requestId, lost, Date.now())).toBe(true);
    expect(await store.claim(requestId, `0x${'cd'.repeat(32)}`, Date.now())).toBe(false);

    // The relay's watcher is the restarted one: it releases the lost claim, admits the request from the
    // event it reads again, and settles it.
    await watcher.poll();
    expect((await store.byRequestId(requestId))?.fulfilledTx).toBeNull();
    await pollUntil('fulfilled on chain', async () => (await chain.request(requestNo)).status === 2);
    await chain.mine(2);
    await pollUntil(
      'the row is settled',
      async () => (await store.byRequestId(requestId))?.status === 'fulfilled',
    );
    const row = await store.byRequestId(requestId);
    const events = await eventsOf('LLMFulfilled', requestNo);
    expect(events.map((e) => e.transactionHash)).toEqual([row?.fulfilledTx as `0x${string}`]);
  });

  test('a reorg that takes a recorded event away marks it reorged; mined again, it is pending again', async () => {
    const store = new ChainStore(net.relay.store.db);
    // Quorum 4 with 3 nodes: nothing settles during the test, so each step of the row is observed.
    const { requestNo, txHash } = await chain.callLLM({
      prompt: 'The little robot',
      models: ['stories260K'],
      quorum: 4,
    });
    const requestId = requestIdOf(requestNo);
    const raw = await chain.rpc('eth_getRawTransactionByHash', [txHash]);
    await chain.mine(2);
    await watcher.poll();
    const recorded = await store.byRequestId(requestId);
    expect(recorded).toMatchObject({ status: 'pending', txHash, fulfilledTx: null });

    // Replace the event's block and the two above it with empty ones.
    const reorgsBefore = watcher.stats().reorgs;
    await chain.rpc('anvil_reorg', [3, []]);
    await chain.mine(1);
    await watcher.poll();
    expect((await store.byRequestId(requestId))?.status).toBe('reorged');
    expect(watcher.stats().reorgs).toBe(reorgsBefore + 1);
    expect((await chain.request(requestNo)).status).toBe(0);

    // The same transaction is mined again, in a later block: the row is pending again, from there.
    await chain.rpc('eth_sendRawTransaction', [raw]);
    await chain.mine(2);
    await watcher.poll();
    const restored = await store.byRequestId(requestId);
    expect(restored).toMatchObject({ status: 'pending', txHash, fulfilledTx: null });
    expect(restored?.blockNumber).toBeGreaterThan(recorded?.blockNumber ?? Number.POSITIVE_INFINITY);
    expect((await chain.request(requestNo)).status).toBe(1);
  });

  /**
   * Ask `question` on chain, let the watcher record it, then take its block away in a reorg (the row
   * `reorged`): the request number is free for whatever is asked next.
   */
  async function askedThenReorged(question: Parameters<TestChain['callLLM']>[0]) {
    const store = new ChainStore(net.relay.store.db);
    const first = await chain.callLLM(question);
    const requestId = requestIdOf(first.requestNo);
    await chain.mine(2);
    await watcher.poll();
    expect((await store.byRequestId(requestId))?.status).toBe('pending');
    await chain.rpc('anvil_reorg', [3, []]);
    await chain.mine(1);
    await watcher.poll();
    expect((await store.byRequestId(requestId))?.status).toBe('reorged');
    return { store, first, requestId };
  }

  test('after a reorg, another request under the same number is refunded (REORG_CONFLICT), not answered', async () => {
    const { store, first, requestId } = await askedThenReorged({
      prompt: 'The brave knight',
      models: ['stories260K'],
      quorum: 4,
    });

    // On the new chain the number goes to a different question.
    const second = await chain.callLLM({
      prompt: 'A different question',
      models: ['stories260K'],
      quorum: 4,
    });
    expect(second.requestNo).toBe(first.requestNo);
    await chain.mine(2);
    await pollUntil('refunded', async () => (await chain.request(second.requestNo)).status === 3);
    const refunds = await eventsOf('LLMRefunded', second.requestNo);
    expect(refunds.map((e) => e.args.reason)).toEqual(['REORG_CONFLICT']);
    expect((await store.byRequestId(requestId))?.txHash).toBe(second.txHash);
  });

  test('after a reorg, the same question from another transaction under the same number is refunded too: the answer signed for the first names its transaction', async () => {
    const question = { prompt: 'The quiet river', models: ['stories260K'] };
    const { first } = await askedThenReorged(question);

    // Asked again word for word in another transaction (another fee: another hash), which takes the
    // number: the relay's request (and any answer to it) names the first transaction, gone from the
    // chain, so an auditor could not tie an answer to this one. Refunded, never given that answer.
    const again = await chain.callLLM({ ...question, fee: 2_000n });
    expect(again.requestNo).toBe(first.requestNo);
    expect(again.txHash).not.toBe(first.txHash);
    await chain.mine(2);
    await pollUntil('refunded', async () => (await chain.request(again.requestNo)).status === 3);
    const refunds = await eventsOf('LLMRefunded', again.requestNo);
    expect(refunds.map((e) => e.args.reason)).toEqual(['REORG_CONFLICT']);
    expect(await eventsOf('LLMFulfilled', again.requestNo)).toEqual([]);
  });

  test('a relay that cannot read its defaults (its network out of reach) refunds nothing: the pass fails, the next admits; a failed pass still settles', async () => {
    const oracle = await chain.deployAnother();
    const store = new ChainStore(net.relay.store.db);
    const embedder = net.servings[0]?.embedder;
    if (!embedder) throw new Error('the test network has no serving node');
    let away = true;
    const w = sideWatcher(oracle, {
      confirmations: 0,
      defaults: async () => {
        if (away) throw edgeError(503, 'NETWORK_UNAVAILABLE', 'the gateway relay cannot be reached');
        return relayDefaults(net.relay.network, { defaultModels: ['stories260K'], embedders: [embedder] });
      },
    });
    const { requestNo } = await chain.callLLM({
      prompt: 'While the network is away',
      models: ['stories260K'],
      oracle,
    });
    const requestId = `${chain.anvil.chainId}:${oracle.toLowerCase()}:${requestNo}`;
    await w.poll();
    expect(w.stats().errors).toBe(1);
    expect(await store.byRequestId(requestId)).toBeNull();
    away = false;
    await w.poll();
    expect(w.stats().admitted).toBe(1);
    expect((await store.byRequestId(requestId))?.status).toBe('pending');
    expect((await chain.request(requestNo, oracle)).status).toBe(1); // pending on chain: nothing refunded
    // Its verdict comes while the network is away again, and a new event is waiting: the pass cannot
    // take the new one, but settles the one that has its verdict.
    await waitUntil('the verdict', async () => {
      const view = await findView(net.relay.store, net.relay.intake, requestId);
      return view?.status === 'verdict';
    });
    const next = await chain.callLLM({ prompt: 'Another while away', models: ['stories260K'], oracle });
    away = true;
    await w.poll();
    expect(w.stats().errors).toBe(2);
    // Fulfilled by that failed pass (no other pass runs): its settlement is mined, if not already.
    await waitUntil(
      'the failed pass to fulfil the request on chain',
      async () => (await chain.request(requestNo, oracle)).status === 2,
      15_000,
      100,
    );
    expect(
      await store.byRequestId(`${chain.anvil.chainId}:${oracle.toLowerCase()}:${next.requestNo}`),
    ).toBeNull();
    await w.stop();
  });

  test('a watcher pointed at the wrong chain or at no contract refuses to start, with a code', async () => {
    const base = {
      store: new ChainStore(net.relay.store.db),
      lookup: async () => null,
      admit: async () => ({ kind: 'quota-exceeded' as const, quotaPerDay: 0, day: '2026-01-01' }),
      defaults: async () => ({ knownModels: new Set<string>(), defaultModels: [], embedders: [] }),
    };
    const wrongChain = bridgeClients(chain.anvil.url, 1, chain.bridgeKey);
    const e1 = await new ChainWatcher({ ...base, ...wrongChain, oracle: chain.oracle, chainId: 1 })
      .start()
      .catch((e) => e);
    expect(e1).toBeInstanceOf(ChainBridgeError);
    expect(e1).toMatchObject({
      code: 'CHAIN_ID_MISMATCH',
      details: { expected: 1, actual: chain.anvil.chainId },
    });
    const right = bridgeClients(chain.anvil.url, chain.anvil.chainId, chain.bridgeKey);
    const nowhere = `0x${'12'.repeat(20)}` as const;
    const e2 = await new ChainWatcher({ ...base, ...right, oracle: nowhere, chainId: chain.anvil.chainId })
      .start()
      .catch((e) => e);
    expect(e2).toBeInstanceOf(ChainBridgeError);
    expect(e2).toMatchObject({ code: 'ORACLE_NOT_FOUND' });
  });

  test('a chain that became shorter than the cursor (a reset dev chain) is read again from the start', async () => {
    const store = new ChainStore(net.relay.store.db);
    const snapshot = await chain.rpc('evm_snapshot', []);
    const first = await chain.callLLM({ prompt: 'Before the reset', models: ['stories260K'], quorum: 4 });
    await chain.mine(3);
    await watcher.poll();
    const cursor = await store.cursor(watcher.oracle);
    expect((await store.byRequestId(requestIdOf(first.requestNo)))?.status).toBe('pending');

    // Back to before the request: the cursor's block no longer exists.
    expect(await chain.rpc('evm_revert', [snapshot])).toBe(true);
    expect(await chain.client.getBlockNumber({ cacheTime: 0 })).toBeLessThan(
      BigInt(cursor?.blockNumber ?? 0),
    );
    const second = await chain.callLLM({ prompt: 'After the reset', models: ['stories260K'], quorum: 4 });
    expect(second.requestNo).toBe(first.requestNo);
    await chain.mine(2);
    const reorgs = watcher.stats().reorgs;
    await pollUntil('refunded', async () => (await chain.request(second.requestNo)).status === 3);
    expect(watcher.stats().reorgs).toBe(reorgs + 1);
    expect((await eventsOf('LLMRefunded', second.requestNo)).map((e) => e.args.reason)).toEqual([
      'REORG_CONFLICT',
    ]);
  });

  test('a settlement stuck in the mempool as fees rise is re-sent with the same nonce and higher fees; one of them lands', async () => {
    const store = new ChainStore(net.relay.store.db);
    const { requestNo } = await chain.callLLM({ prompt: 'The stuck transaction', models: ['stories260K'] });
    const requestId = requestIdOf(requestNo);
    await chain.mine(2);
    await watcher.poll();
    await waitUntil(
      'the verdict',
      async () =>
        ((await (await fetch(`${net.relay.url}/v1/inference/${requestId}`)).json()) as { status: string })
          .status === 'verdict',
      60_000,
      100,
    );
    await chain.rpc('evm_setAutomine', [false]);
    try {
      await watcher.poll();
      const first = (await store.byRequestId(requestId))?.fulfilledTx as `0x${string}`;
      expect(first).toMatch(/^0x[0-9a-f]{64}$/);
      const pending = await chain.client.getTransaction({ hash: first });
      expect(pending.blockNumber).toBeNull();
      // Congestion: a full block (a gas limit below any transaction's) whose base fee is all the
      // settlement offers, so the chain now asks more than it does.
      const { gasLimit } = await chain.client.getBlock();
      await chain.rpc('evm_setBlockGasLimit', ['0x5000']);
      await chain.rpc('anvil_setNextBlockBaseFeePerGas', [`0x${(pending.maxFeePerGas ?? 0n).toString(16)}`]);
      await chain.mine(1);
      await chain.rpc('evm_setBlockGasLimit', [`0x${gasLimit.toString(16)}`]);
      expect((await chain.client.getTransaction({ hash: first })).blockNumber).toBeNull();
      const replacedBefore = watcher.stats().replaced;
      await watcher.poll();
      expect(watcher.stats().replaced).toBe(replacedBefore + 1);
      const second = (await store.byRequestId(requestId))?.fulfilledTx as `0x${string}`;
      expect(second).not.toBe(first);
      const replacement = await chain.client.getTransaction({ hash: second });
      expect(replacement.nonce).toBe(pending.nonce);
      expect(replacement.input).toBe(pending.input);
      expect(replacement.maxFeePerGas).toBeGreaterThan(pending.maxFeePerGas ?? 0n);
      await chain.mine(1);
    } finally {
      await chain.rpc('evm_setAutomine', [true]);
    }
    await chain.mine(2);
    await pollUntil('settled', async () => (await store.byRequestId(requestId))?.status === 'fulfilled');
    const events = await eventsOf('LLMFulfilled', requestNo);
    expect(events).toHaveLength(1);
    expect(events[0]?.transactionHash).toBe(
      (await store.byRequestId(requestId))?.fulfilledTx as `0x${string}`,
    );
  });

  test('one request that cannot be settled now does not hold up the others', async () => {
    const oracle = await chain.deployAnother();
    const store = new ChainStore(net.relay.store.db);
    const relay = net.relay;
    let failing: string | undefined;
    // Test double over the relay's real lookup: fails for one request id while `failing` names it.
    const lookupDouble = async (id: string) => {
      if (id === failing) throw new Error('lookup unavailable for this request');
      return findView(relay.store, relay.intake, id);
    };
    const second = sideWatcher(oracle, { lookup: lookupDouble });
    const a = await chain.callLLM({ prompt: 'First of two', models: ['stories260K'], oracle });
    const b = await chain.callLLM({ prompt: 'Second of two', models: ['stories260K'], oracle });
    await chain.mine(2);
    await second.poll();
    const idA = `${chain.anvil.chainId}:${oracle.toLowerCase()}:${a.requestNo}`;
    const idB = `${chain.anvil.chainId}:${oracle.toLowerCase()}:${b.requestNo}`;
    expect((await store.byRequestId(idA))?.status).toBe('pending');
    expect((await store.byRequestId(idB))?.status).toBe('pending');
    failing = idA;
    const errors = second.stats().errors;
    const statusOf = async (requestNo: bigint) => (await chain.request(requestNo, oracle)).status;
    await pollUntil(
      'the second request settled while the first fails',
      async () => (await statusOf(b.requestNo)) === 2,
      second,
    );
    expect(second.stats().errors).toBeGreaterThan(errors);
    expect(await statusOf(a.requestNo)).toBe(1);
    failing = undefined;
    await pollUntil(
      'the first request settled once it can be',
      async () => (await statusOf(a.requestNo)) === 2,
      second,
    );
    await second.stop();
  });

  test('the bridge balance is read every balanceCheckMs, reported low below the minimum, and in /metrics', async () => {
    const oracle = await chain.deployAnother();
    const relay = net.relay;
    const address = chain.bridge.account.address;
    const kept = await chain.client.getBalance({ address });
    const ETH = 10n ** 18n;
    let clock = 1_000_000;
    const logs: Record<string, unknown>[] = [];
    const seen: BridgeBalance[] = [];
    const make = (minBridgeBalance?: bigint) =>
      sideWatcher(oracle, {
        ...(minBridgeBalance !== undefined ? { minBridgeBalance } : {}),
        balanceCheckMs: 30_000,
        now: () => clock,
        log: (e) => logs.push(e),
        onBalance: (b) => seen.push(b),
      });
    const w = make(ETH);
    const warnings = () => logs.filter((l) => String(l['msg']).startsWith('the bridge balance is low'));
    try {
      await chain.rpc('anvil_setBalance', [address, toHex(ETH / 10n)]);
      await w.poll();
      expect(seen).toHaveLength(1);
      expect(seen[0]).toEqual({ address, wei: ETH / 10n, minimumWei: ETH, low: true, at: clock });
      expect(w.stats().bridge).toEqual({
        address,
        wei: String(ETH / 10n),
        minimumWei: String(ETH),
        low: true,
        at: clock,
      });
      // The stats stay JSON (the workerd cron handler logs them).
      expect(JSON.parse(JSON.stringify(w.stats())).bridge.low).toBe(true);
      expect(warnings()).toHaveLength(1);
      expect(warnings()[0]).toMatchObject({
        level: 'warn',
        balanceWei: String(ETH / 10n),
        minimumWei: String(ETH),
      });
      // Not read again before balanceCheckMs; then read, still low, and not warned about twice.
      clock += 29_999;
      await w.poll();
      expect(seen).toHaveLength(1);
      clock += 1;
      await w.poll();
      expect(seen).toHaveLength(2);
      expect(warnings()).toHaveLength(1);
      // Funded again: no longer low, said once.
      await chain.rpc('anvil_setBalance', [address, toHex(2n * ETH)]);
      clock += 30_000;
      await w.poll();
      expect(seen.at(-1)).toMatchObject({ wei: 2n * ETH, low: false });
      expect(logs.filter((l) => l['msg'] === 'the bridge balance is sufficient again')).toHaveLength(1);
      // Without a configured minimum: the default reserve at the chain's gas price.
      const b = await make().checkBalance();
      const gasPrice = await chain.client.getGasPrice();
      expect(b.minimumWei).toBe(DEFAULT_RESERVE_SETTLEMENTS * SETTLEMENT_GAS_BUDGET * gasPrice);
      expect(b.low).toBe(2n * ETH < b.minimumWei);
    } finally {
      await chain.rpc('anvil_setBalance', [address, toHex(kept)]);
      await w.stop();
    }
    // The relay's own watcher publishes what it read (its first pass read the balance).
    await watcher.checkBalance();
    const text = await (await fetch(`${relay.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('synod_chain_bridge_balance_wei{'));
    expect(line).toBe(`synod_chain_bridge_balance_wei{bridge="${address.toLowerCase()}"} ${Number(kept)}`);
    expect(text).toContain(`synod_chain_bridge_minimum_wei{bridge="${address.toLowerCase()}"} `);
  });

  test('a reorg deeper than the reorg window is caught before settling: nothing is sent for the lost event', async () => {
    const oracle = await chain.deployAnother();
    const relay = net.relay;
    const store = new ChainStore(relay.store.db);
    let hold = true;
    // Test double over the relay's real lookup: while `hold`, a finished request still looks pending, so
    // the settlement waits until the test has reorganized the chain under it.
    const lookupDouble = async (id: string) => {
      const view = await findView(relay.store, relay.intake, id);
      return hold && view !== null ? { ...view, status: 'pending' as const } : view;
    };
    const w = sideWatcher(oracle, { lookup: lookupDouble, confirmations: 0, reorgWindow: 1n });
    const oracleStatus = async (requestNo: bigint) => (await chain.request(requestNo, oracle)).status;
    try {
      const { requestNo, txHash, blockNumber } = await chain.callLLM({
        prompt: 'Deep below',
        models: ['stories260K'],
        oracle,
      });
      const requestId = `${chain.anvil.chainId}:${oracle.toLowerCase()}:${requestNo}`;
      const raw = await chain.rpc('eth_getRawTransactionByHash', [txHash]);
      await chain.mine(5);
      await w.poll();
      expect(await store.byRequestId(requestId)).toMatchObject({
        status: 'pending',
        blockNumber: Number(blockNumber),
      });
      await waitUntil(
        'the network answered',
        async () => (await findView(relay.store, relay.intake, requestId))?.status === 'verdict',
        60_000,
        100,
      );

      // Six blocks replaced, the event's among them: the cursor's block changed too, but the watcher reads
      // back only reorgWindow (1) block, which does not reach the event.
      await chain.rpc('anvil_reorg', [6, []]);
      await chain.mine(1);
      hold = false;
      const reorgs = w.stats().reorgs;
      await w.poll();
      expect(await store.byRequestId(requestId)).toMatchObject({ status: 'reorged', fulfilledTx: null });
      expect(w.stats().reorgs).toBe(reorgs + 2);
      expect(
        (await store.cursor({ chainId: chain.anvil.chainId, contract: oracle.toLowerCase() }))?.blockNumber,
      ).toBe(Number(blockNumber) - 1);
      expect(await oracleStatus(requestNo)).toBe(0);
      await w.poll();
      expect((await store.byRequestId(requestId))?.status).toBe('reorged');

      // The same transaction mined again: read again from below the lost block, pending, then fulfilled.
      await chain.rpc('eth_sendRawTransaction', [raw]);
      await chain.mine(1);
      await pollUntil(
        'fulfilled after the deep reorg',
        async () => (await store.byRequestId(requestId))?.status === 'fulfilled',
        w,
      );
      expect(await oracleStatus(requestNo)).toBe(2);
      const fulfilled = await eventsOf('LLMFulfilled', requestNo, oracle);
      expect(fulfilled.map((e) => e.transactionHash)).toEqual([
        (await store.byRequestId(requestId))?.fulfilledTx as `0x${string}`,
      ]);
    } finally {
      await w.stop();
    }
  });

  test('a settlement undone by a reorg deeper than the confirmations is found on chain and sent again', async () => {
    const { oracle, store, logs, w, requestNo, requestId, blockNumber, tx } = await settledOnSideOracle(
      'Undone',
      'stories260K',
    );
    try {
      const receipt = await chain.client.getTransactionReceipt({ hash: tx });
      expect(receipt.blockNumber).toBeGreaterThan(blockNumber);

      // Replace the blocks from the settlement's on (the request's block stays): the contract holds the
      // request as pending again, while the row says fulfilled.
      const head = await chain.client.getBlockNumber({ cacheTime: 0 });
      await chain.rpc('anvil_reorg', [Number(head - receipt.blockNumber) + 1, []]);
      await chain.mine(1);
      expect((await chain.request(requestNo, oracle)).status).toBe(1);
      expect((await store.byRequestId(requestId))?.status).toBe('fulfilled');

      await pollUntil(
        'fulfilled again on the new chain',
        async () => {
          const row = await store.byRequestId(requestId);
          return row?.status === 'fulfilled' && row.fulfilledTx !== tx;
        },
        w,
      );
      expect(w.stats().undone).toBe(1);
      expect(logs.filter((l) => String(l['msg']).startsWith('a settlement was undone'))).toHaveLength(1);
      expect((await chain.request(requestNo, oracle)).status).toBe(2);
      const fulfilled = await eventsOf('LLMFulfilled', requestNo, oracle);
      expect(fulfilled.map((e) => e.transactionHash)).toEqual([
        (await store.byRequestId(requestId))?.fulfilledTx as `0x${string}`,
      ]);
      // Checked again and again, a settlement that holds is left alone.
      await w.poll();
      await w.poll();
      expect(w.stats().undone).toBe(1);
    } finally {
      await w.stop();
    }
  });

  test('a settlement is checked until its block is finalized, then left alone', async () => {
    const { client } = bridgeClients(chain.anvil.url, chain.anvil.chainId, chain.bridgeKey);
    const calls = new Map<string | symbol, number>();
    // Counts the RPC methods the watcher calls (a spy over the real client).
    const counted = new Proxy(client, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          calls.set(prop, (calls.get(prop) ?? 0) + 1);
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const { oracle, store, w, requestId, tx } = await settledOnSideOracle('Final', 'no-such-model', {
      client: counted,
    });
    const ref = { chainId: chain.anvil.chainId, contract: oracle.toLowerCase() };
    try {
      const settledIn = (await chain.client.getTransactionReceipt({ hash: tx })).blockNumber;
      calls.clear();
      await w.poll();
      // A settlement that holds costs one receipt read per check, no status read.
      expect(calls.get('getTransactionReceipt')).toBe(1);
      expect(calls.get('readContract')).toBeUndefined();
      // anvil finalizes 64 blocks under its head: not yet.
      expect((await chain.client.getBlock({ blockTag: 'finalized' })).number).toBeLessThan(settledIn);
      expect(await store.byRequestId(requestId)).toMatchObject({ status: 'refunded', finalizedAt: null });
      expect((await store.unfinalized(ref, 10)).map((r) => r.requestId)).toEqual([requestId]);
      expect(w.stats().finalized).toBe(0);

      await chain.mine(64);
      await w.poll();
      expect((await chain.client.getBlock({ blockTag: 'finalized' })).number).toBeGreaterThanOrEqual(
        settledIn,
      );
      const row = await store.byRequestId(requestId);
      expect(row).toMatchObject({ status: 'refunded', fulfilledTx: tx });
      expect(row?.finalizedAt).toBeNumber();
      expect(await store.unfinalized(ref, 10)).toEqual([]);
      expect(w.stats()).toMatchObject({ finalized: 1, undone: 0, resettled: 0 });
    } finally {
      await w.stop();
    }
  });

  test('on a chain that names no finalized block, a settlement counts as final after assumeFinalAfterMs', async () => {
    let clock = Date.now();
    const { client } = bridgeClients(chain.anvil.url, chain.anvil.chainId, chain.bridgeKey);
    let unreachable = false;
    // Test double over the real RPC: the `finalized` tag is refused, as by a node without it (or, while
    // `unreachable`, the request fails in transport: that says nothing about the tag).
    const noFinalized = new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== 'getBlock') return Reflect.get(target, prop, receiver);
        return (args: Parameters<typeof client.getBlock>[0]) => {
          if (args && 'blockTag' in args && args.blockTag === 'finalized')
            return Promise.reject(
              unreachable
                ? new HttpRequestError({ url: chain.anvil.url, details: 'connection reset' })
                : new InvalidParamsRpcError(new Error('unknown block tag finalized')),
            );
          return target.getBlock(args);
        };
      },
    });
    const { store, w, requestId } = await settledOnSideOracle('No tag', 'no-such-model', {
      client: noFinalized,
      assumeFinalAfterMs: 60_000,
      now: () => clock,
    });
    try {
      await chain.mine(70);
      clock += 59_000;
      await w.poll();
      expect((await store.byRequestId(requestId))?.finalizedAt).toBeNull();
      clock += 2_000;
      // Old enough, but the RPC cannot be reached: nothing is taken as final, and the pass counts an error.
      unreachable = true;
      const errors = w.stats().errors;
      await w.poll();
      expect((await store.byRequestId(requestId))?.finalizedAt).toBeNull();
      expect(w.stats().errors).toBe(errors + 1);
      unreachable = false;
      await w.poll();
      expect((await store.byRequestId(requestId))?.finalizedAt).toBe(clock);
      expect(w.stats().finalized).toBe(1);
    } finally {
      await w.stop();
    }
  });

  test('one settlement that cannot be checked now does not hold up the others', async () => {
    const oracle = await chain.deployAnother();
    const store = new ChainStore(net.relay.store.db);
    const { client } = bridgeClients(chain.anvil.url, chain.anvil.chainId, chain.bridgeKey);
    let failFor: string | null = null;
    // Test double over the real RPC: reading one transaction's receipt fails while `failFor` names it,
    // as after a shallow reorg (the block it named is gone).
    const flaky = new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== 'getTransactionReceipt') return Reflect.get(target, prop, receiver);
        return (args: { hash: `0x${string}` }) =>
          args.hash === failFor
            ? Promise.reject(new BlockNotFoundError({ blockNumber: 467n }))
            : target.getTransactionReceipt(args);
      },
    });
    const lines: Record<string, unknown>[] = [];
    const w = sideWatcher(oracle, {
      client: flaky,
      confirmations: 0,
      settledCheckMs: 0,
      log: (line) => lines.push(line),
    });
    try {
      const a = await chain.callLLM({ prompt: 'A', models: ['no-such-model'], oracle });
      const b = await chain.callLLM({ prompt: 'B', models: ['no-such-model'], oracle });
      const idOf = (n: bigint) => `${chain.anvil.chainId}:${oracle.toLowerCase()}:${n}`;
      await pollUntil(
        'both refunded',
        async () =>
          (await store.byRequestId(idOf(a.requestNo)))?.status === 'refunded' &&
          (await store.byRequestId(idOf(b.requestNo)))?.status === 'refunded',
        w,
      );
      await chain.mine(64);
      // The newest (b) is checked first; a's check fails, and b is still made final.
      failFor = (await store.byRequestId(idOf(a.requestNo)))?.fulfilledTx ?? null;
      expect(failFor).not.toBeNull();
      const errors = w.stats().errors;
      await w.poll();
      expect((await store.byRequestId(idOf(a.requestNo)))?.finalizedAt).toBeNull();
      expect((await store.byRequestId(idOf(b.requestNo)))?.finalizedAt).toBeNumber();
      expect(w.stats().errors).toBe(errors + 1);
      // Said as what it is, a warning that passes, not an RPC failure.
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: 'warn',
          msg: 'checking a chain settlement failed',
          code: 'CHAIN_BLOCK_NOT_FOUND',
          hint: expect.stringContaining('a reorg took the block'),
        }),
      );
      failFor = null;
      await w.poll();
      expect((await store.byRequestId(idOf(a.requestNo)))?.finalizedAt).toBeNumber();
      expect(w.stats().finalized).toBe(2);
    } finally {
      await w.stop();
    }
  });

  test('a settlement a reorg replaced with another one (a refund where the row says fulfilled) is recorded as the chain holds it', async () => {
    const { oracle, store, logs, w, requestNo, requestId, tx } = await settledOnSideOracle(
      'Replaced',
      'stories260K',
    );
    try {
      const fulfil = await chain.client.getTransaction({ hash: tx });
      const head = await chain.client.getBlockNumber({ cacheTime: 0 });
      // The new chain from the fulfil's block on holds the bridge's refund in its place (same nonce).
      const refund = await chain.bridge.signTransaction(
        await chain.bridge.prepareTransactionRequest({
          to: oracle,
          data: encodeFunctionData({
            abi: synodOracleAbi,
            functionName: 'refund',
            args: [requestNo, (await chain.request(requestNo, oracle)).questionHash, 'OPERATOR_REFUND'],
          }),
          nonce: fulfil.nonce,
          gas: 500_000n,
        }),
      );
      await chain.rpc('anvil_reorg', [Number(head - (fulfil.blockNumber ?? head)) + 1, [[refund, 0]]]);
      await chain.mine(1);
      expect((await chain.request(requestNo, oracle)).status).toBe(3);
      const [refunded] = await eventsOf('LLMRefunded', requestNo, oracle);
      expect(refunded?.transactionHash).toBe(keccak256(refund));

      await w.poll();
      expect(await store.byRequestId(requestId)).toMatchObject({
        status: 'refunded',
        fulfilledTx: keccak256(refund),
        refundReason: 'OPERATOR_REFUND',
        finalizedAt: null,
      });
      expect(w.stats()).toMatchObject({ resettled: 1, undone: 0 });
      expect(
        logs.filter((l) => String(l['msg']).startsWith('the chain holds another settlement')),
      ).toHaveLength(1);
      // The refund standing now is this relay's account's own: not said as another account's.
      expect(logs.filter((l) => l['code'] === 'SETTLED_BY_ANOTHER_ACCOUNT')).toEqual([]);
      // Nothing is sent for it again, and the next check finds it as recorded.
      await w.poll();
      expect(w.stats()).toMatchObject({ resettled: 1, undone: 0 });
      expect(await eventsOf('LLMFulfilled', requestNo, oracle)).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  test('a settled request whose own event a deep reorg took is marked reorged, not left pending', async () => {
    // Refused by the relay (unknown model): refunded, and never stored as a network request.
    const { oracle, store, w, requestNo, requestId, blockNumber } = await settledOnSideOracle(
      'Gone',
      'no-such-model',
    );
    try {
      const head = await chain.client.getBlockNumber({ cacheTime: 0 });
      await chain.rpc('anvil_reorg', [Number(head - blockNumber) + 1, []]);
      await chain.mine(1);
      expect((await chain.request(requestNo, oracle)).status).toBe(0);
      await w.poll();
      expect(await store.byRequestId(requestId)).toMatchObject({ status: 'reorged', fulfilledTx: null });
      expect(w.stats().undone).toBe(1);
      expect(
        (await store.cursor({ chainId: chain.anvil.chainId, contract: oracle.toLowerCase() }))?.blockNumber,
      ).toBe(Number(blockNumber) - 1);
    } finally {
      await w.stop();
    }
  });

  test('a fulfil mined again after a reorg gave its number to another question reverts; that one is refunded REORG_CONFLICT, never given the answer', async () => {
    const { oracle, store, logs, w, requestNo, requestId, blockNumber, txHash, tx } =
      await settledOnSideOracle('Question A: what is two and two?', 'stories260K');
    try {
      const [answeredA] = await eventsOf('LLMFulfilled', requestNo, oracle);
      expect(answeredA?.transactionHash).toBe(tx);
      // The bridge's fulfil of A, signed and mined: a node puts it back in its pool when a reorg drops
      // its block. On the new chain the requester's same nonce asks question B, which gets A's number,
      // and the fulfil is mined right after it.
      const rawFulfil = (await chain.rpc('eth_getRawTransactionByHash', [tx])) as `0x${string}`;
      const { nonce } = await chain.client.getTransaction({ hash: txHash });
      const rawB = await signedCallLLM(oracle, 'Question B: whom should I pay?', { nonce });
      await reorgFrom(blockNumber, rawB, rawFulfil);
      await chain.mine(1);
      const replayed = await chain.client.getTransactionReceipt({ hash: tx });
      expect(replayed.blockHash).not.toBe(answeredA?.blockHash ?? '');
      expect(replayed.status).toBe('reverted');
      expect((await chain.request(requestNo, oracle)).status).toBe(1);

      await pollUntil(
        'B refunded on chain and recorded',
        async () =>
          (await chain.request(requestNo, oracle)).status === 3 &&
          (await store.byRequestId(requestId))?.status === 'refunded',
        w,
      );
      expect(await eventsOf('LLMFulfilled', requestNo, oracle)).toEqual([]);
      const refunds = await eventsOf('LLMRefunded', requestNo, oracle);
      expect(refunds.map((e) => e.args.reason)).toEqual(['REORG_CONFLICT']);
      // The row now holds B's event and the refund that settled it, not A's vanished ones.
      expect(await store.byRequestId(requestId)).toMatchObject({
        txHash: keccak256(rawB),
        fulfilledTx: refunds[0]?.transactionHash,
      });
      expect(w.stats().undone).toBe(1);
      expect(
        logs.filter((l) => String(l['msg']).startsWith('a recorded event is no longer on the chain')),
      ).toHaveLength(1);
    } finally {
      await w.stop();
    }
  });

  test('a refund mined again after a reorg gave its number to another question reverts; that one is admitted and answered', async () => {
    // A: refused by the relay (unknown model) and refunded.
    const { oracle, store, w, requestNo, requestId, blockNumber, txHash, tx } = await settledOnSideOracle(
      'Question A, for a model nobody serves',
      'no-such-model',
    );
    try {
      const rawRefund = (await chain.rpc('eth_getRawTransactionByHash', [tx])) as `0x${string}`;
      const { nonce } = await chain.client.getTransaction({ hash: txHash });
      const rawB = await signedCallLLM(oracle, 'Once upon a time', { nonce });
      await reorgFrom(blockNumber, rawB, rawRefund);
      await chain.mine(1);
      expect((await chain.client.getTransactionReceipt({ hash: tx })).status).toBe('reverted');

      await pollUntil(
        'B fulfilled and recorded',
        async () => (await store.byRequestId(requestId))?.status === 'fulfilled',
        w,
      );
      expect(await eventsOf('LLMRefunded', requestNo, oracle)).toEqual([]);
      const [fulfilled] = await eventsOf('LLMFulfilled', requestNo, oracle);
      const view = await findView(net.relay.store, net.relay.intake, requestId);
      expect(view?.request.prompt).toBe('Once upon a time');
      expect(fulfilled?.args.answer).toBe(view?.verdict?.winner?.output ?? '');
      expect(await store.byRequestId(requestId)).toMatchObject({
        txHash: keccak256(rawB),
        fulfilledTx: fulfilled?.transactionHash,
      });
    } finally {
      await w.stop();
    }
  });

  test('a reorg between reading the events of a range and the hash of its last block: the range is read again, its new event recorded', async () => {
    const oracle = await chain.deployAnother();
    const store = new ChainStore(net.relay.store.db);
    await chain.mine(6);
    // Quorum 4 with 3 nodes: nothing settles, the row is observed as recorded.
    const raw = await signedCallLLM(oracle, 'Asked on the new fork', { quorum: 4 });
    const { client } = bridgeClients(chain.anvil.url, chain.anvil.chainId, chain.bridgeKey);
    let armed = true;
    // Test double over the real RPC: right after the first log read, the chain reorganises 4 blocks deep
    // and the new chain's first block (under the confirmations) holds a callLLM.
    const racing = new Proxy(client, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (prop !== 'getContractEvents') return v;
        return async (args: unknown) => {
          const logs = await (v as (a: unknown) => Promise<unknown[]>).call(target, args);
          if (armed) {
            armed = false;
            await chain.rpc('anvil_reorg', [4, [[raw, 0]]]);
          }
          return logs;
        };
      },
    });
    const logs: Record<string, unknown>[] = [];
    const w = sideWatcher(oracle, { client: racing, log: (e) => logs.push(e) });
    try {
      await w.poll();
      expect(armed).toBe(false);
      const [event] = await eventsOf('LLMRequested', 1n, oracle);
      if (!event) throw new Error('no LLMRequested event on the new chain');
      expect(await store.byRequestId(`${chain.anvil.chainId}:${oracle.toLowerCase()}:1`)).toMatchObject({
        status: 'pending',
        txHash: event.transactionHash,
        blockHash: event.blockHash,
      });
      // The cursor's block is the chain's: nothing below it is left unread.
      const cursor = await store.cursor({ chainId: chain.anvil.chainId, contract: oracle.toLowerCase() });
      expect(cursor?.blockNumber).toBeGreaterThanOrEqual(Number(event.blockNumber));
      const at = await chain.client.getBlock({ blockNumber: BigInt(cursor?.blockNumber ?? 0) });
      expect(cursor?.blockHash).toBe(at.hash);
      expect(w.stats()).toMatchObject({ events: 1, rereads: 1 });
      expect(logs.filter((l) => String(l['msg']).startsWith('the chain changed while'))).toHaveLength(1);
    } finally {
      await w.stop();
    }
  });

  test('events read from another fork than the blocks of the chain are read again; while they disagree the cursor stays', async () => {
    const oracle = await chain.deployAnother();
    const store = new ChainStore(net.relay.store.db);
    const { requestNo, blockNumber } = await chain.callLLM({
      prompt: 'Which fork?',
      models: ['stories260K'],
      quorum: 4,
      oracle,
    });
    await chain.mine(2);
    const { client } = bridgeClients(chain.anvil.url, chain.anvil.chainId, chain.bridgeKey);
    let forked = 4;
    // Test double over the real RPC, as behind a load balancer: the first `forked` log reads answer from
    // a node on another fork (same event, in a block of another hash).
    const otherFork = new Proxy(client, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (prop !== 'getContractEvents') return v;
        return async (args: unknown) => {
          const logs = await (v as (a: unknown) => Promise<{ blockHash: string }[]>).call(target, args);
          if (forked-- <= 0) return logs;
          return logs.map((l) => ({ ...l, blockHash: `0x${'0f'.repeat(32)}` }));
        };
      },
    });
    const w = sideWatcher(oracle, { client: otherFork });
    const ref = { chainId: chain.anvil.chainId, contract: oracle.toLowerCase() };
    const requestId = `${chain.anvil.chainId}:${oracle.toLowerCase()}:${requestNo}`;
    try {
      // Three reads disagree: the pass gives up without a cursor or a row, and without an error.
      await w.poll();
      expect(w.stats()).toMatchObject({ rereads: 3, events: 0, errors: 0 });
      expect(await store.cursor(ref)).toBeNull();
      expect(await store.byRequestId(requestId)).toBeNull();
      // The next pass: one more disagreeing read, then the chain's own.
      await w.poll();
      expect(w.stats()).toMatchObject({ rereads: 4, events: 1 });
      const block = await chain.client.getBlock({ blockNumber });
      expect(await store.byRequestId(requestId)).toMatchObject({ status: 'pending', blockHash: block.hash });
      expect(await store.cursor(ref)).not.toBeNull();
    } finally {
      await w.stop();
    }
  });
});
