import type * as z from 'zod';
import { concatBytes, fromHex, fromUtf8, toHex, utf8 } from '../encoding/bytes.ts';
import { canonicalBytes, canonicalJson } from '../encoding/canonical.ts';
import { duplicateMember, formatJsonPath } from '../encoding/duplicate-member.ts';
import { domainTag, sha256Hex } from '../encoding/hash.ts';
import { SynodError } from '../errors.ts';
import type { Ed25519Backend } from '../identity/ed25519.ts';
import { type NodeKey, verifySignature } from '../identity/node-key.ts';
import { LIMITS } from './limits.ts';
import { deriveRequestId } from './request-id.ts';
import {
  type AnyPacket,
  BODY_SCHEMAS,
  type BodyOf,
  EnvelopeSchema,
  PACKET_TYPES,
  type Packet,
  type PacketType,
  PROTOCOL_VERSION,
} from './schemas.ts';

/**
 * The bytes a packet's signature covers:
 *   "synod/v1/packet/<type>" ‖ 0x00 ‖ JCS({v, type, from, body})
 * The type is in the domain tag, so a signature over one packet type never verifies as another.
 */
export function signedBytes(v: number, type: string, from: string, body: unknown): Uint8Array {
  return concatBytes(domainTag(`packet/${type}`), canonicalBytes({ v, type, from, body }));
}

/** A packet's signed bytes, id and wire bytes, computed from one canonicalization of its body. */
export interface PacketEncodings {
  /** What the signature covers (see `signedBytes`). */
  signed: Uint8Array;
  /** `packetId(packet)`. */
  id: string;
  /** `encodePacket(packet)`: JCS of the whole envelope. */
  wire: Uint8Array;
}

/**
 * All three encodings of a packet at the cost of one: JCS sorts the envelope's keys as
 * body < from < sig < type < v, so both the signed object `{v, type, from, body}` and the whole envelope
 * are the body's canonical text between fixed fragments. Byte-identical to `signedBytes`, `packetId` and
 * `encodePacket` (a property test holds them to it); used where every packet needs all three, as in
 * transcript verification.
 */
export function packetEncodings(
  packet: Pick<AnyPacket, 'v' | 'type' | 'from' | 'body' | 'sig'>,
): PacketEncodings {
  const body = canonicalJson(packet.body);
  const from = canonicalJson(packet.from);
  const type = canonicalJson(packet.type);
  const v = canonicalJson(packet.v);
  const signed = concatBytes(
    domainTag(`packet/${packet.type}`),
    utf8(`{"body":${body},"from":${from},"type":${type},"v":${v}}`),
  );
  const wire = utf8(
    `{"body":${body},"from":${from},"sig":${canonicalJson(packet.sig)},"type":${type},"v":${v}}`,
  );
  return { signed, id: sha256Hex(signed), wire };
}

/** The packet id: lowercase hex sha256 of the signed bytes. Dedup key across every transport. */
export function packetId(packet: Pick<AnyPacket, 'v' | 'type' | 'from' | 'body'>): string {
  return sha256Hex(signedBytes(packet.v, packet.type, packet.from, packet.body));
}

/** Canonical wire encoding of a whole envelope (JCS, UTF-8). */
export function encodePacket(packet: AnyPacket): Uint8Array {
  return canonicalBytes(packet);
}

/** What `signPacket` counts beside the signed bytes for the signature and the envelope's `"sig"` member. */
const SIG_ALLOWANCE = 160;

/**
 * The size `signPacket` holds to `LIMITS.maxPacketBytes`, for a packet of `type` whose body's canonical
 * encoding is `bodyBytes` long (node ids all have the same length). Lets a relay refuse a body it could
 * not sign before it stores it.
 */
