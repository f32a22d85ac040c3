/**
 * A relay over a libSQL server (no replica) while the server is down: every route that needs the
 * database answers 503 STORE_UNAVAILABLE (retryable), not 500 INTERNAL; /metrics still answers, saying
 * the store is unreachable. Against a real sqld, stopped mid-test.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createClient } from '@libsql/client';
import { MemoryNetwork } from '@synod/browser-node';
import { NodeKey } from '@synod/shared';
import { createApiKey } from '../auth/api-keys.ts';
import { openApiDocument } from '../openapi.ts';
import { type RunningRelay, startRelay } from '../runtime/bun.ts';
import { WriteLockTimeoutError } from '../store/serialized-writes.ts';
import { TEST_EMBEDDER } from '../store/test-admissions.ts';
import { type RunningSqld, startSqld, stopProcess } from '../test-servers.ts';
import { toHttpError } from './errors.ts';

let sqld: RunningSqld;
let relay: RunningRelay;
/** The relay's clock runs this far ahead of the real one (to outlive its API-key cache). */
let skewMs = 0;
const key = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
let requestId = '';

beforeAll(async () => {
  sqld = await startSqld();
  const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(5));
  relay = await startRelay({
    dbUrl: sqld.url,
    key: nodeKey,
    transports: [new MemoryNetwork().join(nodeKey.nodeId)],
    embedders: [TEST_EMBEDDER],
    configuredModels: ['m'],
    now: () => Date.now() + skewMs,
  });
  await relay.store.createApiKey({ id: key.id, hash: key.hash, label: 'ops', quotaPerDay: 1000 }, Date.now());
}, 60_000);
afterAll(async () => {
  await relay?.stop();
  await sqld?.stop();
});

const submit = (path: string, body: unknown) =>
  relay.app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key.key}` },
    body: JSON.stringify(body),
  });

describe('a relay whose libSQL server is down', () => {
  test('while it is up, the routes answer', async () => {
    const r = await submit('/v1/inference', { prompt: 'before the outage', models: ['m'] });
    expect(r.status).toBe(202);
    requestId = ((await r.json()) as { requestId: string }).requestId;
    expect((await relay.app.request(`/v1/inference/${requestId}`)).status).toBe(200);
    expect((await relay.app.request('/v1/history')).status).toBe(200);
    const metrics = await relay.app.request('/metrics');
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('\nsynod_store_up 1\n');
  });

  test('each route that needs the database answers 503 STORE_UNAVAILABLE, not 500', async () => {
    await stopProcess(sqld.proc);
    // Past the API-key cache: the key is looked up in the database again.
    skewMs = 60_000;
    const routes: Array<[string, () => Response | Promise<Response>]> = [
      ['POST /v1/inference', () => submit('/v1/inference', { prompt: 'during the outage', models: ['m'] })],
      ['GET /v1/inference/:id', () => relay.app.request(`/v1/inference/${requestId}`)],
      ['GET /v1/history', () => relay.app.request('/v1/history')],
      ['GET /v1/nodes', () => relay.app.request('/v1/nodes')],
      ['GET /v1/verify/:id', () => relay.app.request(`/v1/verify/${requestId}`)],
    ];
    const got: Record<string, unknown> = {};
    for (const [name, call] of routes) {
      const r = await call();
      got[name] = { status: r.status, code: ((await r.json()) as { error?: { code?: string } }).error?.code };
    }
    expect(got).toEqual(
      Object.fromEntries(routes.map(([name]) => [name, { status: 503, code: 'STORE_UNAVAILABLE' }])),
    );
    // And /openapi.json declares it on each (a client generated from it knows the answer).
    const doc = openApiDocument('test') as { paths: Record<string, Record<string, { responses: object }>> };
    for (const [name] of routes) {
      const [method = '', path = ''] = name.split(' ');
      const declared = doc.paths[path.replace(':id', '{id}')]?.[method.toLowerCase()]?.responses ?? {};
      expect([name, Object.keys(declared)]).toEqual([name, expect.arrayContaining(['503'])]);
    }
    // The reason is the connection's, not the failed query's (its SQL and arguments stay in the relay).
    const reason = (
      (await (await relay.app.request('/v1/history')).json()) as {
        error: { details: { reason: string } };
      }
    ).error.details.reason;
    expect(reason).toContain('ECONNREFUSED');
    expect(reason).not.toMatch(/query|select/i);
  }, 30_000);

  test('chat completions answer in OpenAI shape, and say a retry may help', async () => {
    const r = await submit('/v1/chat/completions', {
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(r.status).toBe(503);
    expect(r.headers.get('x-should-retry')).toBeNull();
    expect(await r.json()).toMatchObject({
      error: { type: 'server_error', code: 'STORE_UNAVAILABLE', param: null },
    });
  });

  test('/metrics still answers, with a gauge saying the store is unreachable', async () => {
    const r = await relay.app.request('/metrics');
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(text).toContain('\nsynod_store_up 0\n');
    expect(text).toContain('synod_http_requests_total');
  });

  test('/healthz says the database is down', async () => {
    const r = await relay.app.request('/healthz');
    expect(r.status).toBe(503);
    expect(((await r.json()) as { db: boolean }).db).toBe(false);
  });
});

/** What a libSQL client throws for one query to a server at `url` (an HTTP server of the test's own). */
async function thrownBy(respond: () => Response | Promise<Response>): Promise<unknown> {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: respond });
  const client = createClient({ url: `http://127.0.0.1:${server.port}` });
  try {
    await client.execute('SELECT 1');
    throw new Error('the query succeeded');
  } catch (e) {
    return e;
  } finally {
    client.close();
    await server.stop(true);
  }
}

