/**
 * Seeded simulation under driver faults: timers that fire late (an event loop blocked for seconds, or
 * for minutes), machines that crash and restart at random moments (timers and inferences lost, state
 * reloaded and fed `restored`), duplicated and reordered deliveries. After every run: each machine
 * ended exactly once and did nothing after it ended, the coordinator sealed and decided at most once,
 * and whatever it published verifies as a transcript, as `verifyTranscript` holds every party to.
 */
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { signPacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet } from '../packets/schemas.ts';
import { seededRandom } from '../seeded-random.ts';
import { buildTranscript } from '../transcript/transcript.ts';
import { verifyTranscript } from '../transcript/verify.ts';
import type { CoordinatorState } from './coordinator.ts';
import { unanswered } from './reannounce.ts';
import { type Behaviour, type ScenarioOptions, type Sim, scenario, T0 } from './sim.test-helpers.ts';
import { lifecycleStatus } from './status.ts';

interface Params {
  seed: number;
  nodes: Behaviour[];
  quorum: number;
  extraCommits: number;
  lateness: [number, number];
  restarts: { at: number; who: number }[];
  followers: number;
}

const MAX_TIME = 10_000;
const WINDOW = 5_000;

const params: fc.Arbitrary<Params> = fc.record({
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
  nodes: fc.array(
    fc.record({
      inferenceMs: fc.oneof(
        { arbitrary: fc.integer({ min: 100, max: 4_000 }), weight: 5 },
        fc.integer({ min: 8_000, max: 12_000 }),
      ),
      withhold: fc.oneof({ arbitrary: fc.constant(false), weight: 8 }, fc.constant(true)),
    }),
    { minLength: 1, maxLength: 6 },
  ),
  quorum: fc.integer({ min: 1, max: 3 }),
  extraCommits: fc.integer({ min: 0, max: 2 }),
  lateness: fc.constantFrom<[number, number]>([0, 0], [0, 3_000], [0, 30_000], [100_000, 200_000]),
  restarts: fc.array(
    fc.record({ at: fc.integer({ min: 0, max: 2 * MAX_TIME }), who: fc.integer({ min: 0, max: 9 }) }),
    { maxLength: 3 },
  ),
  followers: fc.integer({ min: 0, max: 1 }),
});

/** The scenario a run of `params` plays: its nodes and frame, deliveries late and duplicated. */
function faultyScenario(p: Params, label: string): ScenarioOptions {
  return {
    seed: p.seed,
    nodes: p.nodes,
    followers: p.followers,
    latency: [1, 500],
    duplicateRate: 0.2,
    timerLateness: p.lateness,
    frame: {
      quorum: p.quorum,
      maxCommits: p.quorum + p.extraCommits,
      maxTimeMs: MAX_TIME,
      revealWindowMs: WINDOW,
    },
    label,
  };
}

async function checkRun(sim: Sim): Promise<void> {
  // Every machine ended exactly once, and in every step after the one that ended it emitted nothing
  // but diagnostics.
  for (const actor of sim.actors.values()) {
    expect(actor.machine.state.outcome).not.toBeNull();
    const j = actor.journal;
    const end = j.findIndex(
      (e) => 'effect' in e && (e.effect.kind === 'done' || e.effect.kind === 'expired'),
    );
    expect(end).toBeGreaterThanOrEqual(0);
    const nextStep = j.findIndex((e, i) => i > end && 'event' in e);
    const after = nextStep < 0 ? [] : j.slice(nextStep);
    expect(after.flatMap((e) => ('effect' in e && e.effect.kind !== 'rejected' ? [e.effect] : []))).toEqual(
      [],
    );
  }
  const seals = sim.wire.filter((w) => w.packet.type === 'seal');
  const verdicts = sim.wire.filter((w) => w.packet.type === 'verdict');
  expect(new Set(seals.map((w) => w.packet.sig)).size).toBeLessThanOrEqual(1);
  expect(new Set(verdicts.map((w) => w.packet.sig)).size).toBeLessThanOrEqual(1);
  for (const actor of sim.actors.values()) expect(sim.effects(actor.name, 'evidence')).toEqual([]);

  const cs = sim.actor('coordinator').machine.state as CoordinatorState;
  if (verdicts.length === 0) return;
  const vp = verdicts[0]!.packet as Packet<'verdict'>;
  const seal = seals[0]!.packet;
  const packets: AnyPacket[] = [
    cs.request.packet as Packet<'request'>,
    ...cs.commits.map((c) => c.packet),
    seal,
    ...cs.reveals.map((r) => r.packet),
  ];
  const check = await verifyTranscript(buildTranscript(packets), {
    expectedVerdictDigest: vp.body.verdictDigest,
    expectedRoot: vp.body.transcriptRoot,
  });
  expect(check.ok ? 'ok' : JSON.stringify(check.error.details)).toBe('ok');
  // No honest party finds the honest coordinator's verdict wrong.
  for (const actor of sim.actors.values()) {
    const status = lifecycleStatus(actor.machine.state);
    if (status.verdict !== null) expect(status.verdict.digest).toBe(vp.body.verdictDigest);
    expect(actor.machine.state.outcome?.kind === 'done' && actor.machine.state.outcome.reason).not.toBe(
      'verdict-mismatch',
    );
  }
}

describe('seeded simulation under late timers and restarts', () => {
  test('machines end once, stay quiet after, and every published verdict verifies', async () => {
    await fc.assert(
      fc.asyncProperty(params, async (p) => {
        const { sim } = await scenario(faultyScenario(p, `faults-${p.seed}`));
        const names = [...sim.actors.keys()];
        for (const r of [...p.restarts].sort((a, b) => a.at - b.at)) {
          await sim.run(sim.now + r.at);
          await sim.restart(names[r.who % names.length] as string);
        }
        await sim.run();
        await checkRun(sim);
      }),
      { seed: 0xfa17, numRuns: 150 },
    );
  });
});

describe('seeded simulation with lost deliveries, re-announcing what is unanswered', () => {
  test('re-announced packets change no invariant: machines end once, no evidence, every verdict verifies', async () => {
    await fc.assert(
      fc.asyncProperty(
        params,
        fc.integer({ min: 200, max: 4_000 }),
        fc.constantFrom(0, 0.2, 0.5),
        async (p, every, lossRate) => {
          const lose = seededRandom(p.seed ^ 0x5eed);
          const { sim } = await scenario({
            ...faultyScenario(p, `reannounce-${p.seed}`),
            lost: () => lose() < lossRate,
          });
          const names = [...sim.actors.keys()];
          type Step = { at: number; restart?: number };
          const steps: Step[] = p.restarts.map((r) => ({ at: T0 + r.at, restart: r.who }));
          for (let at = T0 + every; at < T0 + 4 * MAX_TIME; at += every) steps.push({ at });
          steps.sort((a, b) => a.at - b.at);
          for (const step of steps) {
            await sim.run(step.at);
            if (step.restart !== undefined) {
              await sim.restart(names[step.restart % names.length] as string);
              continue;
            }
            for (const actor of sim.actors.values()) {
              for (const o of unanswered(actor.machine.state)) {
                const packet = (await signPacket(actor.key, o.packetType, o.body as never)) as AnyPacket;
                for (const other of sim.actors.values()) {
                  if (other !== actor) sim.deliverLater(other.name, packet);
                }
              }
            }
          }
          await sim.run();
          await checkRun(sim);
        },
      ),
      { seed: 0x5eed, numRuns: 100 },
    );
  });
});
