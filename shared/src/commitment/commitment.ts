import { fromHex, lengthPrefixed, toHex, utf8 } from '../encoding/bytes.ts';
import { sha256, taggedHash } from '../encoding/hash.ts';
import { SynodError } from '../errors.ts';
import type { ModelRef } from '../packets/schemas.ts';

/**
 * commitment = sha256(
 *   "synod/v1/commitment" ‖ 0x00 ‖
 *   lp(utf8(requestId)) ‖ lp(nodeId: 32 bytes) ‖ lp(utf8(model.id)) ‖ lp(model.fileHash: 32 bytes) ‖
 *   lp(sha256(utf8(output))) ‖ lp(bEmbedding: packed bits) ‖ lp(salt: 32 bytes))
 * where lp(x) = 4-byte big-endian length ‖ x. Hex on the wire.
 *
 * Binding the request, node and model stops a commit being copied or replayed into another request or
 * under another identity; the 32-byte salt stops anyone testing guesses of a short output against it.
 */
export interface CommitmentInput {
  requestId: string;
  nodeId: string;
  model: ModelRef;
  output: string;
  /** Packed sign bits, lowercase hex. */
  bEmbedding: string;
  /** 32 random bytes, lowercase hex. */
  salt: string;
}

export function outputDigest(output: string): string {
  return toHex(sha256(utf8(output)));
}

export function computeCommitment(input: CommitmentInput): string {
  return toHex(
    taggedHash(
      'commitment',
      lengthPrefixed(utf8(input.requestId)),
      lengthPrefixed(fromHex(input.nodeId, 32)),
      lengthPrefixed(utf8(input.model.id)),
      lengthPrefixed(fromHex(input.model.fileHash, 32)),
      lengthPrefixed(sha256(utf8(input.output))),
      lengthPrefixed(fromHex(input.bEmbedding)),
      lengthPrefixed(fromHex(input.salt, 32)),
    ),
  );
}

export type CommitmentCheck =
  | { ok: true }
  | { ok: false; reason: 'COMMITMENT_MISMATCH'; expected: string; actual: string };

/** Does a reveal reproduce the commitment it was sealed under? */
export function checkCommitment(commitment: string, input: CommitmentInput): CommitmentCheck {
  let actual: string;
  try {
    actual = computeCommitment(input);
  } catch {
    return { ok: false, reason: 'COMMITMENT_MISMATCH', expected: commitment, actual: '' };
  }
  return actual === commitment
    ? { ok: true }
    : { ok: false, reason: 'COMMITMENT_MISMATCH', expected: commitment, actual };
}

export function assertCommitment(commitment: string, input: CommitmentInput): void {
  const r = checkCommitment(commitment, input);
  if (!r.ok) {
    throw new SynodError('COMMITMENT_MISMATCH', 'the reveal does not reproduce its commitment', {
      details: { expected: r.expected, actual: r.actual, requestId: input.requestId, nodeId: input.nodeId },
    });
  }
}
