import { describe, expect, test } from 'bun:test';
import { createClient } from '@libsql/client/web';
import { fundedAccount, synodOracleAbi } from '@synod/contracts';
import { historySchema } from '@synod/shared/history';
import { drizzle } from 'drizzle-orm/libsql/web';
import { getAddress } from 'viem';
import { ChainStore } from '../chain/chain-store.ts';
import { startTestChain } from '../chain/chain-test-helpers.ts';
import { initialChainWatcherStats } from '../chain/chain-watcher.ts';
import { startSqld } from '../test-servers.ts';
import { type ChainPassResult, chainPass, chainPassLevel, handle } from './workerd.ts';

const STATS = { ...initialChainWatcherStats(), passes: 1, bridge: null } as Extract<
  ChainPassResult,
  { ran: true }
>['stats'];

describe('the cron pass log line', () => {
  test('is an error when the configured chain bridge could not run or failed, info otherwise', () => {
    const rpc = { SYNOD_CHAIN_RPC: 'https://rpc.example' };
    const unset = { ran: false, code: 'CHAIN_NOT_CONFIGURED', reason: 'SYNOD_CHAIN_RPC is not set' } as const;
    expect(chainPassLevel(unset, {})).toBe('info');
    const invalid = {
      ran: false,
      code: 'CHAIN_CONFIG_INVALID',
      reason: 'SYNOD_CHAIN_ID is not set',
    } as const;
    expect(chainPassLevel(invalid, rpc)).toBe('error');
    expect(chainPassLevel({ ran: true, stats: STATS }, rpc)).toBe('info');
    expect(
      chainPassLevel(
        { ran: true, stats: STATS, error: { code: 'INTERNAL', message: 'HTTP request failed' } },
        rpc,
      ),
    ).toBe('error');
    // The watcher ran, but its pass failed or a row could not be settled: an error line.
    expect(chainPassLevel({ ran: true, stats: { ...STATS, errors: 1 } }, rpc)).toBe('error');
  });
});

describe('a chain pass whose database is out of reach', () => {
  test('reports STORE_UNAVAILABLE (it threw, and was logged without a code)', async () => {
    const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('no') });
    const closed = `http://127.0.0.1:${server.port}`;
    server.stop(true);
    const r = await chainPass({
      SYNOD_DB_URL: closed,
      SYNOD_GATEWAY_URL: closed,
      SYNOD_GATEWAY_SECRET: 'a-gateway-secret-0123456789',
      SYNOD_CHAIN_RPC: closed,
      SYNOD_CHAIN_ID: '31337',
      SYNOD_ORACLE: `0x${'11'.repeat(20)}`,
      SYNOD_BRIDGE_KEY: `0x${'22'.repeat(32)}`,
    });
    expect(r.ran).toBe(false);
    expect(r.ran === false && r.code).toBe('STORE_UNAVAILABLE');
    expect(r.ran === false && r.reason.length).toBeGreaterThan(0);
    expect(chainPassLevel(r, { SYNOD_CHAIN_RPC: closed })).toBe('error');
  });
});

describe('a chain pass that cannot run', () => {
  const vars = {
    SYNOD_DB_URL: 'http://127.0.0.1:9',
    SYNOD_GATEWAY_URL: 'http://127.0.0.1:9',
    SYNOD_GATEWAY_SECRET: 'a-gateway-secret-0123456789',
    SYNOD_CHAIN_RPC: 'http://127.0.0.1:9',
    SYNOD_CHAIN_ID: '31337',
    SYNOD_ORACLE: `0x${'11'.repeat(20)}`,
    SYNOD_BRIDGE_KEY: `0x${'22'.repeat(32)}`,
  };
  test('says why with a stable code, before it opens anything', async () => {
    const { SYNOD_CHAIN_RPC: _rpc, ...noChain } = vars;
    expect(await chainPass(noChain)).toMatchObject({ ran: false, code: 'CHAIN_NOT_CONFIGURED' });
    const { SYNOD_DB_URL: _db, ...noDb } = vars;
    expect(await chainPass(noDb)).toMatchObject({ ran: false, code: 'CHAIN_CONFIG_INVALID' });
    const badId = await chainPass({ ...vars, SYNOD_CHAIN_ID: 'mainnet' });
    expect(badId).toMatchObject({ ran: false, code: 'CHAIN_CONFIG_INVALID' });
    expect(badId.ran === false && badId.reason).toContain('SYNOD_CHAIN_ID');
  });
});

