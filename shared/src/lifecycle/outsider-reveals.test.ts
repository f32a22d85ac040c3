/**
 * Reveals from nodes outside the seal: the coordinator holds some (its verdict cites each, NOT_SEALED),
 * observers hold them to recompute that verdict, within a byte budget (`NON_MEMBER_REVEAL_BYTES`, the
 * observers twice it) beside the count bound; and none of them is part of what a driver stores to resume
 * a machine (`durableState`).
 */
import { describe, expect, test } from 'bun:test';
import { packetId, signPacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet } from '../packets/schemas.ts';
import { buildTranscript } from '../transcript/transcript.ts';
import { verifyTranscript } from '../transcript/verify.ts';
import { decide, NON_MEMBER_REVEAL_BYTES, receive, revealBytes } from './common.ts';
import { type CoordinatorState, startCoordinator, stepCoordinator } from './coordinator.ts';
import { type FollowerState, initFollower, stepFollower } from './follower.ts';
import { MAX_DEFERRED_REVEAL_BYTES } from './observer.ts';
import {
  makeRequest,
  signedCommit,
  signedReveal,
  signedSeal,
  signPublishes,
  T0,
  testKey,
} from './sim.test-helpers.ts';
import { durableState, restoreState, serializeState } from './state.ts';
import type { CoordinatorEvent, Effect, FollowerEvent, Received } from './types.ts';

const BIG = '€'.repeat(65_536);
/** When the coordinator seals: the second commit comes then (early close at maxCommits 2). */
const SEAL_AT = T0 + 1_000;

/** A request sealed with two members (node0, node1), and `n` reveals of `output` by keys outside it. */
async function world(label: string, n: number, output = BIG) {
  const ck = await testKey('coordinator');
  const keys = await Promise.all([0, 1].map((i) => testKey(`node${i}`)));
  const request = makeRequest({ frame: { quorum: 2, maxCommits: 2, secPercentage: 0.5 }, label });
  const requestPacket = await signPacket(ck, 'request', request);
  const commits = await Promise.all(keys.map((k) => signedCommit(k, request, SEAL_AT)));
  const seal = await signedSeal(ck, requestPacket, commits, SEAL_AT);
  const outsiders: Packet<'reveal'>[] = [];
  for (let i = 0; i < n; i++) {
    outsiders.push(
      await signedReveal(await testKey(`${label}/outsider${i}`), request, SEAL_AT + 100, output),
    );
  }
  const memberReveals = await Promise.all(keys.map((k) => signedReveal(k, request, SEAL_AT + 200)));
  return { ck, keys, request, requestPacket, commits, seal, outsiders, memberReveals };
}

type World = Awaited<ReturnType<typeof world>>;

/** The coordinator of `w`, sealed (its request and seal fed back), its state saved as a driver does. */
async function coordinator(w: World) {
  const config = {};
  const t = startCoordinator(config, { now: T0, self: w.ck.nodeId, request: w.request });
  let s: CoordinatorState = t.state;
  const effects: Effect[] = [];
  /** Bytes a driver storing `durableState` after each step that changed it would write. */
  let written = 0;
  let stored = '';
  const step = (event: CoordinatorEvent) => {
    const next = stepCoordinator(config, s, event);
    s = next.state;
    effects.push(...next.effects);
    const text = serializeState(durableState(s));
    if (text !== stored) {
      written += text.length;
      stored = text;
    }
    return next.effects;
  };
  const feedBack = async (fx: Effect[], now: number) => {
    for (const p of await signPublishes(w.ck, fx)) step({ kind: 'packet', now, packet: p });
  };
  await feedBack(t.effects, T0);
  for (const c of w.commits) await feedBack(step({ kind: 'packet', now: SEAL_AT, packet: c }), SEAL_AT);
  expect(s.seal?.id).toBe(packetId(w.seal));
  return {
    state: () => s,
    set: (next: CoordinatorState) => {
      s = next;
    },
    step,
    feedBack,
    effects,
    written: () => written,
    stored: () => stored,
  };
}

function outsiderBytes(reveals: readonly Received<'reveal'>[], members: Set<string>): number {
  return reveals.filter((r) => !members.has(r.packet.from)).reduce((n, r) => n + revealBytes(r.packet), 0);
}

describe('revealBytes', () => {
  test("is the reveal's canonical encoding, a little over 196 KB for 65,536 euro signs", async () => {
    const w = await world('outsider/bytes', 1);
    const r = w.outsiders[0] as Packet<'reveal'>;
    expect(revealBytes(r)).toBeGreaterThan(3 * 65_536);
    expect(revealBytes(r)).toBeLessThan(3 * 65_536 + 1_024);
    expect(revealBytes(r)).toBe(revealBytes(structuredClone(r)));
  });
});

