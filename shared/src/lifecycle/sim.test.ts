/**
 * Seeded simulation: many runs of one request over the simulated network, each with its own node
 * count, frame, faults (withholders, dissenters, slow and failing engines), latency and duplicated
 * deliveries, so packets reach each machine in a different order. After every run the protocol's
 * invariants are checked on everything that was published and on every machine's final state.
 * fast-check draws the runs from a fixed seed: a failure prints a reproducible counterexample.
 */
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { checkCommitment } from '../commitment/commitment.ts';
import { computeVerdict, verdictDigest } from '../consensus/verdict.ts';
import { hamming } from '../embedding/binary.ts';
import { fromHex } from '../encoding/bytes.ts';
import { canonicalJson } from '../encoding/canonical.ts';
import { requiredAgreement } from '../frame/frame.ts';
import { packetId } from '../packets/envelope.ts';
import type { Packet } from '../packets/schemas.ts';
import { buildTranscript, transcriptRoot } from '../transcript/transcript.ts';
import type { CoordinatorState } from './coordinator.ts';
import { type Behaviour, prng, type Sim, scenario, T0 } from './sim.test-helpers.ts';
import { lifecycleStatus } from './status.ts';

interface Params {
  seed: number;
  nodes: Behaviour[];
  quorum: number;
  extraCommits: number;
  secPercentage: number;
  latencyMax: number;
  duplicateRate: number;
  followers: number;
}

const MAX_TIME = 10_000;
const WINDOW = 5_000;

/** Mostly honest, responsive nodes; some dissent, withhold, run too slow or fail. */
const behaviour: fc.Arbitrary<Behaviour> = fc
  .record({
    dissent: fc.oneof(
      { arbitrary: fc.constant(null), weight: 6 },
      fc.constantFrom('A different story.', 'Yet another.'),
    ),
    inferenceMs: fc.oneof(
      { arbitrary: fc.integer({ min: 100, max: 3_000 }), weight: 6 },
      fc.constant(20_000),
    ),
    withhold: fc.oneof({ arbitrary: fc.constant(false), weight: 6 }, fc.constant(true)),
    fail: fc.oneof({ arbitrary: fc.constant(false), weight: 10 }, fc.constant(true)),
  })
  .map(({ dissent, inferenceMs, withhold, fail }) => {
    const out: Behaviour = { inferenceMs, withhold, fail };
    if (dissent !== null) out.output = dissent;
    return out;
  });

const params: fc.Arbitrary<Params> = fc.record({
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
  nodes: fc.array(behaviour, { minLength: 1, maxLength: 8 }),
  quorum: fc.integer({ min: 1, max: 4 }),
  extraCommits: fc.integer({ min: 0, max: 3 }),
  secPercentage: fc.constantFrom(0.5, 0.6, 0.67, 1),
  latencyMax: fc.integer({ min: 1, max: 2_000 }),
  duplicateRate: fc.constantFrom(0, 0.3),
  followers: fc.integer({ min: 0, max: 2 }),
});

