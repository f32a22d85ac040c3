import { describe, expect, test } from 'bun:test';
import { ANSWER, scenario, T0 } from './sim.test-helpers.ts';
import { lifecycleStatus } from './status.ts';

describe('lifecycle, end to end over the simulated network', () => {
  test('happy path: 5 nodes, early close, early verdict accepted, attested by every member', async () => {
    const { sim } = await scenario({ seed: 1, nodes: [{}, {}, {}, {}, {}], followers: 1 });
    await sim.run();
    const verdicts = sim.effects('coordinator', 'verdict');
    expect(verdicts).toHaveLength(1);
    const v = verdicts[0]!;
    expect(v.verdict.status).toBe('accepted');
    expect(v.verdict.sealSize).toBe(5);
    expect(v.verdict.accepted).toHaveLength(5);
    expect(v.verdict.winner?.output).toBe(ANSWER);
    expect(sim.effects('coordinator', 'done')).toEqual([{ kind: 'done', reason: 'all-attested' }]);
    for (let i = 0; i < 5; i++) {
      expect(sim.effects(`node${i}`, 'done')).toEqual([{ kind: 'done', reason: 'verified' }]);
    }
    const status = lifecycleStatus(sim.actor('follower0').machine.state);
    expect(status.phase).toBe('verdict');
    expect(status.verdict?.check).toBe('recomputed');
    expect(status.verdict?.digest).toBe(v.digest);
    console.log(T0);
  });
});
