/**
 * The seat cap under any order of commits: whatever order commits (and repeated commits, and second
 * commitments) arrive in, and whether the seal closes early or at its deadline, no node holds two
 * seats and nodes without a record never hold enough seats to accept a verdict among themselves.
 */
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { requiredAgreement } from '../frame/frame.ts';
import type { NodeKey } from '../identity/node-key.ts';
import type { Packet } from '../packets/schemas.ts';
import { type CoordinatorConfig, startCoordinator, stepCoordinator } from './coordinator.ts';
import type { SeatPolicy } from './seats.ts';
import { makeRequest, signedCommit, signPublishes, T0, testKey } from './sim.test-helpers.ts';
import type { Effect } from './types.ts';

const NODES = 8;
let keys: NodeKey[] = [];

const runArb = fc.record({
  proven: fc.array(fc.boolean(), { minLength: NODES, maxLength: NODES }),
  standing: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: NODES, maxLength: NODES }),
  quorum: fc.integer({ min: 1, max: 4 }),
  extra: fc.integer({ min: 0, max: 3 }),
  secPercentage: fc.constantFrom(0.34, 0.5, 0.6, 0.67, 1),
  // A node index and which of its two commitments it sends (1: a second, different one).
  arrivals: fc.array(fc.record({ node: fc.nat(NODES - 1), variant: fc.constantFrom(0, 0, 0, 1) }), {
    maxLength: 16,
  }),
});

describe('seat cap under any order of commits', () => {
  test('one seat per node; nodes without a record never hold enough seats to agree alone', async () => {
    keys = await Promise.all(Array.from({ length: NODES }, (_, i) => testKey(`node${i}`)));
    const ck = await testKey('coordinator');
    await fc.assert(
      fc.asyncProperty(runArb, async (r) => {
        const index = (nodeId: string) => keys.findIndex((k) => k.nodeId === nodeId);
        const seats: SeatPolicy = {
          isProven: (nodeId) => r.proven[index(nodeId)] === true,
          applies: () => true,
          standing: (nodeId) => r.standing[index(nodeId)] ?? 0,
        };
        const config: CoordinatorConfig = { seats };
        const request = makeRequest({
          frame: { quorum: r.quorum, maxCommits: r.quorum + r.extra, secPercentage: r.secPercentage },
          label: 'seats-property',
        });
        const t = startCoordinator(config, { now: T0, self: ck.nodeId, request });
        const [rp] = (await signPublishes(ck, t.effects)) as [Packet<'request'>];
        let state = stepCoordinator(config, t.state, { kind: 'packet', now: T0, packet: rp }).state;
        const effects: Effect[] = [];
        let now = T0 + 100;
        for (const a of r.arrivals) {
          const c = await signedCommit(
            keys[a.node]!,
            request,
            T0 + 100,
            `answer ${a.variant}`,
            `${a.variant}`,
          );
          const step = stepCoordinator(config, state, { kind: 'packet', now: now++, packet: c });
          state = step.state;
          effects.push(...step.effects);
        }
        const end = stepCoordinator(config, state, {
          kind: 'timer',
          name: 'seal-deadline',
          now: T0 + request.frame.maxTimeMs,
        });
        effects.push(...end.effects);
        const seals = effects.filter((e) => e.kind === 'publish' && e.packetType === 'seal');
        expect(seals.length).toBeLessThanOrEqual(1);
        const seal = seals[0] as Extract<Effect, { kind: 'publish'; packetType: 'seal' }> | undefined;
        if (seal === undefined) return;
        const members = seal.body.members.map((m) => m.nodeId);
        expect(new Set(members).size).toBe(members.length);
        expect(members.length).toBeGreaterThanOrEqual(r.quorum);
        expect(members.length).toBeLessThanOrEqual(r.quorum + r.extra);
        const unproven = members.filter((m) => !seats.isProven(m)).length;
        if (unproven > 0) {
          expect(unproven).toBeLessThan(requiredAgreement(request.frame, members.length));
        }
        // No node caught signing two different commitments before the seal is sealed.
        const before = effects.slice(0, effects.indexOf(seal));
        for (const e of before) {
          if (e.kind === 'evidence') expect(members).not.toContain(e.evidence.nodeId);
        }
      }),
      { seed: 0x5ea7, numRuns: 300 },
    );
  });
});
