import { afterAll, afterEach, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeError } from '@synod/browser-node';
import { NodeKey, packetId, type RequestBody, signPacket, verifyPacket } from '@synod/shared';
import { IntakeStore } from '../store/intake-store.ts';
import { openHistory } from '../store/open-history.ts';
import { testBody } from '../store/test-admissions.ts';
import { storeRequest } from '../store/test-requests.ts';
import { Dispatcher, LEASE_STALE_MS, networkWindow, ORPHANED_AFTER_WINDOWS_MS } from './dispatcher.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-dispatch-'));
let n = 0;
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function body(createdAt: number, maxTimeMs = 30_000): RequestBody {
  return testBody({ prompt: `p${n++}`, createdAt, maxTimeMs });
}

/**
 * `RecordingCoordinator`: a test double of `SynodNode.submit` that records what it was asked to
 * coordinate, and refuses a request past its seal deadline as the real coordinator does
 * (`startCoordinator`: "the request is already past its seal deadline").
 */
class RecordingCoordinator {
  submitted: string[] = [];
  fail = new Set<string>();
  constructor(readonly now: () => number) {}
  async submit(b: RequestBody): Promise<void> {
    this.submitted.push(b.requestId);
    if (this.fail.has(b.requestId))
      throw new NodeError('REQUEST_NOT_PUBLISHED', 'the request was not published');
    if (this.now() >= b.createdAt + b.frame.maxTimeMs) throw new Error('past its seal deadline');
  }
}

async function setup(o: {
  maxOpen: number;
  now: () => number;
  maxQueued?: number;
  pollMs?: number;
  ready?: () => boolean;
  networkWindow?: () => number | undefined;
}) {
  const h = await openHistory(`file:${join(dir, `d-${n++}.db`)}`);
  const intake = new IntakeStore(h.client);
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(9));
  const node = new RecordingCoordinator(o.now);
  const changed: string[] = [];
  const logged: Record<string, unknown>[] = [];
  const d = new Dispatcher({
    intake,
    store: h.store,
    node,
    key,
    now: o.now,
    maxOpen: o.maxOpen,
    pollMs: o.pollMs ?? 60_000,
    ...(o.maxQueued !== undefined ? { maxQueued: o.maxQueued } : {}),
    ...(o.ready !== undefined ? { ready: o.ready } : {}),
    ...(o.networkWindow !== undefined ? { networkWindow: o.networkWindow } : {}),
    changed: (id) => changed.push(id),
    log: (entry) => logged.push(entry),
  });
  closers.push(async () => {
    await d.stop();
    h.client.close();
  });
  const admit = async (bodies: RequestBody[]) =>
    intake.admit(
      bodies.map((b) => ({ body: b, callerId: 'key_a', quotaPerDay: 1e6, day: '2026-11-22' })),
      key.nodeId,
      o.now(),
    );
  return { ...h, intake, key, node, changed, logged, d, admit };
}

/** The options a test's dispatcher was made with (to build another over the same log). */
function optionsOf(s: Awaited<ReturnType<typeof setup>>) {
  return { intake: s.intake, store: s.store, node: s.node, key: s.key, now: () => 0 };
}

/**
 * Set `coordinator`'s lease as renewed `agoMs` before the database's clock (leases run on the database's
 * clock, not on any relay's: `IntakeStore.renewLease`).
 */
async function leaseAgo(s: Awaited<ReturnType<typeof setup>>, coordinator: string, agoMs: number) {
  await s.client.execute({
    sql: `INSERT INTO coordinator_leases (coordinator, renewed_at)
          VALUES (?, CAST(unixepoch('subsec') * 1000 AS INTEGER) - ?)
          ON CONFLICT (coordinator) DO UPDATE SET renewed_at = excluded.renewed_at`,
    args: [coordinator, agoMs],
  });
}

async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await Bun.sleep(5);
  }
}

