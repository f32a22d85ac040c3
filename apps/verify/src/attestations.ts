/**
 * The nodes' attestations of a verdict (signed `attestation` packets, which a relay's
 * `GET /v1/verify/<id>` returns beside the transcript): each one's signature and request are checked
 * here, and what it attests is compared with the verdict derived from the transcript. They are not part
 * of the transcript; they show how many nodes independently reached the same digest. One that does not
 * verify was forged or altered by whoever served it.
 */
import { packetOf, signatureHolds } from './signed-packets.ts';

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
  const seen = new Set<string>();
  const out: AttestationCheck = { nodes: 0, agree: 0, invalid: [] };
  for (const raw of given) {
    const read = packetOf(raw, 'attestation', 'an attestation');
    if ('why' in read) {
      out.invalid.push(read);
      continue;
    }
    const { from, packet: p } = read;
    if (p.body.requestId !== requestId) {
      out.invalid.push({ from, why: `attests request ${p.body.requestId}` });
      continue;
    }
    if (!(await signatureHolds(p))) {
      out.invalid.push({ from, why: 'its signature does not verify' });
      continue;
    }
    if (seen.has(p.from)) {
      out.invalid.push({ from, why: 'a second attestation from the same node' });
      continue;
    }
    seen.add(p.from);
    out.nodes++;
    if (derived && p.body.verdictDigest === derived.verdictDigest && p.body.transcriptRoot === derived.root) {
      out.agree++;
    }
  }
  return out;
}
