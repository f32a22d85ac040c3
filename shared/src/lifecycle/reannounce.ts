import type { AnyPacket } from '../packets/schemas.ts';
import type { CoordinatorState } from './coordinator.ts';
import type { NodeState } from './node.ts';
import type { LifecycleState } from './status.ts';
import type { Outgoing } from './types.ts';

/**
 * What a machine published and is still waiting for someone to act on, to be published again when it may
 * not have been heard: a peer that was away (a relay killed and started again, a node that lost its
 * connection) never gets what was published while it was gone, gossip does not send a message twice,
 * and no machine publishes anything twice by itself. Pure; the driver decides when (`SynodNode`'s
 * re-announcing), signs each again (the same body: the same id and, Ed25519 being deterministic, the same
 * bytes) and publishes it. A receiver that holds it already drops it as a duplicate.
 *
 * - coordinator collecting commits: its request (a node that was away takes it up);
 * - coordinator sealed, a member's reveal not held yet: its seal (a member that missed it never reveals);
 * - coordinator with its verdict out, collecting attestations: its verdict;
 * - node committed, no seal held: its commit (a coordinator that missed it seals without it);
 * - node revealed, no verdict held: its reveal (a coordinator that missed it counts it NOT_REVEALED),
 *   even once the node gave up waiting for the verdict (expired `no-verdict`): a coordinator down for
 *   longer than the reveal window and the node's grace judges its reveals when it is back, and would
 *   count an honest member that revealed on time as withholding.
 *
 * Nothing for another finished machine, a follower, or a publish not fed back signed yet (the outbox: a
 * restored machine publishes those itself).
 */
export function unanswered(state: LifecycleState): Outgoing[] {
  if (state.role === 'node' && state.outcome?.kind === 'expired' && state.outcome.reason === 'no-verdict') {
    return nodeUnanswered(state);
  }
  if (state.outcome !== null) return [];
  if (state.role === 'coordinator') return coordinatorUnanswered(state);
  if (state.role === 'node') return nodeUnanswered(state);
  return [];
}

function coordinatorUnanswered(s: CoordinatorState): Outgoing[] {
  const request = s.request.packet;
  if (s.phase === 'collecting' && request !== null && s.seal === null) {
    return [{ packetType: 'request', body: request.body, id: s.request.id }];
  }
  if (s.phase === 'sealed' && s.seal?.packet) {
    const revealed = new Set(s.reveals.map((r) => r.packet.from));
    if (s.seal.body.members.some((m) => !revealed.has(m.nodeId))) {
      return [{ packetType: 'seal', body: s.seal.packet.body, id: s.seal.id }];
    }
    return [];
  }
  if (s.phase === 'verdict' && s.verdict !== null) {
    return [{ packetType: 'verdict', body: s.verdict.body, id: s.verdict.id }];
  }
  return [];
}

function nodeUnanswered(s: NodeState): Outgoing[] {
  if (s.work.phase === 'committed' && s.seal === null) {
    const own = s.commits.find((c) => c.packet.from === s.self);
    return own ? [{ packetType: 'commit', body: own.packet.body, id: own.id }] : [];
  }
  if (s.work.phase === 'revealed' && s.verdict === null) {
    const own = s.reveals.find((r) => r.packet.from === s.self);
    return own ? [{ packetType: 'reveal', body: own.packet.body, id: own.id }] : [];
  }
  return [];
}

/**
 * How long after a coordinator's seal (or verdict) a commit (or reveal) that arrives is taken as one from
 * a node that missed it, rather than one that crossed it on the way: gossip delivers within a second.
 */
export const LATE_PACKET_AFTER_MS = 2_000;

/**
 * One packet of a late answer, in order: one of the coordinator's own, to be signed again (the same
 * bytes), or a member's commit or reveal it holds, to be forwarded as it came (signed by that member).
 */
export type LateAnswerPacket = { kind: 'again'; outgoing: Outgoing } | { kind: 'forward'; packet: AnyPacket };

/**
 * What a coordinator publishes in answer to `packet`, a packet of another node's that shows it missed the
 * seal or the verdict, so that node learns now how its request ended instead of waiting for its deadline:
 * a node started again after the request was sealed without it (it infers again, commits, and would wait
 * until `not-sealed`), or one whose connection dropped while the seal went out (its commit, re-announced,
 * is the only sign of it). What it missed then, it missed all of: the answer holds what it needs to
 * check the verdict itself (the other members' commits and the reveals held, as they came).
 *
 * - a commit, once sealed for `LATE_PACKET_AFTER_MS` (or finished): the seal, the other members'
 *   commits and reveals, then the verdict if out;
 * - a reveal, once the verdict is out for `LATE_PACKET_AFTER_MS` (or finished): the other members'
 *   commits and reveals, then the verdict;
 * - either from a key the seal does not list (a node sealed without it, or any key at all: a commit is
 *   free to make under a fresh one): only what tells it that, the seal, then the verdict if out. Its
 *   answer forwards nothing of the members', so such keys cannot make every late packet a broadcast of
 *   their texts (`SynodNode` also answers them from a budget of their own).
 *
 * Nothing for any other role, packet or request, for the coordinator's own packets, or for what it has
 * not published signed. Pure; the driver bounds how often it answers (`SynodNode`) and publishes it.
 */
export function lateAnswer(state: LifecycleState, packet: AnyPacket, now: number): LateAnswerPacket[] {
  if (state.role !== 'coordinator' || packet.from === state.self) return [];
  if (packet.type !== 'commit' && packet.type !== 'reveal') return [];
  if (packet.body.requestId !== state.requestId) return [];
  const { seal, verdict } = state;
  if (seal?.packet == null) return [];
  const finished = state.outcome !== null;
  const members = new Set(seal.body.members.map((m) => m.nodeId));
  const member = members.has(packet.from);
  const others = (r: { packet: AnyPacket }) => members.has(r.packet.from) && r.packet.from !== packet.from;
  const held: LateAnswerPacket[] = member
    ? [...state.commits.filter(others), ...state.reveals.filter(others)].map((r) => ({
        kind: 'forward',
        packet: r.packet,
      }))
    : [];
  const sealOut: LateAnswerPacket = {
    kind: 'again',
    outgoing: { packetType: 'seal', body: seal.packet.body, id: seal.id },
  };
  const verdictOut: LateAnswerPacket[] =
    verdict === null
      ? []
      : [{ kind: 'again', outgoing: { packetType: 'verdict', body: verdict.body, id: verdict.id } }];
  if (packet.type === 'commit') {
    if (!finished && now - seal.body.createdAt < LATE_PACKET_AFTER_MS) return [];
    return [sealOut, ...held, ...verdictOut];
  }
  if (verdict === null) return [];
  if (!finished && now - verdict.body.createdAt < LATE_PACKET_AFTER_MS) return [];
  return member ? [...held, ...verdictOut] : [sealOut, ...verdictOut];
}
