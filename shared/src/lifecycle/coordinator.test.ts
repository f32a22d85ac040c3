import { describe, expect, test } from 'bun:test';
import { compareStrings } from '../encoding/bytes.ts';
import { isSynodError } from '../errors.ts';
import type { Frame } from '../frame/frame.ts';
import type { NodeKey } from '../identity/node-key.ts';
import { packetId, signPacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet } from '../packets/index.ts';
import { type CoordinatorCtx, feedCoordinator, startedCoordinator } from './coordinator.test-helpers.ts';
import {
  type CoordinatorConfig,
  type CoordinatorState,
  startCoordinator,
  stepCoordinator,
} from './coordinator.ts';
import { seatLot } from './seats.ts';
import {
  kinds,
  makeRequest,
  signedCommit,
  signedReveal,
  signPublishes,
  T0,
  testKey,
} from './sim.test-helpers.ts';
import type { Effect } from './types.ts';

type Ctx = CoordinatorCtx;

const started = (
  frame: Partial<Omit<Frame, 'embeddingModel'>> = {},
  config: CoordinatorConfig = {},
): Promise<Ctx> => startedCoordinator(frame, config);
const feed = feedCoordinator;

function fire(
  ctx: Ctx,
  name: 'seal-deadline' | 'reveal-deadline' | 'attest-deadline',
  now: number,
): Effect[] {
  const t = stepCoordinator(ctx.config, ctx.state, { kind: 'timer', now, name });
  ctx.state = t.state;
  return t.effects;
}

/** Feed the signed packets of every publish back (the driver's loopback). */
async function loopback(ctx: Ctx, effects: Effect[], now: number): Promise<AnyPacket[]> {
  const packets = await signPublishes(ctx.ck, effects);
  for (const p of packets) feed(ctx, p, now);
  return packets;
}

async function commitAll(ctx: Ctx, nodes: number[], start = T0 + 1_000): Promise<Effect[]> {
  const all: Effect[] = [];
  for (const [k, i] of nodes.entries()) {
    all.push(...feed(ctx, await signedCommit(ctx.keys[i]!, ctx.request, start + k), start + k));
  }
  return all;
}

function rejected(effects: Effect[]) {
  return effects.filter((e) => e.kind === 'rejected').map((e) => (e.kind === 'rejected' ? e.code : ''));
}

describe('startCoordinator', () => {
  test('persists, publishes the request and arms the seal deadline', async () => {
    const ck = await testKey('coordinator');
    const request = makeRequest({ label: 'start' });
    const t = startCoordinator({}, { now: T0, self: ck.nodeId, request });
    expect(kinds(t.effects)).toEqual(['persist', 'publish:request', 'set-timer']);
    expect(t.effects[2]).toEqual({
      kind: 'set-timer',
      name: 'seal-deadline',
      at: T0 + request.frame.maxTimeMs,
    });
    const [packet] = await signPublishes(ck, t.effects);
    expect(t.effects[1]).toMatchObject({ id: packetId(packet!) });
    expect(t.state.outbox).toHaveLength(1);
    const back = stepCoordinator({}, t.state, { kind: 'packet', now: T0, packet: packet! });
    expect(back.state.outbox).toEqual([]);
    expect(back.state.request.packet).toEqual(packet as Packet<'request'>);
  });

  test('a malformed request or one past its deadline is a caller bug', async () => {
    const ck = await testKey('coordinator');
    const request = makeRequest({ label: 'bad' });
    const calls = [
      () =>
        startCoordinator(
          {},
          { now: T0, self: ck.nodeId, request: { ...request, requestId: 'ab'.repeat(32) } },
        ),
      () => startCoordinator({}, { now: T0 + request.frame.maxTimeMs, self: ck.nodeId, request }),
      () => startCoordinator({}, { now: -1, self: ck.nodeId, request }),
    ];
    for (const call of calls) {
      expect(call).toThrow();
      try {
        call();
      } catch (e) {
        expect(isSynodError(e, 'LIFECYCLE_INVALID_EVENT')).toBe(true);
      }
    }
  });
});

