import type { RejectReason, Verdict } from '../packets/schemas.ts';
import type { ReputationRow, VerdictEntryRow } from './schema.ts';

/** The counters a reputation score is computed from. */
export type ReputationCounters = Pick<ReputationRow, 'agreements' | 'disagreements' | 'withheld' | 'invalid'>;

/** z of the Wilson bound: 1.96, a two-sided 95% interval. */
export const REPUTATION_Z = 1.96;

/**
 * A node's reputation score in [0, 1]: the lower bound of the Wilson score interval for the share of
 * its outcomes that were agreements,
 *
 *   n = agreements + disagreements + withheld + invalid,  p = agreements / n,
 *   score = (p + z²/2n − z·√(p(1 − p)/n + z²/4n²)) / (1 + z²/n),
 *
 * and 0 for a node with no outcomes yet. Every failure (a disagreement, a withheld reveal, an invalid
 * packet) counts against equally. Unlike the raw ratio, the bound grows with evidence: 1 agreement of 1
 * scores about 0.21, 100 of 100 about 0.96, so a fresh identity cannot outrank a long honest record. It
 * is 0 with no agreements and below 1 always. Only +, −, ×, ÷ and √ are used, each correctly rounded
 * in IEEE 754, so every runtime computes the same bits.
 */
export function reputationScore(r: ReputationCounters, z: number = REPUTATION_Z): number {
  for (const key of ['agreements', 'disagreements', 'withheld', 'invalid'] as const) {
    const value = r[key];
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`reputation ${key} must be a non-negative integer, got ${value}`);
    }
  }
  if (!(Number.isFinite(z) && z > 0)) throw new RangeError(`z must be a positive number, got ${z}`);
  const n = r.agreements + r.disagreements + r.withheld + r.invalid;
  // No agreements: exactly 0 (the formula's two terms cancel only up to rounding, e.g. 1e-19).
  if (n === 0 || r.agreements === 0) return 0;
  const p = r.agreements / n;
  const z2 = z * z;
  const centre = p + z2 / (2 * n);
  const margin = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  const score = (centre - margin) / (1 + z2 / n);
  // Mathematically in [0, 1); clamp away rounding at the edges (and -0).
  return score <= 0 ? 0 : Math.min(score, 1);
}

/** Which reputation counter a rejected verdict entry increments. */
export const REJECTION_COUNTER = {
  OUTSIDE_CLUSTER: 'disagreements',
  NOT_REVEALED: 'withheld',
  REVEAL_LATE: 'withheld',
  NOT_SEALED: 'invalid',
  COMMITMENT_MISMATCH: 'invalid',
  MODEL_NOT_ACCEPTED: 'invalid',
  EMBEDDING_LENGTH: 'invalid',
  EMBEDDING_DISAGREES: 'invalid',
  DUPLICATE_REVEAL: 'invalid',
} as const satisfies Record<RejectReason, Exclude<keyof ReputationCounters, 'agreements'>>;

export interface ReputationDelta extends ReputationCounters {
  nodeId: string;
}

/**
 * What one verdict adds to each node's counters: +1 agreement per accepted entry, and +1 to the
 * counter `REJECTION_COUNTER` names per rejected entry, except `OUTSIDE_CLUSTER` under `no-consensus`:
 * there every valid reveal is listed so, those that agree with each other too, since no cluster was
 * accepted to disagree with (docs/protocol.md, Consensus, step 4: no fault of the node), and it counts
 * nothing. A node named by the verdict has an entry here even when all its counts are 0. Sorted by nodeId,
 * so writers touch rows in one order.
 */
export function reputationDeltas(
  entries: readonly Pick<VerdictEntryRow, 'nodeId' | 'outcome' | 'reason'>[],
  status: Verdict['status'],
): ReputationDelta[] {
  const byNode = new Map<string, ReputationDelta>();
  for (const e of entries) {
    let d = byNode.get(e.nodeId);
    if (d === undefined) {
      d = { nodeId: e.nodeId, agreements: 0, disagreements: 0, withheld: 0, invalid: 0 };
      byNode.set(e.nodeId, d);
    }
    if (e.outcome === 'accepted') {
      d.agreements++;
    } else {
      if (e.reason === null) throw new RangeError(`rejected entry of ${e.nodeId} has no reason`);
      if (e.reason === 'OUTSIDE_CLUSTER' && status === 'no-consensus') continue;
      d[REJECTION_COUNTER[e.reason]]++;
    }
  }
  return [...byNode.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
}
