/**
 * A sealed member checks a verdict's re-embedding claims before it attests it (attest.ts): it asks the
 * driver for its bits of each claimed text (`embed-claims`), and attests only when every claim is them
 * (within its tolerance). A coordinator that lies about an honest member's text is not co-signed.
 */
import { describe, expect, test } from 'bun:test';
import { computeCommitment } from '../commitment/commitment.ts';
import { hamming } from '../embedding/binary.ts';
import { fromHex, utf8 } from '../encoding/bytes.ts';
import { sha256Hex } from '../encoding/hash.ts';
import type { NodeKey } from '../identity/node-key.ts';
import { packetId, signPacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet } from '../packets/index.ts';
import { feedCoordinator, startedCoordinator } from './coordinator.test-helpers.ts';
import { stepCoordinator } from './coordinator.ts';
import { type FollowerConfig, type FollowerState, initFollower, stepFollower } from './follower.ts';
import { initNode, type NodeState, stepNode } from './node.ts';
import {
  ANSWER,
  EMBEDDER,
  fakeEmbedding,
  MODEL,
  material,
  nodeConfig,
  signPublishes,
  T0,
  testKey,
} from './sim.test-helpers.ts';
import { restoreState, serializeState } from './state.ts';
import type { ClaimsEmbeddedEvent, ClaimsEvent, Effect, EmbedClaimsEffect, VerdictEffect } from './types.ts';

const SCAM = 'The answer is: send your funds to 0xdeadbeef.';
/** What a lying coordinator claims an honest member's text embeds to. */
const LIE = fakeEmbedding('not what this text embeds to');

/** A member's commit and reveal of `output` with the bits `bEmbedding` (its text's, or a copier's). */
async function memberPackets(key: NodeKey, requestId: string, output: string, bEmbedding: string) {
  const body = { requestId, output, bEmbedding, model: MODEL, salt: sha256Hex(utf8(`salt/${key.nodeId}`)) };
  const commitment = computeCommitment({ ...body, nodeId: key.nodeId });
  const commit = await signPacket(key, 'commit', { requestId, commitment, createdAt: T0 + 1_000 });
  const reveal = await signPacket(key, 'reveal', { ...body, createdAt: T0 + 3_000 });
  return { commit, reveal };
}

/**
 * Three members: node0 and node1 honest with ANSWER; node2 honest with ANSWER (`third: 'honest'`) or a
 * copier of the honest bits with its own text (`'copier'`). The coordinator is fed its bits of each
 * reveal: each text's own, but `lie`'s for node0's reveal when given (TEST DOUBLE: a lying relay).
 * Every packet on the wire, and the verdict.
 */
async function run(label: string, third: 'honest' | 'copier', lie?: string) {
  const ctx = await startedCoordinator({ quorum: 3, maxCommits: 3 }, {}, label);
  const requestId = ctx.request.requestId;
  const members = await Promise.all(
    [0, 1, 2].map((i) =>
      memberPackets(
        ctx.keys[i] as NodeKey,
        requestId,
        i === 2 && third === 'copier' ? SCAM : ANSWER,
        fakeEmbedding(ANSWER),
      ),
    ),
  );
  const wire: AnyPacket[] = [ctx.requestPacket];
  let fx: Effect[] = [];
  for (const m of members) {
    wire.push(m.commit);
    fx = feedCoordinator(ctx, m.commit, T0 + 1_000);
  }
  const [seal] = await signPublishes(ctx.ck, fx);
  wire.push(seal as AnyPacket);
  feedCoordinator(ctx, seal as AnyPacket, T0 + 1_000);
  let verdict: VerdictEffect | undefined;
  for (const [i, m] of members.entries()) {
    wire.push(m.reveal);
    const t = stepCoordinator(ctx.config, ctx.state, {
      kind: 'packet',
      now: T0 + 3_100,
      packet: m.reveal,
      reembedded: i === 0 && lie !== undefined ? lie : fakeEmbedding(m.reveal.body.output),
    });
    ctx.state = t.state;
    verdict ??= t.effects.find((e): e is VerdictEffect => e.kind === 'verdict');
    wire.push(...(await signPublishes(ctx.ck, t.effects)).filter((p) => p.type === 'verdict'));
  }
  if (verdict === undefined) throw new Error('no verdict');
  return { ctx, wire, verdict, reveals: members.map((m) => m.reveal) };
}

const checking: FollowerConfig = { attest: true, claimsEmbedder: EMBEDDER };

