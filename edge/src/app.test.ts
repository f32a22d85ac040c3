import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import {
  type AnyPacket,
  LIMITS,
  NodeKey,
  type Packet,
  packetId,
  signPacket,
  toHex,
  verifyPacket,
} from '@synod/shared';
import Ajv2020 from 'ajv/dist/2020';
import edgePackage from '../package.json';
import { createApiKey } from './auth/api-keys.ts';
import { listApiKeys, revokeApiKey, setApiKeyQuota } from './auth/key-admin.ts';
import { signedRequestDigest } from './auth/signed-request.ts';
import { utcDay } from './http/auth.ts';
import { STREAM_HOLD_MS } from './routes/openai.ts';
import { testAdmission } from './store/test-admissions.ts';
import { startTestNetwork, type TestNetwork, waitForStatus as waitForVerdict } from './test-helpers.ts';
import { waitUntil } from './test-servers.ts';

let t: TestNetwork;

beforeAll(async () => {
  t = await startTestNetwork({ quotaPerDay: 1000 });
});
afterAll(async () => {
  await t.close();
});

const req = (path: string, init: RequestInit = {}) => t.relay.app.request(`http://127.0.0.1${path}`, init);
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  req(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

async function waitForStatus(id: string, statuses: string[], timeoutMs = 30_000) {
  const start = Date.now();
  for (;;) {
    const r = await req(`/v1/inference/${id}`);
    const j = (await r.json()) as { status: string };
    if (statuses.includes(j.status)) return j as Record<string, unknown> & { status: string };
    if (Date.now() - start > timeoutMs) throw new Error(`request stuck in ${j.status}`);
    await Bun.sleep(50);
  }
}

describe('POST /v1/inference and the request lifecycle', () => {
  test('reveals after the verdict, from outside the seal or from a member, leave the stored transcript as the verdict made it', async () => {
    const r = await post('/v1/inference', { prompt: 'A small boat', params: { maxTokens: 12 } });
    const { requestId } = (await r.json()) as { requestId: string };
    await waitForStatus(requestId, ['verdict']);
    const before = (await (await req(`/v1/verify/${requestId}`)).json()) as {
      ok: boolean;
      verdictDigest: string;
    };
    expect(before.ok).toBe(true);
    const detail = await t.relay.store.getRequest(requestId);
    const stored = detail?.reveals[0]?.packet;
    if (!detail || !stored) throw new Error('no reveal stored');
    // A reveal from a node outside the seal (as anyone may publish one): not stored.
    const stranger = await NodeKey.fromSeed(new Uint8Array(32).fill(99));
    const foreign = await signPacket(stranger, 'reveal', {
      ...stored.body,
      createdAt: stored.body.createdAt + 1,
    });
    await t.relay.store.recordReveal({ id: packetId(foreign), packet: foreign });
    // A second, valid reveal from a member, after the verdict: no part of what the verdict was computed
    // over (which of the two the transcript holds would be ambiguous), so not stored either.
    const member = (
      await Promise.all([40, 41, 42].map((b) => NodeKey.fromSeed(new Uint8Array(32).fill(b))))
    ).find((k) => k.nodeId === stored.from);
    if (!member) throw new Error('the reveal is not from a test node');
    const late = await signPacket(member, 'reveal', { ...stored.body, createdAt: stored.body.createdAt + 1 });
    await t.relay.store.recordReveal({ id: packetId(late), packet: late });
    const after = await t.relay.store.getRequest(requestId);
    expect(after?.reveals.map((x) => x.id).sort()).toEqual(detail.reveals.map((x) => x.id).sort());
    const check = await req(`/v1/verify/${requestId}`);
    expect(check.status).toBe(200);
    expect(await check.json()).toMatchObject({ ok: true, verdictDigest: before.verdictDigest });
  });

  test('a prompt reaches an accepted verdict, stored with its whole transcript', async () => {
    const r = await post('/v1/inference', { prompt: 'Once upon a time', params: { maxTokens: 24 } });
    expect(r.status).toBe(202);
    const { requestId, links } = (await r.json()) as { requestId: string; links: Record<string, string> };
    expect(requestId).toMatch(/^[0-9a-f]{64}$/);
    expect(links.self).toBe(`/v1/inference/${requestId}`);
    expect(links).toMatchObject({
      events: `/v1/inference/${requestId}/events`,
      verify: `/v1/verify/${requestId}`,
    });
    const view: Record<string, unknown> = await waitForStatus(requestId, ['verdict', 'no-consensus']);
    expect(view['status']).toBe('verdict');
    const v = view['verdict'] as unknown as {
      status: string;
      accepted: unknown[];
      winner: { output: string };
    };
    expect(v.status).toBe('accepted');
    expect(v.accepted.length).toBe(3);
    // Ended: no longer an open request of the relay's (the machines of this file's requests end within
    // moments of their verdicts), though each machine is held a minute more.
    await waitUntil(
      'no request open at the relay',
      async () =>
        ((await (await req('/healthz')).json()) as { network: { openRequests: number } }).network
          .openRequests === 0,
      10_000,
    );
    expect(t.relay.node.metrics().machines.coordinator).toBeGreaterThan(0);
    expect(v.winner.output.length).toBeGreaterThan(0);
    expect((view['commits'] as unknown[]).length).toBe(3);
    expect((view['reveals'] as unknown[]).length).toBe(3);

    // The public verifier re-derives the stored verdict.
    const check = await req(`/v1/verify/${requestId}`);
    expect(check.status).toBe(200);
    const c = (await check.json()) as {
      ok: boolean;
      transcript: { packets: { type: string; from: string }[] };
      verdictDigest: string;
      transcriptRoot: string;
      verdictPacket: AnyPacket;
    };
    expect(c.ok).toBe(true);
    // The coordinator's signed verdict packet rides along: signed by the request's author, naming the
    // digest and root derived here.
    const vp = c.verdictPacket as Packet<'verdict'>;
    expect(vp.type).toBe('verdict');
    expect(vp.from).toBe(c.transcript.packets.find((p) => p.type === 'request')?.from as string);
    expect(vp.body).toMatchObject({
      requestId,
      verdictDigest: c.verdictDigest,
      transcriptRoot: c.transcriptRoot,
    });
    expect((await verifyPacket(vp, { now: vp.body.createdAt })).id).toMatch(/^[0-9a-f]{64}$/);
    const again = await req('/v1/verify', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ transcript: c.transcript, expectedVerdictDigest: c.verdictDigest }),
    });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { verdictDigest: string }).verdictDigest).toBe(c.verdictDigest);
    // An expected digest as a chain event shows it (0x, any case) is the same digest; null is none.
    const chainForm = await req('/v1/verify', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        transcript: c.transcript,
        expectedVerdictDigest: `0x${c.verdictDigest.toUpperCase()}`,
        expectedRoot: null,
      }),
    });
    expect(chainForm.status).toBe(200);
    // The relay's whole answer posted back: its members beside the transcript are not passed over
    // unchecked (a wrong verdictDigest there was ignored, 200), but refused, saying what to send.
    const whole = await req('/v1/verify', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...c, verdictDigest: 'e'.repeat(64) }),
    });
    expect(whole.status).toBe(400);
    expect(await whole.json()).toMatchObject({
      error: {
        code: 'INVALID_INPUT',
        message: expect.stringContaining('unknown members ok, requestId, verdictDigest'),
        hint: expect.stringContaining('expectedVerdictDigest: its verdictDigest'),
      },
    });

    // A forged transcript is refused with reasons.
    const forged = structuredClone(c.transcript) as unknown as {
      packets: { type: string; body: { output?: string } }[];
    };
    const reveal = forged.packets.find((p) => p.type === 'reveal');
    if (reveal) reveal.body.output = 'The end.';
    const bad = await req('/v1/verify', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(forged),
    });
    expect(bad.status).toBe(422);
    const badBody = (await bad.json()) as { ok: boolean; error: { code: string } };
    expect(badBody.ok).toBe(false);
    expect(badBody.error.code).toBe('PACKET_BAD_SIGNATURE');

    // A genuine transcript with a reveal's output named twice, the genuine one last: JSON.parse reads it
    // as genuine, a reader keeping the first value as forged. Refused as ambiguous, not verified.
    const genuine = JSON.stringify({ transcript: c.transcript });
    const twice = genuine.replace('"output":', '"output":"FORGED","output":');
    const i = (c.transcript as { packets: { type: string }[] }).packets.findIndex((p) => p.type === 'reveal');
    const ambiguous = await req('/v1/verify', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: twice,
    });
    expect(ambiguous.status).toBe(400);
    expect(await ambiguous.json()).toMatchObject({
      error: {
        code: 'BAD_JSON',
        message: `the body names "output" twice in transcript.packets[${i}].body`,
        details: { member: 'output', path: `transcript.packets[${i}].body` },
        hint: expect.stringContaining('I-JSON'),
      },
    });

    // History lists it, filtered by model and by a node that committed.
    const nodeId = t.nodes[0]?.nodeId ?? '';
    const h = (await (await req(`/v1/history?model=stories260K&node=${nodeId}&status=verdict`)).json()) as {
      items: { requestId: string }[];
    };
    expect(h.items.map((i) => i.requestId)).toContain(requestId);
    const none = (await (await req('/v1/history?model=unknown-model')).json()) as { items: unknown[] };
    expect(none.items).toEqual([]);
    // …and by origin: an HTTP request is listed under `http`, not under `chain`.
    const byOrigin = async (origin: string) =>
      (
        (await (await req(`/v1/history?origin=${origin}`)).json()) as {
          items: { requestId: string; origin: string }[];
        }
      ).items;
    expect((await byOrigin('http')).find((i) => i.requestId === requestId)?.origin).toBe('http');
    expect((await byOrigin('chain')).map((i) => i.requestId)).not.toContain(requestId);
  });

  test('/v1/nodes lists each node with its capabilities and the reputation its verdicts earned', async () => {
    const r = await post('/v1/inference', { prompt: 'The little bird', params: { maxTokens: 8 } });
    const { requestId } = (await r.json()) as { requestId: string };
    expect((await waitForStatus(requestId, ['verdict', 'no-consensus'])).status).toBe('verdict');
    type NodeRow = {
      nodeId: string;
      role: string;
      models: { id: string }[];
      reputation: { score: number; agreements: number; commits: number; invalid: number; vouched: number };
    };
    const listed = ((await (await req('/v1/nodes')).json()) as { nodes: NodeRow[] }).nodes;
    for (const n of t.nodes) {
      const row = listed.find((x) => x.nodeId === n.nodeId);
      expect(row?.role).toBe('node');
      expect(row?.models.map((m) => m.id)).toContain('stories260K');
      // Every node of the quorum committed and agreed with the winner, at least in this request.
      expect(row?.reputation.commits).toBeGreaterThanOrEqual(1);
      expect(row?.reputation.agreements).toBeGreaterThanOrEqual(1);
      expect(row?.reputation.invalid).toBe(0);
      // This relay trusts no node: no agreement here was vouched for.
      expect(row?.reputation.vouched).toBe(0);
      expect(row?.reputation.score).toBeGreaterThan(0);
      expect(row?.reputation.score).toBeLessThanOrEqual(1);
    }
    // One node by id (what the web app asks for its own standing), and a page of one with its cursor.
    const one = t.nodes[0]?.nodeId ?? '';
    const byId = (await (await req(`/v1/nodes?node=${one}`)).json()) as {
      nodes: NodeRow[];
      nextCursor: null;
    };
    expect(byId).toMatchObject({ nodes: [{ nodeId: one }], nextCursor: null });
    // The same, as a resource of its own (how a headless contributor reads its standing): the same object.
    const own = await req(`/v1/nodes/${one}`);
    expect(own.status).toBe(200);
    expect(await own.json()).toEqual(JSON.parse(JSON.stringify(byId.nodes[0])));
    const first = (await (await req('/v1/nodes?limit=1')).json()) as { nodes: NodeRow[]; nextCursor: string };
    expect(first.nodes).toHaveLength(1);
    const next = (await (await req(`/v1/nodes?limit=1&cursor=${first.nextCursor}`)).json()) as {
      nodes: NodeRow[];
    };
    expect(next.nodes[0]?.nodeId).not.toBe(first.nodes[0]?.nodeId);
  });

  test('history shows a prompt whole, NUL characters and all', async () => {
    const r = await post('/v1/inference', { prompt: 'a\u0000b', params: { maxTokens: 4 } });
    const { requestId } = (await r.json()) as { requestId: string };
    await waitForStatus(requestId, ['verdict', 'no-consensus']);
    const h = (await (await req('/v1/history?limit=200')).json()) as {
      items: { requestId: string; prompt: string | null }[];
    };
    expect(h.items.find((i) => i.requestId === requestId)?.prompt).toBe('a\u0000b');
  });

  test('history filtered by status=queued: 400 saying queued requests are not in the history, and where they are', async () => {
    const r = await req('/v1/history?status=queued');
    expect(r.status).toBe(400);
    const j = (await r.json()) as { error: { code: string; message: string; hint?: string } };
    expect(j.error.code).toBe('INVALID_INPUT');
    expect(j.error.message).toEndWith('(queued requests are not in the history yet)');
    expect(j.error.hint).toStartWith('GET /v1/inference/:id shows a queued request');
  });

  test('history pages through every request once, newest first, by its cursor', async () => {
    const ids: string[] = [];
    for (const prompt of ['One day', 'A dog', 'The sun']) {
      const r = await post('/v1/inference', { prompt, params: { maxTokens: 4 } });
      ids.push(((await r.json()) as { requestId: string }).requestId);
    }
    // In the history once dispatched (the admission log is not listed).
    for (const id of ids) await waitForStatus(id, ['pending', 'sealed', 'verdict', 'no-consensus']);
    type Page = { items: { requestId: string; createdAt: number }[]; nextCursor: string | null };
    const page = async (query: string) => (await (await req(`/v1/history?${query}`)).json()) as Page;
    const all = await page('limit=200');
    expect(all.nextCursor).toBeNull();
    for (const id of ids) expect(all.items.map((i) => i.requestId)).toContain(id);
    const order = all.items.map((i) => [i.createdAt, i.requestId] as const);
    const sorted = [...order].sort((a, b) => b[0] - a[0] || (b[1] < a[1] ? -1 : b[1] > a[1] ? 1 : 0));
    expect(order).toEqual(sorted);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const p: Page = await page(`limit=2${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
      expect(p.items.length).toBeLessThanOrEqual(2);
      seen.push(...p.items.map((i) => i.requestId));
      cursor = p.nextCursor;
      pages++;
    } while (cursor !== null && pages < 100);
    expect(seen).toEqual(all.items.map((i) => i.requestId));
    expect(pages).toBe(Math.ceil(all.items.length / 2));
  });

  test('server-sent events stream status changes until the verdict', async () => {
    const r = await post('/v1/inference', { prompt: 'The cat', params: { maxTokens: 16 } });
    const { requestId } = (await r.json()) as { requestId: string };
    const events = await req(`/v1/inference/${requestId}/events`);
    expect(events.headers.get('content-type')).toContain('text/event-stream');
    const text = await events.text();
    const names = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(names[0]).toBe('status');
    expect(names.at(-1)).toBe('end');
    expect(text).toContain('"status":"verdict"');
  });

  test('idempotency keys replay the same request; a different body conflicts', async () => {
    const body = { prompt: 'Tim and Sue', params: { maxTokens: 8 } };
    const a = await post('/v1/inference', body, { 'idempotency-key': 'k-1' });
    const b = await post('/v1/inference', body, { 'idempotency-key': 'k-1' });
    expect(a.status).toBe(202);
    expect(b.status).toBe(200);
    const ja = (await a.json()) as { requestId: string; quota?: unknown };
    const jb = (await b.json()) as { requestId: string; replayed: boolean; quota?: unknown };
    expect(jb.requestId).toBe(ja.requestId);
    expect(jb.replayed).toBe(true);
    // Only the first one was charged against the quota, and says where it stands.
    expect(ja.quota).toMatchObject({ limit: 1000 });
    expect(jb.quota).toBeUndefined();
    const c = await post('/v1/inference', { ...body, prompt: 'other' }, { 'idempotency-key': 'k-1' });
    expect(c.status).toBe(409);
    expect(((await c.json()) as { error: { code: string } }).error.code).toBe('IDEMPOTENCY_CONFLICT');
  });

  test('a signed request authenticates without an API key', async () => {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(77));
    const body = JSON.stringify({ prompt: 'A little bird', params: { maxTokens: 8 } });
    const ts = String(Date.now());
    const sig = await key.sign(
      signedRequestDigest('POST', '/v1/inference', ts, new TextEncoder().encode(body)),
    );
    /** POST with the signature headers above (over `body`, whatever `sent` is), and any other headers. */
    const signedPost = (sent: string, headers: Record<string, string> = {}, signature = toHex(sig)) =>
      req('/v1/inference', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-synod-node': key.nodeId,
          'x-synod-timestamp': ts,
          'x-synod-signature': signature,
          ...headers,
        },
        body: sent,
      });
    const r = await signedPost(body);
    expect(r.status).toBe(202);
    const first = (await r.json()) as { requestId: string };
    // The same signed request again (a replay within the skew window): the first request, not a new one.
    const replay = await signedPost(body);
    expect(replay.status).toBe(200);
    expect(await replay.json()).toMatchObject({ requestId: first.requestId, replayed: true });
    const usage = await t.relay.client.execute({
      sql: 'SELECT count FROM usage WHERE key_id = ?',
      args: [`node:${key.nodeId}`],
    });
    expect(Number(usage.rows[0]?.['count'])).toBe(1);
    const tampered = await signedPost(body.replace('bird', 'fish'));
    expect(tampered.status).toBe(401);
    expect(((await tampered.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
    // A replay with an Idempotency-Key of the replayer's own does not verify (the key is signed): it
    // would otherwise be a new request, charged to the signer, at each new key.
    for (const k of ['attacker-1', 'attacker-2']) {
      const keyed = await signedPost(body, { 'idempotency-key': k });
      expect(keyed.status).toBe(401);
      expect(await keyed.json()).toMatchObject({
        error: { code: 'UNAUTHENTICATED', details: { reason: 'BAD_SIGNATURE' } },
      });
    }
    expect(
      Number(
        (
          await t.relay.client.execute({
            sql: 'SELECT count FROM usage WHERE key_id = ?',
            args: [`node:${key.nodeId}`],
          })
        ).rows[0]?.['count'],
      ),
    ).toBe(1);
    // The signer's own key, signed with the request, is honoured, and its replays answer the first.
    const own = toHex(
      await key.sign(
        signedRequestDigest('POST', '/v1/inference', ts, new TextEncoder().encode(body), 'mine-1'),
      ),
    );
    const keyed = await signedPost(body, { 'idempotency-key': 'mine-1' }, own);
    expect(keyed.status).toBe(202);
    const again = await signedPost(body, { 'idempotency-key': 'mine-1' }, own);
    expect(await again.json()).toMatchObject({
      requestId: ((await keyed.json()) as { requestId: string }).requestId,
      replayed: true,
    });
    // A key beyond ASCII, signed as the client has it: refused as a key, not as a bad signature (the
    // runtime reads header bytes beyond ASCII as Latin-1, so no signature over it could be checked alike).
    const accented = toHex(
      await key.sign(
        signedRequestDigest('POST', '/v1/inference', ts, new TextEncoder().encode(body), 'clé-1'),
      ),
    );
    const refused = await signedPost(body, { 'idempotency-key': 'clé-1' }, accented);
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({
      error: { code: 'INVALID_INPUT', details: { issues: [{ path: 'Idempotency-Key' }] } },
    });
  });
});

describe('bad input gets a typed 4xx and stores nothing', () => {
  /** Requests stored anywhere: the history and the admission log. */
  async function historyCount(): Promise<number> {
    const c = await t.relay.store.counts();
    return Object.values(c).reduce((a, b) => a + b, 0) + (await t.relay.intake.count());
  }

  const cases: Array<[string, () => Promise<Response> | Response, number, string]> = [
    ['malformed JSON', () => post('/v1/inference', '{"prompt": '), 400, 'BAD_JSON'],
    ['wrong types', () => post('/v1/inference', { prompt: 42 }), 400, 'INVALID_INPUT'],
    // Valid JSON, but a lone surrogate has no canonical (RFC 8785) form, so no request id.
    ['lone surrogate', () => post('/v1/inference', '{"prompt": "a\\ud800b"}'), 400, 'ENCODING_INVALID'],
    [
      'both prompt and messages',
      () => post('/v1/inference', { prompt: 'a', messages: [{ role: 'user', content: 'b' }] }),
      400,
      'INVALID_INPUT',
    ],
    ['unknown field', () => post('/v1/inference', { prompt: 'a', temprature: 1 }), 400, 'INVALID_INPUT'],
    [
      'an Idempotency-Key beyond ASCII',
      () => post('/v1/inference', { prompt: 'a' }, { 'idempotency-key': 'clé' }),
      400,
      'INVALID_INPUT',
    ],
    [
      'a frame that is not an object',
      () => post('/v1/inference', { prompt: 'a', frame: [] }),
      400,
      'INVALID_INPUT',
    ],
    [
      'temperature out of range',
      () => post('/v1/inference', { prompt: 'a', params: { temperature: 9 } }),
      400,
      'INVALID_INPUT',
    ],
    [
      'secDistance out of range',
      () => post('/v1/inference', { prompt: 'a', frame: { secDistance: 0.9 } }),
      400,
      'FRAME_OUT_OF_RANGE',
    ],
    [
      'secPercentage zero',
      () => post('/v1/inference', { prompt: 'a', frame: { secPercentage: 0 } }),
      400,
      'FRAME_OUT_OF_RANGE',
    ],
    [
      'quorum above maxCommits',
      () => post('/v1/inference', { prompt: 'a', frame: { quorum: 5, maxCommits: 3 } }),
      400,
      'FRAME_OUT_OF_RANGE',
    ],
    ['unknown model', () => post('/v1/inference', { prompt: 'a', models: ['gpt-9'] }), 400, 'UNKNOWN_MODEL'],
    // Rules of the request body itself: taken, they made a 202 for a request no relay could sign.
    [
      'a model named twice',
      () => post('/v1/inference', { prompt: 'a', models: ['stories260K', 'stories260K'] }),
      400,
      'INVALID_INPUT',
    ],
    [
      'messages over their total length, each within its own',
      () =>
        post('/v1/inference', {
          messages: [1, 2, 3].map(() => ({
            role: 'user',
            content: 'x'.repeat(LIMITS.maxMessagesChars / 2 - 1),
          })),
        }),
      400,
      'INVALID_INPUT',
    ],
    [
      'a body within the body limit whose request packet would be over the packet limit',
      // 261,912 bytes of JSON (each control character escaped in six), under the 256 KiB body limit;
      // the request's other members and the envelope take its packet past the protocol's 262,144.
      () =>
        post('/v1/inference', {
          messages: [0, 1].map(() => ({ role: 'user', content: '\u0001'.repeat(21_820) })),
        }),
      413,
      'PACKET_TOO_LARGE',
    ],
    [
      'chat: a model named twice',
      () =>
        post('/v1/chat/completions', {
          model: 'stories260K,stories260K',
          messages: [{ role: 'user', content: 'a' }],
        }),
      400,
      'INVALID_INPUT',
    ],
    [
      'unknown embedder',
      () => post('/v1/inference', { prompt: 'a', embeddingModel: 'nope' }),
      400,
      'UNKNOWN_MODEL',
    ],
    ['huge body', () => post('/v1/inference', { prompt: 'x'.repeat(400_000) }), 413, 'BODY_TOO_LARGE'],
    [
      'a body stream that breaks off',
      () =>
        req('/v1/inference', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` },
          body: new ReadableStream({
            start(c) {
              c.enqueue(new TextEncoder().encode('{"prompt":'));
              c.error(new Error('connection reset'));
            },
          }),
        }),
      400,
      'BAD_JSON',
    ],
    // On the chat route an Idempotency-Key is bound to the inference input (members Synod ignores are
    // not in it); a message with no canonical form is still the caller's 400, not a store failure.
    [
      'chat: Idempotency-Key over a lone surrogate in a message',
      () =>
        post('/v1/chat/completions', '{"model":"synod","messages":[{"role":"user","content":"a\\ud800b"}]}', {
          'idempotency-key': 'enc-1',
        }),
      400,
      'ENCODING_INVALID',
    ],
    [
      'wrong content type',
      () =>
        req('/v1/inference', { method: 'POST', headers: { authorization: `Bearer ${t.apiKey}` }, body: 'x' }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'no credentials',
      () =>
        req('/v1/inference', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }),
      401,
      'UNAUTHENTICATED',
    ],
    [
      'unknown key',
      () => post('/v1/inference', { prompt: 'a' }, { authorization: `Bearer synod_sk_${'0'.repeat(64)}` }),
      401,
      'UNAUTHENTICATED',
    ],
    [
      'malformed key',
      () => post('/v1/inference', { prompt: 'a' }, { authorization: 'Bearer sk-abc' }),
      401,
      'UNAUTHENTICATED',
    ],
    ['bad request id', () => req('/v1/inference/not-an-id'), 400, 'INVALID_INPUT'],
    ['missing request', () => req(`/v1/inference/${'0'.repeat(64)}`), 404, 'NOT_FOUND'],
    ['bad history filter', () => req('/v1/history?status=done'), 400, 'INVALID_INPUT'],
    ['bad history limit', () => req('/v1/history?limit=10000'), 400, 'INVALID_INPUT'],
    ['history limit in hex', () => req('/v1/history?limit=0x10'), 400, 'INVALID_INPUT'],
    ['history limit in exponent form', () => req('/v1/history?limit=1e2'), 400, 'INVALID_INPUT'],
    ['history limit with spaces', () => req('/v1/history?limit=%20%205'), 400, 'INVALID_INPUT'],
    ['bad history origin', () => req('/v1/history?origin=mail'), 400, 'INVALID_INPUT'],
    ['bad history cursor', () => req('/v1/history?cursor=yesterday'), 400, 'INVALID_INPUT'],
    [
      'a known path with another method',
      () => req('/v1/inference', { method: 'PUT' }),
      405,
      'METHOD_NOT_ALLOWED',
    ],
    [
      'DELETE on a request',
      () => req(`/v1/inference/${'a'.repeat(64)}`, { method: 'DELETE' }),
      405,
      'METHOD_NOT_ALLOWED',
    ],
    ['GET on chat completions', () => req('/v1/chat/completions'), 405, 'METHOD_NOT_ALLOWED'],
    ['bad nodes limit', () => req('/v1/nodes?limit=501'), 400, 'INVALID_INPUT'],
    ['nodes limit in hex', () => req('/v1/nodes?limit=0x10'), 400, 'INVALID_INPUT'],
    ['bad nodes cursor', () => req('/v1/nodes?cursor=10:zz'), 400, 'INVALID_INPUT'],
    ['bad nodes filter', () => req('/v1/nodes?node=abc'), 400, 'INVALID_INPUT'],
    ['malformed node id', () => req('/v1/nodes/abc'), 400, 'INVALID_INPUT'],
    ['node id in capitals', () => req(`/v1/nodes/${'AB'.repeat(32)}`), 400, 'INVALID_INPUT'],
    ['unknown node', () => req(`/v1/nodes/${'0'.repeat(64)}`), 404, 'NOT_FOUND'],
    ['unknown route', () => req('/v2/nothing'), 404, 'NOT_FOUND'],
  ];

  for (const [name, call, status, code] of cases) {
    test(name, async () => {
      const before = await historyCount();
      const r = await call();
      expect(r.status).toBe(status);
      const body = (await r.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe(code);
      expect(body.error.message.length).toBeGreaterThan(0);
      expect(await historyCount()).toBe(before);
    });
  }

  test('a body over the limit says its size: declared, or what had arrived when it was refused', async () => {
    const big = JSON.stringify({ prompt: 'x'.repeat(300_000) });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` };
    const declared = await req('/v1/inference', {
      method: 'POST',
      headers: { ...headers, 'content-length': String(big.length) },
      body: big,
    });
    expect(declared.status).toBe(413);
    expect(await declared.json()).toMatchObject({
      error: { code: 'BODY_TOO_LARGE', details: { size: big.length, limit: 256 * 1024 } },
    });
    const bytes = new TextEncoder().encode(big);
    const chunked = await req('/v1/inference', {
      method: 'POST',
      headers,
      body: new ReadableStream({
        start(c) {
          for (let at = 0; at < bytes.length; at += 65_536) c.enqueue(bytes.slice(at, at + 65_536));
          c.close();
        },
      }),
    });
    expect(chunked.status).toBe(413);
    const refused = (await chunked.json()) as { error: { details: { sizeAtLeast: number; limit: number } } };
    expect(refused.error.details.limit).toBe(256 * 1024);
    expect(refused.error.details.sizeAtLeast).toBeGreaterThan(256 * 1024);
    expect(refused.error.details.sizeAtLeast).toBeLessThanOrEqual(bytes.length);
  });

  test('a frame whose maxCommits is below its quorum names the field as it was sent', async () => {
    const frame = { quorum: 2, maxCommits: 1 };
    const native = await post('/v1/inference', { prompt: 'a', frame });
    expect(native.status).toBe(400);
    expect(await native.json()).toMatchObject({
      error: {
        code: 'FRAME_OUT_OF_RANGE',
        message: 'frame.maxCommits: maxCommits must be at least quorum',
        details: { issues: [{ path: 'frame.maxCommits' }] },
      },
    });
    const chat = await post('/v1/chat/completions', {
      model: 'stories260K',
      messages: [{ role: 'user', content: 'a' }],
      synod: { frame },
    });
    expect(chat.status).toBe(400);
    expect(await chat.json()).toMatchObject({
      error: { code: 'FRAME_OUT_OF_RANGE', param: 'synod.frame.maxCommits' },
    });
  });

  test('a revoked API key is refused with 403 FORBIDDEN, and nothing is stored or charged', async () => {
    const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
    const now = Date.now();
    await t.relay.store.createApiKey({ id: k.id, hash: k.hash, label: 'to revoke', quotaPerDay: 5 }, now);
    const revoked = await revokeApiKey(t.relay.store.db, k.id, now, utcDay(now));
    expect(revoked.kind).toBe('revoked');
    const before = await historyCount();
    const r = await post('/v1/inference', { prompt: 'a' }, { authorization: `Bearer ${k.key}` });
    expect(r.status).toBe(403);
    const body = (await r.json()) as { error: { code: string; message: string } };
    expect(body.error).toMatchObject({ code: 'FORBIDDEN', message: 'this API key was revoked' });
    const chat = await post(
      '/v1/chat/completions',
      { model: 'stories260K', messages: [{ role: 'user', content: 'a' }] },
      { authorization: `Bearer ${k.key}` },
    );
    expect(chat.status).toBe(403);
    expect(((await chat.json()) as { error: { code: string } }).error.code).toBe('FORBIDDEN');
    expect(await historyCount()).toBe(before);
    const [listed] = (await listApiKeys(t.relay.store.db, utcDay(now))).filter((x) => x.id === k.id);
    expect(listed).toMatchObject({ usedToday: 0, revokedAt: now });
  });

  test('verify answers a body with no transcript at all 400 INVALID_INPUT naming what it takes', async () => {
    for (const body of [{}, { expectedRoot: 'a'.repeat(64) }, [], 'transcript', null]) {
      const r = await req('/v1/verify', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(r.status).toBe(400);
      const j = (await r.json()) as { error: { code: string; message: string; details: unknown } };
      expect(j.error.code).toBe('INVALID_INPUT');
      expect(j.error.message).toStartWith('no transcript: the body is {transcript,');
      expect(j.error.details).toEqual({ issues: [{ path: 'transcript', message: 'required' }] });
    }
  });

  test('verify: a transcript member that is not one, a bare transcript beside it, or an expected digest that is not one is 400 INVALID_INPUT', async () => {
    const t = { v: 1, requestId: 'x', packets: [] };
    for (const [body, path] of [
      [{ transcript: null }, 'transcript'],
      [{ transcript: 'x' }, 'transcript'],
      [{ ...t, transcript: t }, 'v'],
      [{ transcript: t, expectedRoot: 'abc' }, 'expectedRoot'],
      [{ transcript: t, expectedVerdictDigest: 7 }, 'expectedVerdictDigest'],
    ] as const) {
      const r = await req('/v1/verify', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(r.status).toBe(400);
      const j = (await r.json()) as { error: { code: string; details: { issues: { path: string }[] } } };
      expect(j.error.code).toBe('INVALID_INPUT');
      expect(j.error.details.issues[0]?.path).toBe(path);
    }
  });

  test('verify rejects malformed transcripts with TRANSCRIPT_INVALID or PACKET_MALFORMED reasons', async () => {
    for (const body of [
      { packets: 'none' },
      { v: 1, requestId: 'x', packets: [] },
      { transcript: { v: 1, packets: [{ nope: 1 }] } },
    ]) {
      const r = await req('/v1/verify', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(r.status).toBe(422);
      const j = (await r.json()) as { ok: boolean; error: { code: string } };
      expect(j.ok).toBe(false);
      expect(j.error.code).toMatch(/^(TRANSCRIPT_INVALID|PACKET_MALFORMED)$/);
    }
  });
});

describe('quotas', () => {
  test('an accepted request says where its quota stands; over it, QUOTA_EXCEEDED with Retry-After, nothing stored', async () => {
    // Keys read afresh on every request (no cache), so a quota changed by the operator applies at once.
    const small = await startTestNetwork({ nodes: 1, quotaPerDay: 2, config: { apiKeyCacheMs: 0 } });
    try {
      const send = (
        path = '/v1/inference',
        body: unknown = { prompt: 'a', params: { maxTokens: 4 }, frame: { quorum: 1 } },
      ) =>
        small.relay.app.request(`http://127.0.0.1${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${small.apiKey}` },
          body: JSON.stringify(body),
        });
      const quota = (r: Response) => [
        r.headers.get('x-synod-quota-limit'),
        r.headers.get('x-synod-quota-remaining'),
        Number(r.headers.get('x-synod-quota-reset')),
      ];
      type Accepted = {
        requestId: string;
        quota: { limit: number; remaining: number; resetsInSeconds: number };
      };
      // Seconds until the next UTC day starts, when the count does too.
      const midnight = () => (Math.ceil(Date.now() / 86_400_000) * 86_400_000 - Date.now()) / 1000;
      const first = await send();
      expect(first.status).toBe(202);
      const { quota: standing } = (await first.json()) as Accepted;
      expect(standing).toMatchObject({ limit: 2, remaining: 1 });
      expect(Math.abs(standing.resetsInSeconds - midnight())).toBeLessThan(5);
      // The OpenAI-compatible route says the same in headers (its body is OpenAI's), with the request
      // id in x-request-id.
      const chat = await send('/v1/chat/completions', {
        model: 'stories260K',
        messages: [{ role: 'user', content: 'a' }],
        max_tokens: 4,
        synod: { frame: { quorum: 1 } },
      });
      expect(chat.status).toBe(200);
      expect(quota(chat).slice(0, 2)).toEqual(['2', '0']);
      expect(Math.abs((quota(chat)[2] as number) - midnight())).toBeLessThan(5);
      const completion = (await chat.json()) as { synod: { requestId: string } };
      expect(chat.headers.get('x-request-id')).toBe(completion.synod.requestId);

      const r = await send();
      expect(r.status).toBe(429);
      const e = (await r.json()) as { error: { code: string; details: { quotaPerDay: number } } };
      expect(e.error.code).toBe('QUOTA_EXCEEDED');
      expect(e.error.details.quotaPerDay).toBe(2);
      expect(Math.abs(Number(r.headers.get('retry-after')) - midnight())).toBeLessThan(5);
      expect(quota(r).slice(0, 2)).toEqual(['2', '0']);
      const overChat = await send('/v1/chat/completions', {
        model: 'stories260K',
        messages: [{ role: 'user', content: 'a' }],
      });
      expect(overChat.status).toBe(429);
      expect(overChat.headers.get('retry-after')).not.toBeNull();
      // Said as OpenAI says a spent quota (LangChain fails such a call at once rather than retry it, and the
      // official clients obey x-should-retry), Synod's code beside it.
      expect(overChat.headers.get('x-should-retry')).toBe('false');
      expect(await overChat.json()).toMatchObject({
        error: {
          type: 'insufficient_quota',
          code: 'insufficient_quota',
          param: null,
          details: { code: 'QUOTA_EXCEEDED', quotaPerDay: 2 },
        },
      });

      // The operator raises the quota (synod-relay keys set-quota): the next request fits, and says so.
      const [key] = await listApiKeys(small.relay.store.db, utcDay(Date.now()));
      expect(key?.usedToday).toBe(2);
      await setApiKeyQuota(small.relay.store.db, key?.id ?? '', 3, utcDay(Date.now()));
      const raised = await send();
      expect(raised.status).toBe(202);
      expect(((await raised.json()) as Accepted).quota).toMatchObject({ limit: 3, remaining: 0 });
      const counts = await small.relay.store.counts();
      const queued = await small.relay.intake.count();
      expect(Object.values(counts).reduce((a, b) => a + b, 0) + queued).toBe(3);
    } finally {
      await small.close();
    }
  });
});

