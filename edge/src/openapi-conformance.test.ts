/**
 * The OpenAPI document (`GET /openapi.json`) against the real relay: every documented route is called
 * over HTTP with good and bad input, and each answer is held to what the document declares for its route
 * and status: the status itself, the content type, the headers it names (and the API's own headers the
 * relay sends, which it must name), and the JSON body, checked with ajv against the response's schema
 * (JSON Schema 2020-12, as OpenAPI 3.1 uses). A client generated from the document then reads every
 * answer the relay gives. Real relays throughout: one with a serving node (verdicts), one that queues
 * everything (its bound reached), one with a tight rate limit.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiKey } from './auth/api-keys.ts';
import { revokeApiKey } from './auth/key-admin.ts';
import { utcDay } from './http/auth.ts';
import { STREAMS_PER_ADDRESS } from './http/stream-slots.ts';
import { openApiDocument } from './openapi.ts';
import type { RunningRelay } from './runtime/bun.ts';
import { startTestNetwork, type TestNetwork, waitForStatus } from './test-helpers.ts';
import { type Answer, type Doc, mismatches } from './test-openapi-check.ts';
import { loneRelay } from './test-relay.ts';

async function answer(r: Response | Promise<Response>): Promise<Answer> {
  const res = await r;
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Calls made to one relay, and every way their answers disagree with its document. */
class Probe {
  readonly found: string[] = [];
  constructor(
    readonly doc: Doc,
    readonly call: (path: string, init: RequestInit) => Promise<Response>,
  ) {}

  /** Call `path` (the document's `route`): its answer must be `status`, and as the document declares. */
  async expect(status: number, method: string, route: string, path = route, init: RequestInit = {}) {
    const a = await answer(this.call(path, { method, ...init }));
    if (a.status !== status) {
      this.found.push(`${method} ${path}: ${a.status} where ${status} was meant: ${a.text.slice(0, 160)}`);
    }
    this.found.push(...mismatches(this.doc, method, route, a));
    return a;
  }

  /** Call `path` (the document's `route`): whatever its status, its answer must be as the document declares. */
  async send(method: string, route: string, path = route, init: RequestInit = {}) {
    const a = await answer(this.call(path, { method, ...init }));
    this.found.push(...mismatches(this.doc, method, route, a));
    return a;
  }

  /** Call until the relay answers 429 (at most 10 times), and hold that answer to the document. */
  async until429(method: string, route: string, path = route, init: () => RequestInit = () => ({})) {
    for (let i = 0; i < 10; i++) {
      const a = await answer(this.call(path, { method, ...init() }));
      if (a.status === 429) {
        this.found.push(...mismatches(this.doc, method, route, a));
        return;
      }
    }
    this.found.push(`${method} ${path}: never 429`);
  }
}

/** A probe of the relay at `url`, with the document it serves. */
async function probeOf(url: string): Promise<Probe> {
  const doc = (await (await fetch(`${url}/openapi.json`)).json()) as Doc;
  return new Probe(doc, (path, init) => fetch(`${url}${path}`, init));
}

const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

const UNKNOWN_ID = 'ab'.repeat(32);
const PROMPT = { prompt: 'Once upon a time', params: { maxTokens: 4 }, frame: { quorum: 1 } };
const CHAT = {
  model: 'stories260K',
  messages: [{ role: 'user', content: 'Once upon a time' }],
  max_tokens: 4,
  synod: { frame: { quorum: 1 } },
};

async function newKey(relay: RunningRelay, quotaPerDay = 1000): Promise<{ id: string; key: string }> {
  const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
  await relay.store.createApiKey({ id: k.id, hash: k.hash, label: 'conformance', quotaPerDay }, Date.now());
  return { id: k.id, key: k.key };
}

