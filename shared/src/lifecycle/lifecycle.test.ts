import { describe, expect, test } from 'bun:test';
import type { Packet } from '../packets/schemas.ts';
import type { CoordinatorState } from './coordinator.ts';
import type { NodeState } from './node.ts';
import { type Behaviour, type ScenarioOptions, type Sim, scenario, T0 } from './sim.test-helpers.ts';
import { restoreState, serializeState } from './state.ts';
import { lifecycleStatus } from './status.ts';

const MAX_TIME = 10_000;
const WINDOW = 5_000;

function published(sim: Sim, type: string) {
  return sim.wire.filter((w) => w.packet.type === type);
}

function coordinatorState(sim: Sim): CoordinatorState {
  return sim.actor('coordinator').machine.state as CoordinatorState;
}

/** Every reveal a node published came after it took the seal that lists it. */
function expectNoRevealBeforeSeal(sim: Sim): void {
  for (const actor of sim.actors.values()) {
    const revealAt = actor.journal.findIndex(
      (e) => 'effect' in e && e.effect.kind === 'publish' && e.effect.packetType === 'reveal',
    );
    if (revealAt < 0) continue;
    const sealAt = actor.journal.findIndex(
      (e) => 'event' in e && e.event.kind === 'packet' && e.event.packet.type === 'seal',
    );
    expect(sealAt).toBeGreaterThanOrEqual(0);
    expect(sealAt).toBeLessThan(revealAt);
  }
  const seal = published(sim, 'seal')[0];
  for (const r of published(sim, 'reveal')) {
    expect(seal).toBeDefined();
    expect(r.at).toBeGreaterThanOrEqual(seal!.at);
  }
}

async function run(opts: ScenarioOptions) {
  const { sim, request } = await scenario(opts);
  await sim.run();
  expectNoRevealBeforeSeal(sim);
  return { sim, request };
}

const honest = (n: number, b: Behaviour = {}) => Array.from({ length: n }, () => ({ ...b }));

