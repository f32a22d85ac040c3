import { describe, expect, test } from 'bun:test';
import { initialChainWatcherStats } from '../chain/chain-watcher.ts';
import { type ChainPassResult, chainPass, chainPassLevel } from './workerd.ts';

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
