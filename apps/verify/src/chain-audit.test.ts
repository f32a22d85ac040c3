/**
 * `synod-verify --chain … --oracle … --relay …` as an auditor runs it: a real anvil with SynodOracle, a
 * real relay bridging it (answers and refunds written back by its chain watcher), a relay in front of it
 * that serves one request's transcript for another, and a lying bridge (refunds sent with the bridge's
 * key for requests the network answered).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { resolve } from 'node:path';
import type { GenerateRequest, GenerateResult } from '@synod/browser-node/inference';
import { synodOracleAbi } from '@synod/contracts/abi';
import { NodeKey, type RevealBody, signPacket } from '@synod/shared';
import {
  type Address,
  encodeAbiParameters,
  type Hex,
  parseAbiParameters,
  parseEventLogs,
  toFunctionSelector,
} from 'viem';
import { bridgeOptions, startTestChain, type TestChain } from '../../../edge/src/chain/chain-test-helpers.ts';
import { startTestNetwork, type TestNetwork } from '../../../edge/src/test-helpers.ts';
import { runCommand } from '../../../edge/src/test-servers.ts';
import { askedOf } from './chain-audit.ts';
import { auditRefund, lastRevealAt } from './refund-audit.ts';

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

/**
 * Ask on chain (a prompt, or a prompt's raw bytes sent under callLLM's selector) and wait until the
 * oracle settles it; resolves with the request number and, when refunded, the reason.
 */
