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
  if (p.type !== type) return { from, why: `a ${p.type} packet, not ${what}` };
  return { from, packet: p as Packet<T> };
}

/** Whether a packet's signature verifies for the key it names. */
export function signatureHolds(p: Packet): Promise<boolean> {
  return verifySignature(p.from, signedBytes(p.v, p.type, p.from, p.body), fromHex(p.sig));
}
