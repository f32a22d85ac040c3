import { describe, expect, test } from 'bun:test';
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
