import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { lengthPrefixed, toHex, utf8 } from '../encoding/bytes.ts';
import { taggedHash } from '../encoding/hash.ts';
import { isSynodError } from '../errors.ts';
import { eligibilityPredicate, eligibilityScore, isEligible } from './eligibility.ts';

const nodeId = (i: number) => toHex(taggedHash('test-node', utf8(String(i))));
const REQ = 'ab'.repeat(32);

describe('eligibilityScore', () => {
  test('is the tagged sha256 of the length-prefixed request id and node id bytes', () => {
    const id = nodeId(1);
    const bytes = Uint8Array.from(id.match(/../g)!.map((h) => Number.parseInt(h, 16)));
    expect(eligibilityScore(REQ, id)).toBe(
      toHex(taggedHash('eligibility', lengthPrefixed(utf8(REQ)), lengthPrefixed(bytes))),
    );
    expect(eligibilityScore(REQ, id)).toMatch(/^[0-9a-f]{64}$/);
  });

  test('depends on both the request and the node', () => {
    expect(eligibilityScore(REQ, nodeId(1))).not.toBe(eligibilityScore(REQ, nodeId(2)));
    expect(eligibilityScore(REQ, nodeId(1))).not.toBe(eligibilityScore('cd'.repeat(32), nodeId(1)));
  });
});

describe('isEligible', () => {
  test('exactly `slots` of the candidates are eligible, the lowest scores', () => {
    const candidates = Array.from({ length: 10 }, (_, i) => nodeId(i));
    const eligible = candidates.filter((c) => isEligible(REQ, c, candidates, 3));
    expect(eligible).toHaveLength(3);
    const ranked = [...candidates].sort((a, b) =>
      eligibilityScore(REQ, a) < eligibilityScore(REQ, b) ? -1 : 1,
    );
    expect(new Set(eligible)).toEqual(new Set(ranked.slice(0, 3)));
  });

  test('the node itself counts as a candidate; duplicates count once', () => {
    const others = [nodeId(1), nodeId(2)];
    expect(isEligible(REQ, nodeId(3), others, 3)).toBe(true);
    expect(isEligible(REQ, nodeId(1), [...others, nodeId(1), nodeId(1)], 2)).toBe(
      isEligible(REQ, nodeId(1), others, 2),
    );
  });

  test('does not depend on the order of the candidates', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer(),
        (n, slots, seed) => {
          const candidates = Array.from({ length: n }, (_, i) => nodeId(i));
          const shuffled = [...candidates].sort((a, b) =>
            eligibilityScore(String(seed), a) < eligibilityScore(String(seed), b) ? -1 : 1,
          );
          const before = candidates.map((c) => isEligible(REQ, c, candidates, slots));
          const after = candidates.map((c) => isEligible(REQ, c, shuffled, slots));
          expect(after).toEqual(before);
          expect(before.filter(Boolean)).toHaveLength(Math.min(n, slots));
        },
      ),
    );
  });

  test('a bad slot count is a caller bug', () => {
    for (const slots of [0, -1, 1.5, Number.NaN]) {
      try {
        isEligible(REQ, nodeId(1), [], slots);
        throw new Error('expected a throw');
      } catch (e) {
        expect(isSynodError(e, 'LIFECYCLE_INVALID_EVENT')).toBe(true);
      }
    }
  });
});

describe('eligibilityPredicate', () => {
  test('agrees with isEligible and never admits a node outside the set', () => {
    const candidates = Array.from({ length: 8 }, (_, i) => nodeId(i));
    const pred = eligibilityPredicate(candidates, 3);
    for (const c of candidates) expect(pred(REQ, c)).toBe(isEligible(REQ, c, candidates, 3));
    expect(pred(REQ, nodeId(99))).toBe(false);
  });
});
