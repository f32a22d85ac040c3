import { afterAll, afterEach, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeKey, packetId, type RequestBody, verifyPacket } from '@synod/shared';
import { IntakeStore } from '../store/intake-store.ts';
import { openHistory } from '../store/open-history.ts';
import { testBody } from '../store/test-admissions.ts';
import { Dispatcher } from './dispatcher.ts';

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

/** `RecordingCoordinator`: a test double of `SynodNode.submit` that records what it was asked to coordinate. */
class RecordingCoordinator {
  submitted: string[] = [];
  fail = new Set<string>();
  async submit(b: RequestBody): Promise<void> {
    this.submitted.push(b.requestId);
    if (this.fail.has(b.requestId)) throw new Error('engine on fire');
  }
}

async function setup(o: { maxOpen: number; now: () => number }) {
  const h = await openHistory(`file:${join(dir, `d-${n++}.db`)}`);
  const intake = new IntakeStore(h.client);
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(9));
  const node = new RecordingCoordinator();
  const changed: string[] = [];
  const d = new Dispatcher({
    intake,
    store: h.store,
    node,
    key,
    now: o.now,
    maxOpen: o.maxOpen,
    pollMs: 60_000,
    changed: (id) => changed.push(id),
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
  return { ...h, intake, key, node, changed, d, admit };
}

describe('Dispatcher', () => {
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
});
