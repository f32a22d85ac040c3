import { outputDigest } from '../commitment/commitment.ts';
import { fromUtf8 } from '../encoding/bytes.ts';
import { encodePacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet, PacketType, Verdict } from '../packets/schemas.ts';
import type {
  NewAttestationRow,
  NewCommitRow,
  NewDeclineRow,
  NewNodeRow,
  NewRequestModelRow,
  NewRequestRow,
  NewRevealRow,
  NewSealMemberRow,
  NewSealRow,
  NewVerdictRow,
  VerdictEntryRow,
} from './schema.ts';

/**
 * Pure mappers from verified packets to history rows, so every writer projects a packet the same way.
 * They take `{ id, packet }` as `verifyPacket` / `decodePacket` return it (the id is the packet id the
 * caller already computed) and do not check signatures again.
 */
export interface StoredPacket<T extends PacketType> {
  id: string;
  packet: Packet<T>;
}

/** The `raw` column: the packet's canonical (JCS) wire encoding, as text. */
export function rawPacket(packet: AnyPacket): string {
  return fromUtf8(encodePacket(packet));
}

/**
 * The `requests` row (status `pending`) and its `request_models` rows. `now` is the relay clock, used
 * for `updated_at`.
 */
export function requestRows(
  { id, packet }: StoredPacket<'request'>,
  now: number,
): { request: NewRequestRow; models: NewRequestModelRow[] } {
  const b = packet.body;
  const chain = b.origin.kind === 'chain' ? b.origin : null;
  const request: NewRequestRow = {
    requestId: b.requestId,
    packetId: id,
    coordinator: packet.from,
    prompt: b.prompt ?? null,
    messages: b.messages ?? null,
    acceptedModels: b.acceptedModels,
    params: b.params,
    frame: b.frame,
    originKind: b.origin.kind,
    chainId: chain?.chainId ?? null,
    contract: chain?.contract ?? null,
    requestNo: chain?.requestNo ?? null,
    txHash: chain?.txHash ?? null,
    blockNumber: chain?.blockNumber ?? null,
    status: 'pending',
    error: null,
    createdAt: b.createdAt,
    updatedAt: now,
    raw: rawPacket(packet),
  };
  const models = b.acceptedModels.map((modelId) => ({
    requestId: b.requestId,
    modelId,
    createdAt: b.createdAt,
  }));
  return { request, models };
}

export function commitRow({ id, packet }: StoredPacket<'commit'>): NewCommitRow {
  return {
    packetId: id,
    requestId: packet.body.requestId,
    nodeId: packet.from,
    commitment: packet.body.commitment,
    createdAt: packet.body.createdAt,
    raw: rawPacket(packet),
  };
}

export function sealRows({ id, packet }: StoredPacket<'seal'>): {
  seal: NewSealRow;
  members: NewSealMemberRow[];
} {
  const b = packet.body;
  return {
    seal: {
      packetId: id,
      requestId: b.requestId,
      requestPacketId: b.requestPacketId,
      coordinator: packet.from,
      memberCount: b.members.length,
      createdAt: b.createdAt,
      raw: rawPacket(packet),
    },
    members: b.members.map((m) => ({
      requestId: b.requestId,
      nodeId: m.nodeId,
      commitment: m.commitment,
      commitId: m.commitId,
    })),
  };
}

export function revealRow({ id, packet }: StoredPacket<'reveal'>): NewRevealRow {
  const b = packet.body;
  return {
    packetId: id,
    requestId: b.requestId,
    nodeId: packet.from,
    modelId: b.model.id,
    modelFileHash: b.model.fileHash,
    outputDigest: outputDigest(b.output),
    output: b.output,
    bEmbedding: b.bEmbedding,
    createdAt: b.createdAt,
    raw: rawPacket(packet),
  };
}

