/**
 * A relay over an embedded replica reads from its own file, so reads alone say nothing of its primary
 * (a real sqld): `/healthz` asks the primary too, goes 503 with `primary: {code: STORE_UNAVAILABLE}`
 * while it is down (reads still served), and healthy again once it is back; the probe is bounded in
 * time and in how often it reaches the primary.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningRelay } from '../runtime/bun.ts';
import { loneRelay } from '../test-relay.ts';
import { type RunningSqld, startSqld, stopProcess, waitUntil } from '../test-servers.ts';
import { PRIMARY_PROBE_TIMEOUT_MS, primaryHealthCheck } from './open-history.ts';

interface Health {
  ok: boolean;
  error?: { code: string };
  db: boolean;
  admissions?: { ok: boolean };
  primary?: { ok: boolean; reachable?: boolean; code?: string; reason?: string; since?: number };
}

let sqld: RunningSqld;
let relay: RunningRelay | undefined;
const dir = mkdtempSync(join(tmpdir(), 'synod-replica-health-'));

beforeAll(async () => {
  sqld = await startSqld();
}, 60_000);

afterAll(async () => {
  await relay?.stop();
  await sqld?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const health = async (url: string) => {
  const started = performance.now();
  const r = await fetch(`${url}/healthz`);
  return { status: r.status, body: (await r.json()) as Health, ms: performance.now() - started };
};

describe('/healthz of a relay on an embedded replica', () => {
  test('503 STORE_UNAVAILABLE while its primary is down, reads still served; healthy again once it is back', async () => {
    relay = await loneRelay(sqld.url, 77, { replicaPath: join(dir, 'replica.db'), replicaSyncMs: 200 });
    const url = relay.url;
    // A lone relay has no peer: its health is 503 for the network (NETWORK_UNAVAILABLE), never the store.
    const up = await health(url);
    expect(up.body).toMatchObject({
      db: true,
      primary: { ok: true },
      error: { code: 'NETWORK_UNAVAILABLE' },
    });

    await stopProcess(sqld.proc);
    let down = up;
    await waitUntil(
      '/healthz to see the primary gone',
      async () => {
        down = await health(url);
        return down.body.primary?.ok === false;
      },
      30_000,
    );
    // The replica's file still answers: `db` holds, and so do the read routes.
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({
      ok: false,
      error: { code: 'STORE_UNAVAILABLE' },
      db: true,
      primary: { ok: false, reachable: false, code: 'STORE_UNAVAILABLE' },
    });
    expect(down.body.primary?.reason).toBeString();
    expect(down.body.primary?.since).toBeNumber();
    expect(down.ms).toBeLessThan(PRIMARY_PROBE_TIMEOUT_MS + 1_000);
    expect((await fetch(`${url}/v1/history`)).status).toBe(200);

    sqld = await startSqld({ dir: sqld.dir, port: sqld.port });
    await waitUntil(
      '/healthz to see the primary back',
      async () => (await health(url)).body.primary?.ok === true,
      30_000,
    );
    expect((await health(url)).body).toMatchObject({
      db: true,
      primary: { ok: true },
      error: { code: 'NETWORK_UNAVAILABLE' },
    });
  }, 120_000);

  test('a relay on a server or a file has no `primary`: its `db` is the primary', async () => {
    const onServer = await loneRelay(sqld.url, 78);
    try {
      const h = await health(onServer.url);
      expect(h.body).toMatchObject({ db: true, admissions: { ok: true } });
      expect(h.body.primary).toBeUndefined();
    } finally {
      await onServer.stop();
    }
  }, 60_000);
});

describe('the primary probe', () => {
  test('a primary that takes the connection and never answers is unreachable after the timeout, not 30 s', async () => {
    let asked = 0;
    const silent = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: () => {
        asked++;
        return new Promise<Response>(() => undefined);
      },
    });
    try {
      const check = primaryHealthCheck(`http://127.0.0.1:${silent.port}`, undefined, { timeoutMs: 300 });
      const started = performance.now();
      const h = await check();
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(h).toMatchObject({ ok: false, reachable: false, code: 'STORE_UNAVAILABLE' });
      expect(asked).toBe(1);
    } finally {
      silent.stop(true);
    }
  });

  test("its reason names no path of the primary's (a public answer: /healthz needs no key)", async () => {
    const failing = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      // libSQL's client puts a plain-text error body into its message.
      fetch: () =>
        new Response('unable to open database file /var/lib/sqld/secret-tenant.db', {
          status: 500,
          headers: { 'content-type': 'text/plain' },
        }),
    });
    try {
      const h = await primaryHealthCheck(`http://127.0.0.1:${failing.port}`, undefined, {
        timeoutMs: 2_000,
      })();
      expect(h).toMatchObject({ ok: false, code: 'STORE_UNAVAILABLE' });
      const reason = h.ok ? '' : h.reason;
      expect(reason).toContain('<path>');
      expect(reason).not.toContain('secret-tenant');
    } finally {
      failing.stop(true);
    }
  });

  test('asked in a loop, it reaches the primary at most once per reuse period, one probe at a time', async () => {
    let asked = 0;
    const server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: async (req) => {
        asked++;
        // Forward to the real sqld: a genuine answer, counted.
        const answer = await fetch(new URL(new URL(req.url).pathname, sqld.url), {
          method: req.method,
          headers: { 'content-type': req.headers.get('content-type') ?? 'application/json' },
          body: await req.arrayBuffer(),
        });
        return new Response(await answer.arrayBuffer(), {
          status: answer.status,
          headers: { 'content-type': answer.headers.get('content-type') ?? 'application/json' },
        });
      },
    });
    try {
      let t = 0;
      const check = primaryHealthCheck(`http://127.0.0.1:${server.port}`, undefined, {
        reuseMs: 1_000,
        now: () => t,
      });
      const answers = await Promise.all(Array.from({ length: 20 }, () => check()));
      expect(answers.every((a) => a.ok)).toBe(true);
      const once = asked;
      expect(once).toBeGreaterThan(0);
      for (let i = 0; i < 20; i++) expect((await check()).ok).toBe(true);
      expect(asked).toBe(once);
      t += 1_000;
      expect((await check()).ok).toBe(true);
      expect(asked).toBe(2 * once);
    } finally {
      server.stop(true);
    }
  });
});