describe('rate limits', () => {
  test('past its burst a caller gets 429 RATE_LIMITED with Retry-After, and nothing is stored', async () => {
    const limited = await startTestNetwork({
      nodes: 1,
      config: { rateLimit: { ratePerSecond: 0.5, burst: 2 } },
    });
    try {
      const send = (path: string) =>
        limited.relay.app.request(`http://127.0.0.1${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${limited.apiKey}` },
          body: JSON.stringify({
            model: 'stories260K',
            messages: [{ role: 'user', content: 'a' }],
            max_tokens: 4,
          }),
        });
      const submit = () =>
        limited.relay.app.request('http://127.0.0.1/v1/inference', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${limited.apiKey}` },
          body: JSON.stringify({ prompt: 'a', params: { maxTokens: 4 }, frame: { quorum: 1 } }),
        });
      expect([(await submit()).status, (await submit()).status]).toEqual([202, 202]);
      const stored = async () =>
        Object.values(await limited.relay.store.counts()).reduce((a, b) => a + b, 0) +
        (await limited.relay.intake.count());
      const before = await stored();

      const r = await submit();
      expect(r.status).toBe(429);
      const body = (await r.json()) as { error: { code: string; details: { retryAfterMs: number } } };
      expect(body.error.code).toBe('RATE_LIMITED');
      // One token every 2 s at 0.5/s.
      expect(body.error.details.retryAfterMs).toBeGreaterThan(1_000);
      expect(body.error.details.retryAfterMs).toBeLessThanOrEqual(2_000);
      expect(r.headers.get('retry-after')).toBe('2');
      // The same caller on the OpenAI route: an OpenAI-style body, the same header.
      const chat = await send('/v1/chat/completions');
      expect(chat.status).toBe(429);
      expect(((await chat.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');
      expect(chat.headers.get('retry-after')).toBe('2');
      expect(await stored()).toBe(before);

      // The public verifier is limited per client address, apart from API keys.
      const verify = () =>
        limited.relay.app.request('http://127.0.0.1/v1/verify', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ packets: [] }),
        });
      expect([(await verify()).status, (await verify()).status]).not.toContain(429);
      const v = await verify();
      expect(v.status).toBe(429);
      expect(((await v.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');
      expect(v.headers.get('retry-after')).toBe('2');

      // So are the public reads that page through the database, in a bucket of their own.
      const read = (path: string) => limited.relay.app.request(`http://127.0.0.1${path}`);
      expect([(await read('/v1/nodes')).status, (await read('/v1/history')).status]).toEqual([200, 200]);
      const third = await read('/v1/nodes');
      expect(third.status).toBe(429);
      expect(third.headers.get('retry-after')).toBe('2');
      // One node by its id: the same bucket.
      expect((await read(`/v1/nodes/${'0'.repeat(64)}`)).status).toBe(429);
    } finally {
      await limited.close();
    }
  });
});

