import { checkCommitment } from '../commitment/commitment.ts';
import { tryFromHex } from '../encoding/bytes.ts';
import type { Packet, RejectReason, RequestBody, SealBody, SealMember } from '../packets/schemas.ts';

/** The reasons of step 2 of the verdict (verdict.ts) checked before any re-embedded bits, in its order. */
export type RejectedBeforeBits = Extract<
  RejectReason,
  'NOT_SEALED' | 'EMBEDDING_LENGTH' | 'MODEL_NOT_ACCEPTED' | 'COMMITMENT_MISMATCH' | 'REVEAL_LATE'
>;

/**
 * The reason `computeVerdict` rejects `reveal` (one of `request`'s, sealed by `seal`) for before it looks at
 * any re-embedded bits: its step 2 in its order (`NOT_SEALED`, `EMBEDDING_LENGTH`, `MODEL_NOT_ACCEPTED`,
 * `COMMITMENT_MISMATCH`, `REVEAL_LATE`), or null when the reveal passes them all and bits for its output
 * could make it `EMBEDDING_DISAGREES`. Whatever bits a verifier has for a reveal given a reason here, its
 * verdict is the same: a coordinator need not embed its text (verdict-reasons.property.test.ts holds the
 * two to the same answer).
 */
export function rejectedBeforeBits(
  request: RequestBody,
  seal: SealBody,
  reveal: Packet<'reveal'>,
): RejectedBeforeBits | null {
  const member = seal.members.find((m) => m.nodeId === reveal.from);
  if (member === undefined) return 'NOT_SEALED';
  return memberRevealFault(request, seal, member, reveal);
}

/**
 * Step 2 of the verdict for a reveal of a sealed `member`, before re-embedded bits: the first of
 * `EMBEDDING_LENGTH`, `MODEL_NOT_ACCEPTED`, `COMMITMENT_MISMATCH`, `REVEAL_LATE` it breaks, or null. The one
 * definition `computeVerdict`, observers (`selectReveals`) and coordinators (what to re-embed) share.
 */
export function memberRevealFault(
  request: RequestBody,
  seal: SealBody,
  member: SealMember,
  reveal: Packet<'reveal'>,
): Exclude<RejectedBeforeBits, 'NOT_SEALED'> | null {
  const body = reveal.body;
  const frame = request.frame;
  const bytes =
    typeof body.bEmbedding === 'string' ? tryFromHex(body.bEmbedding, frame.embeddingModel.bits / 8) : null;
  if (bytes === null) return 'EMBEDDING_LENGTH';
  if (!request.acceptedModels.includes(body.model?.id)) return 'MODEL_NOT_ACCEPTED';
  const opens = checkCommitment(member.commitment, {
    requestId: request.requestId,
    nodeId: reveal.from,
    model: body.model,
    output: body.output,
    bEmbedding: body.bEmbedding,
    salt: body.salt,
  });
  if (!opens.ok) return 'COMMITMENT_MISMATCH';
  if (!(body.createdAt <= seal.createdAt + frame.revealWindowMs)) return 'REVEAL_LATE';
  return null;
}
