/**
 * The relay on workerd, for real: edge/src/runtime/workerd.ts bundled and run by miniflare (the npm
 * `workerd` binary), libSQL served by a real sqld on 127.0.0.1, and a Bun gateway relay (with real
 * serving nodes on an in-memory network) over the same sqld. Requests enter through workerd; the
 * gateway signs, stores and coordinates them; workerd serves the verdict from the shared history.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createClient } from '@libsql/client';
import { synodOracleAbi } from '@synod/contracts/abi';
import { historySchema } from '@synod/shared/history';
import { drizzle } from 'drizzle-orm/libsql';
import { createApiKey } from '../edge/src/auth/api-keys.ts';
import { ChainStore } from '../edge/src/chain/chain-store.ts';
import { startTestChain, type TestChain } from '../edge/src/chain/chain-test-helpers.ts';
import { STREAMS_PER_ADDRESS } from '../edge/src/http/stream-slots.ts';
import { DEFAULT_MAX_QUEUED } from '../edge/src/relay/dispatcher.ts';
import { GATEWAY_SECRET_HEADER, type GatewayStatus } from '../edge/src/routes/internal.ts';
import type { WorkerEnv } from '../edge/src/runtime/workerd.ts';
import { HistoryStore } from '../edge/src/store/history-store.ts';
import { IntakeStore } from '../edge/src/store/intake-store.ts';
import { startTestNetwork, type TestNetwork } from '../edge/src/test-helpers.ts';
import {
  bundleWorker,
  freePort,
  type RunningSqld,
  type RunningWorker,
  startSqld,
  startWorker,
  waitUntil,
} from '../edge/src/test-servers.ts';
import { findRequest } from '../edge/src/views.ts';

const SECRET = 'test-gateway-secret-0123456789';

let sqld: RunningSqld | undefined;
let t: TestNetwork | undefined;
let worker: RunningWorker | undefined;
let chain: TestChain | undefined;

beforeAll(async () => {
  sqld = await startSqld();
  chain = await startTestChain();
  t = await startTestNetwork({ dbUrl: sqld.url, gatewaySecret: SECRET });
  worker = await startWorker({
    SYNOD_DB_URL: sqld.url,
    SYNOD_GATEWAY_URL: t.relay.url,
    SYNOD_GATEWAY_SECRET: SECRET,
    SYNOD_CHAIN_RPC: chain.anvil.url,
    SYNOD_CHAIN_ID: String(chain.anvil.chainId),
    SYNOD_ORACLE: chain.oracle,
    SYNOD_BRIDGE_KEY: chain.bridgeKey,
  });
}, 180_000);

afterAll(async () => {
  for (const stop of [() => worker?.stop(), () => t?.close(), () => sqld?.stop(), () => chain?.stop()]) {
    try {
      await stop();
    } catch (e) {
      console.error('cleanup failed', e);
    }
  }
}, 60_000);

const w = (path: string, init?: RequestInit) => fetch(`${worker?.url}${path}`, init);
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  w(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${t?.apiKey}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

async function waitForTerminal(id: string): Promise<Record<string, unknown> & { status: string }> {
  let view: (Record<string, unknown> & { status: string }) | undefined;
  await waitUntil(
    `request ${id} reaches a terminal status through workerd`,
    async () => {
      const r = await w(`/v1/inference/${id}`);
      view = (await r.json()) as Record<string, unknown> & { status: string };
      return ['verdict', 'no-consensus', 'expired', 'failed'].includes(view.status);
    },
    90_000,
    100,
  );
  if (!view) throw new Error('no view');
  return view;
}

describe('the relay on workerd (miniflare) over sqld, forwarding to a Bun gateway', () => {
  test('/healthz reports the database and the gateway', async () => {
    const r = await w('/healthz');
    expect(r.status).toBe(200);
    const j = (await r.json()) as {
      ok: boolean;
      db: boolean;
      coordinator: string;
      network: { detail: { mode: string } };
    };
    expect(j.ok).toBe(true);
    expect(j.db).toBe(true);
    expect(j.coordinator).toBe(t?.relay.network.coordinatorId ?? 'x');
    expect(j.network.detail.mode).toBe('gateway');
  });

  test('GET /v1/models lists the gateway models; /openapi.json is served as under Bun', async () => {
    const j = (await (await w('/v1/models')).json()) as { data: { id: string }[] };
    expect(j.data.map((m) => m.id)).toContain('stories260K');
    const doc = (await (await w('/openapi.json')).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toContain('/v1/chat/completions');
  });

  test('POST /v1/inference through workerd -> 202; the verdict and its proof are read back through workerd', async () => {
    const r = await post('/v1/inference', { prompt: 'Once upon a time', params: { maxTokens: 24 } });
    expect(r.status).toBe(202);
    const { requestId } = (await r.json()) as { requestId: string };
    expect(requestId).toMatch(/^[0-9a-f]{64}$/);
    // Stored in sqld before the 2xx (admission log or, once dispatched, history): the gateway sees it.
    if (!t) throw new Error('no network');
    expect(await findRequest(t.relay.store, t.relay.intake, requestId)).toBeTruthy();

    const view = await waitForTerminal(requestId);
    expect(view.status).toBe('verdict');
    const verdict = view['verdict'] as { verdictDigest: string; winner: { output: string } };
    expect(verdict.winner.output.length).toBeGreaterThan(0);
    expect((view['commits'] as unknown[]).length).toBe(3);

    const v = await w(`/v1/verify/${requestId}`);
    expect(v.status).toBe(200);
    const check = (await v.json()) as { ok: boolean; verdictDigest: string; transcript: unknown };
    expect(check.ok).toBe(true);
    expect(check.verdictDigest).toBe(verdict.verdictDigest);

    // The public verifier on workerd recomputes the transcript it was handed.
    const again = await w('/v1/verify', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ transcript: check.transcript, expectedVerdictDigest: check.verdictDigest }),
    });
    expect(again.status).toBe(200);

    const h = (await (await w('/v1/history?status=verdict')).json()) as { items: { requestId: string }[] };
    expect(h.items.map((i) => i.requestId)).toContain(requestId);
  }, 120_000);

  test('chat completions through workerd wait (by polling) for the verdict', async () => {
    const r = await post('/v1/chat/completions', {
      model: 'stories260K',
      messages: [{ role: 'user', content: 'The little cat' }],
      max_tokens: 16,
    });
    expect(r.status).toBe(200);
    const j = (await r.json()) as {
      choices: { message: { content: string } }[];
      synod: { requestId: string; verdictDigest: string };
    };
    const stored = await t?.relay.store.getRequest(j.synod.requestId);
    expect(j.choices[0]?.message.content).toBe(stored?.verdict?.packet.body.verdict.winner?.output ?? 'x');
    expect(j.synod.verdictDigest).toBe(stored?.verdict?.packet.body.verdictDigest ?? 'x');
  }, 120_000);

  test('Idempotency-Key through workerd replays the same request', async () => {
    const body = { prompt: 'Tim and Sue', params: { maxTokens: 8 } };
    const a = await post('/v1/inference', body, { 'idempotency-key': 'wk-1' });
    const b = await post('/v1/inference', body, { 'idempotency-key': 'wk-1' });
    expect(a.status).toBe(202);
    expect(b.status).toBe(200);
    const ja = (await a.json()) as { requestId: string };
    const jb = (await b.json()) as { requestId: string; replayed: boolean };
    expect(jb).toMatchObject({ requestId: ja.requestId, replayed: true });
    const c = await post('/v1/inference', { prompt: 'other' }, { 'idempotency-key': 'wk-1' });
    expect(c.status).toBe(409);
    await waitForTerminal(ja.requestId);

    // The cron trigger forgets keys past their retention (24 h): made to look 25 h old, the key goes,
    // and the same key then makes a new request.
    if (!t || !worker) throw new Error('no network');
    const old = Date.now() - 25 * 60 * 60 * 1000;
    await t.relay.client.execute({
      sql: "UPDATE idempotency SET created_at = ? WHERE idempotency_key = 'wk-1'",
      args: [old],
    });
    expect((await worker.scheduled()).outcome).toBe('ok');
    const keys = await t.relay.client.execute(
      "SELECT count(*) AS n FROM idempotency WHERE idempotency_key = 'wk-1'",
    );
    expect(Number(keys.rows[0]?.['n'])).toBe(0);
    const d = await post('/v1/inference', body, { 'idempotency-key': 'wk-1' });
    expect(d.status).toBe(202);
    const jd = (await d.json()) as { requestId: string; replayed: boolean };
    expect(jd.replayed).toBe(false);
    expect(jd.requestId).not.toBe(ja.requestId);
    await waitForTerminal(jd.requestId);
  }, 120_000);

  test('bad input gets a typed 4xx through workerd and stores nothing', async () => {
    const stored = async () => {
      if (!t) throw new Error('no network');
      const c = await t.relay.store.counts();
      return Object.values(c).reduce((a, b) => a + b, 0) + (await t.relay.intake.count());
    };
    const before = await stored();
    const cases: [Promise<Response>, number, string][] = [
      [post('/v1/inference', { prompt: 'x', params: { temperature: 9 } }), 400, ''],
      [post('/v1/inference', { prompt: 'x', models: ['no-such-model'] }), 400, 'UNKNOWN_MODEL'],
      [post('/v1/inference', '{not json'), 400, 'BAD_JSON'],
      [
        w('/v1/inference', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"prompt":"x"}',
        }),
        401,
        'UNAUTHENTICATED',
      ],
      [w('/v1/inference/not-an-id'), 400, 'INVALID_INPUT'],
      [w(`/v1/inference/${'0'.repeat(64)}`), 404, 'NOT_FOUND'],
    ];
    for (const [p, status, code] of cases) {
      const r = await p;
      expect(r.status).toBe(status);
      const j = (await r.json()) as { error: { code: string } };
      if (code) expect(j.error.code).toBe(code);
      else expect(j.error.code.length).toBeGreaterThan(0);
    }
    expect(await stored()).toBe(before);
  });

  test("the gateway's internal routes refuse callers without the secret, and give those with it the status and queue", async () => {
    const gw = t?.relay.url;
    const none = await fetch(`${gw}/internal/v1/status`);
    expect(none.status).toBe(401);
    // With the secret: the status edge relays build their app from, and shed load by.
    const read = await fetch(`${gw}/internal/v1/status`, { headers: { [GATEWAY_SECRET_HEADER]: SECRET } });
    expect(read.status).toBe(200);
    const status = (await read.json()) as GatewayStatus;
    expect(status.coordinatorId).toBe(t?.relay.network.coordinatorId as string);
    expect(status.queue).toEqual({ queued: expect.any(Number), limit: DEFAULT_MAX_QUEUED });
    const wrong = await fetch(`${gw}/internal/v1/wake`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [GATEWAY_SECRET_HEADER]: 'wrong-secret-wrong-secret' },
      body: '{"requestIds":[]}',
    });
    expect(wrong.status).toBe(403);
    const bad = await fetch(`${gw}/internal/v1/wake`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [GATEWAY_SECRET_HEADER]: SECRET },
      body: '{"requestIds":["not an id"]}',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('INVALID_INPUT');
    const ok = await fetch(`${gw}/internal/v1/wake`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [GATEWAY_SECRET_HEADER]: SECRET },
      body: JSON.stringify({ requestIds: ['a'.repeat(64)] }),
    });
    expect(ok.status).toBe(200);
  });

  test("a quorum larger than the gateway's nodes is refused through workerd as by the gateway: 503 QUORUM_UNAVAILABLE, nothing stored or charged", async () => {
    if (!t) throw new Error('not started');
    const net = t;
    // The gateway says nothing of its nodes in its first 20 s (a node connected may not have been heard).
    let status: GatewayStatus | undefined;
    await waitUntil(
      'the gateway publishes its nodes',
      async () => {
        const r = await fetch(`${net.relay.url}/internal/v1/status`, {
          headers: { [GATEWAY_SECRET_HEADER]: SECRET },
        });
        status = (await r.json()) as GatewayStatus;
        return Array.isArray(status.serving);
      },
      40_000,
      250,
    );
    expect(status?.serving).toEqual([
      { models: ['stories260K'], embedders: [net.servings[0]?.embedder.id ?? ''], able: 3, paused: 0 },
    ]);
    const stored = async () =>
      Object.values(await net.relay.store.counts()).reduce((a, b) => a + b, 0) +
      (await net.relay.intake.count());
    const before = await stored();
    const r = await post('/v1/inference', { prompt: 'Once upon a time', frame: { quorum: 5 } });
    expect(r.status).toBe(503);
    expect(await r.json()).toMatchObject({
      error: { code: 'QUORUM_UNAVAILABLE', details: { quorum: 5, serving: 3 } },
    });
    expect(await stored()).toBe(before);
  }, 60_000);

  test('the cron trigger bridges SynodOracle: callLLM is coordinated by the gateway and fulfilled once', async () => {
    if (!chain || !worker || !t) throw new Error('not started');
    const c = chain;
    const { requestNo } = await c.callLLM({ prompt: 'Once upon a time', models: ['stories260K'] });
    const requestId = `${c.anvil.chainId}:${c.oracle.toLowerCase()}:${requestNo}`;
    await c.mine(2);
    const onChain = async () => (await c.request(requestNo)).status;
    const worker_ = worker;
    await waitUntil(
      'fulfilled on chain by the scheduled handler',
      async () => {
        expect((await worker_.scheduled()).outcome).toBe('ok');
        return (await onChain()) === 2;
      },
      90_000,
      200,
    );
    const view = (await (await w(`/v1/inference/${requestId}`)).json()) as {
      status: string;
      coordinator: string;
      verdict: { winner: { output: string } };
    };
    expect(view.status).toBe('verdict');
    expect(view.coordinator).toBe(t.relay.node.nodeId);
    const [event] = await c.client.getContractEvents({
      address: c.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMFulfilled',
      args: { requestNo },
      fromBlock: 0n,
    });
    expect(event?.args.answer).toBe(view.verdict.winner.output);
    // Two blocks on, the next run records the settlement; later runs send nothing more.
    await c.mine(2);
    await worker_.scheduled();
    const store = new ChainStore(t.relay.store.db);
    expect((await store.byRequestId(requestId))?.status).toBe('fulfilled');
    await worker_.scheduled();
    const all = await c.client.getContractEvents({
      address: c.oracle,
      abi: synodOracleAbi,
      eventName: 'LLMFulfilled',
      fromBlock: 0n,
    });
    expect(all).toHaveLength(1);
  }, 120_000);
});

/** The worker's bundle (built once) served by miniflare with `env`, for one configuration under test. */
let bundled: { dir: string; script: string } | undefined;
async function withWorker<T>(
  env: WorkerEnv,
  run: (url: string, scheduled: () => Promise<string>) => Promise<T>,
): Promise<T> {
  if (!bundled) {
    const dir = mkdtempSync(join(tmpdir(), 'synod-worker-variant-'));
    bundled = { dir, script: await bundleWorker(dir) };
  }
  const { Miniflare } = await import('miniflare');
  const mf = new Miniflare({
    modules: true,
    scriptPath: bundled.script,
    modulesRoot: bundled.dir,
    compatibilityDate: '2025-07-18',
    bindings: Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as Record<
      string,
      string
    >,
    host: '127.0.0.1',
    // Picked by workerd as it binds (a port picked free before can be taken meanwhile, as an outgoing
    // connection's local port: "Address already in use", seen once in CI).
    port: 0,
  });
  // Miniflare's Fetcher (workers-types, not installed here): `scheduled` runs the cron handler.
  const scheduled = async () => {
    const w = (await mf.getWorker()) as unknown as {
      scheduled(o: { cron: string }): Promise<{ outcome: string }>;
    };
    return (await w.scheduled({ cron: '* * * * *' })).outcome;
  };
  try {
    return await run((await mf.ready).toString().replace(/\/$/, ''), scheduled);
  } finally {
    await mf.dispose();
  }
}