describe('server-sent events keep waiting connections alive', () => {
  test('comment lines while the quorum works, on /events and on a streamed chat completion', async () => {
    const n = await startTestNetwork({ nodes: 1, config: { sseKeepAliveMs: 5 } });
    try {
      const call = (path: string, body?: unknown) =>
        n.relay.app.request(`http://127.0.0.1${path}`, {
          ...(body === undefined
            ? {}
            : {
                method: 'POST',
                headers: { 'content-type': 'application/json', authorization: `Bearer ${n.apiKey}` },
                body: JSON.stringify(body),
              }),
        });
      const frame = { quorum: 1, maxCommits: 1 };
      const r = await call('/v1/inference', { prompt: 'The moon', params: { maxTokens: 24 }, frame });
      const { requestId } = (await r.json()) as { requestId: string };
      const events = await (await call(`/v1/inference/${requestId}/events`)).text();
      expect(events).toContain(': keep-alive\n\n');
      expect([...events.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]).at(-1)).toBe('end');

      const chat = await call('/v1/chat/completions', {
        model: 'stories260K',
        messages: [{ role: 'user', content: 'The sun' }],
        max_tokens: 24,
        stream: true,
        synod: { frame },
      });
      const text = await chat.text();
      const data = [...text.matchAll(/^data: (.*)$/gm)].map((m) => m[1] as string);
      // The role chunk comes first, before any keep-alive; the answer after them; then [DONE].
      const first = JSON.parse(data[0] ?? '{}') as { choices: { delta: { role?: string } }[] };
      expect(first.choices[0]?.delta.role).toBe('assistant');
      expect(text.indexOf(': keep-alive')).toBeGreaterThan(text.indexOf('data: '));
      expect(data.at(-1)).toBe('[DONE]');
      const chunks = data
        .slice(1, -1)
        .map((x) => JSON.parse(x) as { choices: { delta: { content?: string } }[] });
      const answer = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
      expect(answer.length).toBeGreaterThan(0);
      // Without stream_options.include_usage, no chunk carries a usage (as OpenAI).
      expect(chunks.some((c) => 'usage' in c)).toBe(false);
    } finally {
      await n.close();
    }
  }, 60_000);
});

