/**
 * Authentication on the accept path, against a relay on a clock the test moves (no nodes: requests stay
 * queued): when a signed request's timestamp is judged, and what an unknown API key may cost.
 */
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeKey, toHex, utf8 } from '@synod/shared';
import { createApiKey } from '../auth/api-keys.ts';
import { SIGNED_REQUEST_SKEW_MS, signedRequestDigest } from '../auth/signed-request.ts';
import type { EdgeConfig } from '../config.ts';
import type { RunningRelay } from '../runtime/bun.ts';
import { loneRelay } from '../test-relay.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let clock = Date.UTC(2026, 10, 22, 12);
let relay: RunningRelay;
let dbNo = 0;

async function start(config: Partial<EdgeConfig> = {}) {
  relay = await loneRelay(`file:${join(dir, `relay-${dbNo++}.db`)}`, 3, {
    now: () => clock,
    maxOpenRequests: 0,
    config,
  });
}
afterEach(async () => {
  await relay?.stop();
});

const BODY = JSON.stringify({ prompt: 'Once upon a time', models: ['m'] });
const chargedTo = async (callerId: string) =>
  Number(
    (
      await relay.client.execute({
        sql: 'SELECT sum(count) AS n FROM usage WHERE key_id = ?',
        args: [callerId],
      })
    ).rows[0]?.['n'] ?? 0,
  );

describe('a signed request whose body is slow to arrive', () => {
  beforeEach(() => start());

  test('its timestamp is judged when the body has arrived: past the skew window it is STALE, nothing charged', async () => {
    const signer = await NodeKey.fromSeed(new Uint8Array(32).fill(9));
    const ts = String(clock);
    const signature = toHex(await signer.sign(signedRequestDigest('POST', '/v1/inference', ts, utf8(BODY))));
    /** The signed request, its body sent once `meanwhile` (the time a client trickling it takes) is over. */
    const send = (meanwhile: () => Promise<void>) =>
      relay.app.request('http://127.0.0.1/v1/inference', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-synod-node': signer.nodeId,
          'x-synod-timestamp': ts,
          'x-synod-signature': signature,
        },
        body: new ReadableStream({
          async pull(ctl) {
            await meanwhile();
            ctl.enqueue(utf8(BODY));
            ctl.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
    expect((await send(async () => undefined)).status).toBe(202);
    // The same request, captured and sent again at once (its headers well within the skew window), with
    // its body trickled for more than a day: meanwhile the relay forgets the day-old Idempotency-Key rows,
    // the signature among them. Judged when its body is in, the timestamp is long stale.
    const replay = await send(async () => {
      clock += 24 * 3_600_000 + 1;
      await relay.intake.pruneIdempotency(clock - 24 * 3_600_000);
    });
    expect(replay.status).toBe(401);
    expect(await replay.json()).toMatchObject({
      error: { code: 'UNAUTHENTICATED', details: { reason: 'STALE' } },
    });
    // Past the skew window by a moment is enough.
    const late = await send(async () => {
      clock += SIGNED_REQUEST_SKEW_MS + 1;
    });
    expect(late.status).toBe(401);
    expect(await chargedTo(`node:${signer.nodeId}`)).toBe(1);
    expect(await relay.intake.count()).toBe(1);
  });
});

describe('signed requests: their timestamp and their quota', () => {
  const signed = async (signer: NodeKey, ts: string) => {
    const signature = toHex(await signer.sign(signedRequestDigest('POST', '/v1/inference', ts, utf8(BODY))));
    return relay.app.request('http://127.0.0.1/v1/inference', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-synod-node': signer.nodeId,
        'x-synod-timestamp': ts,
        'x-synod-signature': signature,
      },
      body: BODY,
    });
  };

  test('a timestamp in seconds is STALE with a hint saying milliseconds, and the relay clock', async () => {
    await start();
    const signer = await NodeKey.fromSeed(new Uint8Array(32).fill(3));
    const r = await signed(signer, String(Math.floor(clock / 1000)));
    expect(r.status).toBe(401);
    const body = (await r.json()) as { error: { details: { reason: string }; hint: string } };
    expect(body.error.details.reason).toBe('STALE');
    expect(body.error.hint).toContain('Unix time in milliseconds');
    expect(body.error.hint).toContain(String(clock));
    expect(body.error.hint).toContain('looks like seconds');
  });

  test("each node key's daily quota is the relay's signedQuotaPerDay (--signed-quota)", async () => {
    await start({ signedQuotaPerDay: 2 });
    const signer = await NodeKey.fromSeed(new Uint8Array(32).fill(4));
    expect((await signed(signer, String(clock))).status).toBe(202);
    expect((await signed(signer, String(clock + 1))).status).toBe(202);
    const third = await signed(signer, String(clock + 2));
    expect(third.status).toBe(429);
    expect(await third.json()).toMatchObject({
      error: { code: 'QUOTA_EXCEEDED', details: { quotaPerDay: 2 } },
    });
    // Another key has its own.
    const other = await NodeKey.fromSeed(new Uint8Array(32).fill(5));
    expect((await signed(other, String(clock + 3))).status).toBe(202);
  });
});

describe('unknown API keys', () => {
  beforeEach(() => start({ rateLimit: { ratePerSecond: 1, burst: 3 } }));

  const withKey = (key: string) =>
    relay.app.request('http://127.0.0.1/v1/inference', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: BODY,
    });
  const randomKey = () => `synod_sk_${toHex(crypto.getRandomValues(new Uint8Array(32)))}`;

  test('looking keys up in the database is limited per client address: past its burst, 429 RATE_LIMITED', async () => {
    const live = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
    await relay.store.createApiKey({ id: live.id, hash: live.hash, label: 'live', quotaPerDay: 10 }, clock);
    // The live key is looked up once (one of the burst of 3 lookups), then served from the key cache.
    expect((await withKey(live.key)).status).toBe(202);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await withKey(randomKey())).status);
    expect(statuses).toEqual([401, 401, 429, 429, 429]);
    const limited = await withKey(randomKey());
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(await limited.json()).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    // A cached key is not looked up, so it is not held back by the lookups of others at its address…
    expect((await withKey(live.key)).status).toBe(202);
    // …and a second later the address may look a key up again.
    clock += 1_000;
    expect((await withKey(randomKey())).status).toBe(401);
    expect(await chargedTo(live.id)).toBe(2);
  });
});

