/** A chain RPC URL's secret parts (a provider's API key) stay out of what a failed chain call says. */
import { describe, expect, test } from 'bun:test';
import { HttpRequestError } from 'viem';
import { ChainBridgeError } from './chain-errors.ts';
import type { ChainStore } from './chain-store.ts';
import { ChainWatcher } from './chain-watcher.ts';
import { bridgeClients } from './clients.ts';
import { chainErrorText, redactRpcUrl } from './rpc-errors.ts';

const KEY = 'a1b2c3d4e5f6SECRETRPCKEY';

/** An RPC URL on a port nothing listens on, with an API key in its path the way providers give them. */
async function closedRpc(): Promise<string> {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('no') });
  const url = `http://127.0.0.1:${server.port}/v3/${KEY}`;
  server.stop(true);
  return url;
}

describe('redactRpcUrl', () => {
  test('keeps the scheme and host only', () => {
    expect(redactRpcUrl(`https://mainnet.infura.io/v3/${KEY}`)).toBe('https://mainnet.infura.io/…');
    expect(redactRpcUrl(`https://rpc.example/?apikey=${KEY}`)).toBe('https://rpc.example/…');
    expect(redactRpcUrl(`https://user:${KEY}@rpc.example:8545`)).toBe('https://rpc.example:8545/…');
    expect(redactRpcUrl('http://127.0.0.1:8545')).toBe('http://127.0.0.1:8545');
    expect(redactRpcUrl(`not a url ${KEY}`)).toBe('<rpc>');
  });
});

describe('chainErrorText', () => {
  test("is viem's short message and details, without the URL and request body of its meta lines", () => {
    const url = `https://mainnet.infura.io/v3/${KEY}`;
    const e = new HttpRequestError({ url, body: { method: 'eth_chainId' }, details: 'fetch failed' });
    expect(e.message).toContain(KEY);
    const text = chainErrorText(e, url);
    expect(text).toBe('HTTP request failed: fetch failed');
    expect(text).not.toContain(KEY);
  });

  test('replaces the RPC URL wherever a plain error still names it', () => {
    const url = `https://mainnet.infura.io/v3/${KEY}`;
    expect(chainErrorText(new Error(`cannot reach ${url} now`), url)).toBe(
      'cannot reach https://mainnet.infura.io/… now',
    );
  });
});

describe('a chain watcher whose RPC cannot be reached', () => {
  test('refuses to start with CHAIN_RPC_FAILED, and nothing it says holds the RPC URL or its key', async () => {
    const rpc = await closedRpc();
    const w = new ChainWatcher({
      ...bridgeClients(rpc, 31337, `0x${'22'.repeat(32)}`),
      oracle: `0x${'11'.repeat(20)}`,
      chainId: 31337,
      // Never reached: the start fails on its first RPC call, before any pass.
      store: {} as ChainStore,
      lookup: async () => null,
      admit: async () => ({ kind: 'quota-exceeded' as const, quotaPerDay: 0, day: '2026-01-01' }),
      defaults: async () => ({ knownModels: new Set<string>(), defaultModels: [], embedders: [] }),
    });
    const e = await w.start().catch((x: unknown) => x);
    await w.stop();
    expect(e).toBeInstanceOf(ChainBridgeError);
    expect(e).toMatchObject({ code: 'CHAIN_RPC_FAILED' });
    // What the relay's start-failure line and the worker's chain pass print: the message and details.
    const said = JSON.stringify({ message: (e as Error).message, ...(e as ChainBridgeError).details });
    expect(said).not.toContain(KEY);
    expect(said).not.toContain('/v3/');
    expect(said).toContain('127.0.0.1');
  });
});