/** Shuffle a copy with a seeded PRNG. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const rand = prng(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

function checkInvariants(sim: Sim, p: Params): void {
  const coordinator = sim.actor('coordinator');
  const cs = coordinator.machine.state as CoordinatorState;
  const seals = sim.wire.filter((w) => w.packet.type === 'seal');
  const verdicts = sim.wire.filter((w) => w.packet.type === 'verdict');

  // Only the coordinator seals and publishes verdicts, at most once each.
  expect(seals.length).toBeLessThanOrEqual(1);
  expect(verdicts.length).toBeLessThanOrEqual(1);
  for (const w of [...seals, ...verdicts]) expect(w.by).toBe('coordinator');

  // No reveal before the seal: on the wire, and in each revealer's own history.
  const seal = seals[0];
  for (const w of sim.wire.filter((x) => x.packet.type === 'reveal')) {
    expect(seal).toBeDefined();
    expect(w.at).toBeGreaterThanOrEqual(seal!.at);
    const journal = sim.actor(w.by).journal;
    const revealAt = journal.findIndex(
      (e) => 'effect' in e && e.effect.kind === 'publish' && e.effect.packetType === 'reveal',
    );
    const sealSeen = journal.findIndex(
      (e) => 'event' in e && e.event.kind === 'packet' && e.event.packet.type === 'seal',
    );
    expect(sealSeen).toBeGreaterThanOrEqual(0);
    expect(sealSeen).toBeLessThan(revealAt);
    // ... and only by a member sealed with the commitment it reveals.
    const member = (seal!.packet as Packet<'seal'>).body.members.find((m) => m.nodeId === w.packet.from);
    expect(member).toBeDefined();
  }

  // Every machine finishes: no request is left hanging.
  for (const actor of sim.actors.values()) expect(actor.machine.state.outcome).not.toBeNull();

  // Liveness: enough honest, responsive nodes -> a verdict within maxTimeMs + revealWindowMs.
  const responsive = p.nodes.filter(
    (b) => !b.fail && (b.inferenceMs ?? 0) + p.latencyMax < MAX_TIME - 1_000,
  ).length;
  if (responsive >= p.quorum) {
    expect(verdicts).toHaveLength(1);
    expect(verdicts[0]!.at).toBeLessThanOrEqual(T0 + MAX_TIME + WINDOW);
  }
  if (verdicts.length === 0) {
    expect(cs.outcome?.kind === 'expired' || cs.phase !== 'verdict').toBe(true);
    return;
  }

  const vp = verdicts[0]!.packet as Packet<'verdict'>;
  const sealPacket = seal!.packet as Packet<'seal'>;
  const request = cs.request.packet as Packet<'request'>;
  const verdict = vp.body.verdict;

  // Determinism: any order of the same transcript gives the byte-identical verdict and root.
  const commits = cs.commits.map((c) => c.packet);
  const reveals = cs.reveals;
  for (const k of [1, 2, 3]) {
    const again = computeVerdict({
      request,
      seal: sealPacket,
      sealId: packetId(sealPacket),
      reveals: shuffled(reveals, p.seed + k),
    });
    expect(canonicalJson(again)).toBe(canonicalJson(verdict));
    expect(verdictDigest(again)).toBe(vp.body.verdictDigest);
    const t = buildTranscript(
      shuffled([request, ...commits, sealPacket, ...reveals.map((r) => r.packet)], p.seed + k),
    );
    expect(transcriptRoot(t)).toBe(vp.body.transcriptRoot);
  }

  // Safety: no verdict accepted without ceil(secPercentage x |seal|) agreeing, sealed, valid reveals.
  if (verdict.status === 'accepted') {
    const required = requiredAgreement({ secPercentage: p.secPercentage }, sealPacket.body.members.length);
    expect(verdict.required).toBe(required);
    expect(verdict.accepted.length).toBeGreaterThanOrEqual(required);
    const centre = reveals.find((r) => r.packet.from === verdict.centre?.nodeId);
    for (const a of verdict.accepted) {
      const member = sealPacket.body.members.find((m) => m.nodeId === a.nodeId);
      expect(member?.commitment).toBe(a.commitment);
      const revealed = reveals.filter((r) => r.packet.from === a.nodeId).map((r) => r.packet.body);
      const valid = revealed.find(
        (b) =>
          checkCommitment(a.commitment, { ...b, nodeId: a.nodeId }).ok &&
          b.createdAt <= sealPacket.body.createdAt + WINDOW,
      );
      expect(valid).toBeDefined();
      expect(
        hamming(fromHex(valid!.bEmbedding), fromHex(centre!.packet.body.bEmbedding)),
      ).toBeLessThanOrEqual(verdict.thresholdBits);
    }
  }

  // Agreement: every node or follower that recomputed the verdict got the coordinator's, and every
  // attestation published is of the coordinator's digest and root. No honest party accuses it.
  for (const actor of sim.actors.values()) {
    if (actor.name === 'coordinator') continue;
    const status = lifecycleStatus(actor.machine.state);
    if (status.verdict !== null) {
      expect(status.verdict.digest).toBe(vp.body.verdictDigest);
      expect(status.verdict.check).not.toBe('mismatch');
    }
    expect(sim.effects(actor.name, 'evidence')).toEqual([]);
  }
  for (const w of sim.wire.filter((x) => x.packet.type === 'attestation')) {
    const body = (w.packet as Packet<'attestation'>).body;
    expect(body.verdictDigest).toBe(vp.body.verdictDigest);
    expect(body.transcriptRoot).toBe(vp.body.transcriptRoot);
  }
  // With reliable delivery every follower ends up with the full transcript and recomputes it.
  for (let i = 0; i < p.followers; i++) {
    expect(lifecycleStatus(sim.actor(`follower${i}`).machine.state).verdict?.check).toBe('recomputed');
  }
}

describe('seeded simulation over random delivery orders', () => {
  test('the invariants hold in every run', async () => {
    await fc.assert(
      fc.asyncProperty(params, async (p) => {
        const { sim } = await scenario({
          seed: p.seed,
          nodes: p.nodes,
          followers: p.followers,
          latency: [1, p.latencyMax],
          duplicateRate: p.duplicateRate,
          frame: {
            quorum: p.quorum,
            maxCommits: p.quorum + p.extraCommits,
            secPercentage: p.secPercentage,
            maxTimeMs: MAX_TIME,
            revealWindowMs: WINDOW,
          },
          label: `sim-${p.seed}`,
        });
        await sim.run();
        checkInvariants(sim, p);
      }),
      { seed: 0x5eed, numRuns: 100 },
    );
  });

  test('the same seed replays the same run, packet for packet', async () => {
    const once = async () => {
      const { sim } = await scenario({
        seed: 99,
        nodes: [{}, {}, { withhold: true }, {}],
        latency: [1, 800],
      });
      await sim.run();
      return sim.wire.map((w) => [w.at, w.by, packetId(w.packet)]);
    };
    expect(await once()).toEqual(await once());
  });
});