describe('lifecycle over the simulated network', () => {
  test('happy path: 5 nodes, early close, early verdict accepted, attested by every member', async () => {
    const { sim } = await run({ seed: 1, nodes: honest(5), followers: 1 });
    const verdicts = sim.effects('coordinator', 'verdict');
    expect(verdicts).toHaveLength(1);
    const v = verdicts[0]!;
    expect(v.verdict.status).toBe('accepted');
    expect(v.verdict.sealSize).toBe(5);
    expect(v.verdict.accepted).toHaveLength(5);
    const seal = published(sim, 'seal')[0]!;
    expect(seal.at).toBeLessThan(T0 + MAX_TIME); // early close
    const verdict = published(sim, 'verdict')[0]!;
    expect(verdict.at).toBeLessThan(seal.at + WINDOW); // early verdict
    expect(sim.effects('coordinator', 'done')).toEqual([{ kind: 'done', reason: 'all-attested' }]);
    for (let i = 0; i < 5; i++) {
      expect(sim.effects(`node${i}`, 'done')).toEqual([{ kind: 'done', reason: 'verified' }]);
    }
    expect(published(sim, 'attestation')).toHaveLength(5);
    expect(lifecycleStatus(sim.actor('coordinator').machine.state)).toMatchObject({
      role: 'coordinator',
      phase: 'verdict',
      commits: 5,
      sealSize: 5,
      revealed: 5,
      attestations: 5,
      verdict: { check: 'computed', status: 'accepted', digest: v.digest, output: v.verdict.winner?.output },
      finished: true,
    });
    const status = lifecycleStatus(sim.actor('follower0').machine.state);
    expect(status.phase).toBe('verdict');
    expect(status.verdict).toMatchObject({ check: 'recomputed', digest: v.digest, status: 'accepted' });
  });

  test('early close at maxCommits: nodes still inferring cancel, never commit, and verify the verdict', async () => {
    const nodes = [...honest(3), ...honest(2, { inferenceMs: 3_000 })];
    const { sim } = await run({ seed: 2, nodes, frame: { quorum: 2, maxCommits: 3 } });
    const seal = published(sim, 'seal')[0]!;
    expect((seal.packet as Packet<'seal'>).body.members).toHaveLength(3);
    expect(seal.at).toBeLessThan(T0 + 3_000);
    for (const i of [3, 4]) {
      const name = `node${i}`;
      expect(sim.effects(name, 'cancel-inference')).toHaveLength(1);
      expect((sim.actor(name).machine.state as NodeState).work.phase).toBe('excluded');
      expect(sim.actor(name).published.map((p) => p.type)).toEqual(['attestation']);
      expect(sim.effects(name, 'done')).toEqual([{ kind: 'done', reason: 'verified' }]);
    }
    expect(sim.effects('coordinator', 'verdict')[0]?.verdict.status).toBe('accepted');
  });

  test('timeout seal: at maxTimeMs with the quorum of commits held', async () => {
    const nodes = [...honest(3), ...honest(2, { inferenceMs: 20_000 })];
    const { sim } = await run({ seed: 3, nodes, frame: { quorum: 3, maxCommits: 5 } });
    const seal = published(sim, 'seal')[0]!.packet as Packet<'seal'>;
    expect(seal.body.createdAt).toBe(T0 + MAX_TIME);
    expect(seal.body.members).toHaveLength(3);
    expect(sim.effects('coordinator', 'verdict')[0]?.verdict.status).toBe('accepted');
    for (const i of [3, 4])
      expect(sim.effects(`node${i}`, 'expired')).toEqual([{ kind: 'expired', reason: 'deadline-passed' }]);
  });

  test('expiry: fewer than quorum commits by maxTimeMs', async () => {
    const { sim } = await run({
      seed: 4,
      nodes: honest(2),
      frame: { quorum: 3, maxCommits: 3 },
      followers: 1,
    });
    expect(published(sim, 'seal')).toEqual([]);
    expect(sim.effects('coordinator', 'expired')).toEqual([{ kind: 'expired', reason: 'quorum-not-met' }]);
    for (const name of ['node0', 'node1', 'follower0']) {
      expect(sim.effects(name, 'expired')).toEqual([{ kind: 'expired', reason: 'not-sealed' }]);
    }
    expect(published(sim, 'reveal')).toEqual([]);
    expect(lifecycleStatus(sim.actor('follower0').machine.state).phase).toBe('expired');
  });

  test('a withholder delays the verdict to the end of the reveal window and counts against', async () => {
    const { sim } = await run({ seed: 5, nodes: [...honest(4), { withhold: true }] });
    const seal = published(sim, 'seal')[0]!.packet as Packet<'seal'>;
    const verdict = published(sim, 'verdict')[0]!;
    expect(verdict.at).toBe(seal.body.createdAt + WINDOW);
    const v = (verdict.packet as Packet<'verdict'>).body.verdict;
    expect(v.status).toBe('accepted');
    expect(v.accepted).toHaveLength(4);
    expect(v.rejected).toEqual([
      expect.objectContaining({ nodeId: sim.actor('node4').key.nodeId, reason: 'NOT_REVEALED' }),
    ]);
  });

  test('withholders can deny consensus, never fake it: 3 of 5 withholding', async () => {
    const { sim } = await run({ seed: 6, nodes: [...honest(2), ...honest(3, { withhold: true })] });
    const v = sim.effects('coordinator', 'verdict')[0]!.verdict;
    expect(v.status).toBe('no-consensus');
    expect(v.required).toBe(3);
    expect(v.winner).toBeNull();
  });

  test('dissenting outputs fall outside the cluster; the verdict still verifies everywhere', async () => {
    const nodes = [...honest(3), { output: 'A completely different story.' }, { output: 'Something else.' }];
    const { sim } = await run({ seed: 7, nodes, followers: 2, duplicateRate: 0.5 });
    const v = sim.effects('coordinator', 'verdict')[0]!;
    expect(v.verdict.status).toBe('accepted');
    expect(v.verdict.accepted).toHaveLength(3);
    expect(v.verdict.rejected.map((r) => r.reason)).toEqual(['OUTSIDE_CLUSTER', 'OUTSIDE_CLUSTER']);
    for (const name of ['node3', 'node4', 'follower0', 'follower1']) {
      expect(lifecycleStatus(sim.actor(name).machine.state).verdict).toMatchObject({
        check: 'recomputed',
        digest: v.digest,
      });
    }
  });

  test('a node that cannot finish before the deadline does not take the request', async () => {
    const { sim } = await run({ seed: 8, nodes: honest(4), node: { estimateInferenceMs: () => 60_000 } });
    for (let i = 0; i < 4; i++) {
      expect(sim.effects(`node${i}`, 'start-inference')).toEqual([]);
      expect(sim.effects(`node${i}`, 'done')).toEqual([{ kind: 'done', reason: 'cannot-meet-deadline' }]);
    }
    expect(sim.effects('coordinator', 'expired')).toEqual([{ kind: 'expired', reason: 'quorum-not-met' }]);
  });

  test('the engine failing on some nodes leaves the rest to reach the verdict', async () => {
    const { sim } = await run({
      seed: 9,
      nodes: [...honest(3), { fail: true }],
      frame: { quorum: 3, maxCommits: 4 },
    });
    expect(sim.effects('node3', 'expired')).toEqual([{ kind: 'expired', reason: 'inference-failed' }]);
    const seal = published(sim, 'seal')[0]!.packet as Packet<'seal'>;
    expect(seal.body.members).toHaveLength(3);
    expect(sim.effects('coordinator', 'verdict')[0]?.verdict.status).toBe('accepted');
  });
});

