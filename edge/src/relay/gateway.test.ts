import { describe, expect, test } from 'bun:test';
import type { RequestBody } from '@synod/shared';
import { GATEWAY_SECRET_HEADER, type GatewayStatus } from '../routes/internal.ts';
import { GatewayRelayNetwork } from './gateway.ts';

const STATUS: GatewayStatus = {
  coordinatorId: 'c'.repeat(64),
  models: ['stories260K'],
  embedders: [],
  defaultModels: ['stories260K'],
  health: { ok: true, peers: 3, openRequests: 0 },
  queue: null,
};

/** `ScriptedGateway`: a fetch test double answering like a gateway relay's internal routes. */
function scriptedGateway(o: { wake: 'ok' | 'down' | 'refused' | 'silent'; status?: unknown }) {
  const calls: { path: string; secret: string | null; body: unknown }[] = [];
  const fetch = async (input: string, init?: RequestInit): Promise<Response> => {
    const path = new URL(input).pathname;
    const headers = new Headers(init?.headers);
    calls.push({
      path,
      secret: headers.get(GATEWAY_SECRET_HEADER),
      body: init?.body ? JSON.parse(String(init.body)) : undefined,
    });
    if (path === '/internal/v1/status') return Response.json(o.status ?? STATUS);
    if (path === '/internal/v1/wake') {
      if (o.wake === 'down') throw new TypeError('connection refused');
      if (o.wake === 'refused') return Response.json({ error: { code: 'FORBIDDEN' } }, { status: 403 });
      if (o.wake === 'silent') {
        // Accepts the call and never answers: only the caller's abort ends it.
        return new Promise((_, reject) => {
          init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
        });
      }
      return Response.json({ ok: true });
    }
    return new Response('no', { status: 404 });
  };
  return { calls, fetch };
}

/** A relay over `fetch` (a scripted gateway by default) on a clock the test moves (`advance`). */
function clockedGateway(fetch = scriptedGateway({ wake: 'ok' }).fetch) {
  let clock = 1_000;
  const net = new GatewayRelayNetwork({
    url: 'http://gw.test',
    secret: 's'.repeat(20),
    now: () => clock,
    fetch,
  });
  return {
    net,
    advance: (ms: number) => {
      clock += ms;
    },
  };
}