describe("a chain pass whose RPC cannot be reached, its URL holding the provider's API key", () => {
  test('reports CHAIN_RPC_FAILED, and neither the result nor any line logged holds the key', async () => {
    const sqld = await startSqld();
    const rpcServer = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('no') });
    const key = 'f00dfeedSECRETRPCKEY';
    const rpc = `http://127.0.0.1:${rpcServer.port}/v3/${key}`;
    rpcServer.stop(true);
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => lines.push(a.map(String).join(' '));
    try {
      const r = await chainPass({
        SYNOD_DB_URL: sqld.url,
        SYNOD_GATEWAY_URL: 'http://127.0.0.1:9',
        SYNOD_GATEWAY_SECRET: 'a-gateway-secret-0123456789',
        SYNOD_CHAIN_RPC: rpc,
        SYNOD_CHAIN_ID: '31337',
        SYNOD_ORACLE: `0x${'11'.repeat(20)}`,
        SYNOD_BRIDGE_KEY: `0x${'22'.repeat(32)}`,
      });
      expect(r).toMatchObject({ ran: true, error: { code: 'CHAIN_RPC_FAILED' } });
      // The scheduled handler logs the result as one line: what it would print.
      const printed = JSON.stringify({ level: chainPassLevel(r, { SYNOD_CHAIN_RPC: rpc }), ...r });
      expect(printed).not.toContain(key);
      expect(lines.join('\n')).not.toContain(key);
    } finally {
      console.log = log;
      await sqld.stop();
    }
  });
});

describe('a worker whose SYNOD_DB_URL is no libSQL URL', () => {
  test('answers 500 INTERNAL with the libSQL code only: the value (an auth token pasted there, say) is neither answered nor logged', async () => {
    const token = 'eyJhbGciOiJFZERTQSJ9.SECRETJWTPAYLOAD.signature';
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => lines.push(a.map(String).join(' '));
    try {
      for (const url of [token, `127.0.0.1:8080?authToken=${token}`, `https://127.0.0.1:8080?tls=${token}`]) {
        const r = await handle(new Request('http://worker.test/v1/nodes'), {
          SYNOD_DB_URL: url,
          SYNOD_GATEWAY_URL: 'http://127.0.0.1:9',
          SYNOD_GATEWAY_SECRET: 'a-gateway-secret-0123456789',
        });
        expect(r.status).toBe(500);
        const body = await r.text();
        expect(JSON.parse(body)).toMatchObject({ error: { code: 'INTERNAL' } });
        expect(body).toContain('URL_INVALID');
        expect(body).not.toContain('SECRETJWTPAYLOAD');
      }
      expect(lines.join('\n')).not.toContain('SECRETJWTPAYLOAD');
    } finally {
      console.log = log;
    }
  });
});