afterAll(() => {
  if (bundled) rmSync(bundled.dir, { recursive: true, force: true });
});

describe('the worker misconfigured or cut off: typed errors that name the cause', () => {
  const chat = (url: string) =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t?.apiKey}` },
      body: JSON.stringify({ model: 'synod', messages: [{ role: 'user', content: 'hi' }] }),
    });
  const env = (): WorkerEnv => ({
    SYNOD_DB_URL: sqld?.url as string,
    SYNOD_GATEWAY_URL: t?.relay.url as string,
    SYNOD_GATEWAY_SECRET: SECRET,
  });

  test('a SYNOD_DB_URL libSQL over HTTP cannot use is a 500 naming it (an uncaught exception before)', async () => {
    for (const bad of ['file:relay.db', '127.0.0.1:8080']) {
      await withWorker({ ...env(), SYNOD_DB_URL: bad }, async (url) => {
        const r = await fetch(`${url}/healthz`);
        expect(r.status).toBe(500);
        expect(r.headers.get('content-type')).toContain('application/json');
        const j = (await r.json()) as { error: { code: string; message: string; hint: string } };
        expect(j.error.code).toBe('INTERNAL');
        expect(j.error.message).toStartWith('SYNOD_DB_URL: ');
        expect(j.error.hint).toContain('http://HOST:PORT');
        // OpenAI's shape on /v1/chat/*, as the app answers there.
        const c = await chat(url);
        expect(c.status).toBe(500);
        const cj = (await c.json()) as { error: { type: string; code: string; message: string } };
        expect(cj.error).toMatchObject({ type: 'server_error', code: 'INTERNAL' });
        expect(cj.error.message).toStartWith('SYNOD_DB_URL: ');
      });
    }
  }, 60_000);

  test('SYNOD_GATEWAY_URL that is no http(s) URL, and a missing secret, are 500s saying what to set', async () => {
    await withWorker({ ...env(), SYNOD_GATEWAY_URL: '127.0.0.1:8787' }, async (url) => {
      const r = await fetch(`${url}/v1/models`);
      expect(r.status).toBe(500);
      const j = (await r.json()) as { error: { code: string; message: string; type: string } };
      expect(j.error).toMatchObject({ code: 'INTERNAL', type: 'server_error' });
      expect(j.error.message).toContain('SYNOD_GATEWAY_URL');
    });
    const { SYNOD_GATEWAY_SECRET: _, ...noSecret } = env();
    await withWorker(noSecret, async (url) => {
      const j = (await (await fetch(`${url}/healthz`)).json()) as {
        error: { message: string; hint: string };
      };
      expect(j.error.message).toBe('SYNOD_GATEWAY_SECRET is not set');
      expect(j.error.hint).toContain('wrangler secret put SYNOD_GATEWAY_SECRET');
    });
  }, 60_000);

  test('SYNOD_SIGNED_QUOTA that is not a whole number is a 500 naming it; empty is the default', async () => {
    await withWorker({ ...env(), SYNOD_SIGNED_QUOTA: 'lots' }, async (url) => {
      const r = await fetch(`${url}/healthz`);
      expect(r.status).toBe(500);
      expect(((await r.json()) as { error: { message: string } }).error.message).toContain(
        'SYNOD_SIGNED_QUOTA',
      );
    });
    await withWorker({ ...env(), SYNOD_SIGNED_QUOTA: '' }, async (url) => {
      expect((await fetch(`${url}/healthz`)).status).not.toBe(500);
    });
  }, 60_000);

  test('an unreachable database is 503 STORE_UNAVAILABLE (retryable), in OpenAI shape on chat, readable from an allowed page', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const page = 'https://app.example';
    await withWorker({ ...env(), SYNOD_DB_URL: closed, SYNOD_CORS_ORIGINS: page }, async (url) => {
      const fromPage = await fetch(`${url}/v1/models`, { headers: { origin: page } });
      expect(fromPage.status).toBe(503);
      expect(fromPage.headers.get('access-control-allow-origin')).toBe(page);
      expect(fromPage.headers.get('access-control-expose-headers')).toContain('retry-after');
      const r = await fetch(`${url}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t?.apiKey}` },
        body: '{"prompt":"x"}',
      });
      expect(r.status).toBe(503);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('STORE_UNAVAILABLE');
      const c = await chat(url);
      expect(c.status).toBe(503);
      expect(c.headers.get('x-should-retry')).toBeNull();
      expect(((await c.json()) as { error: { type: string; code: string } }).error).toMatchObject({
        type: 'server_error',
        code: 'STORE_UNAVAILABLE',
      });
    });
  }, 60_000);

  test("a gateway that dispatches from another database than the worker's: requests refused, /healthz 503 naming it, nothing stored or charged", async () => {
    const other = await startSqld();
    try {
      await withWorker({ ...env(), SYNOD_DB_URL: other.url }, async (url) => {
        // Its own database migrated and holding a key of its own, as an operator would set it up.
        const health = await fetch(`${url}/healthz`);
        expect(health.status).toBe(503);
        const h = (await health.json()) as { network: { ok: boolean; detail: Record<string, unknown> } };
        expect(h.network.ok).toBe(false);
        // The gateway's status names its database's identity, not this one's: said at once.
        expect(h.network.detail).toMatchObject({
          reason: 'GATEWAY_NOT_ON_THIS_DATABASE',
          coordinator: t?.relay.network.coordinatorId,
          databaseId: expect.stringMatching(/^[0-9a-f]{32}$/),
          gatewayDatabaseId: expect.stringMatching(/^[0-9a-f]{32}$/),
          hint: expect.stringContaining('--db'),
        });
        expect(h.network.detail['databaseId']).not.toBe(h.network.detail['gatewayDatabaseId']);
        const c = createClient({ url: other.url });
        try {
          // A gateway that ran over this database once and stopped cleanly before it moved left its lease
          // released here, which says nothing of where it is now: still refused, by the identity.
          await c.execute({
            sql: 'INSERT INTO coordinator_leases (coordinator, renewed_at) VALUES (?, 0)',
            args: [t?.relay.network.coordinatorId as string],
          });
          const store = new HistoryStore(drizzle(c, { schema: historySchema }));
          const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
          await store.createApiKey({ id: k.id, hash: k.hash, label: 'other', quotaPerDay: 10 }, Date.now());
          const r = await fetch(`${url}/v1/inference`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${k.key}` },
            body: JSON.stringify({ prompt: 'Once upon a time', params: { maxTokens: 8 } }),
          });
          expect(r.status).toBe(503);
          expect(await r.json()).toMatchObject({
            error: {
              code: 'NETWORK_UNAVAILABLE',
              message: "the gateway relay dispatches from another database than this relay's",
              details: { reason: 'GATEWAY_NOT_ON_THIS_DATABASE' },
            },
          });
          const queued = await c.execute('SELECT count(*) AS n FROM request_intake');
          expect(Number(queued.rows[0]?.['n'])).toBe(0);
          const used = await c.execute('SELECT coalesce(sum(count), 0) AS n FROM usage');
          expect(Number(used.rows[0]?.['n'])).toBe(0);
        } finally {
          c.close();
        }
      });
    } finally {
      await other.stop();
    }
  }, 90_000);

  test('a wrong SYNOD_GATEWAY_SECRET is named as such, not as an unreachable gateway', async () => {
    await withWorker({ ...env(), SYNOD_GATEWAY_SECRET: 'not-the-gateway-secret-0123' }, async (url) => {
      const r = await fetch(`${url}/v1/models`);
      expect(r.status).toBe(503);
      const j = (await r.json()) as { error: { code: string; message: string } };
      expect(j.error.code).toBe('NETWORK_UNAVAILABLE');
      expect(j.error.message).toContain('refused');
      expect(j.error.message).toContain('secret');
    });
  }, 60_000);

  test('a gateway slow to answer wakes does not hold the 202: the wake is sent after it', async () => {
    // In front of the gateway: everything passes but the wake, which hangs (past the 10 s call timeout).
    const upstream = t?.relay.url as string;
    const slow = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      idleTimeout: 0,
      async fetch(req) {
        const u = new URL(req.url);
        if (u.pathname === '/internal/v1/wake') await Bun.sleep(15_000);
        return fetch(`${upstream}${u.pathname}${u.search}`, {
          method: req.method,
          headers: req.headers,
          ...(req.method === 'GET' ? {} : { body: await req.arrayBuffer() }),
        });
      },
    });
    try {
      await withWorker({ ...env(), SYNOD_GATEWAY_URL: `http://127.0.0.1:${slow.port}` }, async (url) => {
        const started = Date.now();
        const r = await fetch(`${url}/v1/inference`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${t?.apiKey}` },
          body: JSON.stringify({ prompt: 'A slow wake', params: { maxTokens: 8 } }),
        });
        expect(r.status).toBe(202);
        expect(Date.now() - started).toBeLessThan(5_000);
        // The gateway polls its log: the request is coordinated all the same.
        const { requestId } = (await r.json()) as { requestId: string };
        expect((await waitForTerminal(requestId)).status).toBe('verdict');
      });
    } finally {
      slow.stop(true);
    }
  }, 120_000);

  test('`wrangler dev` does not listen on the port the gateway relay takes by default', async () => {
    const toml = await Bun.file(resolve(import.meta.dir, '../wrangler.toml')).text();
    const devPort = Number(/\[dev\][^[]*?\bport\s*=\s*(\d+)/.exec(toml)?.[1] ?? 8787); // wrangler's default
    const gatewayPort = Number(new URL(/SYNOD_GATEWAY_URL\s*=\s*"([^"]+)"/.exec(toml)?.[1] ?? '').port);
    expect(gatewayPort).toBe(8787); // the Bun relay's default --port
    expect(devPort).not.toBe(gatewayPort);
    expect(/\[dev\][^[]*?\bip\s*=\s*"127\.0\.0\.1"/.test(toml)).toBe(true);
  });
});

describe('event streams on workerd, whose clients leave', () => {
  const env = (): WorkerEnv => ({
    SYNOD_DB_URL: sqld?.url as string,
    SYNOD_GATEWAY_URL: t?.relay.url as string,
    SYNOD_GATEWAY_SECRET: SECRET,
  });

  test('streams whose clients left give their slots back: the address is not refused streams for good', async () => {
    // A gateway whose status names a coordinator nobody runs: a request admitted for it stays queued, so
    // its event stream stays open (a finished one would end, and give its slot back, by itself).
    const upstream = t?.relay.url as string;
    const phantom = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        const u = new URL(req.url);
        if (u.pathname === '/internal/v1/wake') return Response.json({ ok: true });
        const r = await fetch(`${upstream}${u.pathname}${u.search}`, { headers: req.headers });
        if (u.pathname !== '/internal/v1/status') return r;
        return Response.json({ ...((await r.json()) as GatewayStatus), coordinatorId: 'ab'.repeat(32) });
      },
    });
    const address = { 'cf-connecting-ip': '203.0.113.7' };
    // The phantom coordinator renews a lease in the database, as a gateway dispatching from it does (the
    // worker admits nothing for a coordinator that holds none), so its rows are not taken over either.
    const leases = createClient({ url: sqld?.url as string });
    const intake = new IntakeStore(leases);
    await intake.renewLease('ab'.repeat(32));
    const renewing = setInterval(() => void intake.renewLease('ab'.repeat(32)).catch(() => undefined), 2_000);
    try {
      await withWorker({ ...env(), SYNOD_GATEWAY_URL: `http://127.0.0.1:${phantom.port}` }, async (url) => {
        const r = await fetch(`${url}/v1/inference`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${t?.apiKey}` },
          body: JSON.stringify({ prompt: 'Nobody coordinates this', params: { maxTokens: 8 } }),
        });
        expect(r.status).toBe(202);
        const { requestId } = (await r.json()) as { requestId: string };
        const open = () =>
          fetch(`${url}/v1/inference/${requestId}/events`, {
            headers: address,
            signal: AbortSignal.timeout(10_000),
          });
        // More streams than one address may hold at once, each read to its first event and dropped: the
        // last ones are refused while the others' slots are still held.
        const statuses: number[] = [];
        for (let i = 0; i < STREAMS_PER_ADDRESS + 2; i++) {
          const ac = new AbortController();
          const s = await fetch(`${url}/v1/inference/${requestId}/events`, {
            headers: address,
            signal: ac.signal,
          });
          statuses.push(s.status);
          if (s.status === 200) await s.body?.getReader().read();
          else await s.body?.cancel();
          ac.abort();
        }
        expect(statuses.filter((s) => s === 200).length).toBe(STREAMS_PER_ADDRESS);
        expect(statuses.slice(STREAMS_PER_ADDRESS)).toEqual([429, 429]);
        // workerd drops a request's I/O once its client is gone; the slots must come back all the same.
        await waitUntil(
          'a new stream from the address that dropped its streams is served',
          async () => {
            const s = await open();
            await s.body?.cancel();
            return s.status === 200;
          },
          30_000,
          1_000,
        );
      });
    } finally {
      clearInterval(renewing);
      await intake.releaseLease('ab'.repeat(32));
      leases.close();
      phantom.stop(true);
    }
  }, 90_000);
});

describe('the chain bridge on workerd while the gateway is away', () => {
  test('a chain pass that cannot reach the gateway refunds nothing: the request is answered by a later pass', async () => {
    if (!chain || !worker || !sqld) throw new Error('not started');
    const c = chain;
    const { requestNo } = await c.callLLM({ prompt: 'While the gateway is away', models: ['stories260K'] });
    await c.mine(2);
    const onChain = async () => (await c.request(requestNo)).status;
    const away: WorkerEnv = {
      SYNOD_DB_URL: sqld.url,
      SYNOD_GATEWAY_URL: `http://127.0.0.1:${await freePort()}`,
      SYNOD_GATEWAY_SECRET: SECRET,
      SYNOD_CHAIN_RPC: c.anvil.url,
      SYNOD_CHAIN_ID: String(c.anvil.chainId),
      SYNOD_ORACLE: c.oracle,
      SYNOD_BRIDGE_KEY: c.bridgeKey,
    };
    await withWorker(away, async (_url, scheduled) => {
      expect(await scheduled()).toBe('ok');
      await c.mine(2);
      expect(await scheduled()).toBe('ok');
    });
    await c.mine(2);
    expect(await onChain()).toBe(1); // pending: not refunded for a gateway that was away
    const worker_ = worker;
    await waitUntil(
      'fulfilled on chain once a pass reaches the gateway',
      async () => {
        expect((await worker_.scheduled()).outcome).toBe('ok');
        return (await onChain()) === 2;
      },
      90_000,
      200,
    );
  }, 150_000);
});