describe('/v1/chat/completions when no verdict can come', () => {
  test('a streamed completion still queued at its deadline ends with a TIMEOUT error event and [DONE]; a message without content is INVALID_INPUT', async () => {
    const n = await startTestNetwork({ nodes: 1, maxOpenRequests: 0, config: { chatWaitSlackMs: 0 } });
    try {
      const chat = (body: unknown) =>
        n.relay.app.request('http://127.0.0.1/v1/chat/completions', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${n.apiKey}` },
          body: JSON.stringify(body),
        });
      // Its deadline well past the second a stream's 200 is held for an early end (STREAM_HOLD_MS): at
      // 1 s the queue's expiry could land within the hold on a loaded machine, and the answer was then,
      // rightly, OpenAI's 504 body rather than a stream.
      const r = await chat({
        model: 'stories260K',
        messages: [{ role: 'user', content: 'The sea' }],
        stream: true,
        synod: { frame: { maxTimeMs: STREAM_HOLD_MS + 1_500, revealWindowMs: 250 } },
      });
      expect(r.status).toBe(200);
      const data = [...(await r.text()).matchAll(/^data: (.*)$/gm)].map((m) => m[1] as string);
      expect(JSON.parse(data[0] ?? '{}').choices[0].delta.role).toBe('assistant');
      // Still queued at the deadline (TIMEOUT), or moved out of the queue as it expired (EXPIRED).
      expect(JSON.parse(data.at(-2) ?? '{}')).toMatchObject({
        error: { code: expect.stringMatching(/^(TIMEOUT|EXPIRED)$/), type: 'server_error' },
      });
      expect(data.at(-1)).toBe('[DONE]');
      // Not streamed: OpenAI's 504 body, and x-should-retry: false, since the official clients would
      // otherwise send the request again as a new one (and charge it again).
      const waited = await chat({
        model: 'stories260K',
        messages: [{ role: 'user', content: 'The sea' }],
        synod: { frame: { maxTimeMs: 1_000, revealWindowMs: 250 } },
      });
      expect(waited.status).toBe(504);
      expect(waited.headers.get('x-should-retry')).toBe('false');
      // Still queued at the deadline (TIMEOUT), or moved out of the queue as it expired (EXPIRED).
      expect(await waited.json()).toMatchObject({
        error: { code: expect.stringMatching(/^(TIMEOUT|EXPIRED)$/), type: 'server_error' },
      });

      const empty = await chat({ model: 'stories260K', messages: [{ role: 'assistant', content: null }] });
      expect(empty.status).toBe(400);
      expect(await empty.json()).toMatchObject({
        error: { code: 'INVALID_INPUT', param: 'messages.0.content' },
      });
    } finally {
      await n.close();
    }
  }, 60_000);
});

describe('405 METHOD_NOT_ALLOWED', () => {
  test('names the methods the path is served with, in Allow and in the body; OpenAI-style on /v1/chat', async () => {
    const r = await req('/v1/inference', { method: 'PATCH' });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('POST');
    expect(await r.json()).toMatchObject({
      error: { code: 'METHOD_NOT_ALLOWED', details: { allow: ['POST'] } },
    });
    const chat = await req('/v1/chat/completions');
    expect(chat.headers.get('allow')).toBe('POST');
    expect(await chat.json()).toMatchObject({
      error: { code: 'METHOD_NOT_ALLOWED', type: 'invalid_request_error' },
    });
    expect((await req('/v1/no-such-route', { method: 'PUT' })).status).toBe(404);
  });

  test("an OpenAI route the relay does not serve is OpenAI's 404; Synod's own paths keep Synod's body", async () => {
    for (const path of ['/v1/responses', '/v1/embeddings', '/v1/completions']) {
      const r = await req(path, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
      expect(r.status).toBe(404);
      const served =
        ": this relay serves OpenAI's Chat Completions API (/v1/chat/completions) and /v1/models only";
      const chat =
        path === '/v1/responses'
          ? '; the AI SDK: createOpenAI(...).chat(model) or @ai-sdk/openai-compatible; LangChain: leave useResponsesApi off'
          : '';
      expect(await r.json()).toEqual({
        error: {
          message: `no route POST ${path}${served}${chat}`,
          type: 'not_found_error',
          param: null,
          code: 'NOT_FOUND',
        },
      });
    }
    const own = await req('/v1/inference/x/y/z');
    expect(own.status).toBe(404);
    const body = (await own.json()) as { error: Record<string, unknown> };
    expect(body.error['code']).toBe('NOT_FOUND');
    expect(body.error['type']).toBeUndefined();
    expect(body.error['message']).toBe('no route GET /v1/inference/x/y/z');
  });
});

describe('a request still queued', () => {
  test('GET /v1/verify/:id is 409 NO_VERDICT; HEAD on its event stream answers the headers and leaves no stream behind', async () => {
    const n = await startTestNetwork({ nodes: 1, maxOpenRequests: 0 });
    try {
      const posted = await n.relay.app.request('http://127.0.0.1/v1/inference', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${n.apiKey}` },
        body: JSON.stringify({ prompt: 'waiting' }),
      });
      const queuedId = ((await posted.json()) as { requestId: string }).requestId;
      // A queued request has no verdict yet: 409 NO_VERDICT, not a NOT_FOUND.
      const noVerdict = await n.relay.app.request(`http://127.0.0.1/v1/verify/${queuedId}`);
      expect(noVerdict.status).toBe(409);
      expect(await noVerdict.json()).toMatchObject({
        error: { code: 'NO_VERDICT', message: expect.stringContaining('no verdict yet (status queued)') },
      });
      // HEAD on the event stream: the headers, and no stream left polling the history behind it.
      const store = n.relay.store;
      const getRequest = store.getRequest.bind(store);
      let reads = 0;
      store.getRequest = (id: string) => {
        reads++;
        return getRequest(id);
      };
      try {
        const head = await n.relay.app.request(`http://127.0.0.1/v1/inference/${queuedId}/events`, {
          method: 'HEAD',
        });
        expect(head.status).toBe(200);
        expect(head.headers.get('content-type')).toContain('text/event-stream');
        const after = reads;
        await Bun.sleep(2_200);
        expect(reads).toBe(after);
      } finally {
        store.getRequest = getRequest;
      }
    } finally {
      await n.close();
    }
  }, 30_000);
});