describe('collecting commits and sealing', () => {
  test('early close: seals at once when maxCommits valid commits are held', async () => {
    const ctx = await started({ quorum: 3, maxCommits: 5 });
    const before = await commitAll(ctx, [0, 1, 2, 3]);
    expect(before).toEqual([]);
    const at = T0 + 2_000;
    const commit = await signedCommit(ctx.keys[4]!, ctx.request, at);
    const fx = feed(ctx, commit, at);
    expect(kinds(fx)).toEqual(['cancel-timer', 'persist', 'publish:seal', 'set-timer']);
    const seal = fx[2] as Extract<Effect, { kind: 'publish'; packetType: 'seal' }>;
    expect(seal.body.createdAt).toBe(at);
    expect(seal.body.createdAt).toBeLessThan(T0 + ctx.request.frame.maxTimeMs);
    expect(seal.body.requestPacketId).toBe(packetId(ctx.requestPacket));
    const ids = seal.body.members.map((m) => m.nodeId);
    expect(ids).toEqual([...ids].sort(compareStrings));
    expect(new Set(ids)).toEqual(new Set(ctx.keys.slice(0, 5).map((k) => k.nodeId)));
    expect(seal.body.members.find((m) => m.nodeId === ctx.keys[4]!.nodeId)?.commitId).toBe(packetId(commit));
    expect(fx[3]).toEqual({
      kind: 'set-timer',
      name: 'reveal-deadline',
      at: at + ctx.request.frame.revealWindowMs,
    });
    expect(ctx.state.phase).toBe('sealed');
  });

  test('a commit after the seal is ignored with a diagnostic', async () => {
    const ctx = await started({ quorum: 2, maxCommits: 2 });
    await commitAll(ctx, [0, 1]);
    expect(ctx.state.phase).toBe('sealed');
    const late = await signedCommit(ctx.keys[2]!, ctx.request, T0 + 3_000);
    const fx = feed(ctx, late, T0 + 3_000);
    expect(fx).toEqual([
      { kind: 'rejected', code: 'COMMIT_AFTER_SEAL', reason: expect.any(String), packetId: packetId(late) },
    ]);
    expect(ctx.state.commits).toHaveLength(2);
  });

  test('at the seal deadline, seals with what it holds when that is at least the quorum', async () => {
    const ctx = await started({ quorum: 3, maxCommits: 5 });
    await commitAll(ctx, [0, 1, 2]);
    const at = T0 + ctx.request.frame.maxTimeMs;
    const fx = fire(ctx, 'seal-deadline', at);
    expect(kinds(fx)).toEqual(['persist', 'publish:seal', 'set-timer']);
    const seal = fx[1] as Extract<Effect, { kind: 'publish'; packetType: 'seal' }>;
    expect(seal.body.members).toHaveLength(3);
    expect(seal.body.createdAt).toBe(at);
  });

  test('at the seal deadline, expires with fewer than quorum commits, then takes nothing', async () => {
    const ctx = await started({ quorum: 3, maxCommits: 5 });
    await commitAll(ctx, [0, 1]);
    const fx = fire(ctx, 'seal-deadline', T0 + ctx.request.frame.maxTimeMs);
    expect(fx).toEqual([{ kind: 'expired', reason: 'quorum-not-met' }]);
    expect(ctx.state.outcome).toMatchObject({ kind: 'expired', reason: 'quorum-not-met' });
    const late = await signedCommit(ctx.keys[2]!, ctx.request, T0 + 10_500);
    expect(rejected(feed(ctx, late, T0 + 10_500))).toEqual(['FINISHED']);
  });

  test('double commit: evidence with both signed packets, the node is excluded from the seal', async () => {
    const ctx = await started({ quorum: 2, maxCommits: 3 });
    const k = ctx.keys[0]!;
    const a = await signedCommit(k, ctx.request, T0 + 1_000, 'one answer', 'a');
    const b = await signedCommit(k, ctx.request, T0 + 1_001, 'another answer', 'b');
    expect(feed(ctx, a, T0 + 1_000)).toEqual([]);
    const fx = feed(ctx, b, T0 + 1_001);
    const [x, y] = [a, b].sort((p, q) => compareStrings(packetId(p), packetId(q)));
    expect(fx[0]).toEqual({
      kind: 'evidence',
      evidence: { kind: 'double-commit', nodeId: k.nodeId, packets: [x!, y!] },
    });
    expect(rejected(fx)).toEqual(['DOUBLE_COMMIT']);
    expect(ctx.state.equivocators).toEqual([k.nodeId]);
    const third = await signedCommit(k, ctx.request, T0 + 1_002, 'one answer', 'c');
    expect(rejected(feed(ctx, third, T0 + 1_002))).toEqual(['EQUIVOCATOR']);
    await commitAll(ctx, [1, 2, 3], T0 + 1_100);
    const seal = ctx.state.seal;
    expect(seal?.body.members.map((m) => m.nodeId)).not.toContain(k.nodeId);
    expect(seal?.body.members).toHaveLength(3);
  });

  test('a sealed member that commits again differently still produces evidence', async () => {
    const ctx = await started({ quorum: 2, maxCommits: 2 });
    await commitAll(ctx, [0, 1]);
    const again = await signedCommit(ctx.keys[0]!, ctx.request, T0 + 4_000, 'changed my mind', 'x');
    const fx = feed(ctx, again, T0 + 4_000);
    expect(fx[0]?.kind).toBe('evidence');
    expect(rejected(fx)).toEqual(['DOUBLE_COMMIT']);
  });

  test('duplicates, same-commitment repeats, ineligible nodes and foreign packets', async () => {
    const eligible = new Set<string>();
    const ctx = await started({ quorum: 2, maxCommits: 4 }, { isEligible: (_r, n) => eligible.has(n) });
    for (const k of ctx.keys.slice(0, 3)) eligible.add(k.nodeId);
    const c0 = await signedCommit(ctx.keys[0]!, ctx.request, T0 + 1_000);
    expect(feed(ctx, c0, T0 + 1_000)).toEqual([]);
    expect(feed(ctx, c0, T0 + 1_001)).toEqual([]); // redelivery
    const repeat = await signedCommit(ctx.keys[0]!, ctx.request, T0 + 1_002); // same commitment, new createdAt
    expect(rejected(feed(ctx, repeat, T0 + 1_002))).toEqual(['DUPLICATE_COMMIT']);
    const outsider = await signedCommit(ctx.keys[5]!, ctx.request, T0 + 1_003);
    expect(rejected(feed(ctx, outsider, T0 + 1_003))).toEqual(['NOT_ELIGIBLE']);
    const other = makeRequest({ label: 'another request' });
    const foreign = await signedCommit(ctx.keys[1]!, other, T0 + 1_004);
    expect(rejected(feed(ctx, foreign, T0 + 1_004))).toEqual(['REQUEST_MISMATCH']);
    const heartbeat = await signPacket(ctx.keys[1]!, 'heartbeat', {
      role: 'node',
      software: 'test',
      models: [],
      embedders: [],
      capacity: { queued: 0, maxQueue: 1 },
      addresses: [],
      createdAt: T0 + 1_005,
    });
    expect(rejected(feed(ctx, heartbeat, T0 + 1_005))).toEqual(['UNEXPECTED_TYPE']);
    expect(ctx.state.commits).toHaveLength(1);
  });

  test('packets only the coordinator may sign, from someone else, are rejected', async () => {
    const ctx = await started();
    const k = ctx.keys[0]!;
    const fakeSeal = await signPacket(k, 'seal', {
      requestId: ctx.request.requestId,
      requestPacketId: packetId(ctx.requestPacket),
      members: [{ nodeId: k.nodeId, commitment: 'aa'.repeat(32), commitId: 'bb'.repeat(32) }],
      createdAt: T0 + 1_000,
    });
    expect(rejected(feed(ctx, fakeSeal, T0 + 1_000))).toEqual(['NOT_COORDINATOR']);
    const copy = await signPacket(k, 'request', ctx.request);
    expect(rejected(feed(ctx, copy, T0 + 1_000))).toEqual(['DUPLICATE_REQUEST']);
  });

  test('a reveal before the seal breaks the protocol and is rejected', async () => {
    const ctx = await started({ quorum: 2, maxCommits: 3 });
    await commitAll(ctx, [0, 1]);
    const early = await signedReveal(ctx.keys[0]!, ctx.request, T0 + 1_500);
    expect(rejected(feed(ctx, early, T0 + 1_500))).toEqual(['REVEAL_BEFORE_SEAL']);
    expect(ctx.state.reveals).toEqual([]);
  });
});

