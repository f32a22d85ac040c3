import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { toHex, utf8 } from '../encoding/bytes.ts';
import { taggedHash } from '../encoding/hash.ts';
import { isSynodError } from '../errors.ts';
import {
  assertInclusion,
  type InclusionProof,
  inclusionProof,
  merkleLeafHash,
  merkleNode,
  merkleRoot,
  rootFromProof,
  verifyInclusion,
} from './merkle.ts';

const leaf = (label: string) => merkleLeafHash(utf8(label));
const leavesOf = (n: number) => Array.from({ length: n }, (_, i) => leaf(`leaf ${i}`));

/** Distinct leaf lists of 1..40 leaves (distinct so that "another leaf" is really another value). */
const leafLists = fc
  .uniqueArray(fc.string({ maxLength: 12 }), { minLength: 1, maxLength: 40 })
  .map((labels) => labels.map(leaf));

function flipFirstChar(hex: string): string {
  return (hex[0] === '0' ? '1' : '0') + hex.slice(1);
}

function expectCode(fn: () => unknown, code: Parameters<typeof isSynodError>[1]): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(isSynodError(thrown, code)).toBe(true);
}

describe('merkle hashes', () => {
  test('leaf and node use distinct domain tags', () => {
    const data = utf8('x');
    expect(merkleLeafHash(data)).toBe(toHex(taggedHash('merkle-leaf', data)));
    const a = leaf('a');
    const b = leaf('b');
    expect(merkleNode(a, b)).not.toBe(merkleLeafHash(utf8(a + b)));
    expect(merkleNode(a, b)).not.toBe(merkleNode(b, a));
  });

  test('shapes for 1..5 leaves: odd nodes are promoted, not duplicated', () => {
    const [a, b, c, d, e] = leavesOf(5) as [string, string, string, string, string];
    expect(merkleRoot([a])).toBe(a);
    expect(merkleRoot([a, b])).toBe(merkleNode(a, b));
    expect(merkleRoot([a, b, c])).toBe(merkleNode(merkleNode(a, b), c));
    expect(merkleRoot([a, b, c, d])).toBe(merkleNode(merkleNode(a, b), merkleNode(c, d)));
    expect(merkleRoot([a, b, c, d, e])).toBe(merkleNode(merkleNode(merkleNode(a, b), merkleNode(c, d)), e));
  });

  test('no CVE-2012-2459 ambiguity: a repeated last leaf changes the root', () => {
    const [a, b, c] = leavesOf(3) as [string, string, string];
    expect(merkleRoot([a, b, c])).not.toBe(merkleRoot([a, b, c, c]));
    expect(merkleRoot([a, b, c, c])).toBe(merkleNode(merkleNode(a, b), merkleNode(c, c)));
  });

  test('empty tree and bad leaves are errors', () => {
    expectCode(() => merkleRoot([]), 'TRANSCRIPT_INVALID');
    expectCode(() => merkleRoot(['abcd']), 'HEX_INVALID');
    expectCode(() => inclusionProof([], 0), 'TRANSCRIPT_INVALID');
  });
});

describe('inclusion proofs', () => {
  test('proof layout: siblings bottom-up, none on promoted levels', () => {
    const [a, b, c, d, e] = leavesOf(5) as [string, string, string, string, string];
    const ab = merkleNode(a, b);
    const cd = merkleNode(c, d);
    expect(inclusionProof([a, b, c, d, e], 2)).toEqual({ index: 2, leafCount: 5, siblings: [d, ab, e] });
    expect(inclusionProof([a, b, c, d, e], 4)).toEqual({
      index: 4,
      leafCount: 5,
      siblings: [merkleNode(ab, cd)],
    });
    expect(inclusionProof([a], 0)).toEqual({ index: 0, leafCount: 1, siblings: [] });
  });

  test('index out of range is MERKLE_PROOF_INVALID', () => {
    expectCode(() => inclusionProof(leavesOf(3), 3), 'MERKLE_PROOF_INVALID');
    expectCode(() => inclusionProof(leavesOf(3), -1), 'MERKLE_PROOF_INVALID');
    expectCode(() => inclusionProof(leavesOf(3), 0.5), 'MERKLE_PROOF_INVALID');
  });

  test('malformed proofs are false, never a throw', () => {
    const leaves = leavesOf(6);
    const root = merkleRoot(leaves);
    const good = inclusionProof(leaves, 3);
    const l = leaves[3] as string;
    expect(verifyInclusion(root, l, good)).toBe(true);
    const bad: InclusionProof[] = [
      { ...good, siblings: good.siblings.slice(1) },
      { ...good, siblings: [...good.siblings, l] },
      { ...good, siblings: good.siblings.map((s) => s.toUpperCase()) },
      { ...good, index: 6 },
      { ...good, index: -1 },
      { ...good, leafCount: 0 },
      { ...good, leafCount: Number.NaN },
      null as unknown as InclusionProof,
      { index: 3, leafCount: 6, siblings: 'x' } as unknown as InclusionProof,
    ];
    for (const p of bad) expect(verifyInclusion(root, l, p)).toBe(false);
    expect(verifyInclusion(root, 'zz', good)).toBe(false);
    expect(verifyInclusion(42 as unknown as string, l, good)).toBe(false);
  });

  test('assertInclusion throws MERKLE_PROOF_INVALID with the computed root', () => {
    const leaves = leavesOf(4);
    const root = merkleRoot(leaves);
    const proof = inclusionProof(leaves, 1);
    expect(() => assertInclusion(root, leaves[1] as string, proof)).not.toThrow();
    let thrown: unknown;
    try {
      assertInclusion(root, leaves[2] as string, proof);
    } catch (e) {
      thrown = e;
    }
    expect(isSynodError(thrown, 'MERKLE_PROOF_INVALID')).toBe(true);
    expect(isSynodError(thrown) && thrown.details['computed']).toBe(
      rootFromProof(leaves[2] as string, proof),
    );
  });
});

