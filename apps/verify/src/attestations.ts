/**
 * The nodes' attestations of a verdict (signed `attestation` packets, which a relay's
 * `GET /v1/verify/<id>` returns beside the transcript): each one's signature and request are checked
 * here, and what it attests is compared with the verdict derived from the transcript. They are not part
 * of the transcript; they show how many nodes independently reached the same digest. One that does not
 * verify was forged or altered by whoever served it.
 */
import { distinctSigned } from './signed-packets.ts';

export interface AttestationCheck {
  /** Distinct nodes whose attestation verifies. */
  nodes: number;
  /** Of those, the ones attesting the derived verdict digest and transcript root. */
  agree: number;
  /** Attestations that do not verify, or do not belong here, with why. */
  invalid: { from: string; why: string }[];
}

export async function checkAttestations(
  given: readonly unknown[],
  requestId: string,
  derived: { verdictDigest: string; root: string } | null,
): Promise<AttestationCheck> {
  const { valid, invalid } = await distinctSigned(given, 'attestation', (p) =>
    p.body.requestId === requestId ? null : `attests request ${p.body.requestId}`,
  );
  const agree = valid.filter(
    (p) =>
      derived && p.body.verdictDigest === derived.verdictDigest && p.body.transcriptRoot === derived.root,
  ).length;
  return { nodes: valid.length, agree, invalid };
}