describe('seats for nodes without a record (SeatPolicy)', () => {
  /** Nodes 0-2 have a record; 3-6 do not; `standing` gives some of those a standing. */
  const policy = (ctxKeys: () => NodeKey[], applies = true, standing: Record<number, number> = {}) => ({
    isProven: (nodeId: string) =>
      ctxKeys()
        .slice(0, 3)
        .some((k) => k.nodeId === nodeId),
    applies: () => applies,
    standing: (nodeId: string) => {
      const i = ctxKeys().findIndex((k) => k.nodeId === nodeId);
      return standing[i] ?? 0;
    },
  });

  async function withSeats(
    frame: Partial<Omit<Frame, 'embeddingModel'>>,
    applies = true,
    standing: Record<number, number> = {},
  ): Promise<Ctx> {
    let keys: NodeKey[] = [];
    const ctx = await started(frame, { seats: policy(() => keys, applies, standing) });
    keys = ctx.keys;
    return ctx;
  }

  /** Of nodes `among`, sorted by the lot each draws for the context's request, lowest (winning) first. */
  const byLot = (ctx: Ctx, among: number[]) =>
    [...among].sort((a, b) =>
      compareStrings(
        seatLot(ctx.request.requestId, ctx.keys[a]!.nodeId),
        seatLot(ctx.request.requestId, ctx.keys[b]!.nodeId),
      ),
    );
  const seatedIds = (ctx: Ctx) => ctx.state.commits.map((c) => c.packet.from);

  test('quorum 3 at 0.6: one seat for such nodes, so three fresh keys cannot fill a seal and agree', async () => {
    const ctx = await withSeats({ quorum: 3, maxCommits: 3 });
    expect(ctx.state.unprovenSeats).toBe(1);
    const fx = await commitAll(ctx, [3, 4, 5]);
    expect(rejected(fx)).toEqual(['UNPROVEN_SEATS_FULL', 'UNPROVEN_SEATS_FULL']);
    // The seat is the lot's, not the first committer's.
    const winner = byLot(ctx, [3, 4, 5])[0]!;
    expect(seatedIds(ctx)).toEqual([ctx.keys[winner]!.nodeId]);
    const sealed = await commitAll(ctx, [0, 1], T0 + 2_000);
    const seal = sealed.find((e) => e.kind === 'publish' && e.packetType === 'seal') as Extract<
      Effect,
      { kind: 'publish'; packetType: 'seal' }
    >;
    expect(new Set(seal.body.members.map((m) => m.nodeId))).toEqual(
      new Set([0, 1, winner].map((i) => ctx.keys[i]!.nodeId)),
    );
  });

  test('committing first wins nothing: the same seat goes to the same node whatever the order', async () => {
    const winners = new Set<string>();
    for (const order of [
      [3, 4, 5, 6],
      [6, 5, 4, 3],
      [4, 6, 3, 5],
    ]) {
      const ctx = await withSeats({ quorum: 3, maxCommits: 3 });
      const fx = await commitAll(ctx, order);
      expect(rejected(fx)).toEqual(['UNPROVEN_SEATS_FULL', 'UNPROVEN_SEATS_FULL', 'UNPROVEN_SEATS_FULL']);
      expect(seatedIds(ctx)).toHaveLength(1);
      winners.add(seatedIds(ctx)[0]!);
    }
    expect(winners.size).toBe(1);
  });

  test('a node further toward a record displaces fresh keys, which cannot displace it', async () => {
    const probe = await withSeats({ quorum: 3, maxCommits: 3 });
    // Node 6 would lose the lot to some fresh key; its standing puts it first all the same.
    const [best, , , worst] = byLot(probe, [3, 4, 5, 6]);
    const ctx = await withSeats({ quorum: 3, maxCommits: 3 }, true, { [worst!]: 1 });
    const fx = await commitAll(ctx, [best!, worst!]);
    expect(seatedIds(ctx)).toEqual([ctx.keys[worst!]!.nodeId]);
    // The displaced commit is named in the refusal, so its sender's packet is accounted for.
    const refusal = fx.find((e) => e.kind === 'rejected') as Extract<Effect, { kind: 'rejected' }>;
    expect(refusal.code).toBe('UNPROVEN_SEATS_FULL');
    expect(refusal.packetId).not.toBe(ctx.state.commits[0]!.id);
    const after = await commitAll(
      ctx,
      [3, 4, 5, 6].filter((i) => i !== best && i !== worst),
      T0 + 1_500,
    );
    expect(rejected(after)).toEqual(['UNPROVEN_SEATS_FULL', 'UNPROVEN_SEATS_FULL']);
    expect(seatedIds(ctx)).toEqual([ctx.keys[worst!]!.nodeId]);
    // Of two nodes with a standing, the higher one's.
    const two = await withSeats({ quorum: 3, maxCommits: 3 }, true, { [worst!]: 1, [best!]: 2 });
    await commitAll(two, [worst!, best!]);
    expect(seatedIds(two)).toEqual([two.keys[best!]!.nodeId]);
  });

  test('no seat at all (quorum 1): every node without a record is refused, standing or not', async () => {
    const ctx = await withSeats({ quorum: 1, maxCommits: 1 }, true, { 3: 5 });
    expect(ctx.state.unprovenSeats).toBe(0);
    expect(rejected(await commitAll(ctx, [3]))).toEqual(['UNPROVEN_SEATS_FULL']);
    expect(ctx.state.commits).toEqual([]);
  });

  test('where the policy does not apply (too few proven nodes online), any eligible node takes any seat', async () => {
    const ctx = await withSeats({ quorum: 3, maxCommits: 3 }, false);
    expect(ctx.state.unprovenSeats).toBeNull();
    const fx = await commitAll(ctx, [3, 4, 5]);
    expect(rejected(fx)).toEqual([]);
    expect(ctx.state.phase).toBe('sealed');
  });

  test('at the deadline a smaller seal leaves out the such nodes ranked last until they cannot accept alone', async () => {
    // maxCommits 5 at 0.6: ceil(3) - 1 = 2 seats; a seal of 3 needs only 2 agreeing.
    const ctx = await withSeats({ quorum: 3, maxCommits: 5 });
    expect(ctx.state.unprovenSeats).toBe(2);
    await commitAll(ctx, [3, 0, 4]);
    const fx = fire(ctx, 'seal-deadline', T0 + ctx.request.frame.maxTimeMs);
    // The one of 3 and 4 that lost the lot is left out: 2 members remain, fewer than the quorum.
    expect(kinds(fx)).toContain('expired');
    expect(new Set(seatedIds(ctx))).toEqual(
      new Set([0, byLot(ctx, [3, 4])[0]!].map((i) => ctx.keys[i]!.nodeId)),
    );
    expect(ctx.state.outcome).toMatchObject({ kind: 'expired', reason: 'quorum-not-met' });

    const four = await withSeats({ quorum: 3, maxCommits: 5 });
    await commitAll(four, [3, 0, 4, 1]);
    const sealedFx = fire(four, 'seal-deadline', T0 + four.request.frame.maxTimeMs);
    const seal = sealedFx.find((e) => e.kind === 'publish' && e.packetType === 'seal') as Extract<
      Effect,
      { kind: 'publish'; packetType: 'seal' }
    >;
    // 4 members need ceil(2.4) = 3 agreeing: the 2 without a record cannot accept alone.
    expect(seal.body.members).toHaveLength(4);
  });

  test('a state stored before the policy existed has no cap', async () => {
    const ctx = await withSeats({ quorum: 3, maxCommits: 3 });
    const { unprovenSeats: _dropped, ...older } = ctx.state;
    ctx.state = older as CoordinatorState;
    const fx = await commitAll(ctx, [3, 4, 5]);
    expect(rejected(fx)).toEqual([]);
    expect(ctx.state.phase).toBe('sealed');
  });
});

