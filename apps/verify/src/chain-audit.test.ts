/**
 * `synod-verify --chain … --oracle … --relay …` as an auditor runs it: a real anvil with SynodOracle, a
 * real relay bridging it (answers written back by its chain watcher), and a relay in front of it that
 * serves one request's transcript for another.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { resolve } from 'node:path';
import { synodOracleAbi } from '@synod/contracts/abi';
import { bridgeOptions, startTestChain, type TestChain } from '../../../edge/src/chain/chain-test-helpers.ts';
import { startTestNetwork, type TestNetwork } from '../../../edge/src/test-helpers.ts';
import { runCommand } from '../../../edge/src/test-servers.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');
let chain: TestChain;
let net: TestNetwork;

beforeAll(async () => {
  chain = await startTestChain();
  net = await startTestNetwork({ chain: bridgeOptions(chain, { confirmations: 0, pollMs: 200 }) });
}, 120_000);
afterAll(async () => {
  await net?.close();
  await chain?.stop();
});

/** Ask on chain and wait until the oracle's LLMFulfilled event for it is mined. */
async function askOnChain(prompt: string): Promise<bigint> {
  const { requestNo, blockNumber } = await chain.callLLM({ prompt, models: ['stories260K'], maxTokens: 12 });
  for (let i = 0; i < 600; i++) {
    const events = await chain.client.getContractEvents({
      address: chain.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMFulfilled',
      args: { requestNo },
      fromBlock: blockNumber,
    });
    if (events.length > 0) return requestNo;
    await Bun.sleep(100);
  }
  throw new Error(`request ${requestNo} was not fulfilled on chain`);
}

const audit = (relay: string, extra: string[] = []) =>
  runCommand([
    process.execPath,
    MAIN,
    '--chain',
    chain.anvil.url,
    '--oracle',
    chain.oracle,
    '--relay',
    relay,
    ...extra,
  ]);

describe('synod-verify --chain', () => {
  test('every answer written on chain re-derives; a relay serving another transcript is caught', async () => {
    const first = await askOnChain('Lily found a shell');
    const second = await askOnChain('Ben saw a big dog');
    const r = await audit(net.relay.url, ['--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as { checked: number; held: number; failures: unknown[] };
    expect(report).toMatchObject({ checked: 2, held: 2, failures: [] });
    const text = await audit(net.relay.url);
    expect(text.out).toContain(
      `audited 2 requests of ${net.relay.url} for oracle ${chain.oracle.toLowerCase()}`,
    );
    // From a block after the second was asked: its question is still found (by its request number).
    const fulfilledAt = await chain.client.getContractEvents({
      address: chain.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMFulfilled',
      args: { requestNo: second },
      fromBlock: 0n,
    });
    const late = await audit(net.relay.url, ['--from-block', String(fulfilledAt[0]?.blockNumber ?? 0n)]);
    expect(late.code).toBe(0);
    expect(late.out).toContain(': 1 hold, 0 do not');
    // The same, through an RPC endpoint that refuses that lookup: the audit fails (exit 2, naming it)
    // rather than reporting the question as never asked.
    const refusing = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        const body = await req.text();
        const call = JSON.parse(body) as { id: number; method: string; params?: { topics?: unknown[] }[] };
        if (call.method === 'eth_getLogs' && call.params?.[0]?.topics?.[1]) {
          return Response.json({ jsonrpc: '2.0', id: call.id, error: { code: -32005, message: 'refused' } });
        }
        const real = await fetch(chain.anvil.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        return new Response(await real.text(), { headers: { 'content-type': 'application/json' } });
      },
    });
    try {
      const r = await runCommand([
        process.execPath,
        MAIN,
        '--chain',
        `http://127.0.0.1:${refusing.port}`,
        '--oracle',
        chain.oracle,
        '--relay',
        net.relay.url,
        '--from-block',
        String(fulfilledAt[0]?.blockNumber ?? 0n),
      ]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`could not read the oracle's LLMRequested event ${second}`);
    } finally {
      refusing.stop(true);
    }

    // In front of the real relay: the first request's transcript swapped for the second's (genuine and
    // holding, but the answer to another question).
    const id = (n: bigint) => `${chain.anvil.chainId}:${chain.oracle.toLowerCase()}:${n}`;
    const liar = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        const path = decodeURIComponent(new URL(req.url).pathname);
        const target =
          path === `/v1/verify/${id(first)}` ? `/v1/verify/${encodeURIComponent(id(second))}` : path;
        const real = await fetch(`${net.relay.url}${target}`);
        return new Response(await real.text(), { status: real.status, headers: real.headers });
      },
    });
    try {
      const lied = await audit(`http://127.0.0.1:${liar.port}`);
      expect(lied.code).toBe(1);
      expect(lied.out).toContain(': 1 hold, 1 do not');
      expect(lied.out).toContain(`  ${id(first)}\n    - the transcript is of another request, ${id(second)}`);
      expect(lied.out).toContain('the verdict digest on chain');
      expect(lied.out).toContain('the answer on chain');
      expect(lied.out).toContain('the transcript answers another prompt than the one asked on chain');
    } finally {
      liar.stop(true);
    }

    // In front of the real relay: the second request's transcript with a smaller quorum than was paid for
    // on chain (its signatures then fail too, but the question's quorum is named on its own).
    const shrinker = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        const path = decodeURIComponent(new URL(req.url).pathname);
        const real = await fetch(
          `${net.relay.url}${path === `/v1/verify/${id(second)}` ? `/v1/verify/${encodeURIComponent(id(second))}` : path}`,
        );
        const text = await real.text();
        if (path !== `/v1/verify/${id(second)}`)
          return new Response(text, { status: real.status, headers: real.headers });
        const body = JSON.parse(text) as {
          transcript: { packets: { type: string; body: { frame?: { quorum: number } } }[] };
        };
        const request = body.transcript.packets.find((p) => p.type === 'request');
        if (request?.body.frame) request.body.frame.quorum = 1;
        return Response.json(body);
      },
    });
    try {
      const shrunk = await audit(`http://127.0.0.1:${shrinker.port}`);
      expect(shrunk.code).toBe(1);
      expect(shrunk.out).toContain("the transcript's quorum is 1, not the 3 asked for on chain");
    } finally {
      shrinker.stop(true);
    }
  }, 120_000);

  test.each([
    [
      ['--chain', 'http://127.0.0.1:9', '--oracle', `0x${'a'.repeat(40)}`, '--relay', 'http://127.0.0.1:9'],
      2,
      'could not read the chain at http://127.0.0.1:9',
    ],
    [
      ['--chain', 'rpc', '--oracle', `0x${'a'.repeat(40)}`, '--relay', 'http://127.0.0.1:9'],
      2,
      '--chain must be the http(s) URL',
    ],
    [
      ['--chain', 'http://127.0.0.1:9', '--oracle', 'oracle', '--relay', 'http://127.0.0.1:9'],
      2,
      '--oracle must be a 0x address',
    ],
    [
      [
        '--chain',
        'http://127.0.0.1:9',
        '--oracle',
        `0x${'a'.repeat(40)}`,
        '--relay',
        'http://127.0.0.1:9',
        '--from-block',
        'x',
      ],
      2,
      '--from-block must be a block number',
    ],
    [
      ['--chain', 'http://127.0.0.1:9', '--oracle', `0x${'a'.repeat(40)}`],
      2,
      '--relay must be an http(s) URL',
    ],
  ])('%p: exit code %p', async (args, code, message) => {
    const r = await runCommand([process.execPath, MAIN, ...args]);
    expect(r.code).toBe(code);
    expect(r.err).toContain(message);
  });
});