describe('merkle properties', () => {
  test("every leaf's proof verifies and has at most ceil(log2 n) siblings", () => {
    fc.assert(
      fc.property(leafLists, (leaves) => {
        const root = merkleRoot(leaves);
        const depth = Math.ceil(Math.log2(leaves.length));
        leaves.forEach((l, i) => {
          const proof = inclusionProof(leaves, i);
          expect(proof.siblings.length).toBeLessThanOrEqual(depth);
          expect(verifyInclusion(root, l, proof)).toBe(true);
        });
      }),
    );
  });

  test('same shape as the RFC 6962 Merkle Tree Hash (split at the largest power of two below n)', () => {
    const mth = (leaves: readonly string[]): string => {
      if (leaves.length === 1) return leaves[0] as string;
      let k = 1;
      while (k * 2 < leaves.length) k *= 2;
      return merkleNode(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
    };
    fc.assert(
      fc.property(leafLists, (leaves) => {
        expect(merkleRoot(leaves)).toBe(mth(leaves));
      }),
    );
  });

  test('a proof fails for a modified leaf', () => {
    fc.assert(
      fc.property(
        leafLists.chain((leaves) => fc.tuple(fc.constant(leaves), fc.nat({ max: leaves.length - 1 }))),
        ([leaves, i]) => {
          const root = merkleRoot(leaves);
          const proof = inclusionProof(leaves, i);
          expect(verifyInclusion(root, flipFirstChar(leaves[i] as string), proof)).toBe(false);
        },
      ),
    );
  });

  test('a proof fails at a wrong index, and for another leaf', () => {
    fc.assert(
      fc.property(
        leafLists
          .filter((leaves) => leaves.length >= 2)
          .chain((leaves) =>
            fc.tuple(
              fc.constant(leaves),
              fc.nat({ max: leaves.length - 1 }),
              fc.nat({ max: leaves.length - 1 }),
            ),
          )
          .filter(([, i, j]) => i !== j),
        ([leaves, i, j]) => {
          const root = merkleRoot(leaves);
          const proof = inclusionProof(leaves, i);
          expect(verifyInclusion(root, leaves[i] as string, { ...proof, index: j })).toBe(false);
          expect(verifyInclusion(root, leaves[j] as string, proof)).toBe(false);
        },
      ),
    );
  });

  test('a tampered sibling fails', () => {
    fc.assert(
      fc.property(
        leafLists
          .filter((leaves) => leaves.length >= 2)
          .chain((leaves) => fc.tuple(fc.constant(leaves), fc.nat({ max: leaves.length - 1 }))),
        ([leaves, i]) => {
          const root = merkleRoot(leaves);
          const proof = inclusionProof(leaves, i);
          for (let k = 0; k < proof.siblings.length; k++) {
            const siblings = proof.siblings.slice();
            siblings[k] = flipFirstChar(siblings[k] as string);
            expect(verifyInclusion(root, leaves[i] as string, { ...proof, siblings })).toBe(false);
          }
        },
      ),
    );
  });

  test('roots differ for different leaf lists', () => {
    fc.assert(
      fc.property(leafLists, leafLists, (a, b) => {
        fc.pre(a.join() !== b.join());
        expect(merkleRoot(a)).not.toBe(merkleRoot(b));
      }),
    );
  });

  test('roots differ after appending, dropping or swapping a leaf', () => {
    fc.assert(
      fc.property(leafLists, (leaves) => {
        const root = merkleRoot(leaves);
        expect(merkleRoot([...leaves, leaf('extra')])).not.toBe(root);
        expect(merkleRoot([...leaves, leaves[leaves.length - 1] as string])).not.toBe(root);
        if (leaves.length >= 2) {
          expect(merkleRoot(leaves.slice(0, -1))).not.toBe(root);
          const swapped = [leaves[1] as string, leaves[0] as string, ...leaves.slice(2)];
          expect(merkleRoot(swapped)).not.toBe(root);
        }
      }),
    );
  });
});