describe('reveals, verdict and attestations', () => {
  async function sealedWith(n: number, frame: Partial<Omit<Frame, 'embeddingModel'>> = {}) {
    const ctx = await started({ quorum: Math.min(3, n), maxCommits: n, ...frame });
    const fx = await commitAll(
      ctx,
      Array.from({ length: n }, (_, i) => i),
    );
    const sealedAt = ctx.state.seal?.body.createdAt as number;
    await loopback(ctx, fx, sealedAt);
    return { ctx, sealedAt };
  }

  test('early verdict: computed as soon as every member revealed', async () => {
    const { ctx, sealedAt } = await sealedWith(5);
    for (let i = 0; i < 4; i++) {
      expect(
        feed(ctx, await signedReveal(ctx.keys[i]!, ctx.request, sealedAt + 100 + i), sealedAt + 100 + i),
      ).toEqual([]);
    }
    const at = sealedAt + 200;
    const fx = feed(ctx, await signedReveal(ctx.keys[4]!, ctx.request, at), at);
    expect(kinds(fx)).toEqual(['cancel-timer', 'verdict', 'persist', 'publish:verdict', 'set-timer']);
    const verdict = fx[1] as Extract<Effect, { kind: 'verdict' }>;
    expect(verdict.check).toBe('computed');
    expect(verdict.verdict.status).toBe('accepted');
    expect(verdict.verdict.accepted).toHaveLength(5);
    const body = (fx[3] as Extract<Effect, { kind: 'publish'; packetType: 'verdict' }>).body;
    expect(body).toEqual({
      requestId: ctx.request.requestId,
      verdict: verdict.verdict,
      verdictDigest: verdict.digest,
      transcriptRoot: verdict.transcriptRoot,
      createdAt: at,
    });
    expect(at).toBeLessThan(sealedAt + ctx.request.frame.revealWindowMs);
  });

  test('a withholder: the verdict waits for the reveal window and counts it against', async () => {
    const { ctx, sealedAt } = await sealedWith(5);
    for (let i = 0; i < 4; i++) {
      expect(
        feed(ctx, await signedReveal(ctx.keys[i]!, ctx.request, sealedAt + 100), sealedAt + 100),
      ).toEqual([]);
    }
    const end = sealedAt + ctx.request.frame.revealWindowMs;
    const fx = fire(ctx, 'reveal-deadline', end);
    const verdict = fx.find((e) => e.kind === 'verdict') as Extract<Effect, { kind: 'verdict' }>;
    expect(verdict.verdict.status).toBe('accepted');
    expect(verdict.verdict.required).toBe(3);
    expect(verdict.verdict.rejected).toEqual([
      expect.objectContaining({ nodeId: ctx.keys[4]!.nodeId, reason: 'NOT_REVEALED', revealId: null }),
    ]);
    const late = await signedReveal(ctx.keys[4]!, ctx.request, end + 1);
    expect(rejected(feed(ctx, late, end + 1))).toEqual(['REVEAL_AFTER_VERDICT']);
  });

  test('withholders count against: 2 of 5 revealing cannot reach ceil(0.6 x 5) = 3', async () => {
    const { ctx, sealedAt } = await sealedWith(5);
    for (const i of [0, 1])
      feed(ctx, await signedReveal(ctx.keys[i]!, ctx.request, sealedAt + 100), sealedAt + 100);
    const fx = fire(ctx, 'reveal-deadline', sealedAt + ctx.request.frame.revealWindowMs);
    const verdict = fx.find((e) => e.kind === 'verdict') as Extract<Effect, { kind: 'verdict' }>;
    expect(verdict.verdict.status).toBe('no-consensus');
    expect(verdict.verdict.winner).toBeNull();
  });

  test('reveals from non-members are held for the verdict, which rejects them (one per node)', async () => {
    const { ctx, sealedAt } = await sealedWith(3);
    const outsider = ctx.keys[6]!;
    const r1 = await signedReveal(outsider, ctx.request, sealedAt + 50);
    const r2 = await signedReveal(outsider, ctx.request, sealedAt + 51);
    expect(feed(ctx, r1, sealedAt + 50)).toEqual([]);
    expect(rejected(feed(ctx, r2, sealedAt + 51))).toEqual(['LIMIT']);
    let fx: Effect[] = [];
    for (let i = 0; i < 3; i++)
      fx = feed(ctx, await signedReveal(ctx.keys[i]!, ctx.request, sealedAt + 100), sealedAt + 100);
    const verdict = fx.find((e) => e.kind === 'verdict') as Extract<Effect, { kind: 'verdict' }>;
    expect(verdict.verdict.rejected).toEqual([
      { nodeId: outsider.nodeId, commitment: null, revealId: packetId(r1), reason: 'NOT_SEALED' },
    ]);
  });

  test('the verdict waits for the signed seal when the driver has not fed it back yet', async () => {
    const ctx = await started({ quorum: 2, maxCommits: 2 });
    const sealFx = await commitAll(ctx, [0, 1]);
    const sealedAt = ctx.state.seal?.body.createdAt as number;
    feed(ctx, await signedReveal(ctx.keys[0]!, ctx.request, sealedAt + 10), sealedAt + 10);
    const fx = feed(ctx, await signedReveal(ctx.keys[1]!, ctx.request, sealedAt + 11), sealedAt + 11);
    expect(kinds(fx)).toEqual(['cancel-timer']);
    expect(ctx.state.verdictDue).toBe(true);
    const [sealPacket] = await signPublishes(ctx.ck, sealFx);
    const after = feed(ctx, sealPacket!, sealedAt + 12);
    expect(kinds(after)).toEqual(['verdict', 'persist', 'publish:verdict', 'set-timer']);
    expect(ctx.state.verdictDue).toBe(false);
  });

  test('attestations: matching ones are counted; done when every member attested', async () => {
    const { ctx, sealedAt } = await sealedWith(3);
    const early = await signPacket(ctx.keys[0]!, 'attestation', {
      requestId: ctx.request.requestId,
      verdictDigest: 'aa'.repeat(32),
      transcriptRoot: 'bb'.repeat(32),
      createdAt: sealedAt + 5,
    });
    expect(rejected(feed(ctx, early, sealedAt + 5))).toEqual(['ATTESTATION_BEFORE_VERDICT']);
    let fx: Effect[] = [];
    for (let i = 0; i < 3; i++)
      fx = feed(ctx, await signedReveal(ctx.keys[i]!, ctx.request, sealedAt + 100), sealedAt + 100);
    const v = fx.find((e) => e.kind === 'verdict') as Extract<Effect, { kind: 'verdict' }>;
    const attest = (k: NodeKey, digest = v.digest) =>
      signPacket(k, 'attestation', {
        requestId: ctx.request.requestId,
        verdictDigest: digest,
        transcriptRoot: v.transcriptRoot,
        createdAt: sealedAt + 200,
      });
    expect(rejected(feed(ctx, await attest(ctx.keys[0]!, 'cc'.repeat(32)), sealedAt + 200))).toEqual([
      'ATTESTATION_MISMATCH',
    ]);
    expect(feed(ctx, await attest(ctx.keys[0]!), sealedAt + 200)).toEqual([]);
    expect(feed(ctx, await attest(ctx.keys[6]!), sealedAt + 200)).toEqual([]); // a verifier outside the seal
    expect(feed(ctx, await attest(ctx.keys[1]!), sealedAt + 200)).toEqual([]);
    const done = feed(ctx, await attest(ctx.keys[2]!), sealedAt + 200);
    expect(done).toEqual([
      { kind: 'cancel-timer', name: 'attest-deadline' },
      { kind: 'done', reason: 'all-attested' },
    ]);
    expect(ctx.state.attestations).toHaveLength(4);
  });

  test('the attestation window closing finishes the coordinator', async () => {
    const { ctx, sealedAt } = await sealedWith(2);
    for (let i = 0; i < 2; i++)
      feed(ctx, await signedReveal(ctx.keys[i]!, ctx.request, sealedAt + 100), sealedAt + 100);
    expect(ctx.state.phase).toBe('verdict');
    const fx = fire(ctx, 'attest-deadline', sealedAt + 100 + ctx.request.frame.revealWindowMs);
    expect(fx).toEqual([{ kind: 'done', reason: 'attestation-window-closed' }]);
    expect(ctx.state.phase).toBe('finished');
  });
});