export function packetSize(type: PacketType, bodyBytes: number): number {
  let around = PACKET_FRAMING.get(type);
  if (around === undefined) {
    const frame = `{"body":,"from":"${'0'.repeat(64)}","type":"${type}","v":${PROTOCOL_VERSION}}`;
    around = domainTag(`packet/${type}`).length + utf8(frame).length + SIG_ALLOWANCE;
    PACKET_FRAMING.set(type, around);
  }
  return around + bodyBytes;
}

/** `packetSize`'s bytes around a body, by packet type (the same for every packet of a type). */
const PACKET_FRAMING = new Map<PacketType, number>();

export async function signPacket<T extends PacketType>(
  key: NodeKey,
  type: T,
  body: BodyOf[T],
): Promise<Packet<T>> {
  const parsed = parseBody(type, body);
  const bytes = signedBytes(PROTOCOL_VERSION, type, key.nodeId, parsed);
  const size = bytes.length + SIG_ALLOWANCE;
  if (size > LIMITS.maxPacketBytes) {
    throw new SynodError('PACKET_TOO_LARGE', `a ${type} packet would be ${size} bytes`, {
      details: { size, limit: LIMITS.maxPacketBytes },
    });
  }
  const sig = toHex(await key.sign(bytes));
  return { v: PROTOCOL_VERSION, type, from: key.nodeId, body: parsed, sig };
}

export interface DecodeOptions {
  /** The receiver's clock in ms since the epoch; the core never reads a clock of its own. */
  now: number;
  /** Accept `createdAt` within now ± skewMs. Default `LIMITS.defaultSkewMs`. */
  skewMs?: number;
  maxBytes?: number;
  backend?: Ed25519Backend;
}

export type VerifiedPacket<T extends PacketType = PacketType> = T extends PacketType
  ? VerifiedPacketOf<T>
  : never;

export interface VerifiedPacketOf<T extends PacketType> {
  id: string;
  packet: Packet<T>;
  /** Size of the canonical encoding. */
  size: number;
}

/**
 * The one way into the core for a packet from the outside: size, JSON, envelope, version, type, body
 * schema (unknown fields rejected), request-id derivation, clock-skew window and signature, in that
 * order (cheapest first). Throws a `SynodError` with a stable code at the first failure.
 */
export async function decodePacket(
  input: Uint8Array | string,
  options: DecodeOptions,
): Promise<VerifiedPacket> {
  const maxBytes = options.maxBytes ?? LIMITS.maxPacketBytes;
  const byteLength = typeof input === 'string' ? input.length : input.length;
  if (byteLength > maxBytes) {
    throw new SynodError('PACKET_TOO_LARGE', `packet of ${byteLength} bytes exceeds ${maxBytes}`, {
      details: { size: byteLength, limit: maxBytes },
    });
  }
  let raw: unknown;
  let text: string;
  try {
    text = typeof input === 'string' ? input : fromUtf8(input);
    raw = JSON.parse(text);
  } catch (cause) {
    throw new SynodError('PACKET_MALFORMED', 'packet is not valid JSON', { cause });
  }
  // The signature covers the canonical form, which has each name once: a text naming one twice is read
  // one way here (the last value) and another by a reader that keeps the first.
  const twice = duplicateMember(text);
  if (twice) {
    throw new SynodError(
      'PACKET_DUPLICATE_MEMBER',
      `packet names "${twice.name.slice(0, 64)}" twice in ${formatJsonPath(twice.path)}`,
      { details: { member: twice.name.slice(0, 64), path: formatJsonPath(twice.path) } },
    );
  }
  return verifyPacket(raw, options);
}

/** As `decodePacket`, for an already-parsed JSON value. */
export async function verifyPacket(raw: unknown, options: DecodeOptions): Promise<VerifiedPacket> {
  const packet = parseEnvelope(raw);
  const size = encodePacket(packet).length;
  const maxBytes = options.maxBytes ?? LIMITS.maxPacketBytes;
  if (size > maxBytes) {
    throw new SynodError('PACKET_TOO_LARGE', `packet of ${size} bytes exceeds ${maxBytes}`, {
      details: { size, limit: maxBytes },
    });
  }
  checkSkew(packet.body.createdAt, options.now, options.skewMs ?? LIMITS.defaultSkewMs);
  const ok = await verifySignature(
    packet.from,
    signedBytes(packet.v, packet.type, packet.from, packet.body),
    fromHex(packet.sig),
    options.backend,
  );
  if (!ok) {
    throw new SynodError('PACKET_BAD_SIGNATURE', `signature of ${packet.type} packet does not verify`, {
      details: { type: packet.type, from: packet.from },
    });
  }
  return { id: packetId(packet), packet, size } as VerifiedPacket;
}