/** An observer (a follower set to attest, as `self`) fed the whole wire: its state and effects. */
function observe(wire: readonly AnyPacket[], requestId: string, self: string, config: FollowerConfig) {
  let state: FollowerState = initFollower(config, { now: T0, self, requestId }).state;
  const effects: Effect[] = [];
  for (const packet of wire) {
    const t = stepFollower(config, state, { kind: 'packet', now: T0 + 3_200, packet });
    state = t.state;
    effects.push(...t.effects);
  }
  return { state, effects };
}

function answer(config: FollowerConfig, state: FollowerState, event: ClaimsEvent) {
  return stepFollower(config, state, event);
}

/** The driver's honest answer to `ask`: each text's own bits. */
function embedded(ask: EmbedClaimsEffect, now = T0 + 3_300): ClaimsEmbeddedEvent {
  return {
    kind: 'claims-embedded',
    now,
    requestId: ask.requestId,
    verdictDigest: ask.verdictDigest,
    bits: Object.fromEntries(ask.reveals.map((r) => [r.revealId, fakeEmbedding(r.output)])),
  };
}

const asked = (fx: readonly Effect[]) => fx.filter((e): e is EmbedClaimsEffect => e.kind === 'embed-claims');
const attestations = (fx: readonly Effect[]) =>
  fx.filter((e) => e.kind === 'publish' && e.packetType === 'attestation');

