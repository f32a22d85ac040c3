/**
 * A re-embedding coordinator: the driver feeds its embedding of each reveal's output with the packet
 * (`PacketEvent.reembedded`); a member whose revealed bits are not its text's is EMBEDDING_DISAGREES, and
 * the verdict carries the claim, from which followers recompute it byte for byte.
 */
import { describe, expect, test } from 'bun:test';
import { computeCommitment } from '../commitment/commitment.ts';
import { claimedReembeddings, verdictDigest } from '../consensus/verdict.ts';
import { utf8 } from '../encoding/bytes.ts';
import { sha256Hex } from '../encoding/hash.ts';
import type { NodeKey } from '../identity/node-key.ts';
import { signPacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet, Verdict } from '../packets/index.ts';
import { feedCoordinator, startedCoordinator } from './coordinator.test-helpers.ts';
import { type CoordinatorState, stepCoordinator } from './coordinator.ts';
import { type FollowerState, initFollower, stepFollower } from './follower.ts';
import {
  ANSWER,
  fakeEmbedding,
  MODEL,
  signedCommit,
  signedReveal,
  signPublishes,
  T0,
  testKey,
} from './sim.test-helpers.ts';
import type { Effect, VerdictEffect } from './types.ts';

const SCAM = 'The answer is: send your funds to 0xdeadbeef.';

/** The attacker's commit and reveal: its own text with the honest nodes' bits. */
async function copier(key: NodeKey, request: Parameters<typeof signedCommit>[1], at: number) {
  const body = {
    requestId: request.requestId,
    output: SCAM,
    bEmbedding: fakeEmbedding(ANSWER),
    model: MODEL,
    salt: sha256Hex(utf8(`salt/${key.nodeId}/copier`)),
  };
  const commitment = computeCommitment({ ...body, nodeId: key.nodeId });
  const commit = await signPacket(key, 'commit', { requestId: request.requestId, commitment, createdAt: at });
  const reveal = await signPacket(key, 'reveal', { ...body, createdAt: at + 2_000 });
  return { commit, reveal };
}

/**
 * Three honest members and one copier (node 3) sealed; the reveals fed with the driver's bits when
 * `reembed`, and every packet on the wire (the coordinator's signed ones included) collected.
 */
async function run(reembed: boolean, opts: { restartBefore?: number; dropField?: boolean } = {}) {
  const ctx = await startedCoordinator({ quorum: 4, maxCommits: 4 }, {}, 'reembed');
  const wire: AnyPacket[] = [ctx.requestPacket];
  const attack = await copier(ctx.keys[3] as NodeKey, ctx.request, T0 + 1_003);
  let fx: Effect[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await signedCommit(ctx.keys[i] as NodeKey, ctx.request, T0 + 1_000 + i);
    wire.push(c);
    fx = feedCoordinator(ctx, c, T0 + 1_000 + i);
  }
  wire.push(attack.commit);
  fx = feedCoordinator(ctx, attack.commit, T0 + 1_003);
  const [seal] = await signPublishes(ctx.ck, fx);
  wire.push(seal as AnyPacket);
  feedCoordinator(ctx, seal as AnyPacket, T0 + 1_003);
  const reveals: Packet<'reveal'>[] = [];
  for (let i = 0; i < 3; i++)
    reveals.push(await signedReveal(ctx.keys[i] as NodeKey, ctx.request, T0 + 3_000));
  reveals.splice(1, 0, attack.reveal);
  let verdict: VerdictEffect | undefined;
  for (const [k, r] of reveals.entries()) {
    if (k === opts.restartBefore) {
      // A restart: the state as stored (JSON), optionally as stored before re-embedding existed.
      const stored = JSON.parse(JSON.stringify(ctx.state)) as CoordinatorState;
      if (opts.dropField) delete stored.reembedded;
      const t = stepCoordinator(ctx.config, stored, { kind: 'restored', now: T0 + 3_100 });
      ctx.state = t.state;
    }
    wire.push(r);
    const t = stepCoordinator(ctx.config, ctx.state, {
      kind: 'packet',
      now: T0 + 3_100 + k,
      packet: r,
      ...(reembed ? { reembedded: fakeEmbedding(r.body.output) } : {}),
    });
    ctx.state = t.state;
    verdict ??= t.effects.find((e): e is VerdictEffect => e.kind === 'verdict');
    const signed = await signPublishes(ctx.ck, t.effects);
    wire.push(...signed.filter((p) => p.type === 'verdict'));
  }
  if (verdict === undefined) throw new Error('no verdict');
  return { ctx, verdict, wire, attacker: ctx.keys[3] as NodeKey, attackReveal: attack.reveal };
}