/**
 * Structural checks only (no clock, no signature): envelope, version, type, body schema, request id.
 * Used by `verifyPacket`, and by transcript verification, which checks signatures itself and has no
 * "now".
 */
export function parseEnvelope(raw: unknown): AnyPacket {
  const env = EnvelopeSchema.safeParse(raw);
  if (!env.success) throw schemaError(env.error, 'envelope');
  const { v, type, from, body, sig } = env.data;
  if (v !== PROTOCOL_VERSION) {
    throw new SynodError('PACKET_UNSUPPORTED_VERSION', `protocol version ${v} is not supported`, {
      details: { v, supported: [PROTOCOL_VERSION] },
    });
  }
  if (!(PACKET_TYPES as readonly string[]).includes(type)) {
    throw new SynodError('PACKET_UNKNOWN_TYPE', `unknown packet type "${type}"`, {
      details: { type, known: PACKET_TYPES },
    });
  }
  const t = type as PacketType;
  const parsedBody = parseBody(t, body);
  return { v: PROTOCOL_VERSION, type: t, from, body: parsedBody, sig } as AnyPacket;
}

function parseBody<T extends PacketType>(type: T, body: unknown): BodyOf[T] {
  const schema = BODY_SCHEMAS[type] as unknown as z.ZodType<BodyOf[T]>;
  const r = schema.safeParse(body);
  if (!r.success) throw schemaError(r.error, type);
  if (type === 'request') {
    const req = r.data as BodyOf['request'];
    const expected = deriveRequestId(req);
    if (req.requestId !== expected) {
      throw new SynodError('REQUEST_ID_MISMATCH', 'requestId is not derived from the request content', {
        details: { requestId: req.requestId, expected },
        hint: 'compute it with deriveRequestId(body)',
      });
    }
  }
  return r.data;
}

function checkSkew(createdAt: number, now: number, skewMs: number): void {
  if (createdAt < now - skewMs) {
    throw new SynodError(
      'PACKET_STALE',
      `packet created ${now - createdAt} ms ago, beyond the ${skewMs} ms window`,
      {
        details: { createdAt, now, skewMs },
      },
    );
  }
  if (createdAt > now + skewMs) {
    throw new SynodError('PACKET_FROM_FUTURE', `packet created ${createdAt - now} ms in the future`, {
      details: { createdAt, now, skewMs },
      hint: 'check the sender clock',
    });
  }
}

function schemaError(error: z.ZodError, where: string): SynodError {
  const issues = error.issues.map((i) => ({
    path: i.path.map(String).join('.'),
    code: i.code,
    message: i.message,
    ...(i.code === 'unrecognized_keys' ? { keys: i.keys } : {}),
  }));
  const unknown = error.issues.find((i) => i.code === 'unrecognized_keys');
  if (unknown) {
    return new SynodError(
      'PACKET_UNKNOWN_FIELD',
      `${where} has unknown field(s): ${unknown.keys.join(', ')}`,
      {
        details: { issues },
        hint: 'protocol v1 rejects any field it does not define',
      },
    );
  }
  const code = where === 'envelope' ? 'PACKET_MALFORMED' : 'PACKET_INVALID_FIELD';
  const first = issues[0];
  return new SynodError(
    code,
    `${where}: ${first ? `${first.path || '(root)'}: ${first.message}` : 'invalid'}`,
    {
      details: { issues },
    },
  );
}
