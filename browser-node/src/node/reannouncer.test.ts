import { describe, expect, test } from 'bun:test';
import {
  type AnyPacket,
  type CoordinatorState,
  type LifecycleState,
  NodeKey,
  type Outgoing,
  signPacket,
  startCoordinator,
  stepCoordinator,
  type Transition,
} from '@synod/shared';
import { type ReannounceReason, Reannouncer } from './reannouncer.ts';
import type { Scheduler } from './scheduler.ts';
import { testRequest } from './test-request.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const T0 = 1_800_000_000_000;

/** A test double of the scheduler: virtual time, advanced by the test. */
class ManualScheduler implements Scheduler {
  t = T0;
  #jobs: { at: number; fn: () => void; live: boolean }[] = [];
  now(): number {
    return this.t;
  }
  after(ms: number, fn: () => void): () => void {
    const job = { at: this.t + Math.max(0, ms), fn, live: true };
    this.#jobs.push(job);
    return () => {
      job.live = false;
    };
  }
  /** Run every job due up to `to`, in time order. */
  advance(to: number): void {
    for (;;) {
      const due = this.#jobs.filter((j) => j.live && j.at <= to).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      due.live = false;
      this.t = due.at;
      due.fn();
    }
    this.t = to;
  }
}

/** A real coordinator: collecting (its request unanswered), then sealed on one commit (its seal). */
async function coordinator() {
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(90));
  const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(91));
  const body = testRequest({ embedder, createdAt: T0, frame: { quorum: 1, maxCommits: 1 } });
  const loop = async (t: Transition<CoordinatorState>): Promise<CoordinatorState> => {
    let state = t.state;
    for (const fx of t.effects) {
      if (fx.kind !== 'publish') continue;
      const packet = (await signPacket(key, fx.packetType, fx.body as never)) as AnyPacket;
      state = await loop(stepCoordinator({}, state, { kind: 'packet', now: T0, packet }));
    }
    return state;
  };
  const collecting = await loop(startCoordinator({}, { now: T0, self: key.nodeId, request: body }));
  const commit = await signPacket(nodeKey, 'commit', {
    requestId: body.requestId,
    commitment: 'ab'.repeat(32),
    createdAt: T0 + 10,
  });
  const sealed = await loop(
    stepCoordinator({}, collecting, { kind: 'packet', now: T0 + 10, packet: commit }),
  );
  return { collecting, sealed };
}

function harness(states: () => LifecycleState[]) {
  const scheduler = new ManualScheduler();
  const sent: { at: number; types: string[]; reason: ReannounceReason }[] = [];
  const passes: { peers: string[]; packets: number }[] = [];
  const r = new Reannouncer(
    {
      scheduler,
      machines: states,
      send: async (_s, out: Outgoing[], reason) => {
        sent.push({ at: scheduler.now() - T0, types: out.map((o) => o.packetType), reason });
        return out.length;
      },
      onJoinPass: (p) => passes.push(p),
    },
    { firstMs: 3_000, maxMs: 20_000, sweepMs: 1_000, joinDelayMs: 250, joinGapMs: 1_000 },
  );
  return { scheduler, sent, passes, r };
}

