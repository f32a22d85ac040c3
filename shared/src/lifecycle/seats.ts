import type { RequestBody } from '../packets/schemas.ts';
import { eligibilityScore } from './eligibility.ts';

/**
 * Node keys cost nothing to make, so a coordinator that seals whoever commits first can be given a whole
 * quorum of one party's keys, which then agree on whatever that party likes. A seat policy caps the seats
 * of nodes without a record: at most `requiredAgreement(frame, seal size) - 1` of a seal's members may be
 * nodes `isProven` does not vouch for, so they never hold enough seats to accept a verdict among
 * themselves; an accepted verdict needs at least one proven node's agreement. It applies to a request
 * when `applies(request)` says so as the request starts (for instance: while at least `quorum` proven
 * nodes that can serve it are online; with fewer, as when a network starts, it could not be sealed under
 * it). Decided once per request and kept in its state (`unprovenSeats`), so a restart resumes it
 * unchanged.
 *
 * Who takes those few seats is not first come, first served: a commit costs nothing to send at once (it
 * is blind), so a party's keys would always be first, and an honest newcomer, which must run the model
 * before it can commit, would never be seated and so never earn a record. A commit from a node without a
 * record that finds those seats taken displaces the seated one that ranks last if it ranks before it
 * (`ranksBefore`): a higher `standing` first (how far a node has come toward a record by work others
 * vouched for, less what it spoiled), then the lower lot drawn for the request (`seatLot`).
 *
 * What the lot does not stop: keys cost nothing, so a party that makes G of them (even after seeing the
 * request) and commits with the one whose lot is lowest wins the seat G times in G + 1 against a newcomer
 * with no standing; and a newcomer that commits after the proven nodes filled the seal is too late
 * whatever its lot. The lot only ends the fastest key's certainty; a newcomer's way in under such a party
 * is the first agreement it is vouched for (it then ranks before every key without one), or the
 * operator's trust (`--trusted-nodes`), or the requests the cap does not cover.
 */
export interface SeatPolicy {
  /** Whether a node has a record of honest work (the relay: its reputation from verdicts). */
  isProven(nodeId: string): boolean;
  /** Whether the cap applies to this request, decided as it starts. */
  applies(request: RequestBody): boolean;
  /**
   * How far a node without a record has come toward one, 0 when not at all (absent: 0 for every node).
   * The relay: agreements vouched for by a proven node, less its disagreements, withheld reveals and
   * invalid packets.
   */
  standing?(nodeId: string): number;
}

/**
 * The lot a node draws for a seat in a request: its eligibility score (`eligibilityScore`, the tagged
 * hash of the request and node ids); the lower wins. It changes with every request, so no one key wins
 * them all; many keys together win most (see `SeatPolicy`).
 */
export function seatLot(requestId: string, nodeId: string): string {
  return eligibilityScore(requestId, nodeId);
}

/** Whether node `a` ranks before node `b` for a seat of a node without a record in `requestId`. */
export function ranksBefore(policy: SeatPolicy, requestId: string, a: string, b: string): boolean {
  const standingA = policy.standing?.(a) ?? 0;
  const standingB = policy.standing?.(b) ?? 0;
  if (standingA !== standingB) return standingA > standingB;
  return seatLot(requestId, a) < seatLot(requestId, b);
}

/** Of `nodeIds` (not empty), the one that ranks last. */
export function rankedLast(policy: SeatPolicy, requestId: string, nodeIds: readonly string[]): string {
  let last = nodeIds[0] as string;
  for (const id of nodeIds.slice(1)) if (ranksBefore(policy, requestId, last, id)) last = id;
  return last;
}
