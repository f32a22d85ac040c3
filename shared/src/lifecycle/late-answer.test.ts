import { describe, expect, test } from 'bun:test';
import { packetId, signPacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet } from '../packets/schemas.ts';
import type { CoordinatorState } from './coordinator.ts';
import { LATE_PACKET_AFTER_MS, type LateAnswerPacket, lateAnswer, unanswered } from './reannounce.ts';
import { type Behaviour, type Sim, scenario, T0 } from './sim.test-helpers.ts';
import type { Outgoing } from './types.ts';

/** A quorum of 3 sealed at its third commit: node0, four times slower, commits after the seal. */
const FRAME = { quorum: 3, maxCommits: 3 };
const nodes: Behaviour[] = [{ inferenceMs: 4_000 }, {}, {}, {}];
/**
 * node0 hears nothing but the request until then (cut off, or stopped and started again while it
 * inferred): the seal and the verdict go out meanwhile.
 */
const BACK_AT = T0 + 3_500;
const cutOff = (to: string, packet: AnyPacket, at: number) =>
  to === 'node0' && packet.type !== 'request' && at < BACK_AT;

/**
 * Run the scenario in steps of 250 ms, every actor publishing again what it has unanswered (as
 * `SynodNode` does), and, when `answer` is on, the coordinator answering each packet it took since the
 * last step with `lateAnswer`. node0 is back after the request was judged and every member attested, so
 * nothing is unanswered any more: its only way to learn is an answer to its commit.
 */
async function run(answer: boolean) {
  const { sim } = await scenario({
    seed: 29,
    nodes,
    frame: FRAME,
    lost: cutOff,
  });
  const coordinator = sim.actor('coordinator');
  const answered: string[] = [];
  let read = 0;
  for (let at = T0; at <= T0 + 20_000; at += 250) {
    await sim.run(at);
    for (const actor of sim.actors.values()) {
      for (const o of unanswered(actor.machine.state)) await broadcast(sim, actor.name, o);
    }
    if (!answer) continue;
    const taken = coordinator.journal.slice(read);
    read = coordinator.journal.length;
    for (const entry of taken) {
      if (!('event' in entry) || entry.event.kind !== 'packet') continue;
      const { packet } = entry.event;
      const from = [...sim.actors.values()].find((a) => a.key.nodeId === packet.from)?.name;
      for (const a of lateAnswer(coordinator.machine.state, packet, sim.now)) {
        answered.push(`${named(sim, a)} to ${from}'s ${packet.type}`);
        if (a.kind === 'again') await broadcast(sim, 'coordinator', a.outgoing);
        else forward(sim, 'coordinator', a.packet);
      }
    }
  }
  await sim.run();
  return { sim, answered };
}

async function broadcast(sim: Sim, from: string, o: Outgoing) {
  const actor = sim.actor(from);
  forward(sim, from, (await signPacket(actor.key, o.packetType, o.body as never)) as AnyPacket);
}

function forward(sim: Sim, from: string, packet: AnyPacket) {
  for (const other of sim.actors.values()) {
    if (other.name !== from && !cutOff(other.name, packet, sim.now)) sim.deliverLater(other.name, packet);
  }
}

/**
 * The members' commits and reveals come in the order the coordinator took them (commits first): each
 * kind compared sorted by node.
 */
function heldSorted(xs: string[]): string[] {
  const rank = (x: string) => (x.includes("'s commit") ? 0 : x.includes("'s reveal") ? 1 : -1);
  const sorted = xs.filter((x) => rank(x) >= 0).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  let i = 0;
  return xs.map((x) => (rank(x) >= 0 ? (sorted[i++] as string) : x));
}

/** The other members' commits then reveals, for nodes `of`. */
const heldOf = (...of: number[]) => [
  ...of.map((n) => `node${n}'s commit`),
  ...of.map((n) => `node${n}'s reveal`),
];

/** `seal`, `verdict`, or `node2's reveal` / `node2's commit` (forwarded). */
function named(sim: Sim, a: LateAnswerPacket): string {
  if (a.kind === 'again') return a.outgoing.packetType;
  const by = [...sim.actors.values()].find((x) => x.key.nodeId === a.packet.from)?.name;
  return `${by}'s ${a.packet.type}`;
}