describe('an Authorization header that is not a bearer key', () => {
  beforeEach(() => start());

  test('Basic, a bare key, an empty Bearer: 401 naming the header, not a missing credential; nothing stored', async () => {
    const live = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
    for (const authorization of ['Basic YWJjOmRlZg==', live.key, 'Bearer', 'Token abc']) {
      const r = await relay.app.request('http://127.0.0.1/v1/inference', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization },
        body: BODY,
      });
      expect(r.status).toBe(401);
      expect(await r.json()).toMatchObject({
        error: {
          code: 'UNAUTHENTICATED',
          message: 'the Authorization header is not "Bearer <API key>"',
          details: { reason: 'AUTHORIZATION_NOT_BEARER' },
        },
      });
    }
    // No header at all is the missing credential it always was.
    const none = await relay.app.request('http://127.0.0.1/v1/inference', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: BODY,
    });
    expect(await none.json()).toMatchObject({ error: { details: { reason: 'MISSING' } } });
    expect(
      Number((await relay.client.execute('SELECT count(*) AS n FROM request_intake')).rows[0]?.['n']),
    ).toBe(0);
  });
});

describe('signed requests from fresh node keys', () => {
  beforeEach(() => start({ rateLimit: { ratePerSecond: 1, burst: 3 } }));

  test('are limited per client address too: a new key per request does not escape the rate limit', async () => {
    const signedBy = async (seed: number, body = BODY) => {
      const signer = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
      const ts = String(clock);
      const signature = toHex(
        await signer.sign(signedRequestDigest('POST', '/v1/inference', ts, utf8(body))),
      );
      return relay.app.request('http://127.0.0.1/v1/inference', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-synod-node': signer.nodeId,
          'x-synod-timestamp': ts,
          'x-synod-signature': signature,
        },
        body,
      });
    };
    const statuses: number[] = [];
    for (let seed = 10; seed < 15; seed++) statuses.push((await signedBy(seed)).status);
    expect(statuses).toEqual([202, 202, 202, 429, 429]);
    const limited = await signedBy(20);
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(await limited.json()).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    expect(await relay.intake.count()).toBe(3);
    clock += 1_000;
    expect((await signedBy(21)).status).toBe(202);
  });
});