describe("a chain pass whose bridge key is not the oracle's bridge() (BRIDGE_MISMATCH)", () => {
  // Each cron run checked the bridge first and stopped there: refunds past their deadline, which anyone
  // may send (the Bun relay goes on sending them while its bridge is another account), were never sent.
  test('still runs: a refund past its deadline is sent and recorded, one before it (it would revert) is not; the mismatch is in the stats and said as an error', async () => {
    const sqld = await startSqld();
    const chain = await startTestChain();
    // The gateway's status, as much of it as a chain pass reads: the models its network serves.
    const status = {
      coordinatorId: 'gateway-node',
      models: ['stories260K'],
      embedders: [{ id: 'test-embedder', fileHash: 'ab'.repeat(32), bits: 64 }],
      defaultModels: ['stories260K'],
      health: { ok: true },
      queue: null,
    };
    const gateway = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: (req) =>
        new URL(req.url).pathname === '/internal/v1/status'
          ? Response.json(status)
          : new Response(null, { status: 204 }),
    });
    const lines: Record<string, unknown>[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => lines.push(JSON.parse(a.map(String).join(' ')));
    const db = createClient({ url: sqld.url });
    try {
      const worker = await fundedAccount(chain.anvil.url);
      const env = {
        SYNOD_DB_URL: sqld.url,
        SYNOD_GATEWAY_URL: `http://127.0.0.1:${gateway.port}`,
        SYNOD_GATEWAY_SECRET: 'a-gateway-secret-0123456789',
        SYNOD_CHAIN_RPC: chain.anvil.url,
        SYNOD_CHAIN_ID: String(chain.anvil.chainId),
        SYNOD_ORACLE: chain.oracle,
        SYNOD_BRIDGE_KEY: worker.key,
        SYNOD_CHAIN_CONFIRMATIONS: '0',
        SYNOD_CHAIN_FROM_BLOCK: String(await chain.client.getBlockNumber({ cacheTime: 0 })),
      };
      // Refused as it is read (a model the network does not serve): refunded UNKNOWN_MODEL, which before
      // the request's deadline only the oracle's bridge may do.
      const { requestNo } = await chain.callLLM({
        prompt: 'Refused by a worker that is not the bridge',
        models: ['no-such-model'],
      });
      const first = await chainPass(env);
      expect(first).toMatchObject({
        ran: true,
        stats: {
          passes: 1,
          bridgeMismatch: { oracleBridge: chain.bridge.account.address, account: worker.account.address },
        },
      });
      expect(first.ran && first.error).toBeUndefined();
      expect(chainPassLevel(first, env)).toBe('error');
      expect(lines).toContainEqual(
        expect.objectContaining({ level: 'error', code: 'BRIDGE_MISMATCH', account: worker.account.address }),
      );
      expect((await chain.request(requestNo)).status).toBe(1);
      const id = `${chain.anvil.chainId}:${chain.oracle.toLowerCase()}:${requestNo}`;
      const store = new ChainStore(drizzle(db, { schema: historySchema }));
      expect(await store.byRequestId(id)).toMatchObject({ status: 'pending', fulfilledTx: null });

      // Past its deadline anyone may refund it: the next run does, the one after records it.
      const { deadline } = await chain.request(requestNo);
      await chain.rpc('evm_setNextBlockTimestamp', [Number(deadline) + 1]);
      await chain.mine(1);
      expect(await chainPass(env)).toMatchObject({
        ran: true,
        stats: { bridgeMismatch: { since: expect.any(Number) } },
      });
      expect((await chain.request(requestNo)).status).toBe(3);
      const [refund, ...more] = await chain.client.getContractEvents({
        address: chain.oracle,
        abi: synodOracleAbi,
        eventName: 'LLMRefunded',
        args: { requestNo },
        fromBlock: 0n,
        strict: true,
      });
      expect(more).toEqual([]);
      expect(refund?.args.reason).toBe('UNKNOWN_MODEL');
      const sent = await chain.client.getTransaction({ hash: refund?.transactionHash as `0x${string}` });
      expect(getAddress(sent.from)).toBe(worker.account.address);
      await chainPass(env);
      expect(await store.byRequestId(id)).toMatchObject({
        status: 'refunded',
        refundReason: 'UNKNOWN_MODEL',
        fulfilledTx: refund?.transactionHash,
      });
    } finally {
      console.log = log;
      db.close();
      gateway.stop(true);
      await chain.stop();
      await sqld.stop();
    }
  }, 60_000);
});
