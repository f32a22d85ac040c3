import { afterAll, beforeAll, describe, expect, spyOn, test } from 'bun:test';
import { createPublicClient, http, type PublicClient } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { fundedAccount, type RunningAnvil, startAnvil } from './anvil.ts';
import { main } from './cli.ts';
import { synodOracleAbi } from './oracle-abi.ts';

let anvil: RunningAnvil;
let client: PublicClient;
let deployerKey: `0x${string}`;
const bridge = privateKeyToAccount(generatePrivateKey()).address;

beforeAll(async () => {
  anvil = await startAnvil();
  client = createPublicClient({ transport: http(anvil.url) }) as PublicClient;
  deployerKey = (await fundedAccount(anvil.url, '10')).key;
});
afterAll(() => anvil.stop());

/** Run the CLI with its console captured. */
async function run(argv: string[], env: Record<string, string | undefined> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const log = spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const error = spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  try {
    return { code: await main(argv, env), out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

describe('synod-oracle deploy', () => {
  test('deploys with the given settings and prints the address and a starting block', async () => {
    const r = await run(
      [
        'deploy',
        '--rpc',
        anvil.url,
        '--chain-id',
        String(anvil.chainId),
        '--bridge',
        bridge,
        '--min-fee',
        '1000',
        '--timeout',
        '60',
        '--callback-gas',
        '150000',
      ],
      { SYNOD_DEPLOYER_KEY: deployerKey },
    );
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const printed = JSON.parse(r.out) as { oracle: `0x${string}`; chainId: number; fromBlock: number };
    expect(printed.chainId).toBe(anvil.chainId);
    const read = (functionName: 'bridge' | 'minFee' | 'timeout' | 'callbackGasLimit') =>
      client.readContract({ address: printed.oracle, abi: synodOracleAbi, functionName });
    expect(await read('bridge')).toBe(bridge);
    expect(await read('minFee')).toBe(1000n);
    expect(await read('timeout')).toBe(60n);
    expect(await read('callbackGasLimit')).toBe(150_000);
    expect(BigInt(printed.fromBlock)).toBeLessThanOrEqual(await client.getBlockNumber());
  });

  test('a minimum fee of 0 is deployed, with a warning that the bridge pays for free requests', async () => {
    const r = await run(
      ['deploy', '--rpc', anvil.url, '--chain-id', String(anvil.chainId), '--bridge', bridge],
      { SYNOD_DEPLOYER_KEY: deployerKey },
    );
    expect(r.code).toBe(0);
    expect(r.err).toContain('warning: --min-fee 0: anyone may ask for free, and the bridge pays the gas');
  });

  test('bad flags, a missing key and the wrong chain are refused before anything is sent', async () => {
    const base = ['deploy', '--rpc', anvil.url, '--chain-id', String(anvil.chainId), '--bridge', bridge];
    expect((await run(base)).err).toContain('SYNOD_DEPLOYER_KEY');
    const env = { SYNOD_DEPLOYER_KEY: deployerKey };
    expect((await run(['deploy', '--rpc', 'ftp://x', '--chain-id', '1', '--bridge', bridge], env)).code).toBe(
      2,
    );
    expect((await run([...base.slice(0, 5), '--bridge', '0x12'], env)).err).toContain('--bridge');
    const zero = await run([...base.slice(0, 5), '--bridge', `0x${'0'.repeat(40)}`], env);
    expect(zero).toMatchObject({ code: 2, out: '' });
    expect(zero.err).toContain('--bridge must not be the zero address');
    expect((await run([...base, '--min-fee', '-1'], env)).err).toContain('--min-fee');
    // The contract's bounds, said before anything is sent: a callback no settlement could carry would
    // lock every contract requester's fee; a deadline past 2^64 overflowed every callLLM.
    for (const gas of ['5000000000', '10000001', '40000000']) {
      const r = await run([...base, '--callback-gas', gas], env);
      expect(r.code).toBe(2);
      expect(r.err).toContain('--callback-gas must be at most 10000000');
      expect(r.err).toContain('fee would be locked');
    }
    for (const timeout of ['99999999999999999999999', '59', '31536001']) {
      const r = await run([...base, '--timeout', timeout], env);
      expect(r).toMatchObject({ code: 2, out: '' });
      expect(r.err).toContain('--timeout must be 60 to 31536000 seconds');
    }
    expect((await run([...base, '--min-fee', String(2n ** 96n)], env)).err).toContain('below 2^96');
    const wrong = await run(['deploy', '--rpc', anvil.url, '--chain-id', '1', '--bridge', bridge], env);
    expect(wrong).toMatchObject({ code: 2 });
    expect(wrong.err).toContain(`serves chain ${anvil.chainId}, not 1`);
    // An RPC that cannot be reached: one line with a code, no stack trace, and not the URL (a provider's
    // holds its API key).
    const closed = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
    const gone = `http://127.0.0.1:${closed.port}/v3/secret-api-key`;
    closed.stop(true);
    const down = await run(
      ['deploy', '--rpc', gone, '--chain-id', '1', '--bridge', bridge, '--min-fee', '1'],
      env,
    );
    expect(down.code).toBe(1);
    expect(down.err).toStartWith('synod-oracle: CHAIN_RPC_FAILED: ');
    expect(down.err).not.toContain('secret-api-key');
    expect(down.err).not.toContain('    at ');
    expect(down.err.split('\n')).toHaveLength(1);
    expect((await run(['launch'])).code).toBe(2);
    expect((await run(['deploy', '--nope'])).code).toBe(2);
  });
});
