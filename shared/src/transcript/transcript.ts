/**
 * Transcripts: the packets a verdict is computed from, in one canonical order, with a Merkle root.
 *
 * A transcript of a request holds its request packet, the commit packets, the seal and the reveal
 * packets: nothing else. Verdicts, attestations and heartbeats are not part of it (a verdict points at
 * the transcript root; including it would be circular) and are rejected with `TRANSCRIPT_INVALID`.
 *
 * Canonical order: by type rank (request 0, commit 1, seal 2, reveal 3), then by packet id (lowercase
 * hex, so string order is byte order). The packet id covers (v, type, from, body) but not the signature,
 * so it is what makes two copies of a packet "the same packet".
 *
 * `buildTranscript` takes packets in any order, drops duplicates by packet id, checks they all belong
 * to one request, and sorts them; any permutation of the same packets gives the same transcript and so
 * the same root. Two copies of one packet id with different signature bytes (a signer that re-signed
 * with another nonce) keep the copy with the smallest signature hex, so the choice does not depend on
 * arrival order. `buildTranscript` checks no signatures: feed it packets that passed `verifyPacket`, and
 * use `verifyTranscript` (verify.ts) to check a transcript received from elsewhere.
 *
 * A transcript has exactly one request and at most one seal (a request whose seal never happened still
 * has a recordable transcript, but no verdict). Size bound: 1 request + 128 commits + 1 seal + 256
 * reveals = 386 packets.
 *
 * transcriptRoot(t) = merkleRoot(leaf(p) for p in t.packets), see merkle.ts; the leaf covers the whole
 * envelope, signature included, so the root pins the exact signed packets.
 */
import { compareStrings } from '../encoding/bytes.ts';
import { SynodError } from '../errors.ts';
import { packetId } from '../packets/envelope.ts';
import { LIMITS } from '../packets/limits.ts';
import type { AnyPacket, Packet, PacketType } from '../packets/schemas.ts';
import { type InclusionProof, inclusionProof, merkleLeaf, merkleRoot, verifyInclusion } from './merkle.ts';

export interface Transcript {
  v: 1;
  requestId: string;
  /** In canonical order, no duplicates. */
  packets: AnyPacket[];
}

export const TRANSCRIPT_TYPES = ['request', 'commit', 'seal', 'reveal'] as const;
export type TranscriptPacketType = (typeof TRANSCRIPT_TYPES)[number];
/** One of the packets a transcript holds (a union, so `type` narrows `body`). */
export type TranscriptPacket = { [T in TranscriptPacketType]: Packet<T> }[TranscriptPacketType];

/** Sort rank of each packet type in a transcript. */
export const TYPE_RANK: Readonly<Record<TranscriptPacketType, number>> = {
  request: 0,
  commit: 1,
  seal: 2,
  reveal: 3,
};

export const TRANSCRIPT_LIMITS = {
  maxCommits: LIMITS.maxSealMembers,
  maxReveals: LIMITS.maxVerdictEntries,
  /** 1 request + 128 commits + 1 seal + 256 reveals. */
  maxPackets: 1 + LIMITS.maxSealMembers + 1 + LIMITS.maxVerdictEntries,
} as const;

export function isTranscriptType(type: PacketType | string): type is TranscriptPacketType {
  return (TRANSCRIPT_TYPES as readonly string[]).includes(type);
}

/** Canonical order of two transcript packets given their ids: type rank, then packet id. */
export function compareTranscriptEntries(
  a: { type: TranscriptPacketType; id: string },
  b: { type: TranscriptPacketType; id: string },
): number {
  return TYPE_RANK[a.type] - TYPE_RANK[b.type] || compareStrings(a.id, b.id);
}

function invalid(message: string, details: Record<string, unknown>, hint?: string): SynodError {
  return new SynodError('TRANSCRIPT_INVALID', message, hint === undefined ? { details } : { details, hint });
}

/**
 * The canonical transcript of a request from its packets in any order. Throws `TRANSCRIPT_INVALID`
 * for a packet type that does not belong in a transcript, packets of different requests, a missing or
 * second request, a second seal, or more packets than the size bound.
 */