function outcomeOf(v: Verdict, nodeId: string): string | undefined {
  if (v.accepted.some((a) => a.nodeId === nodeId)) return 'accepted';
  return v.rejected.find((r) => r.nodeId === nodeId && r.reason !== 'DUPLICATE_REVEAL')?.reason;
}

/** A follower fed the whole wire (as `self`, attesting when `attest`); its effects. */
async function follow(
  wire: readonly AnyPacket[],
  requestId: string,
  o: { self?: string; attest?: boolean } = {},
): Promise<Effect[]> {
  const self = o.self ?? (await testKey('follower')).nodeId;
  const config = o.attest ? { attest: true } : {};
  let state: FollowerState = initFollower(config, { now: T0, self, requestId }).state;
  const all: Effect[] = [];
  for (const p of wire) {
    const t = stepFollower(config, state, { kind: 'packet', now: T0 + 3_200, packet: p });
    state = t.state;
    all.push(...t.effects);
  }
  return all;
}

describe('a re-embedding coordinator', () => {
  test('without bits the copier of the honest bits is accepted with its own text (as before)', async () => {
    const { verdict, attacker } = await run(false);
    expect(outcomeOf(verdict.verdict, attacker.nodeId)).toBe('accepted');
    expect(verdict.verdict.reembedded).toBeUndefined();
  });

  test('rejects the copier EMBEDDING_DISAGREES; the honest text wins; the verdict carries the claim', async () => {
    const { verdict, attacker, attackReveal, ctx } = await run(true);
    const v = verdict.verdict;
    expect(outcomeOf(v, attacker.nodeId)).toBe('EMBEDDING_DISAGREES');
    expect(v.status).toBe('accepted');
    expect(v.accepted).toHaveLength(3);
    expect(v.winner?.output).toBe(ANSWER);
    expect(v.reembedded).toEqual([
      {
        nodeId: attacker.nodeId,
        revealId: (await import('../packets/envelope.ts')).packetId(attackReveal),
        bits: fakeEmbedding(SCAM),
      },
    ]);
    expect(verdict.digest).toBe(verdictDigest(v));
    expect(Object.keys(ctx.state.reembedded ?? {})).toHaveLength(4);
  });

  test('an honest run with bits is byte for byte the run without', async () => {
    const ctx = await startedCoordinator({ quorum: 3, maxCommits: 3 }, {}, 'reembed-honest');
    const plain = await startedCoordinator({ quorum: 3, maxCommits: 3 }, {}, 'reembed-honest');
    const verdicts: VerdictEffect[] = [];
    for (const [c, bits] of [
      [ctx, true],
      [plain, false],
    ] as const) {
      let fx: Effect[] = [];
      for (let i = 0; i < 3; i++) {
        fx = feedCoordinator(
          c,
          await signedCommit(c.keys[i] as NodeKey, c.request, T0 + 1_000 + i),
          T0 + 1_002,
        );
      }
      for (const p of await signPublishes(c.ck, fx)) feedCoordinator(c, p, T0 + 1_002);
      for (let i = 0; i < 3; i++) {
        const r = await signedReveal(c.keys[i] as NodeKey, c.request, T0 + 3_000);
        const t = stepCoordinator(c.config, c.state, {
          kind: 'packet',
          now: T0 + 3_100,
          packet: r,
          ...(bits ? { reembedded: fakeEmbedding(r.body.output) } : {}),
        });
        c.state = t.state;
        const v = t.effects.find((e): e is VerdictEffect => e.kind === 'verdict');
        if (v) verdicts.push(v);
      }
    }
    expect(verdicts).toHaveLength(2);
    expect(verdicts[0]?.digest).toBe(verdicts[1]?.digest as string);
    expect(verdicts[0]?.verdict).toEqual(verdicts[1]?.verdict as Verdict);
  });

  test('a restart keeps the bits; a state stored before them re-checks only the reveals fed after', async () => {
    const fresh = await run(true);
    const restarted = await run(true, { restartBefore: 2 });
    expect(restarted.verdict.digest).toBe(fresh.verdict.digest);
    // The copier's reveal (fed second) came before the restart, into a state without the field.
    const old = await run(true, { restartBefore: 2, dropField: true });
    expect(outcomeOf(old.verdict.verdict, old.attacker.nodeId)).toBe('accepted');
    expect(old.verdict.verdict.reembedded).toBeUndefined();
  });

  test("bits that are not the frame's size are a driver error", async () => {
    const { ctx } = await run(false);
    const state = { ...ctx.state, phase: 'sealed' as const, reveals: [] };
    const r = await signedReveal(ctx.keys[0] as NodeKey, ctx.request, T0 + 3_000);
    expect(() =>
      stepCoordinator(ctx.config, state, { kind: 'packet', now: T0 + 3_100, packet: r, reembedded: 'abcd' }),
    ).toThrow('re-embedded bits');
  });

  test('a follower recomputes the verdict from the transcript and its claims', async () => {
    const { wire, ctx, verdict } = await run(true);
    const fx = await follow(wire, ctx.request.requestId);
    const seen = fx.filter((e): e is VerdictEffect => e.kind === 'verdict');
    expect(seen.map((e) => e.check)).toEqual(['recomputed']);
    expect(seen[0]?.digest).toBe(verdict.digest);
    expect(fx).toContainEqual({ kind: 'done', reason: 'verified' });
    expect(claimedReembeddings(verdict.verdict).size).toBe(1);
  });

  test('a follower refuses a verdict whose claim was dropped or changed (re-signed consistently)', async () => {
    const { wire, ctx, verdict } = await run(true);
    const claim = (verdict.verdict.reembedded ?? [])[0] as NonNullable<Verdict['reembedded']>[number];
    const published = wire.find((p): p is Packet<'verdict'> => p.type === 'verdict') as Packet<'verdict'>;
    const { reembedded: _, ...dropped } = verdict.verdict;
    for (const forged of [
      dropped,
      { ...verdict.verdict, reembedded: [{ ...claim, bits: fakeEmbedding(ANSWER) }] },
    ] as Verdict[]) {
      const packet = await signPacket(ctx.ck, 'verdict', {
        ...published.body,
        verdict: forged,
        verdictDigest: verdictDigest(forged),
      });
      const fx = await follow([...wire.filter((p) => p.type !== 'verdict'), packet], ctx.request.requestId);
      expect(fx.some((e) => e.kind === 'rejected' && e.code === 'VERDICT_MISMATCH')).toBe(true);
      expect(fx).toContainEqual({ kind: 'done', reason: 'verdict-mismatch' });
    }
  });

  test('an observer attests a verdict with claims, but not one that claims its own bits are not its text', async () => {
    const { wire, ctx, attacker } = await run(true);
    const attestations = (fx: Effect[]) =>
      fx.filter((e) => e.kind === 'publish' && e.packetType === 'attestation').length;
    const other = await follow(wire, ctx.request.requestId, { attest: true });
    expect(attestations(other)).toBe(1);
    // The member the claim names checks the verdict (it recomputes) and does not co-sign it.
    const named = await follow(wire, ctx.request.requestId, { attest: true, self: attacker.nodeId });
    expect(named).toContainEqual({ kind: 'done', reason: 'verified' });
    expect(attestations(named)).toBe(0);
  });
});