describe('the coordinator', () => {
  test('holds outsider reveals within NON_MEMBER_REVEAL_BYTES, cites exactly those, and writes nothing for them', async () => {
    const n = 40;
    const w = await world('outsider/coordinator', n);
    const c = await coordinator(w);
    const members = new Set(w.keys.map((k) => k.nodeId));
    expect(c.state().phase).toBe('sealed');
    const before = c.written();
    let refused = 0;
    for (const r of w.outsiders) {
      const fx = c.step({ kind: 'packet', now: SEAL_AT + 100, packet: r });
      refused += fx.filter((e) => e.kind === 'rejected' && e.code === 'LIMIT').length;
      expect(outsiderBytes(c.state().reveals, members)).toBeLessThanOrEqual(NON_MEMBER_REVEAL_BYTES);
    }
    const held = c.state().reveals.length;
    expect(held).toBe(Math.floor(NON_MEMBER_REVEAL_BYTES / revealBytes(w.outsiders[0] as Packet<'reveal'>)));
    expect(refused).toBe(n - held);
    // Not one byte written for them: the saved state leaves them out.
    expect(c.written()).toBe(before);
    // The members reveal; the verdict cites each outsider reveal held (every reveal it was computed over).
    for (const r of w.memberReveals)
      await c.feedBack(c.step({ kind: 'packet', now: SEAL_AT + 200, packet: r }), SEAL_AT + 300);
    const verdict = c.state().verdict?.body.verdict;
    expect(verdict?.status).toBe('accepted');
    const cited = (verdict?.rejected ?? []).filter((r) => r.reason === 'NOT_SEALED');
    expect(cited.map((r) => r.revealId).sort()).toEqual(
      c
        .state()
        .reveals.filter((r) => !members.has(r.packet.from))
        .map((r) => r.id)
        .sort(),
    );
    // And the transcript of what it held verifies to the same verdict.
    const s = c.state();
    const result = decide(
      receive(w.requestPacket) as Received<'request'>,
      s.commits,
      receive(w.seal) as Received<'seal'>,
      s.reveals,
    );
    const check = await verifyTranscript(buildTranscript(result.packets));
    expect(check.ok && check.verdictDigest).toBe(s.verdict?.body.verdictDigest as string);
    // Written: a few small states, not the reveals held.
    expect(c.written()).toBeLessThan(64 * 1024);
  });

  test('small outsider reveals are still bounded by count (the verdict rejected entries), as before', async () => {
    const w = await world('outsider/small', 260, 'x');
    const c = await coordinator(w);
    for (const r of w.outsiders) c.step({ kind: 'packet', now: SEAL_AT + 100, packet: r });
    expect(c.state().reveals.length).toBe(256 - 2 * 2);
  });

  test('restored from its saved state (no outsider reveals), it resumes and reaches the same kind of verdict', async () => {
    const w = await world('outsider/restore', 8);
    const c = await coordinator(w);
    for (const r of w.outsiders) c.step({ kind: 'packet', now: SEAL_AT + 100, packet: r });
    await c.feedBack(
      c.step({ kind: 'packet', now: SEAL_AT + 200, packet: w.memberReveals[0] as AnyPacket }),
      SEAL_AT + 200,
    );
    // Crash: what the store holds is the durable state.
    const restored = restoreState(c.stored()) as CoordinatorState;
    expect(restored.reveals.map((r) => r.packet.from)).toEqual([w.keys[0]?.nodeId as string]);
    c.set(restored);
    await c.feedBack(c.step({ kind: 'restored', now: SEAL_AT + 300 }), SEAL_AT + 300);
    // A relay gives it back what its history kept (`restoreWith`): outsiders within the budget again.
    for (const r of w.outsiders) c.step({ kind: 'packet', now: SEAL_AT + 300, packet: r });
    await c.feedBack(
      c.step({ kind: 'packet', now: SEAL_AT + 400, packet: w.memberReveals[1] as AnyPacket }),
      SEAL_AT + 400,
    );
    const s = c.state();
    expect(s.phase).toBe('verdict');
    expect(s.verdict?.body.verdict.status).toBe('accepted');
    const members = new Set(w.keys.map((k) => k.nodeId));
    expect(outsiderBytes(s.reveals, members)).toBeLessThanOrEqual(NON_MEMBER_REVEAL_BYTES);
  });

  test('with no outsider reveals, the saved state is the whole state (honest traffic is saved as before)', async () => {
    const w = await world('outsider/honest', 0);
    const c = await coordinator(w);
    for (const r of w.memberReveals)
      await c.feedBack(c.step({ kind: 'packet', now: SEAL_AT + 200, packet: r }), SEAL_AT + 300);
    expect(durableState(c.state())).toBe(c.state());
    expect(c.stored()).toBe(serializeState(c.state()));
  });
});

