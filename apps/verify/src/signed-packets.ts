/**
 * Packets a relay serves beside a transcript (attestations, declines), read without trusting them: each
 * is named by the key it claims, parsed strictly as the one type it must be, and its signature checked.
 */
import {
  fromHex,
  type Packet,
  type PacketType,
  parseEnvelope,
  signedBytes,
  verifySignature,
} from '@synod/shared';

/** `raw` as a packet of `type`, or why it is not one; `from` is the key it claims ('?' when none). */
export function packetOf<T extends PacketType>(
  raw: unknown,
  type: T,
  what: string,
): { from: string; packet: Packet<T> } | { from: string; why: string } {
  // Named by its claimed key only when that is a string: anything else (a nested value) is '?'.
  const claimed = (raw as { from?: unknown } | null)?.from;
  const from = typeof claimed === 'string' ? claimed.slice(0, 64) : '?';
  let p: ReturnType<typeof parseEnvelope>;
  try {
    p = parseEnvelope(raw);
  } catch (e) {
    return { from, why: `malformed: ${(e as Error).message}` };
  }
  if (p.type !== type) return { from, why: `${article(p.type)} ${p.type} packet, not ${what}` };
  return { from, packet: p as Packet<T> };
}

/**
 * The packets of `type` among `given` that a verifier counts, one per node: each parsed strictly, then
 * checked against `belongs` (why it does not belong here, or null), its signature, and being the first
 * from its node; every other one is in `invalid` with why.
 */
export async function distinctSigned<T extends PacketType>(
  given: readonly unknown[],
  type: T,
  belongs: (p: Packet<T>) => string | null,
): Promise<{ valid: Packet<T>[]; invalid: { from: string; why: string }[] }> {
  const what = `${article(type)} ${type}`;
  const seen = new Set<string>();
  const valid: Packet<T>[] = [];
  const invalid: { from: string; why: string }[] = [];
  for (const raw of given) {
    const read = packetOf(raw, type, what);
    if ('why' in read) {
      invalid.push(read);
      continue;
    }
    const { from, packet: p } = read;
    const why = belongs(p) ?? ((await signatureHolds(p)) ? null : 'its signature does not verify');
    if (why !== null) invalid.push({ from, why });
    else if (seen.has(p.from)) invalid.push({ from, why: `a second ${type} from the same node` });
    else {
      seen.add(p.from);
      valid.push(p);
    }
  }
  return { valid, invalid };
}

/** `a` or `an`, as the packet type after it sounds (`an attestation`, `a verdict`). */
export function article(word: string): string {
  return /^[aeiou]/.test(word) ? 'an' : 'a';
}

/** Whether a packet's signature verifies for the key it names. */
export function signatureHolds(p: Packet): Promise<boolean> {
  return verifySignature(p.from, signedBytes(p.v, p.type, p.from, p.body), fromHex(p.sig));
}