describe('a relay with a serving node: what it answers is what the document declares', () => {
  let t: TestNetwork;
  let auth: Record<string, string>;
  /** A request that reached its verdict. */
  let done: string;
  const probe = () => probeOf(t.relay.url);
  beforeAll(async () => {
    t = await startTestNetwork({ nodes: 1 });
    auth = { authorization: `Bearer ${t.apiKey}` };
    const r = await fetch(`${t.relay.url}/v1/inference`, json(PROMPT, auth));
    done = ((await r.json()) as { requestId: string }).requestId;
    await waitForStatus(t, done);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  test('the service routes', async () => {
    const p = await probe();
    for (const route of ['/openapi.json', '/healthz', '/metrics']) await p.expect(200, 'GET', route);
    expect(p.found).toEqual([]);
  });

  test('POST /v1/inference: accepted, replayed, and each refusal', async () => {
    const p = await probe();
    const route = '/v1/inference';
    const post = (status: number, body: unknown, headers: Record<string, string> = auth) =>
      p.expect(status, 'POST', route, route, json(body, headers));
    await post(202, PROMPT);
    const idem = { ...auth, 'idempotency-key': `conformance-${Date.now()}` };
    await post(202, PROMPT, idem);
    await post(200, PROMPT, idem);
    await post(409, { ...PROMPT, prompt: 'another' }, idem);
    for (const bad of [
      '{"prompt": ',
      '',
      '\xff',
      [1, 2],
      { prompt: 42 },
      { prompt: 'x', unknown: 1 },
      { prompt: 'x', models: ['no-such-model'] },
      { prompt: 'x', frame: { secDistance: 0.9 } },
      { prompt: 'x', params: { maxTokens: 'many' } },
    ]) {
      await post(400, bad);
    }
    await post(400, PROMPT, { ...auth, 'idempotency-key': 'k'.repeat(256) });
    await post(401, PROMPT, {});
    await post(401, PROMPT, { authorization: 'Bearer not-a-key' });
    await post(401, PROMPT, { authorization: `Bearer synod_sk_${'0'.repeat(64)}` });
    await post(401, PROMPT, {
      'x-synod-node': UNKNOWN_ID,
      'x-synod-timestamp': String(Date.now()),
      'x-synod-signature': 'cd'.repeat(64),
    });
    const revoked = await newKey(t.relay);
    await revokeApiKey(t.relay.store.db, revoked.id, Date.now(), utcDay(Date.now()));
    await post(403, PROMPT, { authorization: `Bearer ${revoked.key}` });
    await post(413, { prompt: 'x'.repeat(300 * 1024) });
    await p.expect(415, 'POST', route, route, {
      headers: { ...auth, 'content-type': 'text/plain' },
      body: JSON.stringify(PROMPT),
    });
    expect(p.found).toEqual([]);
  });

  test('GET /v1/inference/{id} and its events', async () => {
    const p = await probe();
    const route = '/v1/inference/{id}';
    await p.expect(200, 'GET', route, `/v1/inference/${done}`);
    await p.expect(400, 'GET', route, '/v1/inference/not-an-id');
    await p.expect(404, 'GET', route, `/v1/inference/${UNKNOWN_ID}`);
    const events = '/v1/inference/{id}/events';
    const stream = await p.expect(200, 'GET', events, `/v1/inference/${done}/events`);
    const lastId = [...stream.text.matchAll(/^id: ?(.*)$/gm)].at(-1)?.[1] ?? '';
    await p.expect(204, 'GET', events, `/v1/inference/${done}/events`, {
      headers: { 'last-event-id': lastId },
    });
    await p.expect(400, 'GET', events, '/v1/inference/nope/events');
    await p.expect(404, 'GET', events, `/v1/inference/${UNKNOWN_ID}/events`);
    expect(p.found).toEqual([]);
  });

  test('POST /v1/chat/completions: a completion, a stream, and each refusal', async () => {
    const p = await probe();
    const route = '/v1/chat/completions';
    const post = (status: number, body: unknown, headers: Record<string, string> = auth) =>
      p.expect(status, 'POST', route, route, json(body, headers));
    await post(200, CHAT);
    await post(200, { ...CHAT, stream: true });
    const idem = { ...auth, 'idempotency-key': `conformance-chat-${Date.now()}` };
    await post(200, CHAT, idem);
    await post(200, CHAT, idem);
    await post(409, { ...CHAT, max_tokens: 5 }, idem);
    for (const bad of ['{', { model: 'stories260K' }, { ...CHAT, temperature: 'hot' }, { ...CHAT, n: 2 }]) {
      await post(400, bad);
    }
    await post(404, { ...CHAT, model: 'no-such-model' });
    await post(401, CHAT, {});
    await post(413, { ...CHAT, messages: [{ role: 'user', content: 'x'.repeat(300 * 1024) }] });
    await p.expect(415, 'POST', route, route, {
      headers: { ...auth, 'content-type': 'text/plain' },
      body: '{}',
    });
    expect(p.found).toEqual([]);
  });

  test('GET /v1/models and /v1/models/{id}', async () => {
    const p = await probe();
    await p.expect(200, 'GET', '/v1/models');
    const one = '/v1/models/{id}';
    await p.expect(200, 'GET', one, '/v1/models/stories260K');
    await p.expect(200, 'GET', one, '/v1/models/synod');
    await p.expect(404, 'GET', one, '/v1/models/no-such-model');
    expect(p.found).toEqual([]);
  });

  test('POST /v1/verify and GET /v1/verify/{id}', async () => {
    const p = await probe();
    const one = '/v1/verify/{id}';
    const stored = await p.expect(200, 'GET', one, `/v1/verify/${done}`);
    const { transcript, verdictDigest, transcriptRoot } = JSON.parse(stored.text) as {
      transcript: { packets: unknown[] };
      verdictDigest: string;
      transcriptRoot: string;
    };
    await p.expect(400, 'GET', one, '/v1/verify/nope');
    await p.expect(404, 'GET', one, `/v1/verify/${UNKNOWN_ID}`);
    const route = '/v1/verify';
    const post = (status: number, body: unknown) => p.expect(status, 'POST', route, route, json(body));
    await post(200, transcript);
    await post(200, { transcript, expectedVerdictDigest: verdictDigest, expectedRoot: transcriptRoot });
    await post(422, { transcript, expectedRoot: UNKNOWN_ID });
    await post(422, { ...transcript, packets: transcript.packets.slice(1) });
    await post(422, { v: 1, packets: 'none' });
    // No transcript at all: bad input, not a transcript that does not hold.
    await post(400, {});
    await post(400, [1]);
    await post(400, '{"v":');
    await post(400, { transcript, expectedRoot: 'NOT-HEX' });
    await post(413, { v: 1, requestId: UNKNOWN_ID, packets: [], pad: 'x'.repeat(5 * 1024 * 1024) });
    await p.expect(415, 'POST', route, route, { headers: { 'content-type': 'text/plain' }, body: '{}' });
    expect(p.found).toEqual([]);
  });

  test('GET /v1/history and /v1/nodes: pages, filters and refusals', async () => {
    const p = await probe();
    const history = '/v1/history';
    const filters = `?status=verdict&origin=http&model=stories260K&node=${t.relayKey.nodeId}`;
    for (const q of ['', filters]) await p.expect(200, 'GET', history, `${history}${q}`);
    const page = await p.expect(200, 'GET', history, `${history}?limit=1`);
    const { nextCursor } = JSON.parse(page.text) as { nextCursor: string };
    await p.expect(200, 'GET', history, `${history}?cursor=${nextCursor}`);
    for (const q of ['?limit=0', '?limit=abc', '?cursor=bad', '?status=nope', '?origin=nope', '?node=xyz']) {
      await p.expect(400, 'GET', history, `${history}${q}`);
    }
    const nodes = '/v1/nodes';
    for (const q of ['', '?limit=1', `?node=${t.nodes[0]?.nodeId}`])
      await p.expect(200, 'GET', nodes, `${nodes}${q}`);
    for (const q of ['?limit=501', '?cursor=bad', '?node=xyz'])
      await p.expect(400, 'GET', nodes, `${nodes}${q}`);
    const node = '/v1/nodes/{nodeId}';
    await p.expect(200, 'GET', node, `/v1/nodes/${t.nodes[0]?.nodeId}`);
    await p.expect(404, 'GET', node, `/v1/nodes/${'0'.repeat(64)}`);
    await p.expect(400, 'GET', node, '/v1/nodes/xyz');
    expect(p.found).toEqual([]);
  });
});

describe('a relay that only queues, its bound reached: what it answers is what the document declares', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-openapi-queue-'));
  let relay: RunningRelay;
  let auth: Record<string, string>;
  beforeAll(async () => {
    relay = await loneRelay(`file:${join(dir, 'relay.db')}`, 61, {
      maxOpenRequests: 0,
      maxQueuedRequests: 3,
      config: { chatWaitSlackMs: 0 },
    });
    auth = { authorization: `Bearer ${(await newKey(relay)).key}` };
  });
  afterAll(async () => {
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a queued request, its verification, a chat completion that times out, a full queue', async () => {
    const p = await probeOf(relay.url);
    const inference = (status: number, body: unknown) =>
      p.expect(status, 'POST', '/v1/inference', '/v1/inference', json(body, auth));
    const chat = (status: number, body: unknown) =>
      p.expect(status, 'POST', '/v1/chat/completions', '/v1/chat/completions', json(body, auth));
    const accepted = await inference(202, { prompt: 'x', models: ['m'] });
    const { requestId } = JSON.parse(accepted.text) as { requestId: string };
    await p.expect(200, 'GET', '/v1/inference/{id}', `/v1/inference/${requestId}`);
    await p.expect(409, 'GET', '/v1/verify/{id}', `/v1/verify/${requestId}`);
    const slow = { model: 'm', messages: [{ role: 'user', content: 'x' }] };
    await chat(504, { ...slow, synod: { frame: { maxTimeMs: 1_000, revealWindowMs: 250 } } });
    // The queue's bound (3) reached: the timed-out chat's row may or may not have left the log by now
    // (it is past its deadline just as the 504 comes, and the dispatcher expires such rows each second),
    // so requests on the default frame fill it whatever it holds, until the first 503.
    let shed = false;
    for (let i = 0; i < 3 && !shed; i++) {
      const r = await p.send(
        'POST',
        '/v1/inference',
        '/v1/inference',
        json({ prompt: `y${i}`, models: ['m'] }, auth),
      );
      shed = r.status === 503;
      if (!shed && r.status !== 202) p.found.push(`POST /v1/inference: ${r.status} while the queue filled`);
    }
    expect(shed).toBe(true);
    await inference(503, { prompt: 'z', models: ['m'] });
    await chat(503, slow);

    // Event streams of a queued request stay open: past the client address's bound, 429.
    const opened = new AbortController();
    const address = { requestIP: () => ({ address: '192.0.2.7', family: 'IPv4', port: 40_000 }) };
    const events = (init: RequestInit) =>
      relay.app.request(`/v1/inference/${requestId}/events`, init, address);
    const streams = await Promise.all(
      Array.from({ length: STREAMS_PER_ADDRESS }, () => events({ signal: opened.signal })),
    );
    expect(streams.map((s) => s.status)).toEqual(streams.map(() => 200));
    const refused = await answer(events({}));
    opened.abort();
    await Promise.all(streams.map((s) => s.body?.cancel()));
    expect(refused.status).toBe(429);
    p.found.push(...mismatches(p.doc, 'GET', '/v1/inference/{id}/events', refused));
    expect(p.found).toEqual([]);
  });
});

describe('a relay with a tight rate limit: each 429 is declared, with its Retry-After', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-openapi-limit-'));
  let relay: RunningRelay;
  /** A caller whose key is looked up once (the address's key lookups are limited too), then cached. */
  let auth: Record<string, string>;
  /** A request whose view holds over 128 Ki characters: a read of it costs a token of the read bucket. */
  let heavy: string;
  beforeAll(async () => {
    relay = await loneRelay(`file:${join(dir, 'relay.db')}`, 62, {
      config: { rateLimit: { ratePerSecond: 0.001, burst: 2 } },
    });
    auth = { authorization: `Bearer ${(await newKey(relay)).key}` };
    // The prompt's control characters are escaped in JSON, six characters each.
    const r = await fetch(
      `${relay.url}/v1/inference`,
      json({ prompt: '\u0001'.repeat(32_768), models: ['m'] }, auth),
    );
    heavy = ((await r.json()) as { requestId: string }).requestId;
  });
  afterAll(async () => {
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('writes, per caller, and past its daily quota', async () => {
    const p = await probeOf(relay.url);
    const body = { prompt: 'x', models: ['m'] };
    await p.until429('POST', '/v1/inference', '/v1/inference', () => json(body, auth));
    const chat = { model: 'm', messages: [{ role: 'user', content: 'x' }] };
    await p.until429('POST', '/v1/chat/completions', '/v1/chat/completions', () => json(chat, auth));
    const spent = { authorization: `Bearer ${(await newKey(relay, 0)).key}` };
    await p.expect(429, 'POST', '/v1/inference', '/v1/inference', json(body, spent));
    await p.expect(429, 'POST', '/v1/chat/completions', '/v1/chat/completions', json(chat, spent));
    expect(p.found).toEqual([]);
  });

  test('public reads and the verifier, per client address', async () => {
    const p = await probeOf(relay.url);
    await p.until429('GET', '/v1/inference/{id}', `/v1/inference/${heavy}`);
    await p.until429('GET', '/v1/history');
    await p.until429('GET', '/v1/nodes');
    await p.until429('GET', '/v1/nodes/{nodeId}', `/v1/nodes/${'0'.repeat(64)}`);
    await p.until429('GET', '/v1/verify/{id}', `/v1/verify/${UNKNOWN_ID}`);
    await p.until429('POST', '/v1/verify', '/v1/verify', () => json({}));
    expect(p.found).toEqual([]);
  });
});

const SLOW_BODY_MS = 1_000;

describe('a body that does not arrive in time: 408, as declared', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-openapi-slow-'));
  let relay: RunningRelay;
  beforeAll(async () => {
    // A short deadline: the 408 is the same, without waiting the default 30 s for it.
    relay = await loneRelay(`file:${join(dir, 'relay.db')}`, 63, { bodyDeadlineMs: SLOW_BODY_MS });
  });
  afterAll(async () => {
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** POST half a body over a raw connection, and read the answer the relay gives once it stops waiting. */
  const halfBody = (path: string) =>
    new Promise<Answer>((resolve, reject) => {
      const socket = connect(relay.port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (b: Buffer) => chunks.push(b));
      socket.on('error', reject);
      socket.on('close', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const [head = '', ...rest] = raw.split('\r\n\r\n');
        const [statusLine = '', ...lines] = head.split('\r\n');
        const headers = new Headers();
        for (const line of lines) {
          const at = line.indexOf(':');
          headers.append(line.slice(0, at).trim(), line.slice(at + 1).trim());
        }
        resolve({ status: Number(statusLine.split(' ')[1]), headers, text: rest.join('\r\n\r\n') });
      });
      socket.write(
        `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"prompt":`,
      );
    });

  test(
    'on each route that reads a body',
    async () => {
      const p = await probeOf(relay.url);
      const routes = ['/v1/inference', '/v1/chat/completions', '/v1/verify'];
      const answers = await Promise.all(routes.map(halfBody));
      for (const [i, a] of answers.entries()) {
        const route = routes[i] as string;
        if (a.status !== 408) p.found.push(`POST ${route}: ${a.status} where 408 was meant`);
        p.found.push(...mismatches(p.doc, 'POST', route, a));
      }
      expect(p.found).toEqual([]);
    },
    SLOW_BODY_MS + 15_000,
  );
});

describe('the checker itself', () => {
  const doc: Doc = {
    paths: {
      '/x': {
        get: {
          responses: {
            '200': {
              description: 'ok',
              headers: { 'retry-after': { required: true, schema: { type: 'integer', minimum: 0 } } },
              content: { 'application/json': { schema: { $ref: '#/components/schemas/A' } } },
            },
            '204': { description: 'nothing' },
          },
        },
      },
    },
    components: {
      schemas: { A: { type: 'object', required: ['a'], properties: { a: { type: 'integer' } } } },
    },
  };
  const at = (status: number, text: string, headers: Record<string, string>): Answer => ({
    status,
    headers: new Headers(headers),
    text,
  });
  const good = { 'content-type': 'application/json; charset=utf-8', 'retry-after': '2' };

  test('an answer as declared has no mismatch', () => {
    expect(mismatches(doc, 'GET', '/x', at(200, '{"a":1}', good))).toEqual([]);
    expect(mismatches(doc, 'GET', '/x', at(204, '', {}))).toEqual([]);
  });

  test('each way an answer can disagree is one', () => {
    const one = (method: string, status: number, text: string, headers: Record<string, string>) =>
      mismatches(doc, method, '/x', at(status, text, headers)).length;
    expect(one('POST', 200, '{"a":1}', good)).toBe(1);
    expect(one('GET', 404, '{}', good)).toBe(1);
    expect(one('GET', 200, '{"a":1}', { ...good, 'content-type': 'text/plain' })).toBe(1);
    expect(one('GET', 200, '{"a":"1"}', good)).toBe(1);
    expect(one('GET', 200, '{"a":1,"b":2}', good)).toBe(1);
    expect(one('GET', 200, '{"a":1}', { 'content-type': 'application/json' })).toBe(1);
    expect(one('GET', 200, '{"a":1}', { ...good, 'retry-after': 'soon' })).toBe(1);
    expect(one('GET', 200, '{"a":1}', { ...good, 'x-request-id': 'r' })).toBe(1);
    expect(one('GET', 204, 'text', { 'content-type': 'text/plain' })).toBe(1);
  });
});

test('every operation has a unique operationId and says who may call it', () => {
  const paths = openApiDocument('0.0.0')['paths'] as Record<string, Record<string, Record<string, unknown>>>;
  const ops = Object.values(paths).flatMap((methods) => Object.values(methods));
  const ids = ops.map((op) => op['operationId']);
  expect(ids.every((id) => typeof id === 'string' && id !== '')).toBe(true);
  expect(new Set(ids).size).toBe(ops.length);
  expect(ops.filter((op) => !Array.isArray(op['security']))).toEqual([]);
});