/** A follower of `w`, fed the request and seal; `written` as a driver storing `durableState` would. */
async function follower(w: World) {
  const me = await testKey('outsider/follower');
  const config = { attest: false };
  let s: FollowerState = initFollower(config, {
    now: T0,
    self: me.nodeId,
    requestId: w.request.requestId,
  }).state;
  let written = 0;
  let stored = '';
  const step = (event: FollowerEvent) => {
    const t = stepFollower(config, s, event);
    s = t.state;
    const text = serializeState(durableState(s));
    if (text !== stored) {
      written += text.length;
      stored = text;
    }
    return t.effects;
  };
  return { state: () => s, step, written: () => written };
}

describe('an observer', () => {
  test('holds outsider reveals within twice the budget, writes nothing for them, and still recomputes the verdict', async () => {
    const n = 40;
    const w = await world('outsider/observer', n);
    const f = await follower(w);
    f.step({ kind: 'packet', now: T0 + 500, packet: w.requestPacket });
    f.step({ kind: 'packet', now: SEAL_AT, packet: w.seal });
    for (const c of w.commits) f.step({ kind: 'packet', now: SEAL_AT, packet: c });
    const before = f.written();
    const members = new Set(w.keys.map((k) => k.nodeId));
    for (const r of w.outsiders) {
      f.step({ kind: 'packet', now: SEAL_AT + 100, packet: r });
      expect(outsiderBytes(f.state().reveals, members)).toBeLessThanOrEqual(2 * NON_MEMBER_REVEAL_BYTES);
    }
    expect(f.state().reveals.length).toBeGreaterThan(0);
    expect(f.written()).toBe(before);
    // The coordinator, given the same reveals, holds the first half of what the observer holds.
    const c = await coordinator(w);
    for (const r of w.outsiders) c.step({ kind: 'packet', now: SEAL_AT + 100, packet: r });
    for (const r of w.memberReveals)
      await c.feedBack(c.step({ kind: 'packet', now: SEAL_AT + 200, packet: r }), SEAL_AT + 300);
    const verdict = (await signPublishes(w.ck, c.effects)).find((p) => p.type === 'verdict') as AnyPacket;
    for (const r of w.memberReveals) f.step({ kind: 'packet', now: SEAL_AT + 200, packet: r });
    const fx = f.step({ kind: 'packet', now: SEAL_AT + 300, packet: verdict });
    expect(fx.find((e) => e.kind === 'verdict')).toMatchObject({ check: 'recomputed' });
  });

  test('reveals that come before the seal wait within MAX_DEFERRED_REVEAL_BYTES, and are not saved', async () => {
    const w = await world('outsider/deferred', 60);
    const f = await follower(w);
    f.step({ kind: 'packet', now: T0 + 500, packet: w.requestPacket });
    const before = f.written();
    let full = 0;
    for (const r of w.outsiders) {
      const fx = f.step({ kind: 'packet', now: SEAL_AT - 300, packet: r });
      full += fx.filter((e) => e.kind === 'rejected' && e.code === 'BUFFER_FULL').length;
    }
    const deferred = f.state().deferred;
    const bytes = deferred.reduce((n, d) => n + revealBytes(d.packet as Packet<'reveal'>), 0);
    expect(bytes).toBeLessThanOrEqual(MAX_DEFERRED_REVEAL_BYTES);
    expect(deferred.length + full).toBe(60);
    expect(full).toBeGreaterThan(0);
    expect(f.written()).toBe(before);
    // A member's reveal still finds room once the seal came.
    f.step({ kind: 'packet', now: SEAL_AT, packet: w.seal });
    f.step({ kind: 'packet', now: SEAL_AT + 200, packet: w.memberReveals[0] as AnyPacket });
    expect(f.state().reveals.some((r) => r.packet.from === w.keys[0]?.nodeId)).toBe(true);
  });

  test('a verdict from anyone but the coordinator is refused before the seal, not held for it', async () => {
    const w = await world('outsider/verdict', 0);
    const f = await follower(w);
    f.step({ kind: 'packet', now: T0 + 500, packet: w.requestPacket });
    const other = await testKey('outsider/not-the-coordinator');
    const forged = await signPacket(other, 'verdict', {
      requestId: w.request.requestId,
      verdict: decide(
        receive(w.requestPacket) as Received<'request'>,
        w.commits.map(receive) as Received<'commit'>[],
        receive(w.seal) as Received<'seal'>,
        [],
      ).verdict,
      verdictDigest: '00'.repeat(32),
      transcriptRoot: '00'.repeat(32),
      createdAt: SEAL_AT,
    });
    const fx = f.step({ kind: 'packet', now: SEAL_AT, packet: forged });
    expect(fx).toContainEqual(expect.objectContaining({ kind: 'rejected', code: 'NOT_COORDINATOR' }));
    expect(f.state().deferred).toEqual([]);
  });
});
