import type { RequestDetail } from './store/history-store.ts';

/** Terminal request statuses: nothing more will change. */
export const TERMINAL = new Set(['verdict', 'no-consensus', 'expired', 'failed']);

/** The public JSON view of a request and everything the network said about it. */
export function requestView(d: RequestDetail) {
  const body = d.request.body;
  const verdict = d.verdict?.packet.body ?? null;
  return {
    requestId: d.requestId,
    status: d.status,
    error: d.error,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
    coordinator: d.request.from,
    request: {
      packetId: d.requestPacketId,
      acceptedModels: body.acceptedModels,
      params: body.params,
      frame: body.frame,
      origin: body.origin,
      ...(body.prompt !== undefined ? { prompt: body.prompt } : {}),
      ...(body.messages !== undefined ? { messages: body.messages } : {}),
    },
    commits: d.commits.map((c) => ({
      packetId: c.id,
      nodeId: c.packet.from,
      commitment: c.packet.body.commitment,
      createdAt: c.packet.body.createdAt,
    })),
    seal: d.seal
      ? { packetId: d.seal.id, members: d.seal.packet.body.members, createdAt: d.seal.packet.body.createdAt }
      : null,
    reveals: d.reveals.map((r) => ({
      packetId: r.id,
      nodeId: r.packet.from,
      model: r.packet.body.model,
      output: r.packet.body.output,
      bEmbedding: r.packet.body.bEmbedding,
      createdAt: r.packet.body.createdAt,
    })),
    verdict: verdict
      ? {
          packetId: d.verdict?.id,
          verdictDigest: verdict.verdictDigest,
          transcriptRoot: verdict.transcriptRoot,
          ...verdict.verdict,
        }
      : null,
    attestations: d.attestations.map((a) => ({
      packetId: a.id,
      nodeId: a.packet.from,
      verdictDigest: a.packet.body.verdictDigest,
      agrees: verdict !== null && a.packet.body.verdictDigest === verdict.verdictDigest,
      createdAt: a.packet.body.createdAt,
    })),
    transcriptRoot: verdict?.transcriptRoot ?? null,
    links: {
      self: `/v1/inference/${encodeURIComponent(d.requestId)}`,
      events: `/v1/inference/${encodeURIComponent(d.requestId)}/events`,
      verify: `/v1/verify/${encodeURIComponent(d.requestId)}`,
    },
  };
}
export type RequestView = ReturnType<typeof requestView>;
