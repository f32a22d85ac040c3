import { describe, expect, test } from 'bun:test';
import { encodePacket, packetId, signPacket } from '../packets/envelope.ts';
import type { AnyPacket } from '../packets/schemas.ts';
import { unanswered } from './reannounce.ts';
import { type Behaviour, type ScenarioOptions, type Sim, scenario, T0 } from './sim.test-helpers.ts';

const honest = (n: number, b: Behaviour = {}) => Array.from({ length: n }, () => ({ ...b }));

type Lost = (sim: Sim, to: string, packet: AnyPacket, at: number) => boolean;

/**
 * Run a scenario in steps of 250 ms of virtual time; at each step, note what every actor has unanswered
 * and, when `reannounce` is on, publish it again to everyone (what `SynodNode` does when a peer comes
 * back, or on its schedule). `lost` drops first deliveries (not the re-announcements).
 */
async function runWith(opts: ScenarioOptions, reannounce: boolean, lost?: Lost) {
  let current: Sim | null = null;
  const { sim, request } = await scenario({
    ...opts,
    lost: (to, packet, at) => current !== null && lost?.(current, to, packet, at) === true,
  });
  current = sim;
  const seen = new Map<string, string[]>();
  const reannounced: AnyPacket[] = [];
  for (let at = T0; at <= T0 + 60_000; at += 250) {
    await sim.run(at);
    for (const actor of sim.actors.values()) {
      const outgoing = unanswered(actor.machine.state);
      const log = seen.get(actor.name) ?? [];
      const now = outgoing.map((o) => o.packetType).join('+') || '-';
      if (now !== log[log.length - 1]) log.push(now);
      seen.set(actor.name, log);
      if (!reannounce) continue;
      for (const o of outgoing) {
        const packet = (await signPacket(actor.key, o.packetType, o.body as never)) as AnyPacket;
        reannounced.push(packet);
        for (const other of sim.actors.values()) if (other !== actor) sim.deliverLater(other.name, packet);
      }
    }
  }
  await sim.run();
  return { sim, request, seen, reannounced };
}

function verdictOf(sim: Sim) {
  const v = sim.effects('coordinator', 'verdict');
  expect(v).toHaveLength(1);
  return v[0]?.verdict;
}

function rejectedReasons(sim: Sim): string[] {
  return (verdictOf(sim)?.rejected ?? []).map((r) => r.reason);
}

