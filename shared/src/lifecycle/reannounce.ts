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