describe('GatewayRelayNetwork', () => {
  test('learns the coordinator and models from the gateway status, with the secret', async () => {
    const g = scriptedGateway({ wake: 'ok' });
    const net = new GatewayRelayNetwork({ url: 'http://gw.test/', secret: 's'.repeat(20), fetch: g.fetch });
    expect(net.coordinatorId).toBe('');
    expect([...(await net.servedModels())]).toEqual(['stories260K']);
    expect(net.coordinatorId).toBe(STATUS.coordinatorId);
    await net.admitted(['a'.repeat(64)]);
    expect(g.calls.map((c) => c.path)).toEqual(['/internal/v1/status', '/internal/v1/wake']);
    expect(g.calls.every((c) => c.secret === 's'.repeat(20))).toBe(true);
    expect(g.calls[1]?.body).toEqual({ requestIds: ['a'.repeat(64)] });
    expect(net.health().ok).toBe(true);
  });

  test('a failed wake is counted in health detail but does not make the relay unhealthy', async () => {
    const g = scriptedGateway({ wake: 'down' });
    const net = new GatewayRelayNetwork({ url: 'http://gw.test', secret: 's'.repeat(20), fetch: g.fetch });
    await net.servedModels();
    await net.admitted(['b'.repeat(64)]);
    const h = net.health();
    expect(h.ok).toBe(true);
    expect(h.detail).toMatchObject({ wakeFailures: 1, lastWakeError: 'connection refused' });
  });

  test('a wake the gateway refuses (non-2xx) is counted as failed', async () => {
    const g = scriptedGateway({ wake: 'refused' });
    const net = new GatewayRelayNetwork({ url: 'http://gw.test', secret: 's'.repeat(20), fetch: g.fetch });
    await net.servedModels();
    await net.admitted(['c'.repeat(64)]);
    expect(net.health().detail).toMatchObject({ wakeFailures: 1, lastWakeError: 'wake answered 403' });
  });

  test('a gateway that never answers a wake is abandoned after timeoutMs', async () => {
    const g = scriptedGateway({ wake: 'silent' });
    const net = new GatewayRelayNetwork({
      url: 'http://gw.test',
      secret: 's'.repeat(20),
      fetch: g.fetch,
      timeoutMs: 50,
    });
    await net.servedModels();
    const started = Date.now();
    await net.admitted(['d'.repeat(64)]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(net.health().detail).toMatchObject({ wakeFailures: 1 });
  });

  test("the gateway's admission queue decides while its status is fresh, and never once stale", async () => {
    let t = 1_000;
    const g = scriptedGateway({ wake: 'ok', status: { ...STATUS, queue: { queued: 7, limit: 5 } } });
    const net = new GatewayRelayNetwork({
      url: 'http://gw.test',
      secret: 's'.repeat(20),
      fetch: g.fetch,
      statusTtlMs: 5_000,
      now: () => t,
    });
    expect(net.queue()).toBeUndefined(); // no status yet
    await net.servedModels();
    expect(net.queue()).toEqual({ queued: 7, limit: 5 });
    t += 5_000; // stale: a "full" that may no longer hold refuses nothing until the next refresh
    expect(net.queue()).toBeUndefined();
    await net.servedModels();
    expect(net.queue()).toEqual({ queued: 7, limit: 5 });
  });

  test('a gateway without a bound, or one too old to report its queue, bounds nothing', async () => {
    for (const status of [STATUS, { ...STATUS, queue: undefined }]) {
      const net = new GatewayRelayNetwork({
        url: 'http://gw.test',
        secret: 's'.repeat(20),
        fetch: scriptedGateway({ wake: 'ok', status }).fetch,
      });
      await net.servedModels();
      expect(net.queue()).toBeUndefined();
    }
  });

  test('an unreachable gateway is a 503 NETWORK_UNAVAILABLE when models are needed', async () => {
    const net = new GatewayRelayNetwork({
      url: 'http://gw.test',
      secret: 's'.repeat(20),
      fetch: async () => {
        throw new TypeError('connection refused');
      },
    });
    await expect(net.servedModels()).rejects.toMatchObject({ status: 503, code: 'NETWORK_UNAVAILABLE' });
    expect(net.health().ok).toBe(false);
  });

  test("a gateway out of reach: its last numbers are not reported as now's (peers 0), its last health kept apart", async () => {
    let up = true;
    const g = scriptedGateway({ wake: 'ok' });
    const { net, advance } = clockedGateway((input, init) =>
      up ? g.fetch(input, init) : Promise.reject(new TypeError('connection refused')),
    );
    await net.status(true);
    expect(net.health()).toMatchObject({ ok: true, peers: 3, detail: { gatewayHealth: STATUS.health } });
    up = false;
    advance(60_000);
    expect(await net.status(true)).toBeUndefined();
    const h = net.health();
    expect(h).toMatchObject({ ok: false, peers: 0, openRequests: 0 });
    expect(h.detail).toMatchObject({ lastGatewayHealth: STATUS.health, lastGatewayHealthAt: 1_000 });
    expect(h.detail).not.toHaveProperty('gatewayHealth');
  });

  test("a gateway whose coordinator holds no fresh lease in this relay's database: unhealthy, and admissions refused 503", async () => {
    const { net, advance } = clockedGateway();
    await net.status(true);
    // Not looked at yet: nothing is said.
    expect(net.leaseCheckDue()).toBe(true);
    expect(() => net.checkLease()).not.toThrow();
    // None in this database: the gateway dispatches from another one.
    net.noteLease(STATUS.coordinatorId, null);
    expect(net.health()).toMatchObject({
      ok: false,
      detail: {
        reason: 'GATEWAY_NOT_ON_THIS_DATABASE',
        leaseAgeMs: null,
        hint: expect.stringContaining('--db'),
      },
    });
    expect(() => net.checkLease()).toThrow("the gateway relay does not dispatch from this relay's database");
    // While it finds a problem it looks again at every call: a gateway that comes back is taken at once.
    expect(net.leaseCheckDue()).toBe(true);
    // Renewed 2 s ago: it does.
    net.noteLease(STATUS.coordinatorId, 2_000);
    expect(net.health().ok).toBe(true);
    expect(() => net.checkLease()).not.toThrow();
    expect(net.leaseCheckDue()).toBe(false);
    // Given up by a clean stop (a gateway stopping or starting again): what comes meanwhile waits for it.
    net.noteLease(STATUS.coordinatorId, 'released');
    expect(net.health().ok).toBe(true);
    expect(() => net.checkLease()).not.toThrow();
    // A restart's pauses (20 s) are not another database.
    net.noteLease(STATUS.coordinatorId, 20_000);
    expect(() => net.checkLease()).not.toThrow();
    // Not renewed for 70 s while the gateway answers (LEASE_ELSEWHERE_MS is 60 s): it dispatches elsewhere.
    net.noteLease(STATUS.coordinatorId, 70_000);
    let refused: unknown;
    try {
      net.checkLease();
    } catch (e) {
      refused = e;
    }
    expect(refused).toMatchObject({
      status: 503,
      code: 'NETWORK_UNAVAILABLE',
      message: "the gateway relay has not dispatched from this relay's database for 70 s",
    });
    // Looked at again after a status TTL.
    net.noteLease(STATUS.coordinatorId, 1_000);
    expect(net.leaseCheckDue()).toBe(false);
    advance(5_000);
    expect(net.leaseCheckDue()).toBe(true);
  });

  test("a gateway whose status names another database than this relay's: refused at once, whatever its lease here says", async () => {
    const status = (databaseId: unknown) =>
      clockedGateway(scriptedGateway({ wake: 'ok', status: { ...STATUS, databaseId } }).fetch).net;
    const ours = 'a'.repeat(32);
    const moved = status('b'.repeat(32));
    await moved.status(true);
    expect(moved.databaseUnknown).toBe(true);
    moved.noteDatabase(ours);
    expect(moved.databaseUnknown).toBe(false);
    // Left released by a clean stop before it moved: the lease says nothing, the identity does.
    moved.noteLease(STATUS.coordinatorId, 'released');
    expect(() => moved.checkLease()).toThrow(
      "the gateway relay dispatches from another database than this relay's",
    );
    expect(moved.health()).toMatchObject({
      ok: false,
      detail: {
        reason: 'GATEWAY_NOT_ON_THIS_DATABASE',
        databaseId: ours,
        gatewayDatabaseId: 'b'.repeat(32),
        hint: expect.stringContaining('SYNOD_DB_URL'),
      },
    });
    // Even before its lease was looked at.
    const fresh = status('b'.repeat(32));
    await fresh.status(true);
    fresh.noteDatabase(ours);
    expect(() => fresh.checkLease()).toThrow('another database');
    // The same database: the lease decides, as before.
    const same = status(ours);
    await same.status(true);
    same.noteDatabase(ours);
    same.noteLease(STATUS.coordinatorId, 'released');
    expect(() => same.checkLease()).not.toThrow();
    expect(same.health().ok).toBe(true);
    // A gateway older than the identity (none in its status), or a database without one: the lease decides.
    for (const [theirs, mine] of [
      [undefined, ours],
      [null, ours],
      ['b'.repeat(32), null],
    ] as const) {
      const g = status(theirs);
      await g.status(true);
      g.noteDatabase(mine);
      g.noteLease(STATUS.coordinatorId, 1_000);
      expect(() => g.checkLease()).not.toThrow();
    }
  });

  test("a quorum the gateway's nodes cannot meet is counted from the groups its fresh status publishes", async () => {
    const request = (models: string[], embedder = 'use-lite-512') =>
      ({ acceptedModels: models, frame: { embeddingModel: { id: embedder } } }) as unknown as RequestBody;
    const serving = [
      { models: ['m1'], embedders: ['use-lite-512'], able: 2, paused: 0 },
      { models: ['m1', 'm2'], embedders: ['use-lite-512'], able: 0, paused: 1 },
      { models: ['m3'], embedders: ['use-lite-512'], able: 0, paused: 2 },
    ];
    const net = (status: unknown) => clockedGateway(scriptedGateway({ wake: 'ok', status }).fetch);
    const { net: g, advance } = net({ ...STATUS, serving });
    await g.status(true);
    expect(g.servingNodes(request(['m1']))).toBe(2);
    expect(g.servingNodes(request(['m2']))).toBe(0);
    expect(g.servingNodes(request(['m3']))).toBe(0);
    expect(g.servingNodes(request(['m4']))).toBeUndefined();
    expect(g.servingNodes(request(['m1'], 'another'))).toBeUndefined();
    // A status past its TTL says nothing until it is fetched again (each submission fetches it).
    advance(5_000);
    expect(g.servingNodes(request(['m1']))).toBeUndefined();
    // A gateway that cannot say yet (null), an older one (absent), or groups that are not groups: nothing.
    for (const said of [
      null,
      undefined,
      [{ models: 'm1', embedders: [], able: 1, paused: 0 }],
      [{ ...serving[0], able: -1 }],
    ]) {
      const { net: other } = net({ ...STATUS, serving: said });
      await other.status(true);
      expect(other.servingNodes(request(['m1']))).toBeUndefined();
    }
  });

  test("public answers never name the gateway's address, even in a failure's own words", async () => {
    const net = new GatewayRelayNetwork({
      url: 'http://gw.internal.test:8787',
      secret: 's'.repeat(20),
      fetch: async (input: string) => {
        throw new TypeError(
          `Unable to connect to ${input} (gw.internal.test:8787 refused; getaddrinfo gw.internal.test)`,
        );
      },
    });
    const refused = await net.servedModels().catch((e: unknown) => e);
    await net.admitted(['d'.repeat(64)]);
    const seen = JSON.stringify([net.health(), (refused as { body(): unknown }).body()]);
    expect(seen).toContain('Unable to connect to <gateway>/internal/v1/status');
    expect(seen).not.toContain('gw.internal.test');
  });

  test('a gateway that refuses the secret, or serves no internal routes, is named as such', async () => {
    const answering = (status: number) => async () =>
      Response.json({ error: { code: status === 404 ? 'NOT_FOUND' : 'FORBIDDEN' } }, { status });
    for (const [status, message, hint] of [
      [403, "the gateway relay refused this relay's gateway secret", 'SYNOD_GATEWAY_SECRET'],
      [401, "the gateway relay refused this relay's gateway secret", 'SYNOD_GATEWAY_SECRET'],
      [404, 'the gateway relay does not serve /internal/v1 to edge relays', 'gateway secret set'],
    ] as const) {
      const net = new GatewayRelayNetwork({
        url: 'http://gw.test',
        secret: 's'.repeat(20),
        fetch: answering(status),
      });
      const e = await net.servedModels().catch((x: unknown) => x);
      expect(e).toMatchObject({ status: 503, code: 'NETWORK_UNAVAILABLE', message });
      expect((e as { hint: string }).hint).toContain(hint);
      expect((e as { details: { reason: string } }).details.reason).toStartWith(`status ${status}:`);
    }
    // Once it answers, an outage is an unreachable gateway again, not a refusal.
    let down = false;
    const net = new GatewayRelayNetwork({
      url: 'http://gw.test',
      secret: 's'.repeat(20),
      statusTtlMs: 0,
      fetch: async () => {
        if (down) throw new TypeError('connection refused');
        return Response.json({ error: { code: 'FORBIDDEN' } }, { status: 403 });
      },
    });
    await expect(net.servedModels()).rejects.toMatchObject({ message: expect.stringContaining('refused') });
    down = true;
    await expect(net.servedModels()).rejects.toMatchObject({ message: 'the gateway relay is unreachable' });
  });
});
