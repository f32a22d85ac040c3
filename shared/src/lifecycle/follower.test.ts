import { describe, expect, test } from 'bun:test';
import { verdictDigest } from '../consensus/verdict.ts';
import { packetId, signPacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet } from '../packets/index.ts';
import { type FollowerConfig, type FollowerState, initFollower, stepFollower } from './follower.ts';
import { MAX_DEFERRED } from './observer.ts';
import { scenario, signedCommit, signedReveal, T0, testKey } from './sim.test-helpers.ts';
import { type LifecyclePhase, lifecycleStatus } from './status.ts';
import type { Effect } from './types.ts';

/** The packets of a finished 3-node run, in the order they were published. */
async function finishedRun(seed = 5) {
  const { sim, request } = await scenario({ seed, nodes: [{}, {}, {}], frame: { quorum: 3, maxCommits: 3 } });
  await sim.run();
  const wire = sim.wire.map((w) => w.packet).filter((p) => p.type !== 'attestation');
  const coordinator = await testKey('coordinator');
  return { sim, request, wire, coordinator };
}

class Follower {
  state: FollowerState;
  effects: Effect[] = [];
  constructor(
    readonly config: FollowerConfig,
    requestId: string,
    self: string,
  ) {
    const t = initFollower(config, { now: T0, self, requestId });
    this.state = t.state;
    this.effects.push(...t.effects);
  }
  feed(packet: AnyPacket, now = T0 + 100): Effect[] {
    const t = stepFollower(this.config, this.state, { kind: 'packet', now, packet });
    this.state = t.state;
    this.effects.push(...t.effects);
    return t.effects;
  }
  timer(
    name: Parameters<typeof stepFollower>[2] & { kind: 'timer' } extends { name: infer N } ? N : never,
    now: number,
  ) {
    const t = stepFollower(this.config, this.state, { kind: 'timer', now, name });
    this.state = t.state;
    this.effects.push(...t.effects);
    return t.effects;
  }
}

describe('follower status', () => {
  test('pending -> committed(n) -> sealed -> revealing -> verdict, verified by recomputation', async () => {
    const { request, wire } = await finishedRun();
    const me = await testKey('follower');
    const f = new Follower({}, request.requestId, me.nodeId);
    expect(lifecycleStatus(f.state).phase).toBe('pending');
    const seen: string[] = [];
    for (const p of wire) {
      f.feed(p);
      const s = lifecycleStatus(f.state);
      const label = s.phase === 'committed' ? `committed(${s.commits})` : s.phase;
      if (seen.at(-1) !== label) seen.push(label);
    }
    expect(seen).toEqual([
      'pending',
      'committed(1)',
      'committed(2)',
      'committed(3)',
      'sealed',
      'revealing',
      'verdict',
    ]);
    const status = lifecycleStatus(f.state);
    expect(status).toMatchObject({
      role: 'follower',
      sealSize: 3,
      revealed: 3,
      finished: true,
      outcome: { kind: 'done', reason: 'verified' },
      verdict: { status: 'accepted', check: 'recomputed' },
    });
    expect(f.effects.some((e) => e.kind === 'publish')).toBe(false); // attest is off by default
  });

  test('any delivery order gives the same verdict check; an attesting follower attests', async () => {
    const { request, wire } = await finishedRun(6);
    const me = await testKey('follower');
    const inOrder = new Follower({}, request.requestId, me.nodeId);
    for (const p of wire) inOrder.feed(p);
    const reversed = new Follower({ attest: true }, request.requestId, me.nodeId);
    for (const p of [...wire].reverse()) reversed.feed(p);
    expect(lifecycleStatus(reversed.state).verdict).toEqual(lifecycleStatus(inOrder.state).verdict);
    const attestation = reversed.effects.find((e) => e.kind === 'publish');
    expect(attestation).toMatchObject({
      packetType: 'attestation',
      body: { verdictDigest: lifecycleStatus(inOrder.state).verdict?.digest },
    });
  });

  test('a verdict whose reveals never come stays unverified', async () => {
    const { request, wire } = await finishedRun(7);
    const f = new Follower({ graceMs: 1_000 }, request.requestId, (await testKey('follower')).nodeId);
    for (const p of wire.filter((p) => p.type !== 'reveal')) f.feed(p);
    expect(lifecycleStatus(f.state).verdict?.check).toBe('digest');
    expect(f.state.timers['verify-wait']).toBe(T0 + 100 + 1_000);
    expect(f.timer('verify-wait', T0 + 1_100)).toEqual([{ kind: 'done', reason: 'unverified' }]);
  });

  test('expiry at each stage', async () => {
    const { request, wire } = await finishedRun(8);
    const id = (await testKey('follower')).nodeId;
    const noRequest = new Follower({}, request.requestId, id);
    expect(noRequest.timer('request-wait', T0 + 120_000)).toEqual([
      { kind: 'expired', reason: 'request-missing' },
    ]);
    expect(lifecycleStatus(noRequest.state).phase).toBe('expired');

    const noSeal = new Follower({}, request.requestId, id);
    for (const p of wire.filter((p) => p.type === 'request' || p.type === 'commit')) noSeal.feed(p);
    expect(noSeal.timer('seal-wait', T0 + 60_000).at(-1)).toEqual({ kind: 'expired', reason: 'not-sealed' });

    const noVerdict = new Follower({}, request.requestId, id);
    for (const p of wire.filter((p) => p.type !== 'verdict')) noVerdict.feed(p);
    const phase: LifecyclePhase = lifecycleStatus(noVerdict.state).phase;
    expect(phase).toBe('revealing');
    expect(noVerdict.timer('verdict-wait', T0 + 60_000).at(-1)).toEqual({
      kind: 'expired',
      reason: 'no-verdict',
    });
  });
});