async function askUntilSettled(q: {
  prompt?: string;
  promptBytes?: Hex;
  models: string[];
}): Promise<{ requestNo: bigint; reason: string | null }> {
  let requestNo: bigint;
  let blockNumber: bigint;
  if (q.promptBytes === undefined) {
    ({ requestNo, blockNumber } = await chain.callLLM({
      prompt: q.prompt ?? '',
      models: q.models,
      maxTokens: 12,
    }));
  } else {
    const args = encodeAbiParameters(parseAbiParameters('bytes, string[], uint32, uint16, uint16'), [
      q.promptBytes,
      q.models,
      12,
      0,
      3,
    ]);
    const selector = toFunctionSelector('callLLM(string, string[], uint32, uint16, uint16)');
    const hash = await chain.requester.sendTransaction({
      to: chain.oracle,
      data: `${selector}${args.slice(2)}`,
      value: 1_000n,
    });
    const receipt = await chain.client.waitForTransactionReceipt({ hash });
    const [requested] = parseEventLogs({
      abi: synodOracleAbi,
      logs: receipt.logs,
      eventName: 'LLMRequested',
    });
    requestNo = requested?.args.requestNo ?? 0n;
    blockNumber = receipt.blockNumber;
  }
  for (let i = 0; i < 600; i++) {
    const range = {
      address: chain.oracle,
      abi: synodOracleAbi,
      args: { requestNo },
      fromBlock: blockNumber,
    } as const;
    const [refunded, fulfilled] = await Promise.all([
      chain.client.getContractEvents({ ...range, eventName: 'LLMRefunded' }),
      chain.client.getContractEvents({ ...range, eventName: 'LLMFulfilled' }),
    ]);
    if (refunded[0]) return { requestNo, reason: refunded[0].args.reason ?? '' };
    if (fulfilled[0]) return { requestNo, reason: null };
    await Bun.sleep(100);
  }
  throw new Error(`request ${requestNo} was not settled on chain`);
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

const id = (n: bigint, oracle: Address = chain.oracle) =>
  `${chain.anvil.chainId}:${oracle.toLowerCase()}:${n}`;

describe('synod-verify --chain', () => {
  test('every answer written on chain re-derives; a relay serving another transcript is caught', async () => {
    const first = await askOnChain('Lily found a shell');
    const second = await askOnChain('Ben saw a big dog');
    const r = await audit(net.relay.url, ['--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as {
      checked: number;
      held: number;
      failures: unknown[];
      items: { requestId: string; outcome: string; verdictDigest: string }[];
    };
    expect(report).toMatchObject({ checked: 2, held: 2, failures: [] });
    // What was audited, newest first, with the digests derived here.
    const chainId = (n: bigint) => `${chain.anvil.chainId}:${chain.oracle.toLowerCase()}:${n}`;
    expect(report.items.map((i) => [i.requestId, i.outcome])).toEqual([
      [chainId(second), 'holds'],
      [chainId(first), 'holds'],
    ]);
    expect(report.items.every((i) => /^[0-9a-f]{64}$/.test(i.verdictDigest))).toBe(true);
    const text = await audit(net.relay.url);
    expect(text.out).toContain(
      `audited 2 requests of ${net.relay.url} for oracle ${chain.oracle.toLowerCase()}`,
    );
    // The chain anchors each answer's digest and root as the bridge wrote them; the relay is where the
    // transcripts are read. Who coordinated them is said, and pinned only when asked.
    expect(text.out).toContain(
      `  coordinator: none pinned (--coordinator pins it); the relay publishes ${net.relayKey.nodeId} (/healthz)`,
    );
    expect(text.out).toContain(`  requests signed by: ${net.relayKey.nodeId} (2)`);
    const pinned = await audit(net.relay.url, ['--coordinator', net.relayKey.nodeId]);
    expect(pinned.code).toBe(0);
    const stranger = (await NodeKey.generate()).nodeId;
    const other = await audit(net.relay.url, ['--coordinator', stranger]);
    expect(other.code).toBe(1);
    expect(other.out).toContain(
      `COORDINATOR_NOT_PINNED: the request and its seal are signed by ${net.relayKey.nodeId}, not by the coordinator pinned by --coordinator (${stranger})`,
    );
    // From a block after the second was asked: its question is still found (by its request number).
    const fulfilledAt = await chain.client.getContractEvents({
      address: chain.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMFulfilled',
      args: { requestNo: second },
      fromBlock: 0n,
    });
    // From a block past every settlement: nothing audited, exit 3.
    const beyond = await audit(net.relay.url, [
      '--from-block',
      String((await chain.client.getBlockNumber({ cacheTime: 0 })) + 1n),
    ]);
    expect(beyond.code).toBe(3);
    expect(beyond.out).toContain(
      '  NOTHING AUDITED: the oracle wrote no settlement (LLMFulfilled or LLMRefunded) from block',
    );
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
      // Newest first: --limit 1 audits the second answer (which the liar serves as it is), not the first.
      const newest = await audit(`http://127.0.0.1:${liar.port}`, ['--limit', '1']);
      expect(newest.code).toBe(0);
      expect(newest.out).toContain(': 1 hold, 0 do not');
      expect(newest.out).toContain('stopped at --limit 1: settlements mined before the oldest audited');
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

  test("the watcher's refunds: NO_CONSENSUS re-derived, INVALID_INPUT re-checked, UNKNOWN_MODEL not re-derivable", async () => {
    const fromBlock = (await chain.client.getBlockNumber({ cacheTime: 0 })) + 1n;

    // Honest refunds by the relay's watcher. NO_CONSENSUS: the three nodes' models each answer this
    // prompt with another text (honestly committed and revealed), so no two agree.
    const disagreeing = [
      'The capital of France is Paris.',
      'Bananas are an excellent source of potassium.',
      'Salt wind over grey water at midnight.',
    ];
    net.servings.forEach((serving, i) => {
      const engine = serving.queue.engine;
      const generate = engine.generate.bind(engine);
      engine.generate = async (r: GenerateRequest): Promise<GenerateResult> =>
        r.prompt?.startsWith('Disagree:')
          ? { text: disagreeing[i] ?? '', tokens: 8, tokensPerSecond: 100, finishReason: 'length' }
          : generate(r);
    });
    const noConsensus = await askUntilSettled({ prompt: 'Disagree: the sea', models: ['stories260K'] });
    expect(noConsensus.reason).toBe('NO_CONSENSUS');
    // INVALID_INPUT: a prompt whose bytes are not UTF-8 ("Hi \xff\xfe there").
    const invalid = await askUntilSettled({
      promptBytes: '0x486920fffe207468657265',
      models: ['stories260K'],
    });
    expect(invalid.reason).toBe('INVALID_INPUT');
    // UNKNOWN_MODEL: which models the network served is not on chain.
    const unknown = await askUntilSettled({ prompt: 'Sam had a kite', models: ['no-such-model'] });
    expect(unknown.reason).toBe('UNKNOWN_MODEL');

    const honest = await audit(net.relay.url, ['--from-block', String(fromBlock), '--json']);
    expect(honest.err).toBe('');
    expect(honest.code).toBe(0);
    const report = JSON.parse(honest.out) as {
      checked: number;
      held: number;
      failures: unknown[];
      answers: unknown;
      refunds: { items: { requestId: string; outcome: string; byBridge: boolean; why: string[] }[] };
    };
    expect(report).toMatchObject({
      checked: 3,
      held: 2,
      failures: [],
      answers: { checked: 0, held: 0, failed: 0 },
      refunds: { checked: 3, held: 2, failed: 0, notRederivable: 1 },
    });
    const item = (n: bigint) => report.refunds.items.find((i) => i.requestId === id(n));
    expect(item(noConsensus.requestNo)).toMatchObject({
      reason: 'NO_CONSENSUS',
      outcome: 'holds',
      byBridge: true,
    });
    expect(item(invalid.requestNo)).toMatchObject({
      reason: 'INVALID_INPUT',
      outcome: 'holds',
      why: [
        "the prompt's bytes are not UTF-8",
        expect.stringContaining('the relay holds no verdict for it (404'),
      ],
    });
    expect(item(unknown.requestNo)).toMatchObject({ reason: 'UNKNOWN_MODEL', outcome: 'not-re-derivable' });
    const honestText = await audit(net.relay.url, ['--from-block', String(fromBlock)]);
    expect(honestText.out).toContain(': 2 hold, 0 do not, 1 not re-derivable');
    expect(honestText.out).toContain(
      'refunds (LLMRefunded):  3 audited, 2 hold, 0 do not, 1 not re-derivable',
    );
    expect(honestText.out).toContain(
      `  ${id(unknown.requestNo)}\n    - LLMRefunded UNKNOWN_MODEL by ${chain.bridge.account.address.toLowerCase()} (the bridge)`,
    );
    expect(honestText.out).toContain('UNKNOWN_MODEL is not re-derivable from outside');

    // In front of the real relay: the no-consensus transcript withheld (409 NO_VERDICT). Nothing then
    // shows the network found no consensus: the refund does not hold.
    const withholding = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        const path = decodeURIComponent(new URL(req.url).pathname);
        if (path === `/v1/verify/${id(noConsensus.requestNo)}`) {
          const error = { code: 'NO_VERDICT', message: 'no verdict (status expired)' };
          return Response.json({ error }, { status: 409 });
        }
        const real = await fetch(`${net.relay.url}${path}`);
        return new Response(await real.text(), { status: real.status, headers: real.headers });
      },
    });
    try {
      const withheld = await audit(`http://127.0.0.1:${withholding.port}`, [
        '--from-block',
        String(fromBlock),
      ]);
      expect(withheld.code).toBe(1);
      expect(withheld.out).toContain(': 1 hold, 1 do not, 1 not re-derivable');
      expect(withheld.out).toContain(
        '- refunded as NO_CONSENSUS, but the relay holds no verdict for it (409 NO_VERDICT: no verdict (status expired)): nothing shows the network found no consensus',
      );
    } finally {
      withholding.stop(true);
    }
  }, 120_000);

  test('a lying bridge: refunds of requests the network answered fail, each named', async () => {
    const fromBlock = (await chain.client.getBlockNumber({ cacheTime: 0 })) + 1n;
    // The bridge's key refunds requests the network then answers (the watcher's fulfil
    // finds them settled), each with a reason that hides the answer.
    const lies = new Map<string, bigint>();
    for (const reason of ['NO_CONSENSUS', 'INVALID_INPUT', 'QUEUE_TIMEOUT', 'ANSWER_TOO_LARGE']) {
      const { requestNo } = await chain.callLLM({
        prompt: `Mia lost a ${reason}`,
        models: ['stories260K'],
        maxTokens: 12,
      });
      // The watcher admits it first: a request already refunded when its event is read is never computed.
      for (let i = 0; (await fetch(`${net.relay.url}/v1/inference/${id(requestNo)}`)).status !== 200; i++) {
        if (i > 600) throw new Error(`request ${requestNo} was not admitted`);
        await Bun.sleep(50);
      }
      const [, , , , questionHash] = await chain.client.readContract({
        address: chain.oracle,
        abi: synodOracleAbi,
        functionName: 'requests',
        args: [requestNo],
      });
      const hash = await chain.bridge.writeContract({
        address: chain.oracle,
        abi: synodOracleAbi,
        functionName: 'refund',
        args: [requestNo, questionHash, reason],
      });
      expect((await chain.client.waitForTransactionReceipt({ hash })).status).toBe('success');
      lies.set(reason, requestNo);
      // The network answers it all the same: its accepted verdict is at the relay.
      for (let i = 0; (await fetch(`${net.relay.url}/v1/verify/${id(requestNo)}`)).status !== 200; i++) {
        if (i > 600) throw new Error(`request ${requestNo} got no verdict`);
        await Bun.sleep(100);
      }
    }
    const lied = await audit(net.relay.url, ['--from-block', String(fromBlock)]);
    expect(lied.code).toBe(1);
    expect(lied.out).toContain(': 0 hold, 4 do not, 0 not re-derivable');
    expect(lied.out).toContain('refunds (LLMRefunded):  4 audited, 0 hold, 4 do not, 0 not re-derivable');
    const bridge = chain.bridge.account.address.toLowerCase();
    const failure = (reason: string) =>
      `  ${id(lies.get(reason) ?? 0n)}\n    - LLMRefunded ${reason} by ${bridge} (the bridge)`;
    expect(lied.out).toContain(failure('NO_CONSENSUS'));
    expect(lied.out).toMatch(
      /- refunded as NO_CONSENSUS, but its verdict re-derived here is accepted \(3 of 3 sealed members agreed, 2 needed; verdict digest [0-9a-f]{64}\): the network answered and the asker was denied the answer/,
    );
    expect(lied.out).toContain(failure('INVALID_INPUT'));
    expect(lied.out).toContain(
      "- refunded as INVALID_INPUT, but the question asked on chain is valid input: its bytes are UTF-8, and its models and params are within the protocol's limits",
    );
    expect(lied.out).toContain(failure('QUEUE_TIMEOUT'));
    expect(lied.out).toMatch(
      /- refunded as QUEUE_TIMEOUT, but the relay holds an accepted verdict of this question \(verdict digest [0-9a-f]{64}, re-derived here\): an answer existed and was not delivered/,
    );
    // A short answer refunded as too large: its fulfil is estimated on the chain just before the refund.
    expect(lied.out).toContain(failure('ANSWER_TOO_LARGE'));
    expect(lied.out).toMatch(
      /- refunded as ANSWER_TOO_LARGE, but its winning answer \(\d+ bytes, verdict digest [0-9a-f]{64}\) fit: its fulfil needed \d+ gas of the 16777216 a fulfil could use just before the refund/,
    );

    // Had the chain said the answer could not fit, the same refund would hold (a test double of the
    // chain's answer; answer-fit.test.ts checks the real one on anvil).
    const requestNo = lies.get('ANSWER_TOO_LARGE') ?? 0n;
    const [requested] = await chain.client.getContractEvents({
      address: chain.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMRequested',
      args: { requestNo },
      fromBlock,
    });
    if (!requested) throw new Error(`no LLMRequested event for ${requestNo}`);
    const base = {
      relay: net.relay.url,
      requestId: id(requestNo),
      refund: { requestNo, reason: 'ANSWER_TOO_LARGE', txHash: `0x${'00'.repeat(32)}` as Hex },
      sender: bridge as Address,
      byBridge: true,
      asked: askedOf(requested),
      timeoutS: 10,
    };
    const tooLarge = await auditRefund({
      ...base,
      fit: async () => ({ kind: 'too-large', limit: 400_000n, why: 'it needs 450000 gas' }),
    });
    expect(tooLarge.outcome).toBe('holds');
    expect(tooLarge.why[0]).toMatch(/^its winning answer \(\d+ bytes\) does not fit in the 400000 gas/);
    const untold = await auditRefund({
      ...base,
      fit: async () => ({ kind: 'unknown', why: 'state pruned' }),
    });
    expect(untold.outcome).toBe('not-re-derivable');
    expect((await auditRefund(base)).outcome).toBe('not-re-derivable');

    // The QUEUE_TIMEOUT refund, were it anyone's after the deadline rather than the bridge's: mined before
    // the network's answer existed (its last reveal), it withheld nothing; mined after, it did.
    const timedOut = lies.get('QUEUE_TIMEOUT') ?? 0n;
    const held = (await (await fetch(`${net.relay.url}/v1/verify/${id(timedOut)}`)).json()) as {
      transcript: { packets: { type: string; from: string; body: { createdAt: number } }[] };
      verdict: { accepted: { nodeId: string }[] };
    };
    const members = held.verdict.accepted.map((m) => m.nodeId);
    const answeredAt = lastRevealAt(held.transcript, members) ?? 0;
    expect(answeredAt).toBeGreaterThan(0);
    // A reveal the verdict did not count (a node outside the seal, dated years ahead) moves nothing: the
    // relay cannot make its answer look later than it was to excuse a refund.
    const stranger = await NodeKey.fromSeed(new Uint8Array(32).fill(77));
    const reveal = held.transcript.packets.find((p) => p.type === 'reveal');
    if (!reveal) throw new Error('no reveal');
    const late = await signPacket(stranger, 'reveal', {
      ...(reveal.body as unknown as RevealBody),
      createdAt: Date.parse('2030-01-01'),
    });
    expect(lastRevealAt({ packets: [...held.transcript.packets, late] }, members)).toBe(answeredAt);
    // Nor a counted one dated past the reveal window: no later than the seal and its window.
    const seal = held.transcript.packets.find((p) => p.type === 'seal');
    const request = held.transcript.packets.find((p) => p.type === 'request') as unknown as {
      body: { frame: { revealWindowMs: number } };
    };
    const postDated = held.transcript.packets.map((p) =>
      p === reveal ? { ...p, body: { ...p.body, createdAt: Date.parse('2030-01-01') } } : p,
    );
    expect(lastRevealAt({ packets: postDated }, members)).toBe(
      (seal?.body.createdAt ?? 0) + request.body.frame.revealWindowMs,
    );
    const [timedOutAsked] = await chain.client.getContractEvents({
      address: chain.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMRequested',
      args: { requestNo: timedOut },
      fromBlock,
    });
    if (!timedOutAsked) throw new Error(`no LLMRequested event for ${timedOut}`);
    const anyones = {
      ...base,
      asked: askedOf(timedOutAsked),
      requestId: id(timedOut),
      refund: { requestNo: timedOut, reason: 'DEADLINE_PASSED', txHash: `0x${'00'.repeat(32)}` as Hex },
      byBridge: false,
    };
    const before = await auditRefund({ ...anyones, refundedAt: answeredAt - 1_000 });
    expect(before.outcome).toBe('not-re-derivable');
    expect(before.why).toContainEqual(
      expect.stringContaining("the relay's accepted verdict came after the refund"),
    );
    const after = await auditRefund({ ...anyones, refundedAt: answeredAt + 1_000 });
    expect(after.outcome).toBe('fails');
    expect(after.why[0]).toContain('an answer existed and was not delivered');
    // The bridge's, whenever mined: it fails (the relay it speaks for should have waited for the answer).
    const bridges = await auditRefund({ ...anyones, byBridge: true, refundedAt: answeredAt - 1_000 });
    expect(bridges.outcome).toBe('fails');
  }, 120_000);

  test("a DECLINED refund holds on the nodes' signed declines; a relay that hides or alters them is caught", async () => {
    const fromBlock = (await chain.client.getBlockNumber({ cacheTime: 0 })) + 1n;
    const long = 'Once upon a time, there was a little girl who liked to play. '.repeat(300);
    const declined = await askUntilSettled({ prompt: long, models: ['stories260K'] });
    expect(declined.reason).toBe('DECLINED');
    const honest = await audit(net.relay.url, ['--from-block', String(fromBlock), '--json']);
    expect(honest.code).toBe(0);
    const report = JSON.parse(honest.out) as {
      refunds: { items: { requestId: string; outcome: string; why: string[] }[] };
    };
    const item = report.refunds.items.find((i) => i.requestId === id(declined.requestNo));
    expect(item?.outcome).toBe('holds');
    // Nothing on chain anchors a refund's evidence: pinned to another coordinator, its request packet fails.
    const stranger = (await NodeKey.generate()).nodeId;
    const unpinned = await audit(net.relay.url, [
      '--from-block',
      String(fromBlock),
      '--coordinator',
      stranger,
    ]);
    expect(unpinned.code).toBe(1);
    expect(unpinned.out).toContain(
      `COORDINATOR_NOT_PINNED: the request packet the declines name is signed by ${net.relayKey.nodeId}, not by the coordinator pinned by --coordinator (${stranger})`,
    );
    expect(item?.why[0]).toMatch(
      /^3 nodes signed that its prompt does not fit their model's context \(\d+ tokens of stories260K, whose context holds \d+\); whom the relay counted toward its quorum is its own record$/,
    );

    // In front of the real relay: the declines hidden, then one altered.
    const path = `/v1/verify/${id(declined.requestNo)}`;
    let mode: 'hide' | 'alter' = 'hide';
    const lying = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        const p = decodeURIComponent(new URL(req.url).pathname);
        const real = await fetch(`${net.relay.url}${p}`);
        const text = await real.text();
        if (p !== path) return new Response(text, { status: real.status, headers: real.headers });
        const body = JSON.parse(text) as {
          error: { details: { declines: { body: { promptTokens: number } }[] } };
        };
        const declines = body.error.details.declines;
        if (mode === 'hide') body.error.details.declines = [];
        else if (declines[0]) declines[0].body.promptTokens += 1;
        return Response.json(body, { status: real.status });
      },
    });
    try {
      const hidden = await audit(`http://127.0.0.1:${lying.port}`, ['--from-block', String(fromBlock)]);
      expect(hidden.code).toBe(1);
      expect(hidden.out).toContain(
        '- refunded as DECLINED, but 0 nodes signed a decline of it, fewer than its quorum of 3',
      );
      mode = 'alter';
      const altered = await audit(`http://127.0.0.1:${lying.port}`, ['--from-block', String(fromBlock)]);
      expect(altered.code).toBe(1);
      expect(altered.out).toContain('its signature does not verify');
      expect(altered.out).toContain('but 2 nodes signed a decline of it, fewer than its quorum of 3');
    } finally {
      lying.stop(true);
    }
  }, 120_000);

  test('a refund by anyone after the deadline is not re-derivable: named with who sent it, failing nothing', async () => {
    // Anyone may refund after the deadline, with any reason: on an oracle no relay bridges, the asker
    // refunds its own request an hour later. Not re-derivable, named with who sent it; it fails nothing.
    const other = await chain.deployAnother();
    const { requestNo: late } = await chain.callLLM({
      prompt: 'Nobody answers',
      models: ['stories260K'],
      oracle: other,
    });
    await chain.rpc('evm_increaseTime', [3_601]);
    await chain.mine(1);
    const [, , , , lateQuestion] = await chain.client.readContract({
      address: other,
      abi: synodOracleAbi,
      functionName: 'requests',
      args: [late],
    });
    const refundHash = await chain.requester.writeContract({
      address: other,
      abi: synodOracleAbi,
      functionName: 'refund',
      // A stranger's reason holding a terminal's escape sequences (erase the line, go back, write in green).
      args: [late, lateQuestion, 'NO_CONSENSUS\u001b[2K\r\u001b[32mall hold'],
    });
    expect((await chain.client.waitForTransactionReceipt({ hash: refundHash })).status).toBe('success');
    const anyone = await runCommand([
      process.execPath,
      MAIN,
      '--chain',
      chain.anvil.url,
      '--oracle',
      other,
      '--relay',
      net.relay.url,
    ]);
    expect(anyone.code).toBe(0);
    expect(anyone.out).toContain(': 0 hold, 0 do not, 1 not re-derivable');
    // Printed escaped: the report's lines stay the auditor's.
    const shown = 'NO_CONSENSUS\\u001b[2K\\u000d\\u001b[32mall hold';
    expect(anyone.out).toContain(
      `  ${id(late, other)}\n    - LLMRefunded ${shown} by ${chain.requester.account.address.toLowerCase()} (not the bridge), tx ${refundHash}`,
    );
    expect(anyone.out).toContain(
      `${shown} is not re-derivable: refunded by ${chain.requester.account.address.toLowerCase()}, not the bridge; anyone may refund after the deadline, with any reason`,
    );
    expect(anyone.out).not.toContain('\u001b');
    expect(anyone.out).not.toContain('\r');
  }, 120_000);

  test('an --oracle address with no contract code is an error (exit 2), not an audit of nothing', async () => {
    const r = await runCommand([
      process.execPath,
      MAIN,
      '--chain',
      chain.anvil.url,
      '--oracle',
      `0x${'11'.repeat(20)}`,
      '--relay',
      net.relay.url,
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      `--oracle 0x${'11'.repeat(20)} has no contract code on chain ${chain.anvil.chainId}`,
    );
  });

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