describe('a quorum larger than the nodes that could serve it', () => {
  test('is 503 QUORUM_UNAVAILABLE with Retry-After, nothing stored or charged; a smaller quorum is taken; a replayed key and a spent quota are said as such', async () => {
    const n = await startTestNetwork({ nodes: 2, waits: { servingSettleMs: 0 } });
    try {
      // Both nodes heard (their first heartbeat, as they start).
      await waitUntil('both nodes heard', async () => n.relay.node.knownNodes().length >= 2, 10_000);
      const send = (path: string, body: unknown, headers: Record<string, string> = {}) =>
        n.relay.app.request(`http://127.0.0.1${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${n.apiKey}`, ...headers },
          body: JSON.stringify(body),
        });
      const three = await send('/v1/inference', { prompt: 'three of two' });
      expect(three.status).toBe(503);
      expect(three.headers.get('retry-after')).toBe('10');
      expect(await three.json()).toMatchObject({
        error: {
          code: 'QUORUM_UNAVAILABLE',
          details: { quorum: 3, serving: 2, models: ['stories260K'] },
          hint: expect.stringContaining('at most 2 (frame.quorum)'),
        },
      });
      const chat = await send('/v1/chat/completions', {
        model: 'stories260K',
        messages: [{ role: 'user', content: 'three of two' }],
      });
      expect(chat.status).toBe(503);
      // Nothing was taken: a retry may find more nodes.
      expect(chat.headers.get('x-should-retry')).toBeNull();
      expect(await chat.json()).toMatchObject({
        // The hint names the member as the chat completion has it.
        error: {
          code: 'QUORUM_UNAVAILABLE',
          type: 'server_error',
          hint: expect.stringContaining('at most 2 (synod.frame.quorum)'),
        },
      });
      expect(await n.relay.intake.count()).toBe(0);
      const [key] = await listApiKeys(n.relay.store.db, utcDay(Date.now()));
      expect(key?.usedToday).toBe(0);
      const metrics = await (await n.relay.app.request('http://127.0.0.1/metrics')).text();
      expect(metrics).toContain('synod_requests_quorum_unavailable_total{caller="api-key"} 2');

      // A quorum the two nodes can meet is taken and answered.
      const two = await send(
        '/v1/inference',
        { prompt: 'two of two', frame: { quorum: 2, maxCommits: 2 } },
        {
          'idempotency-key': 'k-two',
        },
      );
      expect(two.status).toBe(202);
      const { requestId } = (await two.json()) as { requestId: string };
      await waitForVerdict(n, requestId);
      // The same key with another body is the conflict it is, not a 503 inviting a retry.
      const reused = await send('/v1/inference', { prompt: 'three of two' }, { 'idempotency-key': 'k-two' });
      expect([reused.status, ((await reused.json()) as { error: { code: string } }).error.code]).toEqual([
        409,
        'IDEMPOTENCY_CONFLICT',
      ]);
      // A quota spent for the day is the 429 a retry would meet.
      const one = createApiKey((k) => crypto.getRandomValues(new Uint8Array(k)));
      await n.relay.store.createApiKey(
        { id: one.id, hash: one.hash, label: 'one a day', quotaPerDay: 1 },
        Date.now(),
      );
      const withOne = { authorization: `Bearer ${one.key}` };
      expect(
        (await send('/v1/inference', { prompt: 'mine', frame: { quorum: 2, maxCommits: 2 } }, withOne))
          .status,
      ).toBe(202);
      const spent = await send('/v1/inference', { prompt: 'three of two, again' }, withOne);
      expect([spent.status, ((await spent.json()) as { error: { code: string } }).error.code]).toEqual([
        429,
        'QUOTA_EXCEEDED',
      ]);
    } finally {
      await n.close();
    }
  }, 60_000);
});

