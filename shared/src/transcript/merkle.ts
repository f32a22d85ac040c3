/**
 * Binary Merkle tree over packet envelopes, the shape of a transcript root.
 *
 * Hashes (all sha256 with the protocol's domain tags, see encoding/hash.ts):
 *   leaf(packet) = sha256("synod/v1/merkle-leaf" ‖ 0x00 ‖ JCS(whole envelope, sig included))
 *   node(l, r)   = sha256("synod/v1/merkle-node" ‖ 0x00 ‖ l ‖ r)          (l, r: 32 raw bytes each)
 * Leaves and inner nodes have different tags, so a leaf can never pose as an inner node (second
 * preimage by tree-shape confusion).
 *
 * Shape: built level by level from the leaves; at each level nodes are paired left to right, and a
 * last, unpaired node is promoted unchanged to the next level. It is never paired with a copy of itself,
 * so the leaf lists [a, b, c] and [a, b, c, c] have different roots (the Bitcoin CVE-2012-2459
 * ambiguity cannot arise). This is the same tree shape as RFC 6962's Merkle Tree Hash (split at the
 * largest power of two below n). A tree of one leaf has that leaf hash as its root. A tree of no
 * leaves has no root: `merkleRoot([])` throws.
 *
 * Inclusion proof `{ index, leafCount, siblings }`: `siblings` are the hex hashes met on the way from
 * the leaf to the root, bottom-up, one for every level where the node has a partner and none for a
 * level where it is promoted. Directions are not stored; they follow from (index, leafCount). At a level
 * of width n, with the node at position i:
 *   - i odd                 -> the next sibling is on the LEFT:  parent = node(sibling, current)
 *   - i even and i + 1 < n  -> the next sibling is on the RIGHT: parent = node(current, sibling)
 *   - i even and i + 1 = n  -> promoted, no sibling consumed:    parent = current
 * then i <- floor(i / 2), n <- ceil(n / 2), until n = 1. A proof verifies only if every sibling is
 * consumed exactly and the result equals the root.
 *
 * The root does not commit to the leaf count (as in RFC 6962, where the count travels beside the root).
 * A verifying proof shows that the leaf is in the tree; its (index, leafCount) claim is meaningful
 * relative to a leaf count the verifier trusts. Leaves are hex, as on the wire.
 */
import { fromHex, toHex } from '../encoding/bytes.ts';
import { canonicalBytes } from '../encoding/canonical.ts';
import { taggedHash } from '../encoding/hash.ts';
import { SynodError } from '../errors.ts';
import type { AnyPacket } from '../packets/schemas.ts';

export interface InclusionProof {
  /** Position of the leaf, 0-based. */
  index: number;
  /** Number of leaves in the tree the proof was made for. */
  leafCount: number;
  /** Sibling hashes, bottom-up, hex; see the file header for the direction rule. */
  siblings: string[];
}

/** Leaf hash of arbitrary bytes (hex). */
export function merkleLeafHash(bytes: Uint8Array): string {
  return toHex(taggedHash('merkle-leaf', bytes));
}

/** Leaf hash of a packet: over the canonical encoding of the whole envelope, signature included. */
export function merkleLeaf(packet: AnyPacket): string {
  return merkleLeafHash(canonicalBytes(packet));
}

/** Inner node hash of two child hashes (hex). */
export function merkleNode(left: string, right: string): string {
  return toHex(taggedHash('merkle-node', fromHex(left, 32), fromHex(right, 32)));
}

function nodeBytes(left: Uint8Array, right: Uint8Array): Uint8Array {
  return taggedHash('merkle-node', left, right);
}

function leafBytes(leaves: readonly string[]): Uint8Array[] {
  if (leaves.length === 0) {
    throw new SynodError('TRANSCRIPT_INVALID', 'a Merkle tree needs at least one leaf', {
      hint: 'a transcript always holds at least its request packet',
    });
  }
  return leaves.map((leaf) => fromHex(leaf, 32));
}