export function buildTranscript(packets: readonly AnyPacket[]): Transcript {
  const byId = new Map<string, { id: string; packet: TranscriptPacket }>();
  packets.forEach((packet, index) => {
    if (!isTranscriptType(packet.type)) {
      throw invalid(
        `a ${packet.type} packet is not part of a transcript`,
        { index, type: packet.type, allowed: TRANSCRIPT_TYPES },
        'a transcript holds only the request, commit, seal and reveal packets of one request',
      );
    }
    const id = packetId(packet);
    const seen = byId.get(id);
    if (seen === undefined || compareStrings(packet.sig, seen.packet.sig) < 0) {
      byId.set(id, { id, packet: packet as TranscriptPacket });
    }
  });
  const entries = [...byId.values()].sort((a, b) =>
    compareTranscriptEntries({ type: a.packet.type, id: a.id }, { type: b.packet.type, id: b.id }),
  );

  const requests = entries.filter((e) => e.packet.type === 'request');
  if (requests.length !== 1) {
    throw invalid(`a transcript needs exactly one request packet, got ${requests.length}`, {
      requestPacketIds: requests.map((e) => e.id),
    });
  }
  const seals = entries.filter((e) => e.packet.type === 'seal');
  if (seals.length > 1) {
    throw invalid(
      `a transcript holds at most one seal, got ${seals.length}`,
      { sealIds: seals.map((e) => e.id) },
      'two different seals for one request are evidence against the coordinator, not a transcript',
    );
  }
  const requestId = (requests[0] as { packet: Packet<'request'> }).packet.body.requestId;
  const strangers = entries.filter((e) => e.packet.body.requestId !== requestId);
  if (strangers.length > 0) {
    throw invalid(`${strangers.length} packet(s) belong to another request`, {
      requestId,
      packets: strangers.map((e) => ({ id: e.id, type: e.packet.type, requestId: e.packet.body.requestId })),
    });
  }
  checkCounts(entries.map((e) => e.packet.type));
  return { v: 1, requestId, packets: entries.map((e) => e.packet) };
}

function checkCounts(types: readonly PacketType[]): void {
  const commits = types.filter((t) => t === 'commit').length;
  const reveals = types.filter((t) => t === 'reveal').length;
  if (
    types.length > TRANSCRIPT_LIMITS.maxPackets ||
    commits > TRANSCRIPT_LIMITS.maxCommits ||
    reveals > TRANSCRIPT_LIMITS.maxReveals
  ) {
    throw invalid(
      `a transcript holds at most ${TRANSCRIPT_LIMITS.maxPackets} packets`,
      { packets: types.length, commits, reveals, limits: TRANSCRIPT_LIMITS },
      'include only the request, the sealed commits, the seal and the reveals',
    );
  }
}

/**
 * Packet ids of a transcript's packets, checking they are in canonical order with no duplicates and
 * no foreign types. Throws `TRANSCRIPT_INVALID` otherwise.
 */
export function transcriptPacketIds(t: Transcript): string[] {
  const ids = t.packets.map((p) => packetId(p));
  for (let i = 0; i < t.packets.length; i++) {
    const p = t.packets[i] as AnyPacket;
    if (!isTranscriptType(p.type)) {
      throw invalid(`a ${p.type} packet is not part of a transcript`, { index: i, type: p.type });
    }
    if (i === 0) continue;
    const prev = t.packets[i - 1] as TranscriptPacket;
    const order = compareTranscriptEntries(
      { type: prev.type, id: ids[i - 1] as string },
      { type: p.type, id: ids[i] as string },
    );
    if (order >= 0) {
      throw invalid(
        order === 0 ? 'the transcript holds a packet twice' : 'the transcript is not in canonical order',
        {
          index: i,
          packetId: ids[i],
        },
        'build transcripts with buildTranscript',
      );
    }
  }
  return ids;
}

/** Merkle root of a transcript (hex). Throws `TRANSCRIPT_INVALID` if it is empty or not canonical. */
export function transcriptRoot(t: Transcript): string {
  transcriptPacketIds(t);
  return merkleRoot(t.packets.map(merkleLeaf));
}

/** Inclusion proof of the packet with this id. Throws `MERKLE_PROOF_INVALID` if it is not in `t`. */
export function transcriptInclusionProof(t: Transcript, id: string): InclusionProof {
  const ids = transcriptPacketIds(t);
  const index = ids.indexOf(id);
  if (index < 0) {
    throw new SynodError('MERKLE_PROOF_INVALID', 'the packet is not in this transcript', {
      details: { packetId: id, requestId: t.requestId },
    });
  }
  return inclusionProof(t.packets.map(merkleLeaf), index);
}

/** Does `proof` show this exact signed packet in the transcript with `root`? Never throws. */
export function verifyTranscriptInclusion(root: string, packet: AnyPacket, proof: InclusionProof): boolean {
  let leaf: string;
  try {
    leaf = merkleLeaf(packet);
  } catch {
    return false;
  }
  return verifyInclusion(root, leaf, proof);
}