describe('Reannouncer', () => {
  test('on its schedule: first after firstMs, then at doubling gaps up to maxMs; a new packet starts again', async () => {
    const { collecting, sealed } = await coordinator();
    let current: LifecycleState = collecting;
    const h = harness(() => [current]);
    h.r.start();
    h.scheduler.advance(T0 + 50_000);
    // Found unanswered at the first sweep (1 s), then 3, 6, 12, 20, 20 s after.
    expect(h.sent.map((s) => s.at)).toEqual([4_000, 10_000, 22_000, 42_000]);
    expect(h.sent.every((s) => s.reason === 'schedule' && s.types.join() === 'request')).toBe(true);
    current = sealed;
    h.sent.length = 0;
    h.scheduler.advance(T0 + 60_000);
    // The seal is a new packet: its own schedule from the sweep that found it (51 s), 3 s then 6 s.
    expect(h.sent).toEqual([
      { at: 54_000, types: ['seal'], reason: 'schedule' },
      { at: 60_000, types: ['seal'], reason: 'schedule' },
    ]);
    h.r.stop();
    h.scheduler.advance(T0 + 200_000);
    expect(h.sent).toHaveLength(2);
  });

  test('nothing for a finished machine, or one with nothing unanswered', async () => {
    const { collecting } = await coordinator();
    const finished = {
      ...collecting,
      outcome: { kind: 'done' as const, reason: 'all-attested' as const, at: T0 },
    };
    const h = harness(() => [finished]);
    h.r.start();
    h.r.peerJoined('peer-a');
    h.scheduler.advance(T0 + 60_000);
    await Bun.sleep(0);
    expect(h.sent).toEqual([]);
    expect(h.passes).toEqual([{ peers: ['peer-a'], packets: 0 }]);
  });

  test('peers joining: one pass after joinDelayMs for a burst; passes that keep coming, at doubling gaps', async () => {
    const { collecting } = await coordinator();
    const h = harness(() => [collecting]);
    /** Advance 50 ms at a time, letting each pass end when it runs; until `n` passes are over. */
    const untilPasses = async (n: number) => {
      while (h.passes.length < n) {
        h.scheduler.advance(h.scheduler.now() + 50);
        await Bun.sleep(0);
      }
    };
    h.r.peerJoined('peer-a');
    h.r.peerJoined('peer-b');
    h.r.peerJoined('peer-c');
    h.r.peerJoined('peer-a');
    await untilPasses(1);
    expect(h.sent).toEqual([{ at: 250, types: ['request'], reason: 'peer-joined' }]);
    expect(h.passes).toEqual([{ peers: ['peer-a', 'peer-b', 'peer-c'], packets: 1 }]);
    // A peer joining over and over, each time right after a pass: 2, 4, 8, 8 s after the last one ended.
    for (let i = 2; i <= 5; i++) {
      h.r.peerJoined('peer-c');
      await untilPasses(i);
    }
    expect(h.sent.map((s) => s.at)).toEqual([250, 2_250, 6_250, 14_250, 22_250]);
    // Another peer, which no recent pass was for, is not kept waiting by that one: the base gap.
    h.r.peerJoined('peer-e');
    await untilPasses(6);
    expect(h.sent.at(-1)?.at).toBe(23_250);
    // Quiet for twice the gap: a peer served before is served after joinDelayMs again.
    h.scheduler.advance(h.scheduler.now() + 16_000);
    h.r.peerJoined('peer-c');
    await untilPasses(7);
    expect(h.sent.at(-1)?.at).toBe(39_500);
  });

  test('never two join passes at once: a join during a slow pass waits for its end and a gap', async () => {
    const { collecting } = await coordinator();
    const scheduler = new ManualScheduler();
    const started: number[] = [];
    let finish: (() => void) | null = null;
    const r = new Reannouncer(
      {
        scheduler,
        machines: () => [collecting],
        send: (_s, out) => {
          started.push(scheduler.now() - T0);
          return new Promise<number>((resolve) => {
            finish = () => resolve(out.length);
          });
        },
      },
      { joinDelayMs: 250, joinGapMs: 1_000 },
    );
    r.peerJoined('peer-a');
    scheduler.advance(T0 + 300);
    expect(started).toEqual([250]);
    // Joins while the pass is still sending (a slow signer, a saturated CPU): nothing starts.
    r.peerJoined('peer-b');
    r.peerJoined('peer-c');
    scheduler.advance(T0 + 5_000);
    expect(started).toEqual([250]);
    (finish as (() => void) | null)?.();
    await Bun.sleep(0);
    scheduler.advance(T0 + 20_000);
    // Ended at 5 s; the peers that waited all along are new ones: the next pass the base gap after it.
    expect(started).toEqual([250, 6_000]);
    r.stop();
  });

  test('a packet older than maxAgeMs is not published again: peers would refuse it as stale', async () => {
    const { collecting } = await coordinator();
    const scheduler = new ManualScheduler();
    const sent: number[] = [];
    const r = new Reannouncer(
      {
        scheduler,
        machines: () => [collecting],
        send: async (_s, out) => {
          sent.push(scheduler.now() - T0);
          return out.length;
        },
      },
      { firstMs: 3_000, maxMs: 3_000, maxAgeMs: 10_000 },
    );
    r.start();
    scheduler.advance(T0 + 30_000);
    // The request was signed at T0: found at 1 s, then every 3 s while younger than 10 s.
    expect(sent).toEqual([4_000, 7_000]);
    r.peerJoined('peer-a');
    scheduler.advance(T0 + 31_000);
    expect(sent).toEqual([4_000, 7_000]);
    r.stop();
  });

  test('a restored machine publishes what it waits on at once', async () => {
    const { sealed } = await coordinator();
    const h = harness(() => [sealed]);
    h.r.restored(sealed);
    expect(h.sent).toEqual([{ at: 0, types: ['seal'], reason: 'restored' }]);
  });

  test('bad options are refused', () => {
    const deps = { scheduler: new ManualScheduler(), machines: () => [], send: async () => 0 };
    expect(() => new Reannouncer(deps, { firstMs: -1 })).toThrow(RangeError);
    expect(() => new Reannouncer(deps, { sweepMs: Number.NaN })).toThrow(RangeError);
    expect(() => new Reannouncer(deps, { maxAgeMs: Number.POSITIVE_INFINITY })).toThrow(RangeError);
    expect(() => new Reannouncer(deps, { firstMs: 10_000, maxMs: 5_000 })).toThrow('maxMs');
    expect(() => new Reannouncer(deps, { joinGapMs: 10_000, maxJoinGapMs: 5_000 })).toThrow('maxJoinGapMs');
  });
});