describe('restarts mid-flight', () => {
  test('state survives serialize/restore unchanged at every step of a run', async () => {
    const { sim } = await scenario({
      seed: 10,
      nodes: honest(3),
      followers: 1,
      frame: { quorum: 3, maxCommits: 3 },
    });
    const checkAll = () => {
      for (const a of sim.actors.values())
        expect(restoreState(serializeState(a.machine.state))).toEqual(a.machine.state);
    };
    for (const until of [T0 + 500, T0 + 1_100, T0 + 1_300, T0 + 2_000, Number.POSITIVE_INFINITY]) {
      await sim.run(until);
      checkAll();
    }
  });

  test('a coordinator restarted while collecting re-arms its seal deadline and still seals', async () => {
    const nodes = [...honest(3), ...honest(2, { inferenceMs: 30_000 })];
    const { sim } = await scenario({ seed: 11, nodes, frame: { quorum: 3, maxCommits: 5 } });
    await sim.run(T0 + 2_000);
    expect(coordinatorState(sim).commits).toHaveLength(3);
    const fx = await sim.restart('coordinator');
    expect(fx).toEqual([{ kind: 'set-timer', name: 'seal-deadline', at: T0 + MAX_TIME }]);
    await sim.run();
    expect((published(sim, 'seal')[0]!.packet as Packet<'seal'>).body.createdAt).toBe(T0 + MAX_TIME);
    expect(sim.effects('coordinator', 'verdict')[0]?.verdict.status).toBe('accepted');
  });

  test('a coordinator down past its seal deadline seals at once on restart', async () => {
    const nodes = [...honest(3), ...honest(2, { inferenceMs: 30_000 })];
    const { sim } = await scenario({ seed: 12, nodes, frame: { quorum: 3, maxCommits: 5 } });
    await sim.run(T0 + 2_000);
    const coordinator = sim.actor('coordinator');
    const saved = coordinator.stored;
    coordinator.machine.state = restoreState(saved) as CoordinatorState;
    sim.now = T0 + MAX_TIME + 3_000;
    const fx = await sim.feed(coordinator, { kind: 'restored', now: sim.now });
    expect(fx.map((e) => (e.kind === 'publish' ? e.packetType : e.kind))).toEqual([
      'persist',
      'seal',
      'set-timer',
    ]);
  });

  test('a node restarted during inference infers again and is sealed', async () => {
    const { sim } = await scenario({ seed: 13, nodes: honest(3), frame: { quorum: 3, maxCommits: 3 } });
    await sim.run(T0 + 500);
    const fx = await sim.restart('node1');
    expect(fx.map((e) => e.kind)).toContain('start-inference');
    await sim.run();
    const seal = published(sim, 'seal')[0]!.packet as Packet<'seal'>;
    expect(seal.body.members.map((m) => m.nodeId)).toContain(sim.actor('node1').key.nodeId);
    expect(sim.effects('coordinator', 'verdict')[0]?.verdict.accepted).toHaveLength(3);
  });

  test('a node restarted between commit and seal keeps its material and reveals', async () => {
    const nodes = [{}, {}, { inferenceMs: 2_500 }];
    const { sim } = await scenario({ seed: 14, nodes, frame: { quorum: 3, maxCommits: 3 } });
    await sim.run(T0 + 1_500);
    expect((sim.actor('node0').machine.state as NodeState).work.phase).toBe('committed');
    await sim.restart('node0');
    expect((sim.actor('node0').machine.state as NodeState).work.material).not.toBeNull();
    await sim.run();
    expect(sim.actor('node0').published.map((p) => p.type)).toEqual(['commit', 'reveal', 'attestation']);
    expect(sim.effects('coordinator', 'verdict')[0]?.verdict.accepted).toHaveLength(3);
  });

  test('a coordinator restarted after sealing still computes the verdict', async () => {
    const nodes = [{}, {}, {}, { withhold: true }];
    const { sim } = await scenario({ seed: 15, nodes, frame: { quorum: 3, maxCommits: 4 } });
    await sim.run(T0 + 1_600);
    expect(coordinatorState(sim).phase).toBe('sealed');
    await sim.restart('coordinator');
    await sim.run();
    const v = sim.effects('coordinator', 'verdict');
    expect(v).toHaveLength(1);
    expect(v[0]?.verdict.status).toBe('accepted');
  });
});