/**
 * The rows of one verdict: one per entry of `verdict.accepted`, then one per entry of
 * `verdict.rejected`, in the verdict's own order, numbered from 0 by `ordinal`. The verdict is a
 * deterministic function of its transcript, so the numbering is too, and re-inserting the same verdict
 * hits the same keys. The accepted entry equal to `verdict.winner` (same node and commitment) has
 * `winner = true`.
 */
export function verdictEntries(verdict: Verdict): VerdictEntryRow[] {
  const rows: VerdictEntryRow[] = [];
  const w = verdict.winner;
  for (const m of verdict.accepted) {
    rows.push({
      requestId: verdict.requestId,
      ordinal: rows.length,
      nodeId: m.nodeId,
      commitment: m.commitment,
      revealId: null,
      outcome: 'accepted',
      reason: null,
      winner: w !== null && w.nodeId === m.nodeId && w.commitment === m.commitment,
    });
  }
  for (const r of verdict.rejected) {
    rows.push({
      requestId: verdict.requestId,
      ordinal: rows.length,
      nodeId: r.nodeId,
      commitment: r.commitment,
      revealId: r.revealId,
      outcome: 'rejected',
      reason: r.reason,
      winner: false,
    });
  }
  return rows;
}

/** The `verdicts` row of a verdict packet and its `verdict_entries` rows. */
export function verdictRows({ id, packet }: StoredPacket<'verdict'>): {
  verdict: NewVerdictRow;
  entries: VerdictEntryRow[];
} {
  const b = packet.body;
  const v = b.verdict;
  return {
    verdict: {
      requestId: b.requestId,
      packetId: id,
      sealId: v.sealId,
      coordinator: packet.from,
      status: v.status,
      verdictDigest: b.verdictDigest,
      transcriptRoot: b.transcriptRoot,
      winnerNodeId: v.winner?.nodeId ?? null,
      winnerCommitment: v.winner?.commitment ?? null,
      winnerOutputDigest: v.winner?.outputDigest ?? null,
      winnerModelId: v.winner?.model.id ?? null,
      winnerModelFileHash: v.winner?.model.fileHash ?? null,
      sealSize: v.sealSize,
      required: v.required,
      createdAt: b.createdAt,
      verdict: v,
      raw: rawPacket(packet),
    },
    entries: verdictEntries(v),
  };
}

export function attestationRow({ id, packet }: StoredPacket<'attestation'>): NewAttestationRow {
  const b = packet.body;
  return {
    packetId: id,
    requestId: b.requestId,
    nodeId: packet.from,
    verdictDigest: b.verdictDigest,
    transcriptRoot: b.transcriptRoot,
    createdAt: b.createdAt,
    raw: rawPacket(packet),
  };
}

export function declineRow({ id, packet }: StoredPacket<'decline'>): NewDeclineRow {
  const b = packet.body;
  return {
    packetId: id,
    requestId: b.requestId,
    nodeId: packet.from,
    modelId: b.model.id,
    modelFileHash: b.model.fileHash,
    reason: b.reason,
    promptTokens: b.promptTokens,
    contextTokens: b.contextTokens,
    createdAt: b.createdAt,
    raw: rawPacket(packet),
  };
}

/**
 * The `nodes` row for a heartbeat, heard at `now` (relay clock). On conflict, update every column but
 * `first_seen`.
 */
export function nodeRow({ id, packet }: StoredPacket<'heartbeat'>, now: number): NewNodeRow {
  const b = packet.body;
  return {
    nodeId: packet.from,
    role: b.role,
    software: b.software,
    lastHeartbeat: packet,
    lastHeartbeatId: id,
    models: b.models,
    embedders: b.embedders,
    tokensPerSecond: b.models.reduce((best, m) => Math.max(best, m.tokensPerSecond), 0),
    embeddingsPerSecond: b.embedders.reduce((best, e) => Math.max(best, e.embeddingsPerSecond), 0),
    firstSeen: now,
    lastSeen: now,
  };
}