describe('load shedding: a full admission log', () => {
  test('new requests get 503 QUEUE_FULL with Retry-After, nothing stored or charged, until rows leave; the admission log itself still takes on-chain requests', async () => {
    const n = await startTestNetwork({ nodes: 1, maxOpenRequests: 0, maxQueuedRequests: 2 });
    try {
      const send = (path: string, body: unknown, headers: Record<string, string> = {}) =>
        n.relay.app.request(`http://127.0.0.1${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${n.apiKey}`, ...headers },
          body: JSON.stringify(body),
        });
      // Nothing is dispatched (maxOpenRequests 0): these two wait until they expire, after 1 s.
      const short = { maxTimeMs: 1_000, revealWindowMs: 250 };
      for (const prompt of ['one', 'two']) {
        expect((await send('/v1/inference', { prompt, frame: short })).status).toBe(202);
      }
      const full = await send('/v1/inference', { prompt: 'three' }, { 'idempotency-key': 'k-full' });
      expect(full.status).toBe(503);
      expect(full.headers.get('retry-after')).toBe('2');
      expect(await full.json()).toMatchObject({
        error: { code: 'QUEUE_FULL', details: { queued: 2, limit: 2 }, hint: expect.any(String) },
      });
      const chat = await send('/v1/chat/completions', {
        model: 'stories260K',
        messages: [{ role: 'user', content: 'four' }],
      });
      expect(chat.status).toBe(503);
      expect(chat.headers.get('retry-after')).toBe('2');
      // Nothing was taken: the client may retry it (after Retry-After).
      expect(chat.headers.get('x-should-retry')).toBeNull();
      expect(await chat.json()).toMatchObject({ error: { code: 'QUEUE_FULL', type: 'server_error' } });
      // A request that could never be taken gets its 4xx, not a 503 that invites a retry.
      const malformed = await n.relay.app.request('http://127.0.0.1/v1/inference', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${n.apiKey}` },
        body: '{not json',
      });
      expect([
        malformed.status,
        ((await malformed.json()) as { error: { code: string } }).error.code,
      ]).toEqual([400, 'BAD_JSON']);
      const unknown = await send('/v1/inference', { prompt: 'x', models: ['nope'] });
      expect(unknown.status).toBe(400);
      // Nothing of the refused ones was stored or charged, and the refusals are counted.
      expect(await n.relay.intake.count()).toBe(2);
      expect((await listApiKeys(n.relay.store.db, utcDay(Date.now())))[0]?.usedToday).toBe(2);
      const metrics = await (await n.relay.app.request('http://127.0.0.1/metrics')).text();
      expect(metrics).toContain('synod_requests_shed_total{caller="api-key"} 2');

      // The bound is the HTTP door's: the admission log takes what the chain watcher hands it.
      const onChain = await n.relay.admissions.admit(testAdmission({ callerId: 'chain', quotaPerDay: 10 }));
      expect(onChain.kind).toBe('created');

      // Once the waiting requests left the log (they expired there), there is room again.
      const started = Date.now();
      let r = await send('/v1/inference', { prompt: 'five' });
      while (r.status === 503 && Date.now() - started < 10_000) {
        await Bun.sleep(200);
        r = await send('/v1/inference', { prompt: 'five' });
      }
      expect(r.status).toBe(202);
    } finally {
      await n.close();
    }
  }, 60_000);

  test('requests that arrive together cannot all pass the bound: 20 at once on a bound of 3 take 3 places', async () => {
    const n = await startTestNetwork({ nodes: 1, maxOpenRequests: 0, maxQueuedRequests: 3 });
    try {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          n.relay.app.request('http://127.0.0.1/v1/inference', {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${n.apiKey}` },
            body: JSON.stringify({ prompt: `together ${i}` }),
          }),
        ),
      );
      const statuses = answers.map((a) => a.status).sort();
      expect(statuses.filter((s) => s === 202)).toHaveLength(3);
      expect(statuses.filter((s) => s === 503)).toHaveLength(17);
      expect(await n.relay.intake.count()).toBe(3);
      expect(n.relay.network.queue()).toEqual({ queued: 3, limit: 3 });
    } finally {
      await n.close();
    }
  }, 60_000);

  test('a retry of a request already taken is replayed, and a spent quota is said as such, not as a full queue', async () => {
    const n = await startTestNetwork({ nodes: 1, maxOpenRequests: 0, maxQueuedRequests: 1 });
    try {
      const k = createApiKey((len) => crypto.getRandomValues(new Uint8Array(len)));
      await n.relay.store.createApiKey(
        { id: k.id, hash: k.hash, label: 'one a day', quotaPerDay: 1 },
        Date.now(),
      );
      const send = (body: unknown, headers: Record<string, string> = {}, key = n.apiKey) =>
        n.relay.app.request('http://127.0.0.1/v1/inference', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
          body: JSON.stringify(body),
        });
      // The queue's one place, taken by the small key's one request of the day, under an Idempotency-Key.
      const first = await send({ prompt: 'one' }, { 'idempotency-key': 'k-1' }, k.key);
      expect(first.status).toBe(202);
      const { requestId } = (await first.json()) as { requestId: string };
      const stored = await n.relay.intake.count();
      // Its retry (the answer was lost, say) is the request it made, though the queue is full.
      const retry = await send({ prompt: 'one' }, { 'idempotency-key': 'k-1' }, k.key);
      expect(retry.status).toBe(200);
      expect(await retry.json()).toMatchObject({ requestId, replayed: true });
      // The same key with another body: the conflict it is.
      const other = await send({ prompt: 'two' }, { 'idempotency-key': 'k-1' }, k.key);
      expect(other.status).toBe(409);
      // The small key's day is spent: 429 QUOTA_EXCEEDED, not a 503 inviting retries that end there.
      const spent = await send({ prompt: 'three' }, {}, k.key);
      expect(spent.status).toBe(429);
      expect(await spent.json()).toMatchObject({ error: { code: 'QUOTA_EXCEEDED' } });
      // A key with quota left still meets the full queue.
      const full = await send({ prompt: 'four' });
      expect(full.status).toBe(503);
      expect(await full.json()).toMatchObject({ error: { code: 'QUEUE_FULL' } });
      expect(await n.relay.intake.count()).toBe(stored);
      const metrics = await (await n.relay.app.request('http://127.0.0.1/metrics')).text();
      expect(metrics).toContain('synod_requests_shed_total{caller="api-key"} 1');
    } finally {
      await n.close();
    }
  }, 60_000);
});