describe('a sealed member checks the claims of a verdict before it attests it', () => {
  test("a lying coordinator's claim about an honest member: asked, found false, not attested", async () => {
    const { wire, verdict, ctx, reveals } = await run('claims-lie', 'honest', LIE);
    const victim = ctx.keys[0] as NodeKey;
    // The verdict: node0 rejected on the lie, the claim in it; it recomputes from the transcript.
    expect(verdict.verdict.rejected).toEqual([
      expect.objectContaining({ nodeId: victim.nodeId, reason: 'EMBEDDING_DISAGREES' }),
    ]);
    expect(verdict.verdict.reembedded).toEqual([
      { nodeId: victim.nodeId, revealId: packetId(reveals[0] as Packet<'reveal'>), bits: LIE },
    ]);
    const self = (ctx.keys[1] as NodeKey).nodeId;
    const { state, effects } = observe(wire, ctx.request.requestId, self, checking);
    expect(effects.filter((e) => e.kind === 'verdict').map((e) => (e as VerdictEffect).check)).toEqual([
      'recomputed',
    ]);
    const [ask] = asked(effects);
    expect(ask).toEqual({
      kind: 'embed-claims',
      requestId: ctx.request.requestId,
      verdictDigest: verdict.digest,
      embeddingModel: EMBEDDER,
      reveals: [{ revealId: packetId(reveals[0] as Packet<'reveal'>), output: ANSWER }],
    });
    expect(attestations(effects)).toEqual([]);
    expect(state.outcome).toBeNull();
    expect(state.checkingClaims).toBe(true);
    const t = answer(checking, state, embedded(ask as EmbedClaimsEffect));
    expect(attestations(t.effects)).toEqual([]);
    expect(t.effects).toContainEqual(
      expect.objectContaining({
        kind: 'rejected',
        code: 'REEMBED_CLAIM_FALSE',
        packetId: packetId(wire.find((p) => p.type === 'verdict') as AnyPacket),
        reason: expect.stringContaining(`node ${victim.nodeId}`),
      }),
    );
    expect(t.effects).toContainEqual({ kind: 'done', reason: 'reembed-claim-false' });
    expect(t.state.outcome).toMatchObject({ kind: 'done', reason: 'reembed-claim-false' });
  });

  test("a true claim (a copier's text is not its bits): asked, found true, attested", async () => {
    const { wire, ctx } = await run('claims-copier', 'copier');
    const self = (ctx.keys[0] as NodeKey).nodeId;
    const { state, effects } = observe(wire, ctx.request.requestId, self, checking);
    const [ask] = asked(effects);
    expect(ask?.reveals.map((r) => r.output)).toEqual([SCAM]);
    expect(attestations(effects)).toEqual([]);
    const t = answer(checking, state, embedded(ask as EmbedClaimsEffect));
    expect(attestations(t.effects)).toHaveLength(1);
    expect(t.effects).toContainEqual({ kind: 'done', reason: 'verified' });
    expect(t.effects.some((e) => e.kind === 'rejected')).toBe(false);
    // The copier itself, named by the claim, still does not co-sign it, and asks nothing.
    const named = observe(wire, ctx.request.requestId, (ctx.keys[2] as NodeKey).nodeId, checking);
    expect(asked(named.effects)).toEqual([]);
    expect(attestations(named.effects)).toEqual([]);
    expect(named.effects).toContainEqual({ kind: 'done', reason: 'verified' });
  });

  test('the tolerance: a claim that far from the bits here holds, one bit farther does not', async () => {
    const { wire, ctx, verdict } = await run('claims-tolerance', 'honest', LIE);
    const claim = verdict.verdict.reembedded?.[0];
    const self = (ctx.keys[1] as NodeKey).nodeId;
    const distance = hamming(fromHex(claim?.bits as string), fromHex(fakeEmbedding(ANSWER)));
    expect(distance).toBeGreaterThan(0);
    for (const [tolerance, outcome] of [
      [distance, 'verified'],
      [distance - 1, 'reembed-claim-false'],
    ] as const) {
      const config = { ...checking, claimToleranceBits: tolerance };
      const { state, effects } = observe(wire, ctx.request.requestId, self, config);
      const t = answer(config, state, embedded(asked(effects)[0] as EmbedClaimsEffect));
      expect(t.effects).toContainEqual({ kind: 'done', reason: outcome });
      expect(attestations(t.effects)).toHaveLength(outcome === 'verified' ? 1 : 0);
    }
  });

  test('an embedder that failed: not attested, done reembed-claims-unchecked', async () => {
    const { wire, ctx } = await run('claims-failed', 'honest', LIE);
    const { state, effects } = observe(
      wire,
      ctx.request.requestId,
      (ctx.keys[1] as NodeKey).nodeId,
      checking,
    );
    const ask = asked(effects)[0] as EmbedClaimsEffect;
    const t = answer(checking, state, {
      kind: 'claims-not-embedded',
      now: T0 + 3_300,
      requestId: ask.requestId,
      verdictDigest: ask.verdictDigest,
      reason: 'the embedder worker died',
    });
    expect(attestations(t.effects)).toEqual([]);
    expect(t.effects).toContainEqual({ kind: 'done', reason: 'reembed-claims-unchecked' });
  });

  test('claims are taken as given (attested at once) without an embedder, with another, or outside the seal', async () => {
    const { wire, ctx } = await run('claims-given', 'honest', LIE);
    const member = (ctx.keys[1] as NodeKey).nodeId;
    const outsider = (await testKey('claims-outsider')).nodeId;
    for (const [self, config] of [
      [member, { attest: true }],
      [member, { ...checking, claimsEmbedder: { ...EMBEDDER, fileHash: sha256Hex(utf8('other weights')) } }],
      [member, { ...checking, claimsEmbedder: { ...EMBEDDER, id: 'other-embedder' } }],
      [member, { ...checking, claimsEmbedder: { ...EMBEDDER, bits: EMBEDDER.bits / 2 } }],
      [outsider, checking],
    ] as const) {
      const { effects } = observe(wire, ctx.request.requestId, self, config);
      expect(asked(effects)).toEqual([]);
      expect(attestations(effects)).toHaveLength(1);
      expect(effects).toContainEqual({ kind: 'done', reason: 'verified' });
    }
    // An embedder that gives more bits than the frame's checks too (the driver gives the prefix).
    const wider = { ...checking, claimsEmbedder: { ...EMBEDDER, bits: EMBEDDER.bits * 2 } };
    expect(asked(observe(wire, ctx.request.requestId, member, wider).effects)).toHaveLength(1);
  });

  test('a restart while checking asks again; restarted without the embedder, it attests as without one', async () => {
    const { wire, ctx } = await run('claims-restart', 'honest', LIE);
    const { state, effects } = observe(
      wire,
      ctx.request.requestId,
      (ctx.keys[1] as NodeKey).nodeId,
      checking,
    );
    const first = asked(effects)[0] as EmbedClaimsEffect;
    const stored = restoreState(serializeState(state)) as FollowerState;
    const again = stepFollower(checking, stored, { kind: 'restored', now: T0 + 4_000 });
    expect(asked(again.effects)).toEqual([first]);
    const t = answer(checking, again.state, embedded(first, T0 + 4_100));
    expect(t.effects).toContainEqual({ kind: 'done', reason: 'reembed-claim-false' });
    const without = stepFollower({ attest: true }, stored, { kind: 'restored', now: T0 + 4_000 });
    expect(asked(without.effects)).toEqual([]);
    expect(attestations(without.effects)).toHaveLength(1);
    expect(without.effects).toContainEqual({ kind: 'done', reason: 'verified' });
  });

  test('an answer for another verdict, or with none asked, is WRONG_PHASE; one without bits is a driver error', async () => {
    const { wire, ctx } = await run('claims-answers', 'honest', LIE);
    const self = (ctx.keys[1] as NodeKey).nodeId;
    const { state, effects } = observe(wire, ctx.request.requestId, self, checking);
    const ask = asked(effects)[0] as EmbedClaimsEffect;
    const other = answer(checking, state, embedded({ ...ask, verdictDigest: '00'.repeat(32) }));
    expect(other.effects).toEqual([expect.objectContaining({ kind: 'rejected', code: 'WRONG_PHASE' })]);
    expect(other.state.checkingClaims).toBe(true);
    const plain = observe(wire, ctx.request.requestId, self, { attest: true });
    const late = answer(checking, plain.state, embedded(ask));
    expect(late.effects).toEqual([expect.objectContaining({ kind: 'rejected', code: 'FINISHED' })]);
    expect(() => answer(checking, state, { ...embedded(ask), bits: {} })).toThrow('claims-embedded');
    expect(() =>
      answer(checking, state, { ...embedded(ask), bits: { [ask.reveals[0]?.revealId as string]: 'abcd' } }),
    ).toThrow('claims-embedded');
  });

  test('a node machine that was sealed and revealed asks, and takes the answer', async () => {
    const ctx = await startedCoordinator({ quorum: 3, maxCommits: 3 }, {}, 'claims-node');
    const requestId = ctx.request.requestId;
    const me = ctx.keys[1] as NodeKey;
    const config = nodeConfig({ claimsEmbedder: EMBEDDER });
    let node: NodeState = initNode(config, { now: T0, self: me.nodeId, requestId }).state;
    const feed = (event: Parameters<typeof stepNode>[2]) => {
      const t = stepNode(config, node, event);
      node = t.state;
      return t.effects;
    };
    const packet = (p: AnyPacket, now: number) => feed({ kind: 'packet', now, packet: p });
    expect(asKinds(packet(ctx.requestPacket, T0 + 10))).toContain('start-inference');
    const mine = material(me, ctx.request);
    const [commit] = await signPublishes(
      me,
      feed({ kind: 'inference-done', now: T0 + 1_000, requestId, ...mine, model: MODEL }),
    );
    packet(commit as AnyPacket, T0 + 1_000);
    const others = await Promise.all(
      [0, 2].map((i) => memberPackets(ctx.keys[i] as NodeKey, requestId, ANSWER, fakeEmbedding(ANSWER))),
    );
    let fx: Effect[] = [];
    for (const c of [others[0]?.commit, commit, others[1]?.commit] as AnyPacket[]) {
      fx = feedCoordinator(ctx, c, T0 + 1_000);
      if (c !== commit) packet(c, T0 + 1_000);
    }
    const [seal] = await signPublishes(ctx.ck, fx);
    feedCoordinator(ctx, seal as AnyPacket, T0 + 1_000);
    const [reveal] = await signPublishes(me, packet(seal as AnyPacket, T0 + 1_100));
    packet(reveal as AnyPacket, T0 + 1_100);
    expect(node.work.phase).toBe('revealed');
    let published: AnyPacket[] = [];
    for (const r of [others[0]?.reveal, reveal, others[1]?.reveal] as Packet<'reveal'>[]) {
      const t = stepCoordinator(ctx.config, ctx.state, {
        kind: 'packet',
        now: T0 + 3_100,
        packet: r,
        reembedded: r.from === (ctx.keys[0] as NodeKey).nodeId ? LIE : fakeEmbedding(r.body.output),
      });
      ctx.state = t.state;
      published = [...published, ...(await signPublishes(ctx.ck, t.effects))];
      if (r !== reveal) packet(r, T0 + 3_100);
    }
    const verdict = published.find((p) => p.type === 'verdict') as AnyPacket;
    const ask = asked(packet(verdict, T0 + 3_200))[0] as EmbedClaimsEffect;
    expect(ask.reveals).toEqual([{ revealId: packetId(others[0]?.reveal as AnyPacket), output: ANSWER }]);
    const end = feed(embedded(ask));
    expect(attestations(end)).toEqual([]);
    expect(end).toContainEqual({ kind: 'done', reason: 'reembed-claim-false' });
  });
});

function asKinds(fx: readonly Effect[]): string[] {
  return fx.map((e) => e.kind);
}
