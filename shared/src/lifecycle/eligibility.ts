import { compareStrings, fromHex, lengthPrefixed, toHex, utf8 } from '../encoding/bytes.ts';
import { taggedHash } from '../encoding/hash.ts';
import { SynodError } from '../errors.ts';

/**
 * Eligibility (pick-up sortition): which nodes may work on a request.
 *
 *   score(requestId, nodeId) = sha256("synod/v1/eligibility" ‖ 0x00 ‖ lp(utf8(requestId)) ‖ lp(nodeId: 32 bytes))
 *
 * as 64 lowercase hex digits (lp = 4-byte big-endian length prefix, as in the commitment). Lowercase hex of
 * a fixed length compares as the bytes do, so scores are compared as strings: never `parseInt` of a long
 * hex string. A node is eligible for a request when its score is among the `slots` smallest scores of the
 * candidate set (the node itself always counts as a candidate); ties, which need a sha256 collision, go
 * to the smaller node id. Every node that knows the same candidate set (e.g. from signed heartbeats)
 * computes the same answer, the requester cannot pick the nodes, and a node cannot raise its own rank
 * without grinding keys, which a per-request score makes useless across requests.
 *
 * v1 is unweighted; weighting by reputation or stake can later divide the score by the weight.
 */
export function eligibilityScore(requestId: string, nodeId: string): string {
  return toHex(
    taggedHash('eligibility', lengthPrefixed(utf8(requestId)), lengthPrefixed(fromHex(nodeId, 32))),
  );
}

/**
 * Is `nodeId` among the `slots` lowest-scoring of `candidates ∪ {nodeId}` for `requestId`?
 * Duplicates in `candidates` count once. Throws `LIFECYCLE_INVALID_EVENT` for a non-positive or
 * fractional `slots` (a caller bug, not network input).
 */
export function isEligible(
  requestId: string,
  nodeId: string,
  candidates: readonly string[],
  slots: number,
): boolean {
  return rankedCandidates(requestId, [...candidates, nodeId], slots).has(nodeId);
}

/**
 * An eligibility predicate over a fixed candidate set, for a machine's config: the ranking of each
 * request is computed once and remembered (the predicate is pure; the memo is only a cache). A node
 * outside `candidates` is never eligible.
 */
export function eligibilityPredicate(
  candidates: readonly string[],
  slots: number,
): (requestId: string, nodeId: string) => boolean {
  checkSlots(slots);
  const memo = new Map<string, Set<string>>();
  return (requestId, nodeId) => {
    let chosen = memo.get(requestId);
    if (chosen === undefined) {
      chosen = rankedCandidates(requestId, candidates, slots);
      if (memo.size >= 1024) memo.clear();
      memo.set(requestId, chosen);
    }
    return chosen.has(nodeId);
  };
}

function rankedCandidates(requestId: string, candidates: readonly string[], slots: number): Set<string> {
  checkSlots(slots);
  const scored = [...new Set(candidates)].map((id) => ({ id, score: eligibilityScore(requestId, id) }));
  scored.sort((a, b) => compareStrings(a.score, b.score) || compareStrings(a.id, b.id));
  return new Set(scored.slice(0, slots).map((s) => s.id));
}

function checkSlots(slots: number): void {
  if (!Number.isInteger(slots) || slots < 1) {
    throw new SynodError(
      'LIFECYCLE_INVALID_EVENT',
      `eligibility slots must be a positive integer, got ${slots}`,
      {
        hint: 'pass how many nodes may work on one request, e.g. frame.maxCommits',
      },
    );
  }
}