describe('CORS (opt-in)', () => {
  test('pages on a configured origin may call the API; others, and every origin by default, may not', async () => {
    const n = await startTestNetwork({ nodes: 1, config: { corsOrigins: ['https://app.example'] } });
    try {
      const call = (init: RequestInit & { origin: string }) =>
        n.relay.app.request('http://127.0.0.1/v1/inference', {
          ...init,
          headers: { origin: init.origin, ...(init.headers as Record<string, string>) },
        });
      const preflight = await call({
        method: 'OPTIONS',
        origin: 'https://app.example',
        headers: {
          'access-control-request-method': 'POST',
          // As the official openai client sends them, x-stainless-* included.
          'access-control-request-headers':
            'authorization, content-type, idempotency-key, x-stainless-os, x-stainless-retry-count',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example');
      expect(preflight.headers.get('access-control-allow-headers')).toContain('idempotency-key');
      expect(preflight.headers.get('access-control-allow-headers')).toContain('x-stainless-retry-count');
      expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');

      const posted = await call({
        method: 'POST',
        origin: 'https://app.example',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${n.apiKey}` },
        body: JSON.stringify({ prompt: 'x', params: { maxTokens: 4 }, frame: { quorum: 1 } }),
      });
      expect(posted.status).toBe(202);
      expect(posted.headers.get('access-control-allow-origin')).toBe('https://app.example');
      expect(posted.headers.get('access-control-expose-headers')).toContain('retry-after');
      expect(posted.headers.get('access-control-expose-headers')).toContain('x-synod-quota-remaining');
      expect(posted.headers.get('access-control-expose-headers')).toContain('x-request-id');

      const other = await call({ method: 'GET', origin: 'https://evil.example' });
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await n.close();
    }
    // The shared relay of this file has no CORS configured: no header for anyone.
    const plain = await req('/v1/nodes', { headers: { origin: 'https://app.example' } });
    expect(plain.headers.get('access-control-allow-origin')).toBeNull();
  }, 60_000);
});

describe('GET /openapi.json', () => {
  type Operation = { requestBody?: { content: Record<string, { schema: object }> }; responses: object };
  type Doc = { openapi: string; info: { version: string }; paths: Record<string, Record<string, Operation>> };

  test('documents every public route, and only those', async () => {
    const doc = (await (await req('/openapi.json')).json()) as Doc;
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.version).toBe(edgePackage.version);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const served = t.relay.app.routes
      .filter((r) => r.method !== 'ALL' && !r.path.startsWith('/internal/'))
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`);
    expect([...new Set(documented)].sort()).toEqual([...new Set(served)].sort());
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) expect(Object.keys(op.responses).length).toBeGreaterThan(0);
    }
  });

  test('its request schemas accept what the routes accept and refuse what they refuse', async () => {
    const doc = (await (await req('/openapi.json')).json()) as Doc;
    const ajv = new Ajv2020({ strict: false });
    const body = (path: string) => {
      const schema = doc.paths[path]?.['post']?.requestBody?.content['application/json']?.schema;
      if (!schema) throw new Error(`no request schema for ${path}`);
      return ajv.compile(schema);
    };
    const inference = body('/v1/inference');
    expect(inference({ prompt: 'Once upon a time', params: { maxTokens: 48 } })).toBe(true);
    // What the routes answer is declared: the quota in the 202's body, in the completion's headers
    // (with its request id), and Retry-After on a 429.
    type Responses = Record<
      string,
      { headers?: Record<string, object>; content?: Record<string, { schema: { properties?: object } }> }
    >;
    const responses = doc.paths['/v1/inference']?.['post']?.responses as Responses;
    expect(Object.keys(responses['202']?.content?.['application/json']?.schema.properties ?? {})).toContain(
      'quota',
    );
    // A 429 always says when to retry; QUOTA_EXCEEDED also where the caller's quota stands.
    expect(Object.keys(responses['429']?.headers ?? {})).toEqual([
      'retry-after',
      'x-synod-quota-limit',
      'x-synod-quota-remaining',
      'x-synod-quota-reset',
    ]);
    // The event stream's resume: Last-Event-ID in, 204 out once the request ended and the client holds it.
    const events = doc.paths['/v1/inference/{id}/events']?.['get'] as Operation & {
      parameters: { name: string }[];
    };
    expect(events.parameters.map((p) => p.name)).toContain('Last-Event-ID');
    expect(Object.keys(events.responses)).toContain('204');
    const chatResponses = doc.paths['/v1/chat/completions']?.['post']?.responses as Responses;
    expect(Object.keys(chatResponses['200']?.headers ?? {}).sort()).toEqual([
      'x-request-id',
      'x-synod-quota-limit',
      'x-synod-quota-remaining',
      'x-synod-quota-reset',
    ]);
    expect(
      inference({ prompt: 'x', frame: { quorum: 5, secPercentage: 0.6 }, models: ['stories260K'] }),
    ).toBe(true);
    expect(inference({ prompt: 'x', params: { temperature: 9 } })).toBe(false);
    expect(inference({ prompt: 'x', unknown: 1 })).toBe(false);
    // What the schema accepts, the route accepts too.
    const r = await post('/v1/inference', { prompt: 'x', frame: { quorum: 1 }, params: { maxTokens: 4 } });
    expect(r.status).toBe(202);

    const chat = body('/v1/chat/completions');
    expect(chat({ model: 'stories260K', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 })).toBe(
      true,
    );
    expect(chat({ model: 'stories260K', messages: [] })).toBe(false);
    const verify = body('/v1/verify');
    expect(verify({ v: 1, requestId: 'a'.repeat(64), packets: [] })).toBe(true);
    expect(
      verify({ transcript: { v: 1, requestId: 'a'.repeat(64), packets: [] }, expectedRoot: 'b'.repeat(64) }),
    ).toBe(true);
    expect(verify({ hello: 1 })).toBe(false);
  });
});

describe('health and metrics', () => {
  test('/healthz and /metrics', async () => {
    const h = await req('/healthz');
    expect(h.status).toBe(200);
    expect(((await h.json()) as { ok: boolean }).ok).toBe(true);
    const m = await (await req('/metrics')).text();
    expect(m).toContain('# TYPE synod_http_requests_total counter');
    expect(m).toMatch(/synod_history_requests\{status="verdict"\} \d+/);
    expect(m).toMatch(/synod_chain_requests\{status="fulfilled"\} 0/);
    expect(m).toMatch(/^synod_chain_settlements_unfinal 0$/m);
    // The group commit's running totals: this file's requests went through it, on a writer that never died.
    expect(m).toContain('# TYPE synod_admissions_total counter');
    const total = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(m)?.[1] ?? Number.NaN);
    expect(total('synod_admissions_total')).toBeGreaterThan(5);
    expect(total('synod_admission_batches_total')).toBeGreaterThan(0);
    expect(total('synod_admission_batches_total')).toBeLessThanOrEqual(total('synod_admissions_total'));
    expect(total('synod_admission_writer_restarts_total')).toBe(0);
  });
});