describe('driver contract', () => {
  test('timers that are not armed are ignored', async () => {
    const ctx = await started();
    expect(fire(ctx, 'reveal-deadline', T0 + 1)).toEqual([]);
    expect(fire(ctx, 'attest-deadline', T0 + 1)).toEqual([]);
  });

  test('steps never mutate the input state', async () => {
    const ctx = await started({ quorum: 2, maxCommits: 2 });
    const snapshot = structuredClone(ctx.state);
    const before = ctx.state;
    const commit = await signedCommit(ctx.keys[0]!, ctx.request, T0 + 1_000);
    stepCoordinator(ctx.config, before, { kind: 'packet', now: T0 + 1_000, packet: commit });
    expect(before).toEqual(snapshot);
  });

  test('programming errors throw LIFECYCLE_INVALID_EVENT', async () => {
    const ctx = await started();
    const bad = [
      () => stepCoordinator({}, ctx.state, { kind: 'inference-done' } as never),
      () => stepCoordinator({}, ctx.state, { kind: 'timer', now: 1.5, name: 'seal-deadline' }),
      () => stepCoordinator({}, { ...ctx.state, role: 'node' } as never, { kind: 'restored', now: T0 }),
      () => stepCoordinator({}, ctx.state, { kind: 'timer', now: T0, name: 'no-such-timer' as never }),
    ];
    for (const call of bad) {
      let thrown: unknown;
      try {
        call();
      } catch (e) {
        thrown = e;
      }
      expect(isSynodError(thrown, 'LIFECYCLE_INVALID_EVENT')).toBe(true);
    }
  });
});
