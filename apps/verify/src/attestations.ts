/**
 * The nodes' attestations of a verdict (signed `attestation` packets, which a relay's
 * `GET /v1/verify/<id>` returns beside the transcript): each one's signature and request are checked
 * here, and what it attests is compared with the verdict derived from the transcript. They are not part
 * of the transcript. One that does not verify was forged or altered by whoever served it.
 *
 * Who signed one matters more than how many did: node keys cost nothing, so attestations by keys outside
 * the seal prove nothing about it and are counted apart, never as support. A seal member attests only a
 * verdict it recomputed from the packets it held (shared/src/lifecycle/observer.ts), so a seal member's
 * valid attestation of another verdict digest says the transcript served here is not what that member
 * saw (a reveal dropped or altered on the way), or that the member signs what it likes: an
 * `ATTESTATION_CONFLICT`, said as a warning that fails nothing (one member must not be able to make every
 * honest relay's transcripts fail).
 */
import { distinctSigned } from './signed-packets.ts';

/** What one key attested. */
export interface Attested {
  nodeId: string;
  verdictDigest: string;
  transcriptRoot: string;
}

export interface AttestationCheck {
  /** Distinct keys whose attestation verifies. */
  nodes: number;
  /**
   * Of them, the seal's members: how many signed one, how many attest the derived verdict (its digest
   * and the transcript's root), those attesting another verdict digest (conflicts), and those attesting
   * the derived verdict over another transcript root. Null when the transcript does not hold: there is
   * then no seal to tell members by.
   */
  members: {
    sealSize: number;
    signed: number;
    agree: number;
    conflicts: Attested[];
    otherRoot: Attested[];
  } | null;
  /** Keys outside the seal (null as above): listed apart, never counted as support, never a failure. */
  outsiders: { signed: number; agree: number; other: number } | null;
  /** Attestations that do not verify, or do not belong here, with why. */
  invalid: { from: string; why: string }[];
}

export async function checkAttestations(
  given: readonly unknown[],
  requestId: string,
  derived: { verdictDigest: string; root: string; members: readonly string[] } | null,
): Promise<AttestationCheck> {
  const { valid, invalid } = await distinctSigned(given, 'attestation', (p) =>
    p.body.requestId === requestId ? null : `attests request ${p.body.requestId}`,
  );
  if (derived === null) return { nodes: valid.length, members: null, outsiders: null, invalid };
  const sealed = new Set(derived.members);
  const members: NonNullable<AttestationCheck['members']> = {
    sealSize: sealed.size,
    signed: 0,
    agree: 0,
    conflicts: [],
    otherRoot: [],
  };
  const outsiders = { signed: 0, agree: 0, other: 0 };
  for (const p of valid) {
    const a = { nodeId: p.from, verdictDigest: p.body.verdictDigest, transcriptRoot: p.body.transcriptRoot };
    const sameVerdict = a.verdictDigest === derived.verdictDigest;
    const agrees = sameVerdict && a.transcriptRoot === derived.root;
    if (!sealed.has(p.from)) {
      outsiders.signed++;
      if (agrees) outsiders.agree++;
      else outsiders.other++;
      continue;
    }
    members.signed++;
    if (agrees) members.agree++;
    else if (sameVerdict) members.otherRoot.push(a);
    else members.conflicts.push(a);
  }
  return { nodes: valid.length, members, outsiders, invalid };
}