describe('Dispatcher', () => {
  test('a read of the log that keeps failing is logged once a spell, again each minute with the count, and its end is said', async () => {
    let now = 1_000_000;
    const s = await setup({ maxOpen: 2, now: () => now });
    const next = s.intake.next.bind(s.intake);
    let down = true;
    s.intake.next = (async (...args: Parameters<typeof next>) => {
      if (down) throw new Error('SQLITE_BUSY: the database is out of reach');
      return next(...args);
    }) as typeof next;
    const failures = () => s.logged.filter((l) => l['msg'] === 'reading the admission log failed');
    for (let i = 0; i < 30; i++) {
      s.d.wake(true);
      await s.d.idle();
      now += 1_000;
    }
    // 30 failures over 30 s: one line.
    expect(failures()).toHaveLength(1);
    expect(s.d.stats().errors).toBe(30);
    now += 31_000;
    s.d.wake(true);
    await s.d.idle();
    expect(failures()).toHaveLength(2);
    expect(failures()[1]).toMatchObject({ level: 'error', failures: 31, unlogged: 29 });
    down = false;
    await s.admit([body(now)]);
    s.d.wake();
    await s.d.idle();
    expect(s.logged.at(-1)).toMatchObject({
      level: 'info',
      msg: 'works again',
      after: 'reading the admission log failed',
      failures: 31,
    });
    expect(s.node.submitted).toHaveLength(1);
  });

  test('dispatches oldest first, at most maxOpen at once; a finished request frees its slot', async () => {
    const now = 1_000_000;
    const s = await setup({ maxOpen: 2, now: () => now });
    const bodies = [body(now), body(now), body(now), body(now)];
    await s.admit(bodies);
    s.d.wake();
    await s.d.idle();
    const ids = bodies.map((b) => b.requestId);
    expect(s.node.submitted).toEqual(ids.slice(0, 2));
    expect(await s.intake.count()).toBe(2);
    // Moved into the history, signed by the coordinator, status pending.
    const d0 = await s.store.getRequest(ids[0] as string);
    expect(d0?.status).toBe('pending');
    expect(d0?.request.from).toBe(s.key.nodeId);
    expect(d0?.requestPacketId).toBe(packetId(d0?.request as never));
    await verifyPacket(d0?.request, { now });
    expect(s.changed).toEqual(ids.slice(0, 2));
    // Waking with the window full reads nothing and starts nothing.
    s.d.wake();
    await s.d.idle();
    expect(s.node.submitted.length).toBe(2);
    s.d.release(ids[0] as string);
    await s.d.idle();
    expect(s.node.submitted).toEqual(ids.slice(0, 3));
    expect(s.d.stats()).toMatchObject({ open: 2, dispatched: 3, expired: 0 });
  });

  test('the window is no wider than the network can take (networkWindow), and widens with it', async () => {
    const now = 1_000_000;
    let network: number | undefined = 2;
    const s = await setup({ maxOpen: 256, now: () => now, networkWindow: () => network });
    const bodies = Array.from({ length: 5 }, () => body(now));
    await s.admit(bodies);
    s.d.wake();
    await s.d.idle();
    expect(s.node.submitted).toHaveLength(2);
    expect(s.d.stats()).toMatchObject({ open: 2, maxOpen: 256, window: 2 });
    // A finished request frees a place for the next.
    s.d.release(bodies[0]?.requestId as string);
    await s.d.idle();
    expect(s.node.submitted).toHaveLength(3);
    // More nodes heard: the window widens; none heard (unknown): maxOpen alone.
    network = undefined;
    s.d.wake();
    await s.d.idle();
    expect(s.node.submitted).toHaveLength(5);
    expect(s.d.stats().window).toBe(256);
  });

  test("networkWindow: the nodes' queues at the default quorum (3), unknown when none says one", () => {
    expect(networkWindow([64, 64, 64])).toBe(64);
    expect(networkWindow([8, 8, 8])).toBe(8);
    // Fewer nodes than the quorum: reckoned at a quorum of all of them, not one request at a time.
    expect(networkWindow([2])).toBe(2);
    expect(networkWindow([64, 64])).toBe(64);
    expect(networkWindow([1, 64])).toBe(1);
    expect(networkWindow([])).toBeUndefined();
    expect(networkWindow([0, 0])).toBeUndefined();
    // A request takes a job at 3 different nodes: a short queue bounds what the others can take with it.
    expect(networkWindow([1, 64, 64])).toBe(1);
    expect(networkWindow([1, 64, 64, 64])).toBe(64);
    expect(networkWindow([10, 10, 100, 100])).toBe(20);
    expect(networkWindow([1, 64, 64], 2)).toBe(64);
  });

  test('nothing starts while the network has no peer to hear it; expired rows still leave; then all start', async () => {
    let now = 1_000_000;
    let peers = 0;
    const s = await setup({ maxOpen: 4, now: () => now, ready: () => peers > 0 });
    const old = body(now);
    await s.admit([old]);
    now += old.frame.maxTimeMs;
    const fresh = [body(now), body(now)];
    await s.admit(fresh);
    s.d.wake(true);
    await s.d.idle();
    // Published into a network of no one, a request is never heard and only expires: it waits instead.
    expect(s.node.submitted).toEqual([]);
    expect((await s.store.getRequest(old.requestId))?.status).toBe('expired');
    expect(await s.intake.count()).toBe(2);
    // Admissions meanwhile do not read the log (a read of the queue per request, on the HTTP thread).
    let reads = 0;
    const next = s.intake.next.bind(s.intake);
    s.intake.next = (...args) => {
      reads++;
      return next(...args);
    };
    await s.admit([body(now)]);
    s.d.admitted(1);
    await s.d.idle();
    expect(reads).toBe(0);
    peers = 1;
    s.d.wake();
    await s.d.idle();
    expect(s.node.submitted.slice(0, 2)).toEqual(fresh.map((b) => b.requestId));
    expect(s.node.submitted).toHaveLength(3);
  });

  test('admissions answered together (a group commit) look at the network once, after they all ran', async () => {
    const now = 1_000_000;
    let looks = 0;
    let readyLooks = 0;
    const s = await setup({
      maxOpen: 4,
      maxQueued: 100,
      now: () => now,
      // Each look walks every node heard (their heartbeats): once a batch, not once a request.
      networkWindow: () => {
        looks++;
        return 4;
      },
      ready: () => {
        readyLooks++;
        return false;
      },
    });
    for (let i = 0; i < 14; i++) s.d.admitted(1);
    expect(s.d.queue()?.queued).toBe(14);
    expect(looks).toBe(0);
    await Promise.resolve();
    expect(looks).toBe(1);
    expect(readyLooks).toBe(1);
    await s.d.idle();
    // A later admission looks again.
    s.d.admitted(1);
    await Promise.resolve();
    expect(looks).toBe(2);
  });

  test('queue(): without a bound there is none, and the log is never counted', async () => {
    const now = 1_000_000;
    const s = await setup({ maxOpen: 1, now: () => now });
    await s.admit([body(now), body(now)]);
    s.d.start();
    await s.d.idle();
    expect(s.d.queue()).toBeUndefined();
    expect(() => new Dispatcher({ ...optionsOf(s), maxQueued: 0 })).toThrow(RangeError);
  });

  test('queue(): counted at start, raised by admitted(), lowered as rows leave', async () => {
    const now = 1_000_000;
    const s = await setup({ maxOpen: 2, now: () => now, maxQueued: 4 });
    const first = [body(now), body(now), body(now), body(now), body(now)];
    await s.admit(first);
    s.d.start();
    // 5 rows at start; 2 of them dispatched (maxOpen 2): 3 wait.
    await waitFor(() => s.d.queue()?.queued === 3 && s.node.submitted.length === 2);
    expect(s.d.queue()).toEqual({ queued: 3, limit: 4 });
    // Two more admitted through this relay: counted at once, without a poll.
    await s.admit([body(now), body(now)]);
    s.d.admitted(2);
    expect(s.d.queue()).toEqual({ queued: 5, limit: 4 });
    // A finished request frees a slot: the next row leaves the log.
    s.d.release(first[0]?.requestId as string);
    await s.d.idle();
    expect(s.node.submitted.length).toBe(3);
    expect(s.d.queue()).toEqual({ queued: 4, limit: 4 });
    expect(await s.intake.count(s.key.nodeId)).toBe(4);
  });

  test('queue(): rows admitted elsewhere for this coordinator are counted at the next poll', async () => {
    const now = 1_000_000;
    const s = await setup({ maxOpen: 1, now: () => now, maxQueued: 2, pollMs: 30 });
    s.d.start();
    await waitFor(() => s.d.queue()?.queued === 0);
    // Another relay over the same database wrote these (and its wake-up was lost).
    await s.admit([body(now), body(now), body(now), body(now)]);
    await waitFor(() => s.d.queue()?.queued === 3);
    expect(s.node.submitted.length).toBe(1);
  });

  test('a request still queued at its deadline moves to the history as expired (QUEUE_TIMEOUT), without a slot', async () => {
    let now = 1_000_000;
    const s = await setup({ maxOpen: 1, now: () => now });
    const busy = body(now);
    const late = body(now, 2_000);
    const fresh = body(now + 2_500);
    await s.admit([busy, late, fresh]);
    s.d.wake();
    await s.d.idle();
    expect(s.node.submitted).toEqual([busy.requestId]);
    now += 2_500;
    s.d.wake(true); // the periodic poll: expires even with the window full
    await s.d.idle();
    const expired = await s.store.getRequest(late.requestId);
    expect(expired?.status).toBe('expired');
    expect(expired?.error).toBe('QUEUE_TIMEOUT');
    expect(s.node.submitted).toEqual([busy.requestId]);
    expect(await s.intake.count()).toBe(1);
    s.d.release(busy.requestId);
    await s.d.idle();
    expect(s.node.submitted).toEqual([busy.requestId, fresh.requestId]);
    expect(s.d.stats()).toMatchObject({ dispatched: 2, expired: 1 });
  });

  test('a request whose time runs out while its step is signed and stored expires (QUEUE_TIMEOUT), not fails, and is refunded once', async () => {
    // A restart's backlog: the clock moves on while the dispatcher signs and stores a step of rows. On the
    // day `setup`'s admissions are charged to.
    let now = Date.UTC(2026, 10, 22, 12);
    let ticking = false;
    const s = await setup({
      maxOpen: 8,
      now: () => {
        if (ticking) now += 100;
        return now;
      },
    });
    const bodies = [body(now, 1_000), body(now, 1_000), body(now, 60_000)];
    await s.admit(bodies);
    now += 700; // the first two have 300 ms left when their step starts
    ticking = true;
    s.d.wake();
    await s.d.idle();
    await s.d.stop();
    for (const b of bodies.slice(0, 2)) {
      const r = await s.store.getRequest(b.requestId);
      expect({ status: r?.status, error: r?.error }).toEqual({ status: 'expired', error: 'QUEUE_TIMEOUT' });
    }
    expect((await s.store.getRequest(bodies[2]!.requestId))?.status).toBe('pending');
    expect(s.d.stats()).toMatchObject({ expired: 2, errors: 0 });
    // The two that never reached the network are given back; the one started stays charged.
    expect(await usedOn(s, 'key_a', '2026-11-22')).toBe(1);
    // Asked again (a second path reaching the same request), nothing more is given back.
    const [a] = bodies as [RequestBody];
    expect(
      await s.store.expireUnstarted(a.requestId, { callerId: 'key_a', createdAt: a.createdAt }, now),
    ).toBe(false);
    expect(await usedOn(s, 'key_a', '2026-11-22')).toBe(1);
  });

  async function expectExpired(s: Awaited<ReturnType<typeof setup>>, bodies: RequestBody[], error: string) {
    for (const b of bodies) {
      expect(await s.store.getRequest(b.requestId)).toMatchObject({ status: 'expired', error });
    }
  }

  /** What `caller` was charged on `day` (`usage.count`), as the quota reads it. */
  async function usedOn(s: Awaited<ReturnType<typeof setup>>, caller: string, day: string) {
    const r = await s.client.execute({
      sql: 'SELECT count FROM usage WHERE key_id = ? AND day = ?',
      args: [caller, day],
    });
    return r.rows.length === 0 ? null : Number(r.rows[0]?.['count']);
  }

  test('a request that never reached the network is refunded to its caller, on the day it was charged', async () => {
    // Admitted 100 ms before a UTC midnight: charged to that day, and refunded to it after midnight.
    let now = Date.UTC(2026, 10, 23, 23, 59, 59, 900);
    const s = await setup({ maxOpen: 1, now: () => now });
    const [ran, late, other] = [body(now), body(now, 2_000), body(now, 2_000)];
    const charge = (b: RequestBody, callerId: string) =>
      s.intake.admit([{ body: b, callerId, quotaPerDay: 10, day: '2026-11-23' }], s.key.nodeId, now);
    await charge(ran, 'key_a');
    await charge(late, 'key_a');
    await charge(other, 'key_b');
    // key_a already used the next day too: its count there is left alone.
    await s.client.execute("INSERT INTO usage (key_id, day, count) VALUES ('key_a', '2026-11-24', 4)");
    expect(await usedOn(s, 'key_a', '2026-11-23')).toBe(2);
    s.d.wake();
    await s.d.idle();
    expect(s.node.submitted).toEqual([ran.requestId]);
    now += 2_500;
    s.d.wake(true);
    await s.d.idle();
    await expectExpired(s, [late, other], 'QUEUE_TIMEOUT');
    // The request that ran stays charged; the two that expired in the log are given back.
    expect(await usedOn(s, 'key_a', '2026-11-23')).toBe(1);
    expect(await usedOn(s, 'key_b', '2026-11-23')).toBe(0);
    expect(await usedOn(s, 'key_a', '2026-11-24')).toBe(4);
  });

  test('rows of a coordinator gone for good are refunded to their callers as they expire (COORDINATOR_GONE)', async () => {
    const now = Date.UTC(2026, 10, 24, 12);
    const s = await setup({ maxOpen: 4, now: () => now });
    const gone = await NodeKey.fromSeed(new Uint8Array(32).fill(12));
    const old = body(now - 3_600_000);
    await s.intake.admit(
      [{ body: old, callerId: 'key_c', quotaPerDay: 10, day: '2026-11-24' }],
      gone.nodeId,
      now - 3_600_000,
    );
    expect(await usedOn(s, 'key_c', '2026-11-24')).toBe(1);
    expect(await s.d.expireAbandoned()).toEqual([old.requestId]);
    expect(await usedOn(s, 'key_c', '2026-11-24')).toBe(0);
  });

  /** Two queued requests, the first one's stored body replaced by `altered` (as if edited outside the relay). */
  async function withAlteredRow(altered: (a: RequestBody) => string) {
    const now = 1_000_000;
    const s = await setup({ maxOpen: 4, now: () => now });
    const [a, b] = [body(now), body(now)];
    await s.admit([a, b]);
    await s.client.execute({
      sql: 'UPDATE request_intake SET body = ? WHERE request_id = ?',
      args: [altered(a), a.requestId],
    });
    return { s, a, b };
  }

  test('a row that no longer parses is dropped; a coordinator that fails marks the request failed', async () => {
    const { s, a, b } = await withAlteredRow(() => '{"not":"a request"}');
    s.node.fail.add(b.requestId);
    s.d.wake();
    await s.d.idle();
    await s.d.stop(); // waits for the coordinator start that failed
    expect(await s.intake.count()).toBe(0);
    expect(await s.store.getRequest(a.requestId)).toBeNull();
    const failed = await s.store.getRequest(b.requestId);
    expect(failed?.status).toBe('failed');
    expect(failed?.error).toBe('COORDINATOR_FAILED');
    // The node's refusal is logged with its code.
    expect(s.logged).toContainEqual(
      expect.objectContaining({
        level: 'error',
        code: 'REQUEST_NOT_PUBLISHED',
        err: 'the request was not published',
      }),
    );
    expect(s.d.stats()).toMatchObject({ dropped: 1, dispatched: 1 });
    expect(s.d.stats().errors).toBeGreaterThan(0);
  });

  test('a row whose body parses but no longer matches its request id is dropped, and the next goes on', async () => {
    // Still a valid body, but signing refuses it: its id is not derived from it.
    const { s, a, b } = await withAlteredRow((a) => JSON.stringify({ ...a, prompt: 'something else' }));
    s.d.wake();
    await s.d.idle();
    expect(s.node.submitted).toEqual([b.requestId]);
    expect(await s.intake.count()).toBe(0);
    expect(await s.store.getRequest(a.requestId)).toBeNull();
    expect((await s.store.getRequest(b.requestId))?.status).toBe('pending');
    expect(s.d.stats()).toMatchObject({ dropped: 1, dispatched: 1 });
  });
  test('a row another relay moved out of the log after it was read starts nothing here', async () => {
    const now = 1_000_000;
    const s = await setup({ maxOpen: 4, now: () => now });
    const [a, b] = [body(now), body(now)];
    await s.admit([a, b]);
    // Another relay over the same database takes `a` out of the log (as `expireAbandoned` would) between
    // this dispatcher's read of the log and its move.
    const other = await NodeKey.fromSeed(new Uint8Array(32).fill(10));
    const elsewhere = new Dispatcher({ ...optionsOf(s), key: other, now: () => now });
    const next = s.intake.next.bind(s.intake);
    s.intake.next = async (coordinator, limit) => {
      const rows = await next(coordinator, limit);
      const row = rows.find((r) => r.requestId === a.requestId);
      if (row?.body) {
        const packet = await signPacket(other, 'request', row.body);
        const taken = await s.store.moveFromIntake(
          [
            {
              seq: row.seq,
              request: { id: packetId(packet), packet },
              status: 'expired',
              error: 'COORDINATOR_GONE',
            },
          ],
          now,
        );
        expect([...taken]).toEqual([row.seq]);
      }
      return rows;
    };
    s.d.wake();
    await s.d.idle();
    expect(s.node.submitted).toEqual([b.requestId]);
    const taken = await s.store.getRequest(a.requestId);
    expect(taken).toMatchObject({ status: 'expired', error: 'COORDINATOR_GONE' });
    expect(taken?.request.from).toBe(other.nodeId);
    expect(s.d.stats()).toMatchObject({ dispatched: 1, expired: 0 });
    expect(await elsewhere.expireAbandoned()).toEqual([]);
  });

  test('expireAbandoned: rows of another coordinator queued long past their deadline expire COORDINATOR_GONE here', async () => {
    const now = 10_000_000;
    const s = await setup({ maxOpen: 4, now: () => now });
    // A coordinator that stopped and never came back left three rows long past their deadline (one no
    // longer parses) and one just past it; this relay's own old row is its own dispatcher's business
    // (QUEUE_TIMEOUT at its next step), never taken for abandoned.
    const gone = await NodeKey.fromSeed(new Uint8Array(32).fill(11));
    const admitFor = (coordinator: string, bodies: RequestBody[]) =>
      s.intake.admit(
        bodies.map((b) => ({ body: b, callerId: 'key_a', quotaPerDay: 1e6, day: '2026-11-22' })),
        coordinator,
        now,
      );
    const [o0, o1, o2] = [body(now - 3_600_000), body(now - 3_500_000), body(now - 3_400_000)];
    // Its deadline (30 s after it was made) passed a minute ago: within the grace.
    const justPast = body(now - 90_000);
    const mine = body(now - 3_600_000);
    await admitFor(gone.nodeId, [o0, o1, o2, justPast]);
    await admitFor(s.key.nodeId, [mine]);
    await s.client.execute({
      sql: 'UPDATE request_intake SET body = ? WHERE request_id = ?',
      args: ['{"not":"a request"}', o1.requestId],
    });

    const expired = await s.d.expireAbandoned();
    expect(expired).toEqual([o0.requestId, o2.requestId]);
    for (const b of [o0, o2]) {
      const d = await s.store.getRequest(b.requestId);
      expect(d).toMatchObject({ status: 'expired', error: 'COORDINATOR_GONE' });
      // Signed by the relay that took it out of the log: the request never reached the network.
      expect(d?.request.from).toBe(s.key.nodeId);
      await verifyPacket(d?.request, { now: b.createdAt });
    }
    expect(await s.store.getRequest(o1.requestId)).toBeNull();
    expect(await s.intake.queued(o1.requestId)).toBeNull();
    expect((await s.intake.queued(justPast.requestId))?.coordinator).toBe(gone.nodeId);
    expect((await s.intake.queued(mine.requestId))?.coordinator).toBe(s.key.nodeId);
    expect(s.changed).toEqual(expired);
    // Nothing left to take: a second pass moves nothing.
    expect(await s.d.expireAbandoned()).toEqual([]);
    // The dispatcher's own row leaves through its own step, as QUEUE_TIMEOUT.
    s.d.wake(true);
    await s.d.idle();
    expect(await s.store.getRequest(mine.requestId)).toMatchObject({
      status: 'expired',
      error: 'QUEUE_TIMEOUT',
    });
  });
  test("takeOverStale: a coordinator's rows are taken over once its lease is stale or released, never while fresh", async () => {
    const now = 5_000_000;
    const s = await setup({ maxOpen: 4, now: () => now });
    const [a, b] = [body(now), body(now)];
    await s.admit([a, b]);
    const keyB = await NodeKey.fromSeed(new Uint8Array(32).fill(12));
    const nodeB = new RecordingCoordinator(() => now);
    let readyB = false;
    const relayB = new Dispatcher({
      ...optionsOf(s),
      key: keyB,
      node: nodeB,
      now: () => now,
      ready: () => readyB,
    });
    closers.push(() => relayB.stop());
    const coordinatorOf = async (id: string) => (await s.intake.queued(id))?.coordinator;

    // No lease at all (a coordinator that never renewed one): never taken over.
    readyB = true;
    expect(await relayB.takeOverStale()).toBe(0);
    // A fresh lease: not taken (a second of margin: the database's clock runs on meanwhile).
    await leaseAgo(s, s.key.nodeId, LEASE_STALE_MS - 1_000);
    expect(await relayB.takeOverStale()).toBe(0);
    // Stale, but B cannot start anything (no peer): left for a relay that can.
    await leaseAgo(s, s.key.nodeId, LEASE_STALE_MS + 1);
    readyB = false;
    expect(await relayB.takeOverStale()).toBe(0);
    expect(await coordinatorOf(a.requestId)).toBe(s.key.nodeId);
    // Stale, and B can: both rows are B's, and B signs and starts them.
    readyB = true;
    expect(await relayB.takeOverStale()).toBe(2);
    expect(await coordinatorOf(a.requestId)).toBe(keyB.nodeId);
    await relayB.idle();
    expect(nodeB.submitted).toEqual([a.requestId, b.requestId]);
    expect((await s.store.getRequest(a.requestId))?.request.from).toBe(keyB.nodeId);
    // The first coordinator, back, finds nothing of its own to start.
    s.d.wake();
    await s.d.idle();
    expect(s.node.submitted).toEqual([]);

    // A lease given up (a clean stop) is stale at once.
    const c = body(now);
    await s.admit([c]);
    await s.intake.renewLease(s.key.nodeId);
    expect(await relayB.takeOverStale()).toBe(0);
    await s.intake.releaseLease(s.key.nodeId);
    expect(await relayB.takeOverStale()).toBe(1);
    await relayB.idle();
    expect(nodeB.submitted).toEqual([a.requestId, b.requestId, c.requestId]);
  });
  test('rows read again and again that are no longer in the log (a replica behind) end the step, not loop on it', async () => {
    const now = 1_000_000;
    const s = await setup({ maxOpen: 4, now: () => now });
    const a = body(now);
    await s.admit([a]);
    // A replica that has not synced: it keeps showing the row another relay already moved.
    const stale = await s.intake.next(s.key.nodeId, 64);
    await s.store.dropFromIntake(stale[0]?.seq ?? -1);
    let reads = 0;
    s.intake.next = async () => {
      reads++;
      return stale;
    };
    s.d.wake();
    await s.d.idle();
    expect(reads).toBe(1);
    expect(s.node.submitted).toEqual([]);
    const other = await NodeKey.fromSeed(new Uint8Array(32).fill(13));
    s.intake.abandoned = async () => {
      reads++;
      return stale;
    };
    const elsewhere = new Dispatcher({ ...optionsOf(s), key: other, now: () => now });
    expect(await elsewhere.expireAbandoned()).toEqual([]);
    expect(reads).toBe(2);
  });
  test('open requests of a coordinator whose lease went stale expire COORDINATOR_GONE once their windows are past', async () => {
    let now = 50_000_000;
    const s = await setup({ maxOpen: 4, now: () => now });
    const gone = await NodeKey.fromSeed(new Uint8Array(32).fill(21));
    const alive = await NodeKey.fromSeed(new Uint8Array(32).fill(22));
    const leaseless = await NodeKey.fromSeed(new Uint8Array(32).fill(23));
    const open = async (key: NodeKey, createdAt: number) => {
      const b = body(createdAt);
      const packet = await signPacket(key, 'request', b);
      await storeRequest(s.store, { id: packetId(packet), packet }, createdAt);
      return b.requestId;
    };
    const windows = (id: string) => s.store.getRequest(id).then((d) => d?.request.body.frame);
    const old = await open(gone, now - 600_000);
    const recent = await open(gone, now - 1_000);
    const ofAlive = await open(alive, now - 600_000);
    const ofLeaseless = await open(leaseless, now - 600_000);
    const frame = await windows(old);
    expect(frame?.maxTimeMs).toBe(30_000);
    await leaseAgo(s, gone.nodeId, LEASE_STALE_MS + 1);
    await s.intake.renewLease(alive.nodeId);

    s.d.start();
    await waitFor(() => s.changed.includes(old));
    await s.d.stop();
    const status = async (id: string) => {
      const d = await s.store.getRequest(id);
      return `${d?.status}${d?.error ? `:${d.error}` : ''}`;
    };
    expect(await status(old)).toBe('expired:COORDINATOR_GONE');
    // Its windows are not over: its coordinator might still have been sealing it.
    expect(await status(recent)).toBe('pending');
    // A live coordinator ends its own; one without a lease is left to the 20-minute rule.
    expect(await status(ofAlive)).toBe('pending');
    expect(await status(ofLeaseless)).toBe('pending');
    // Past the recent one's windows and the minute after them, it goes too.
    now += 1_000 + (frame?.maxTimeMs ?? 0) + (frame?.revealWindowMs ?? 0) + ORPHANED_AFTER_WINDOWS_MS;
    await s.intake.renewLease(alive.nodeId);
    expect(
      await s.store.expireOrphaned(s.key.nodeId, LEASE_STALE_MS, now, ORPHANED_AFTER_WINDOWS_MS),
    ).toEqual([recent]);
  });
  test("a coordinator whose clock runs 60 s behind keeps its rows while it renews (leases run on the database's clock)", async () => {
    const behind = () => Date.now() - 60_000;
    const s = await setup({ maxOpen: 4, now: behind, ready: () => false });
    const a = body(behind(), 120_000);
    await s.admit([a]);
    let renewals = 0;
    const renew = s.intake.renewLease.bind(s.intake);
    s.intake.renewLease = async (...args) => {
      await renew(...args);
      renewals++;
    };
    s.d.start();
    await waitFor(() => renewals >= 1);
    const keyB = await NodeKey.fromSeed(new Uint8Array(32).fill(14));
    const relayB = new Dispatcher({ ...optionsOf(s), key: keyB, now: () => Date.now() });
    closers.push(() => relayB.stop());
    expect(await relayB.takeOverStale()).toBe(0);
    expect((await s.intake.queued(a.requestId))?.coordinator).toBe(s.key.nodeId);
    // Its open requests are not taken for orphaned either (their windows long past by B's clock).
    const open = body(Date.now() - 600_000);
    const packet = await signPacket(s.key, 'request', open);
    await storeRequest(s.store, { id: packetId(packet), packet }, open.createdAt);
    expect(
      await s.store.expireOrphaned(keyB.nodeId, LEASE_STALE_MS, Date.now(), ORPHANED_AFTER_WINDOWS_MS),
    ).toEqual([]);
  });
  test('a sweep that hangs does not stop the lease renewals', async () => {
    const now = 1_000_000;
    const s = await setup({ maxOpen: 4, now: () => now });
    let release: (rows: never[]) => void = () => {};
    s.intake.abandoned = () =>
      new Promise((resolve) => {
        release = resolve;
      });
    let renewals = 0;
    const renew = s.intake.renewLease.bind(s.intake);
    s.intake.renewLease = async (...args) => {
      await renew(...args);
      renewals++;
    };
    const d = new Dispatcher({ ...optionsOf(s), now: () => now, leaseRenewMs: 20 });
    d.start();
    try {
      await waitFor(() => renewals >= 3, 2_000);
    } finally {
      release([]);
      await d.stop();
    }
  });
  test('with no peer, rows past their deadline behind one that is not still leave the log', async () => {
    let now = 1_000_000;
    const s = await setup({ maxOpen: 4, now: () => now, ready: () => false });
    const long = body(now, 120_000);
    const short = body(now, 30_000);
    await s.admit([long, short]);
    now += 30_000;
    s.d.wake(true);
    await s.d.idle();
    expect((await s.store.getRequest(short.requestId))?.status).toBe('expired');
    expect((await s.intake.queued(long.requestId))?.coordinator).toBe(s.key.nodeId);
    expect(s.node.submitted).toEqual([]);
  });
});