describe('lateAnswer: a coordinator answers a packet that shows its sender missed the seal', () => {
  test('a node that missed the seal and committed after it learns from the answer, not at its deadline', async () => {
    const without = await run(false);
    const late = without.sim.actor('node0').machine.state;
    expect(late.outcome).toMatchObject({ kind: 'expired', reason: 'not-sealed' });
    // It waited out the seal deadline (createdAt + maxTimeMs, and its grace).
    expect(late.outcome?.at).toBeGreaterThanOrEqual(T0 + 10_000);

    const withIt = await run(true);
    const node0 = withIt.sim.actor('node0').machine.state;
    // Not a sealed member: the seal (it was left out) and the verdict in answer to its commit, none of the
    // members' packets (any key may commit: a flood of them must not make each a broadcast of theirs).
    const toNode0 = withIt.answered.filter((a) => a.endsWith(" to node0's commit"));
    expect(toNode0.slice(0, 2).map((a) => a.replace(" to node0's commit", ''))).toEqual(['seal', 'verdict']);
    expect(toNode0.every((a) => a.startsWith('seal ') || a.startsWith('verdict '))).toBe(true);
    // It took the seal (left out) and the verdict by its digest (no transcript to recompute it from): it
    // ends a grace later, unverified, not at its seal deadline; it attests nothing.
    expect(node0.outcome).toMatchObject({ kind: 'done', reason: 'unverified' });
    expect(node0.outcome?.at).toBeLessThan(T0 + 10_000);
    expect(withIt.sim.actor('node0').published.map((p) => p.type)).toEqual(['commit']);
    expect(node0.role === 'node' && node0.work.phase).toBe('excluded');
    // The request ended the same way for everyone: three members accepted, node0 not in the seal.
    const verdict = withIt.sim.effects('coordinator', 'verdict')[0]?.verdict;
    expect(verdict?.accepted).toHaveLength(3);
    expect(verdict?.accepted.map((m) => m.nodeId)).not.toContain(withIt.sim.actor('node0').key.nodeId);
  });

  test('the rules: which packets are answered, with what, and when', async () => {
    const { sim } = await run(false);
    const finished = sim.actor('coordinator').machine.state as CoordinatorState;
    expect(finished.outcome).not.toBeNull();
    const seal = finished.seal?.packet?.body;
    const verdict = finished.verdict?.body;
    if (seal === undefined || verdict === undefined) throw new Error('the run sealed and judged');
    const published = (name: string, type: AnyPacket['type']) => {
      const p = sim.actor(name).published.find((q) => q.type === type);
      if (p === undefined) throw new Error(`${name} published no ${type}`);
      return p;
    };
    const lateCommit = published('node0', 'commit');
    const memberCommit = published('node1', 'commit');
    const reveal = published('node1', 'reveal');
    const attestation = published('node1', 'attestation');
    const kinds = (s: CoordinatorState, p: AnyPacket, now: number) =>
      heldSorted(lateAnswer(s, p, now).map((a) => named(sim, a)));

    const all = ['seal', ...heldOf(2, 3), 'verdict'];
    const toNonMember = ['seal', 'verdict'];
    // A reveal signed by a key the seal does not list (node0's).
    const nonMemberReveal = (await signPacket(
      sim.actor('node0').key,
      'reveal',
      (reveal as Packet<'reveal'>).body,
    )) as AnyPacket;
    // Finished: a member's commit gets the seal, the other members' commits and reveals and the verdict,
    // its reveal the same but the seal, whenever they come; never the sender's own packets back to it. A
    // key the seal does not list gets the seal and the verdict only, for a commit or a reveal.
    expect(kinds(finished, memberCommit, seal.createdAt)).toEqual(all);
    expect(kinds(finished, reveal, verdict.createdAt)).toEqual([...heldOf(2, 3), 'verdict']);
    expect(kinds(finished, lateCommit, seal.createdAt)).toEqual(toNonMember);
    expect(kinds(finished, nonMemberReveal, verdict.createdAt)).toEqual(toNonMember);
    // The coordinator's own are those first published (the same bytes, signed again); the members'
    // packets are forwarded as they came.
    const ids = lateAnswer(finished, memberCommit, 0).map((a) =>
      a.kind === 'again' ? a.outgoing.id : packetId(a.packet),
    );
    expect(ids[0]).toBe(finished.seal?.id as string);
    const others = ['node2', 'node3'];
    expect(ids.slice(1, 3).sort()).toEqual(others.map((n) => packetId(published(n, 'commit'))).sort());
    expect(ids.slice(3, 5).sort()).toEqual(others.map((n) => packetId(published(n, 'reveal'))).sort());
    expect(ids[5]).toBe(finished.verdict?.id as string);
    expect(
      lateAnswer(finished, lateCommit, 0).map((a) => (a.kind === 'again' ? a.outgoing.id : null)),
    ).toEqual([finished.seal?.id as string, finished.verdict?.id as string]);
    // Anything else is not a sign of a missed seal or verdict.
    expect(kinds(finished, attestation, verdict.createdAt + 10_000)).toEqual([]);
    expect(kinds(finished, published('coordinator', 'request'), verdict.createdAt + 10_000)).toEqual([]);
    // Its own packets (a loopback) and another request's are not answered.
    expect(kinds(finished, published('coordinator', 'seal'), verdict.createdAt + 10_000)).toEqual([]);
    const otherRequest = { ...lateCommit, body: { ...lateCommit.body, requestId: 'ab'.repeat(32) } };
    expect(kinds(finished, otherRequest as AnyPacket, verdict.createdAt + 10_000)).toEqual([]);

    // Still running, with its verdict out: a commit that crossed the seal on the way is not answered,
    // one LATE_PACKET_AFTER_MS after the seal is; a reveal likewise after the verdict.
    const open: CoordinatorState = { ...finished, outcome: null, phase: 'verdict' };
    expect(kinds(open, memberCommit, seal.createdAt + LATE_PACKET_AFTER_MS - 1)).toEqual([]);
    expect(kinds(open, memberCommit, seal.createdAt + LATE_PACKET_AFTER_MS)).toEqual(all);
    expect(kinds(open, lateCommit, seal.createdAt + LATE_PACKET_AFTER_MS - 1)).toEqual([]);
    expect(kinds(open, lateCommit, seal.createdAt + LATE_PACKET_AFTER_MS)).toEqual(toNonMember);
    expect(kinds(open, reveal, verdict.createdAt + LATE_PACKET_AFTER_MS - 1)).toEqual([]);
    expect(kinds(open, reveal, verdict.createdAt + LATE_PACKET_AFTER_MS)).toEqual([
      ...heldOf(2, 3),
      'verdict',
    ]);
    expect(kinds(open, nonMemberReveal, verdict.createdAt + LATE_PACKET_AFTER_MS - 1)).toEqual([]);
    expect(kinds(open, nonMemberReveal, verdict.createdAt + LATE_PACKET_AFTER_MS)).toEqual(toNonMember);
    // Sealed, no verdict yet: a member's late commit gets the seal, the others' commits and the reveals so
    // far, a non-member's the seal; a reveal nothing (reveals are being waited on).
    const sealed: CoordinatorState = {
      ...open,
      phase: 'sealed',
      verdict: null,
      reveals: open.reveals.filter((r) => r.packet.from !== memberCommit.from).slice(0, 1),
    };
    expect(kinds(sealed, memberCommit, seal.createdAt + 5_000)).toEqual([
      'seal',
      ...heldOf(2, 3).filter((x) => x.includes('commit')),
      named(sim, { kind: 'forward', packet: sealed.reveals[0]?.packet as AnyPacket }),
    ]);
    expect(kinds(sealed, lateCommit, seal.createdAt + 5_000)).toEqual(['seal']);
    expect(kinds(sealed, reveal, seal.createdAt + 5_000)).toEqual([]);
    expect(kinds(sealed, nonMemberReveal, seal.createdAt + 5_000)).toEqual([]);
    // Not sealed yet, or its seal not fed back signed: nothing.
    const collecting: CoordinatorState = { ...sealed, phase: 'collecting', seal: null };
    expect(kinds(collecting, lateCommit, seal.createdAt + 5_000)).toEqual([]);
    const unsigned: CoordinatorState = {
      ...sealed,
      seal: finished.seal === null ? null : { ...finished.seal, packet: null },
    };
    expect(kinds(unsigned, lateCommit, seal.createdAt + 5_000)).toEqual([]);
    // Another role answers nothing.
    expect(kinds(sim.actor('node1').machine.state as never, lateCommit, seal.createdAt + 5_000)).toEqual([]);
  });
});
