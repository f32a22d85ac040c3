import { packetId, type RequestBody } from '@synod/shared';
import { type HistoryStore, type RequestDetail, verdictReveals } from './store/history-store.ts';
import type { IntakeStore, QueuedRequest } from './store/intake-store.ts';

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
    request: requestSummary(d.requestPacketId, body),
    commits: d.commits.map((c) => ({
      packetId: c.id,
      nodeId: c.packet.from,
      commitment: c.packet.body.commitment,
      createdAt: c.packet.body.createdAt,
    })),
    seal: d.seal
      ? { packetId: d.seal.id, members: d.seal.packet.body.members, createdAt: d.seal.packet.body.createdAt }
      : null,
    reveals: verdictReveals(d).map((r) => ({
      packetId: r.id,
      nodeId: r.packet.from,
      model: r.packet.body.model,
      output: r.packet.body.output,
      bEmbedding: r.packet.body.bEmbedding,
      createdAt: r.packet.body.createdAt,
      ...(r.packet.body.usage === undefined ? {} : { usage: r.packet.body.usage }),
      // Cut at maxTokens (said by the node, signed): a caller of this view tells a truncated answer.
      ...(r.packet.body.finishReason === undefined ? {} : { finishReason: r.packet.body.finishReason }),
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
    declines: d.declines.map((x) => ({
      packetId: x.id,
      nodeId: x.packet.from,
      model: x.packet.body.model,
      reason: x.packet.body.reason,
      promptTokens: x.packet.body.promptTokens,
      contextTokens: x.packet.body.contextTokens,
      createdAt: x.packet.body.createdAt,
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

/**
 * How long a request's events stream, once the request has ended, waits for its seal members'
 * attestations of the verdict before its `end` (each member signs one as it hears the verdict, moments
 * after it): a client that closes at `end` holds them.
 */
export const ATTESTATION_WAIT_MS = 3_000;

/** Whether a verdict is in and some member of its seal has not attested it yet. */
export function awaitingAttestations(view: Pick<RequestView, 'verdict' | 'seal' | 'attestations'>): boolean {
  if (view.verdict === null || view.seal === null) return false;
  const attested = new Set(view.attestations.map((a) => a.nodeId));
  return view.seal.members.some((m) => !attested.has(m.nodeId));
}

/** A request found by id: in the history, or still in the admission log (`queued`). */
export type FoundRequest =
  | { kind: 'stored'; detail: RequestDetail }
  | { kind: 'queued'; queued: QueuedRequest };

/** Look a request up in the history, then in the admission log (re-reading the history if it just moved). */
export async function findRequest(
  store: HistoryStore,
  intake: IntakeStore,
  requestId: string,
): Promise<FoundRequest | null> {
  const d = await store.getRequest(requestId);
  if (d) return { kind: 'stored', detail: d };
  const q = await intake.queued(requestId);
  // A row whose body no longer parses is never dispatched (the dispatcher drops it): not a request.
  if (q?.body) return { kind: 'queued', queued: q };
  const moved = await store.getRequest(requestId);
  return moved ? { kind: 'stored', detail: moved } : null;
}

/**
 * The public view of a request still in the admission log: status `queued`, nothing from the network
 * yet. `request.packetId` is already the id the signed request will have (it does not cover the
 * signature), so a client can match it with what the coordinator later publishes.
 */
export function queuedView(q: QueuedRequest) {
  const body = q.body as RequestBody;
  const id = packetId({ v: 1, type: 'request', from: q.coordinator, body });
  return {
    requestId: q.requestId,
    status: 'queued' as const,
    error: null,
    createdAt: q.createdAt,
    updatedAt: q.createdAt,
    coordinator: q.coordinator,
    request: requestSummary(id, body),
    commits: [],
    seal: null,
    reveals: [],
    verdict: null,
    attestations: [],
    declines: [],
    transcriptRoot: null,
    links: {
      self: `/v1/inference/${encodeURIComponent(q.requestId)}`,
      events: `/v1/inference/${encodeURIComponent(q.requestId)}/events`,
      verify: `/v1/verify/${encodeURIComponent(q.requestId)}`,
    },
  };
}

export function foundView(f: FoundRequest) {
  return f.kind === 'stored' ? requestView(f.detail) : queuedView(f.queued);
}

/** The public view of a request by id (`findRequest`, then `foundView`), or null. */
export async function findView(store: HistoryStore, intake: IntakeStore, requestId: string) {
  const found = await findRequest(store, intake, requestId);
  return found ? foundView(found) : null;
}

/** The request part of a view: what was asked, under which frame, and the request packet's id. */
function requestSummary(packetId: string, body: RequestBody) {
  return {
    packetId,
    acceptedModels: body.acceptedModels,
    params: body.params,
    frame: body.frame,
    origin: body.origin,
    ...(body.prompt !== undefined ? { prompt: body.prompt } : {}),
    ...(body.messages !== undefined ? { messages: body.messages } : {}),
  };
}
