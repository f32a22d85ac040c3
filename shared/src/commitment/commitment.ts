import { decodeHexInto, fromHex, toHex, utf8 } from '../encoding/bytes.ts';
import { domainTag, sha256 } from '../encoding/hash.ts';
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

const COMMITMENT_TAG = domainTag('commitment');

/**
 * The formula above, written into one buffer: each field is encoded (or hex-decoded) straight into
 * place, with no per-field length-prefixed copies and no concatenation. The bytes hashed are exactly
 * taggedHash('commitment', lp(...), ...); fields are checked in formula order and a bad hex field throws
 * the error fromHex throws for it.
 */
export function computeCommitment(input: CommitmentInput): string {
  const requestId = utf8(input.requestId);
  const modelId = utf8(input.model.id);
  const bEmbedding = input.bEmbedding;
  const embeddingBytes = typeof bEmbedding === 'string' ? bEmbedding.length >>> 1 : 0;
  const tag = COMMITMENT_TAG;
  const buf = new Uint8Array(
    tag.length + 7 * 4 + requestId.length + 32 + modelId.length + 32 + 32 + embeddingBytes + 32,
  );
  buf.set(tag);
  let at = tag.length;
  const prefix = (length: number): void => {
    buf[at] = length >>> 24;
    buf[at + 1] = (length >>> 16) & 0xff;
    buf[at + 2] = (length >>> 8) & 0xff;
    buf[at + 3] = length & 0xff;
    at += 4;
  };
  const bytes = (b: Uint8Array): void => {
    prefix(b.length);
    buf.set(b, at);
    at += b.length;
  };
  const hex = (h: string, length: number, expectedBytes?: number): void => {
    prefix(length);
    const fits = typeof h === 'string' && (expectedBytes === undefined || h.length === 2 * expectedBytes);
    if (!fits || !decodeHexInto(h, buf, at)) {
      fromHex(h, expectedBytes); // throws the HEX_INVALID the field-by-field form throws
      throw new SynodError('HEX_INVALID', 'a hex field of the commitment is malformed');
    }
    at += length;
  };
  bytes(requestId);
  hex(input.nodeId, 32, 32);
  bytes(modelId);
  hex(input.model.fileHash, 32, 32);
  bytes(sha256(utf8(input.output)));
  hex(bEmbedding, embeddingBytes);
  hex(input.salt, 32, 32);
  return toHex(sha256(buf));
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