function nextLevel(level: Uint8Array[]): Uint8Array[] {
  const next: Uint8Array[] = [];
  for (let i = 0; i < level.length; i += 2) {
    const left = level[i] as Uint8Array;
    const right = level[i + 1];
    next.push(right === undefined ? left : nodeBytes(left, right));
  }
  return next;
}

/** Root (hex) of the tree over `leaves` (hex leaf hashes, in order). Throws on an empty list. */
export function merkleRoot(leaves: readonly string[]): string {
  let level = leafBytes(leaves);
  while (level.length > 1) level = nextLevel(level);
  return toHex(level[0] as Uint8Array);
}

/** Inclusion proof for the leaf at `index`. Throws `MERKLE_PROOF_INVALID` when the index is out of range. */
export function inclusionProof(leaves: readonly string[], index: number): InclusionProof {
  let level = leafBytes(leaves);
  if (!Number.isInteger(index) || index < 0 || index >= level.length) {
    throw new SynodError('MERKLE_PROOF_INVALID', `leaf index ${index} is outside a tree of ${level.length}`, {
      details: { index, leafCount: level.length },
    });
  }
  const siblings: string[] = [];
  let i = index;
  while (level.length > 1) {
    const partner = i % 2 === 1 ? i - 1 : i + 1;
    const sibling = level[partner];
    if (sibling !== undefined) siblings.push(toHex(sibling));
    level = nextLevel(level);
    i = Math.floor(i / 2);
  }
  return { index, leafCount: leaves.length, siblings };
}

const HASH_RE = /^[0-9a-f]{64}$/;

/**
 * The root a proof leads to from `leafHash`, or `undefined` when the proof is malformed (bad index or
 * count, bad hex, too few or too many siblings). Never throws.
 */
export function rootFromProof(leafHash: string, proof: InclusionProof): string | undefined {
  if (typeof proof !== 'object' || proof === null) return undefined;
  const { index, leafCount, siblings } = proof;
  if (!Number.isSafeInteger(leafCount) || leafCount < 1) return undefined;
  if (!Number.isSafeInteger(index) || index < 0 || index >= leafCount) return undefined;
  if (!Array.isArray(siblings) || typeof leafHash !== 'string' || !HASH_RE.test(leafHash)) return undefined;
  if (!siblings.every((s) => typeof s === 'string' && HASH_RE.test(s))) return undefined;
  let current = fromHex(leafHash);
  let used = 0;
  let i = index;
  let n = leafCount;
  while (n > 1) {
    const hasPartner = i % 2 === 1 || i + 1 < n;
    if (hasPartner) {
      const hex = siblings[used++];
      if (hex === undefined) return undefined;
      const sibling = fromHex(hex);
      current = i % 2 === 1 ? nodeBytes(sibling, current) : nodeBytes(current, sibling);
    }
    i = Math.floor(i / 2);
    n = Math.ceil(n / 2);
  }
  return used === siblings.length ? toHex(current) : undefined;
}

/** Does `proof` show `leafHash` in the tree with this `root`? Never throws; malformed input is `false`. */
export function verifyInclusion(root: string, leafHash: string, proof: InclusionProof): boolean {
  return typeof root === 'string' && rootFromProof(leafHash, proof) === root;
}

/** As `verifyInclusion`, throwing `MERKLE_PROOF_INVALID` with the details when the proof fails. */
export function assertInclusion(root: string, leafHash: string, proof: InclusionProof): void {
  if (!verifyInclusion(root, leafHash, proof)) {
    throw new SynodError('MERKLE_PROOF_INVALID', 'the inclusion proof does not lead to the root', {
      details: {
        root,
        leafHash,
        computed: rootFromProof(leafHash, proof) ?? null,
        index: proof?.index,
        leafCount: proof?.leafCount,
      },
      hint: 'the proof must come from the same leaf list that produced the root',
    });
  }
}