const code = (e: unknown) => {
  const h = toHttpError(e);
  return `${h.status} ${h.code}`;
};

describe('which errors say the database could not be reached', () => {
  test('a libSQL server (or a proxy before it) answering 5xx, 408 or 429: 503', async () => {
    for (const status of [500, 502, 503, 504, 408, 429]) {
      const e = await thrownBy(() => new Response('unavailable', { status }));
      expect({ status, got: code(e) }).toEqual({ status, got: '503 STORE_UNAVAILABLE' });
    }
  });

  test("Node's fetch failing to connect, and a timeout: 503", () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    expect(code(new TypeError('fetch failed', { cause: refused }))).toBe('503 STORE_UNAVAILABLE');
    expect(code(new TypeError('fetch failed'))).toBe('503 STORE_UNAVAILABLE');
    expect(code(new DOMException('The operation timed out.', 'TimeoutError'))).toBe('503 STORE_UNAVAILABLE');
  });

  test("an embedded replica whose primary is out of reach or too busy (libsql's messages, no code): 503", () => {
    for (const message of [
      'sync error: error trying to connect: tcp connect error: Connection refused (os error 111)',
      'WriteDelegation(status: Unavailable, message: "error trying to connect: tcp connect error: Connection refused (os error 111)", details: [], metadata: MetadataMap { headers: {} })',
      'WriteDelegation(status: Internal, message: "Timed out while opening database connection", details: [], metadata: MetadataMap { headers: {} })',
      // A write whose read-back found the server's log compacted under it (the write itself committed).
      'Replication(Client(Status { code: Unavailable, message: "snapshot not found", source: None }))',
    ]) {
      expect({ message, got: code(new Error(message)) }).toEqual({ message, got: '503 STORE_UNAVAILABLE' });
      // Wrapped, as drizzle wraps a query's error.
      expect(code(new Error('Failed query', { cause: new Error(message) }))).toBe('503 STORE_UNAVAILABLE');
    }
    // Another internal error of the primary is not an outage.
    expect(code(new Error('WriteDelegation(status: Internal, message: "no such table: x")'))).toBe(
      '500 INTERNAL',
    );
  });

  test('a write that waited too long for the write lock (WRITE_LOCK_TIMEOUT): 503', () => {
    expect(code(new WriteLockTimeoutError(30_000))).toBe('503 STORE_UNAVAILABLE');
    // Wrapped, as drizzle wraps a query's error in its own.
    expect(code(new Error('Failed query', { cause: new WriteLockTimeoutError(30_000) }))).toBe(
      '503 STORE_UNAVAILABLE',
    );
  });

  test('a server that answered (refused credentials, an SQL error) and a bug: 500, as before', async () => {
    expect(code(await thrownBy(() => new Response('unauthorized', { status: 401 })))).toBe('500 INTERNAL');
    const file = createClient({ url: ':memory:' });
    const sqlError = await file.execute('SELECT * FROM no_such_table').catch((e: unknown) => e);
    file.close();
    expect(code(sqlError)).toBe('500 INTERNAL');
    expect(code(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBe('500 INTERNAL');
    const badCertificate = new Error('unable to verify the first certificate');
    expect(code(new TypeError('fetch failed', { cause: badCertificate }))).toBe('500 INTERNAL');
  });
});