describe('follower checks on the coordinator', () => {
  test('two different seals from the coordinator are evidence', async () => {
    const { request, wire, coordinator } = await finishedRun(9);
    const f = new Follower({}, request.requestId, (await testKey('follower')).nodeId);
    for (const p of wire.filter((p) => p.type === 'request' || p.type === 'commit' || p.type === 'seal'))
      f.feed(p);
    const seal = wire.find((p) => p.type === 'seal') as Packet<'seal'>;
    const other = await signPacket(coordinator, 'seal', { ...seal.body, createdAt: seal.body.createdAt + 1 });
    const fx = f.feed(other);
    expect(fx[0]).toMatchObject({
      kind: 'evidence',
      evidence: { kind: 'double-seal', nodeId: coordinator.nodeId },
    });
    expect(fx.at(-1)).toMatchObject({ kind: 'rejected', code: 'DOUBLE_SEAL', packetId: packetId(other) });
  });

  test('two different verdicts from the coordinator are evidence', async () => {
    const { request, wire, coordinator } = await finishedRun(14);
    const f = new Follower({}, request.requestId, (await testKey('follower')).nodeId);
    for (const p of wire.filter((p) => p.type !== 'reveal')) f.feed(p); // verdict held, not yet checkable
    const first = wire.find((p) => p.type === 'verdict') as Packet<'verdict'>;
    const changed = { ...first.body.verdict, status: 'no-consensus' as const, accepted: [], winner: null };
    const second = await signPacket(coordinator, 'verdict', {
      ...first.body,
      verdict: changed,
      verdictDigest: verdictDigest(changed),
    });
    const fx = f.feed(second);
    const expected: Effect = {
      kind: 'evidence',
      evidence: {
        kind: 'double-verdict',
        nodeId: coordinator.nodeId,
        packets: packetId(first) < packetId(second) ? [first, second] : [second, first],
      },
    };
    expect(fx[0]).toEqual(expected);
    expect(fx.at(-1)).toMatchObject({ kind: 'rejected', code: 'DOUBLE_VERDICT' });
  });

  test('a request from an untrusted author is rejected and the trusted one awaited', async () => {
    const { request, wire, coordinator } = await finishedRun(10);
    const impostor = await testKey('impostor');
    const copy = await signPacket(impostor, 'request', request);
    const f = new Follower(
      { trustsCoordinator: (nodeId) => nodeId === coordinator.nodeId },
      request.requestId,
      (await testKey('follower')).nodeId,
    );
    expect(f.feed(copy)).toMatchObject([{ kind: 'rejected', code: 'NOT_COORDINATOR' }]);
    for (const p of wire) f.feed(p);
    expect(lifecycleStatus(f.state).verdict?.check).toBe('recomputed');
  });

  test('a seal or verdict signed by someone else is rejected', async () => {
    const { request, wire } = await finishedRun(11);
    const impostor = await testKey('impostor');
    const f = new Follower({}, request.requestId, (await testKey('follower')).nodeId);
    f.feed(wire[0]!);
    const seal = wire.find((p) => p.type === 'seal') as Packet<'seal'>;
    const forged = await signPacket(impostor, 'seal', seal.body);
    expect(f.feed(forged)).toMatchObject([{ kind: 'rejected', code: 'NOT_COORDINATOR' }]);
  });
});

describe('follower bounds and evidence', () => {
  test('two different commitments from one node are evidence, whoever sees them', async () => {
    const { request } = await finishedRun(12);
    const f = new Follower({}, request.requestId, (await testKey('follower')).nodeId);
    const k = await testKey('node9');
    const a = await signedCommit(k, request, T0 + 10, 'one', 'a');
    const b = await signedCommit(k, request, T0 + 11, 'two', 'b');
    expect(f.feed(a)).toEqual([]);
    const fx = f.feed(b);
    expect(fx).toMatchObject([{ kind: 'evidence', evidence: { kind: 'double-commit', nodeId: k.nodeId } }]);
    const c = await signedCommit(k, request, T0 + 12, 'three', 'c');
    expect(f.feed(c)).toMatchObject([{ kind: 'rejected', code: 'LIMIT' }]);
  });

  test('a flood of early reveals fills the buffer but leaves room for the seal', async () => {
    const { request, wire } = await finishedRun(13);
    const f = new Follower({}, request.requestId, (await testKey('follower')).nodeId);
    const spammer = await testKey('spammer');
    const flood = MAX_DEFERRED - 32;
    for (let i = 0; i < flood; i++) {
      expect(f.feed(await signedReveal(spammer, request, T0 + i, 'spam'))).toEqual([]);
    }
    const more = await signedReveal(spammer, request, T0 + flood, 'spam');
    expect(f.feed(more)).toMatchObject([{ kind: 'rejected', code: 'BUFFER_FULL', packetId: packetId(more) }]);
    const seal = wire.find((p) => p.type === 'seal')!;
    expect(f.feed(seal)).toEqual([]);
    for (const p of wire) f.feed(p);
    expect(lifecycleStatus(f.state).verdict?.check).toBe('recomputed');
  });
});
