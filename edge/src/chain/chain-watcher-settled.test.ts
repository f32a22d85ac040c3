/**
 * A request already settled on chain when its event is read is recorded, never computed (chain-watcher.ts,
 * `#settledOnChain` / `#settledBeforeRead`): the case it is for is a relay that was down or behind, so
 * the request's settlement is usually far from its event. Behind an RPC that takes at most 100 blocks per
 * eth_getLogs (as many public endpoints do), the settlement's event was looked up from the request's
 * block to the head in one call, refused every pass: the row stayed pending for good.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { synodOracleAbi } from '@synod/contracts';
import type { RequestBody } from '@synod/shared';
import type { RequestDefaults } from '../inference-input.ts';
import { openHistory } from '../store/open-history.ts';
import { type RpcProxy, startRpcProxy } from './chain-rpc-proxy.ts';
import { ChainStore } from './chain-store.ts';
import { startTestChain, type TestChain } from './chain-test-helpers.ts';
import { ChainWatcher } from './chain-watcher.ts';
import { bridgeClients } from './clients.ts';
import type { FoundView } from './oracle-request.ts';

let chain: TestChain;
let proxy: RpcProxy;
let store: ChainStore;
const dir = mkdtempSync(join(tmpdir(), 'synod-chain-settled-'));
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

test('a request refunded long before its event is read, behind an RPC that takes 100 blocks per eth_getLogs: recorded, the watcher moves on', async () => {
  const oracle = await chain.deployAnother();
  const fromBlock = await chain.client.getBlockNumber({ cacheTime: 0 });
  const admitted = new Map<string, RequestBody>();
  const logs: Record<string, unknown>[] = [];
  const w = new ChainWatcher({
    ...bridgeClients(proxy.url, chain.anvil.chainId, chain.bridgeKey),
    oracle,
    chainId: chain.anvil.chainId,
    store,
    fromBlock,
    confirmations: 0,
    maxBlockRange: 50n,
    lookup: async (id) => {
      const body = admitted.get(id);
      return body ? ({ status: 'pending', request: body } as unknown as FoundView) : null;
    },
    admit: async (a) => {
      const o = a.body.origin as { chainId: number; contract: string; requestNo: string };
      const id = `${o.chainId}:${o.contract}:${o.requestNo}`;
      admitted.set(id, a.body);
      return { kind: 'created', requestId: id, usedToday: 1 };
    },
    defaults: async () => DEFAULTS,
    log: (e) => logs.push(e),
  });
  closers.push(() => w.stop());
  const { requestNo } = await chain.callLLM({
    prompt: 'Refunded while the relay was down',
    models: ['stories260K'],
    oracle,
  });
  // The relay is down; the deadline passes, the requester refunds; the chain goes on.
  await chain.mine(150);
  const [, , deadline, , questionHash] = await chain.client.readContract({
    address: oracle,
    abi: synodOracleAbi,
    functionName: 'requests',
    args: [requestNo],
  });
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
    return span > 100 ? { error: { code: -32005, message: 'query exceeds max block range 100' } } : undefined;
  };
  try {
    for (let i = 0; i < 12; i++) await w.poll().catch(() => {});
  } finally {
    proxy.fault = undefined;
  }
  const id = `${chain.anvil.chainId}:${oracle.toLowerCase()}:${requestNo}`;
  const head = await chain.client.getBlockNumber({ cacheTime: 0 });
  expect(admitted.has(id)).toBe(false);
  expect(BigInt((await store.cursor(w.oracle))?.blockNumber ?? 0)).toBe(head);
  // Fails: every pass logs "chain settlement failed" (the settlement event looked up over the whole span
  // from the request's block to the head in one eth_getLogs), and the row stays pending for good.
  expect(logs.filter((l) => l.level === 'error')).toEqual([]);
  expect((await store.byRequestId(id))?.status).toBe('refunded');
}, 60_000);