describe('unanswered: what a machine publishes again', () => {
  test('each role names what it waits on, in the order of the protocol, and nothing once finished', async () => {
    const { sim, seen } = await runWith({ seed: 3, nodes: honest(3), followers: 1 }, false);
    expect(seen.get('coordinator')).toEqual(['request', 'seal', 'verdict', '-']);
    for (const n of ['node0', 'node1', 'node2']) {
      expect(seen.get(n)).toEqual(['-', 'commit', 'reveal', '-']);
    }
    expect(seen.get('follower0')).toEqual(['-']);
    for (const actor of sim.actors.values()) expect(actor.machine.state.outcome).not.toBeNull();
  });

  test('what is named, signed again, is the packet published the first time, byte for byte', async () => {
    const { sim, reannounced } = await runWith({ seed: 5, nodes: honest(3) }, true);
    expect(reannounced.length).toBeGreaterThan(0);
    const published = new Map<string, Uint8Array>();
    for (const actor of sim.actors.values()) {
      for (const p of actor.published) published.set(packetId(p), encodePacket(p));
    }
    for (const p of reannounced) {
      expect(published.get(packetId(p))).toEqual(encodePacket(p));
    }
    // Taken as duplicates: the same verdict, no evidence against anyone.
    expect(verdictOf(sim)?.status).toBe('accepted');
    expect(verdictOf(sim)?.accepted).toHaveLength(3);
    for (const actor of sim.actors.values()) expect(sim.effects(actor.name, 'evidence')).toEqual([]);
  });

  test('reveals the coordinator missed while it was cut off reach it again: nobody counted NOT_REVEALED', async () => {
    // Every reveal sent to the coordinator in the first two seconds after its seal is lost.
    const sealedAt = (sim: Sim) =>
      sim.timeOf('coordinator', (e) => e.kind === 'publish' && e.packetType === 'seal') ?? T0;
    const lost: Lost = (sim, to, packet, at) =>
      to === 'coordinator' && packet.type === 'reveal' && at < sealedAt(sim) + 2_000;
    const without = await runWith({ seed: 7, nodes: honest(3) }, false, lost);
    expect(rejectedReasons(without.sim)).toEqual(['NOT_REVEALED', 'NOT_REVEALED', 'NOT_REVEALED']);
    const withIt = await runWith({ seed: 7, nodes: honest(3) }, true, lost);
    expect(verdictOf(withIt.sim)?.status).toBe('accepted');
    expect(rejectedReasons(withIt.sim)).toEqual([]);
  });

  test('a seal a member missed reaches it again: it reveals', async () => {
    // Every first delivery of the seal to node1 is lost; re-announcements are not.
    const lost: Lost = (_sim, to, packet) => to === 'node1' && packet.type === 'seal';
    const without = await runWith({ seed: 11, nodes: honest(3) }, false, lost);
    expect(rejectedReasons(without.sim)).toEqual(['NOT_REVEALED']);
    const withIt = await runWith({ seed: 11, nodes: honest(3) }, true, lost);
    expect(rejectedReasons(withIt.sim)).toEqual([]);
    expect(verdictOf(withIt.sim)?.accepted).toHaveLength(3);
  });

  test('a commit the coordinator missed reaches it again before the seal: the seal counts it', async () => {
    const lost: Lost = (sim, to, packet) =>
      to === 'coordinator' && packet.type === 'commit' && packet.from === sim.actor('node0').key.nodeId;
    const without = await runWith({ seed: 13, nodes: honest(3) }, false, lost);
    // Two commits of a quorum of three: the request expires, as requests in flight did when their relay
    // was killed and started again.
    expect(without.sim.effects('coordinator', 'expired')).toEqual([
      { kind: 'expired', reason: 'quorum-not-met' },
    ]);
    const withIt = await runWith({ seed: 13, nodes: honest(3) }, true, lost);
    expect(verdictOf(withIt.sim)?.sealSize).toBe(3);
    expect(verdictOf(withIt.sim)?.accepted).toHaveLength(3);
  });

  test('a node that gave up on the verdict (expired no-verdict) still names its reveal; one expired otherwise, nothing', async () => {
    // node0 never hears the verdict: it expires no-verdict after the reveal window and its grace.
    const lost: Lost = (_sim, to, packet) => to === 'node0' && packet.type === 'verdict';
    const { sim } = await runWith({ seed: 19, nodes: honest(3) }, false, lost);
    const node0 = sim.actor('node0').machine.state;
    expect(node0.outcome).toMatchObject({ kind: 'expired', reason: 'no-verdict' });
    expect(unanswered(node0).map((o) => o.packetType)).toEqual(['reveal']);
    const own = sim.actor('node0').published.find((p) => p.type === 'reveal');
    expect(unanswered(node0)[0]?.id).toBe(own ? packetId(own) : 'none');
    // A node whose request was never sealed (not-sealed) has nothing to offer.
    const noSeal: Lost = (_sim, to, packet) => to === 'node1' && packet.type === 'seal';
    const other = await runWith({ seed: 23, nodes: honest(3) }, false, noSeal);
    const node1 = other.sim.actor('node1').machine.state;
    expect(node1.outcome).toMatchObject({ kind: 'expired', reason: 'not-sealed' });
    expect(unanswered(node1)).toEqual([]);
  });

  test('a withholder keeps the seal unanswered until the reveal window closes, then nothing is', async () => {
    const { sim, seen } = await runWith({ seed: 17, nodes: [{}, {}, { withhold: true }] }, true);
    expect(seen.get('coordinator')).toEqual(['request', 'seal', 'verdict', '-']);
    expect(rejectedReasons(sim)).toEqual(['NOT_REVEALED']);
  });
});
