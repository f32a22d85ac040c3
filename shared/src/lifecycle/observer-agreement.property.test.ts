/**
 * An honest coordinator is never accused: whatever reveals the members sign (several valid ones that
 * differ in createdAt, garbage, late ones), whatever reach the coordinator and a follower, and in
 * whatever order, the follower never emits evidence against the coordinator's verdict nor calls it a
 * mismatch; it verifies it (and attests exactly it) or leaves it unverified.
 */
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import type { NodeKey } from '../identity/node-key.ts';
import { signPacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet } from '../packets/schemas.ts';
import { type CoordinatorState, startCoordinator, stepCoordinator } from './coordinator.ts';
import { initFollower, stepFollower } from './follower.ts';
import { makeRequest, material, prng, signedCommit, signPublishes, T0, testKey } from './sim.test-helpers.ts';
import type { Effect } from './types.ts';

const WINDOW = 5_000;
const KINDS = ['valid', 'valid', 'garbage', 'late'] as const;

const runArb = fc.record({
  members: fc.integer({ min: 1, max: 4 }),
  outsiders: fc.integer({ min: 0, max: 2 }),
  // Per signer (members first, then outsiders): the reveals it signs.
  reveals: fc.array(fc.array(fc.constantFrom(...KINDS), { maxLength: 4 }), { minLength: 6, maxLength: 6 }),
  coordinatorSeed: fc.integer(),
  followerSeed: fc.integer(),
  dropRate: fc.constantFrom(0, 0.2, 0.5),
});

function shuffledSubset<T>(items: readonly T[], seed: number, dropRate: number): T[] {
  const rand = prng(seed);
  const out = items.filter(() => rand() >= dropRate);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('a follower and an honest coordinator that hold different reveals', () => {
  test('never evidence, never a mismatch: verified and attested as published, or unverified', async () => {
    const ck = await testKey('coordinator');
    const keys: NodeKey[] = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => testKey(`node${i}`)));
    const me = await testKey('follower');
    await fc.assert(
      fc.asyncProperty(runArb, async (r) => {
        const request = makeRequest({
          frame: { quorum: r.members, maxCommits: r.members, revealWindowMs: WINDOW, secPercentage: 0.5 },
          label: 'observer-agreement',
        });
        // The coordinator: request, commits (early close), seal, all fed back.
        let cs: CoordinatorState;
        const start = startCoordinator({}, { now: T0, self: ck.nodeId, request });
        cs = start.state;
        const out: AnyPacket[] = [];
        const feedC = async (packet: AnyPacket, now: number) => {
          const t = stepCoordinator({}, cs, { kind: 'packet', now, packet });
          cs = t.state;
          await publishAll(t.effects, now);
        };
        const publishAll = async (effects: Effect[], now: number) => {
          for (const p of await signPublishes(ck, effects)) {
            out.push(p);
            await feedC(p, now);
          }
        };
        await publishAll(start.effects, T0);
        const commits: AnyPacket[] = [];
        for (const k of keys.slice(0, r.members)) {
          const c = await signedCommit(k, request, T0 + 1_000);
          commits.push(c);
          await feedC(c, T0 + 1_000);
        }
        const seal = out.find((p) => p.type === 'seal') as Packet<'seal'>;
        const sealAt = seal.body.createdAt;
        // Every reveal signed, members' and outsiders'.
        const pool: AnyPacket[] = [];
        const signers = r.members + r.outsiders;
        for (let i = 0; i < signers; i++) {
          const key = keys[i] as NodeKey;
          const m = material(key, request);
          for (const [n, kind] of (r.reveals[i] ?? []).entries()) {
            pool.push(
              await signPacket(key, 'reveal', {
                requestId: request.requestId,
                output: kind === 'garbage' ? `garbage ${n}` : m.output,
                bEmbedding: m.bEmbedding,
                model: m.model,
                salt: m.salt,
                createdAt: kind === 'late' ? sealAt + WINDOW + 1 + n : sealAt + 100 + n,
              }),
            );
          }
        }
        for (const p of shuffledSubset(pool, r.coordinatorSeed, r.dropRate)) await feedC(p, sealAt + 200);
        const closed = stepCoordinator({}, cs, {
          kind: 'timer',
          name: 'reveal-deadline',
          now: sealAt + WINDOW,
        });
        cs = closed.state;
        await publishAll(closed.effects, sealAt + WINDOW);
        const verdict = out.find((p) => p.type === 'verdict') as Packet<'verdict'>;
        expect(verdict).toBeDefined();

        // The follower: everything but its own subset of the reveals, in its own order.
        const config = { attest: true };
        let fs = initFollower(config, { now: T0, self: me.nodeId, requestId: request.requestId }).state;
        const effects: Effect[] = [];
        const feedF = (packet: AnyPacket, now: number) => {
          const t = stepFollower(config, fs, { kind: 'packet', now, packet });
          fs = t.state;
          effects.push(...t.effects);
        };
        const requestPacket = out.find((p) => p.type === 'request') as AnyPacket;
        for (const p of [requestPacket, ...commits, seal]) feedF(p, sealAt);
        for (const p of shuffledSubset(pool, r.followerSeed, r.dropRate)) feedF(p, sealAt + 300);
        feedF(verdict, sealAt + WINDOW + 10);
        if (fs.outcome === null) {
          const t = stepFollower(config, fs, {
            kind: 'timer',
            name: 'verify-wait',
            now: sealAt + WINDOW + 6_000,
          });
          fs = t.state;
          effects.push(...t.effects);
        }
        expect(effects.filter((e) => e.kind === 'evidence')).toEqual([]);
        expect(fs.outcome?.kind).toBe('done');
        const reason = fs.outcome?.kind === 'done' ? fs.outcome.reason : null;
        expect(['verified', 'unverified']).toContain(reason as string);
        for (const e of effects) {
          if (e.kind === 'publish' && e.packetType === 'attestation') {
            expect(e.body.verdictDigest).toBe(verdict.body.verdictDigest);
            expect(e.body.transcriptRoot).toBe(verdict.body.transcriptRoot);
          }
        }
        // Every reveal delivered to both, one per signer: both hold the same ones, and it verifies.
        // (With more per signer, each keeps the first that fit its own bounds, in its own order.)
        const once = r.reveals.slice(0, signers).every((x) => x.length <= 1);
        if (r.dropRate === 0 && once) expect(reason).toBe('verified');
      }),
      { seed: 0xacc5, numRuns: 200 },
    );
  });
});
