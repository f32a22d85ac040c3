/**
 * Transcripts made in tests from keys made on the spot: anyone can make one that holds (node keys cost
 * nothing, and a seal is its coordinator's choice), which is what an auditor must be shown. And a relay
 * double serving them (`/healthz`, `/v1/history`, `/v1/verify/<id>`) as a relay does, on 127.0.0.1.
 */
import {
  type AnyPacket,
  buildTranscript,
  computeCommitment,
  NodeKey,
  type Packet,
  packetId,
  resolveFrame,
  signPacket,
  type Transcript,
  type Verdict,
  verifyTranscript,
  withRequestId,
} from '@synod/shared';

const MODEL = {
  id: 'stories260K',
  fileHash: '270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d',
};
const EMBEDDER = {
  id: 'use-lite-512',
  fileHash: 'fafe7cad1a83d4ee3edf81b167ac12c7dfe88ac111e4151896f06f196156f815',
  bits: 512,
};
/** 512 bits: members revealing the same bits agree; `otherBits(n)` are far from these and each other. */
export const AGREEING_BITS = '0f'.repeat(64);
export function otherBits(n: number): string {
  return ['ff', '00', '55', 'aa', '33'][n % 5]?.repeat(64) as string;
}

const hex = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('hex');

export interface ForgedMember {
  key?: NodeKey;
  output?: string;
  bits?: string;
  /** False: the member commits and is sealed, and never reveals (`NOT_REVEALED`). */
  reveals?: boolean;
}

export interface Forged {
  transcript: Transcript;
  requestId: string;
  coordinator: NodeKey;
  members: NodeKey[];
  verdict: Verdict;
  verdictDigest: string;
  root: string;
  /** The coordinator's signed verdict packet. */
  verdictPacket: Packet<'verdict'>;
  /** An attestation by `key` of this verdict (or of what `over` says). */
  attest(
    key: NodeKey,
    over?: { verdictDigest?: string; transcriptRoot?: string },
  ): Promise<Packet<'attestation'>>;
  /** What a relay's `GET /v1/verify/<id>` answers for it, with `attestations` given. */
  answer(attestations?: unknown[]): Record<string, unknown>;
}

/**
 * A transcript that holds, every key made here: by default three members agreeing on one output. A
 * `requestBody` given is signed as it is (another coordinator's genuine request, re-signed).
 */
export async function forgeTranscript(
  o: {
    coordinator?: NodeKey;
    members?: ForgedMember[];
    prompt?: string;
    quorum?: number;
    createdAt?: number;
    requestBody?: Packet<'request'>['body'];
  } = {},
): Promise<Forged> {
  const coordinator = o.coordinator ?? (await NodeKey.generate());
  const specs = o.members ?? [{}, {}, {}];
  const createdAt = o.createdAt ?? 1_790_000_000_000;
  const body =
    o.requestBody ??
    withRequestId({
      nonce: hex(16),
      prompt: o.prompt ?? 'What is the capital of France?',
      acceptedModels: [MODEL.id],
      params: { temperature: 0, maxTokens: 16 },
      frame: resolveFrame({
        quorum: o.quorum ?? Math.min(3, specs.length),
        maxCommits: specs.length,
        embeddingModel: EMBEDDER,
      }),
      origin: { kind: 'http' },
      createdAt,
    }).body;
  const requestId = body.requestId;
  const at = body.createdAt;
  const request = await signPacket(coordinator, 'request', body);
  const commits: AnyPacket[] = [];
  const reveals: AnyPacket[] = [];
  const sealed: { nodeId: string; commitment: string; commitId: string }[] = [];
  const members: NodeKey[] = [];
  for (const m of specs) {
    const key = m.key ?? (await NodeKey.generate());
    members.push(key);
    const output = m.output ?? 'The capital of France is Paris.';
    const bEmbedding = m.bits ?? AGREEING_BITS;
    const salt = hex(32);
    const commitment = computeCommitment({
      requestId,
      nodeId: key.nodeId,
      model: MODEL,
      output,
      bEmbedding,
      salt,
    });
    const commit = await signPacket(key, 'commit', { requestId, commitment, createdAt: at + 100 });
    commits.push(commit);
    sealed.push({ nodeId: key.nodeId, commitment, commitId: packetId(commit) });
    if (m.reveals !== false) {
      reveals.push(
        await signPacket(key, 'reveal', {
          requestId,
          output,
          bEmbedding,
          model: MODEL,
          salt,
          createdAt: at + 300,
        }),
      );
    }
  }
  sealed.sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
  const seal = await signPacket(coordinator, 'seal', {
    requestId,
    requestPacketId: packetId(request),
    members: sealed,
    createdAt: at + 200,
  });
  const transcript = buildTranscript([request, ...commits, seal, ...reveals]);
  const check = await verifyTranscript(transcript);
  if (!check.ok) throw check.error;
  const verdictPacket = await signPacket(coordinator, 'verdict', {
    requestId,
    verdict: check.verdict,
    verdictDigest: check.verdictDigest,
    transcriptRoot: check.root,
    createdAt: at + 400,
  });
  return {
    transcript,
    requestId,
    coordinator,
    members,
    verdict: check.verdict,
    verdictDigest: check.verdictDigest,
    root: check.root,
    verdictPacket,
    attest: (key, over = {}) =>
      signPacket(key, 'attestation', {
        requestId,
        verdictDigest: over.verdictDigest ?? check.verdictDigest,
        transcriptRoot: over.transcriptRoot ?? check.root,
        createdAt: at + 500,
      }),
    answer: (attestations = []) => ({
      ok: true,
      requestId,
      verdictDigest: check.verdictDigest,
      transcriptRoot: check.root,
      verdict: check.verdict,
      transcript,
      attestations,
    }),
  };
}

/** One request a relay double lists in its history and serves the transcript of. */
export interface ServedRequest {
  forged: Forged;
  /** Its history item's `createdAt` (newest first); the request's own by default. */
  createdAt?: number;
  /** What `/v1/verify/<id>` answers (the forged answer by default). */
  answer?: () => Response;
  /** Its history item's `coordinator` (the request's signer by default). */
  listedCoordinator?: string;
}

export interface RelayDouble {
  url: string;
  /** Every path and query asked, in order. */
  asked: string[];
  stop(): void;
}

/**
 * A relay double on 127.0.0.1: `/healthz` names `coordinator` (null: names none), `/v1/history` lists
 * `served` newest first (its `status`, `model`, `limit` and `cursor` as a relay reads them), and
 * `/v1/verify/<id>` answers each one's transcript. `intercept` may answer any request first.
 */
export function relayDouble(o: {
  coordinator: string | null;
  served: ServedRequest[];
  intercept?: (url: URL) => Response | undefined;
}): RelayDouble {
  const asked: string[] = [];
  const items = o.served
    .map((s) => {
      const v = s.forged.verdict;
      const request = s.forged.transcript.packets.find((p) => p.type === 'request') as Packet<'request'>;
      return {
        served: s,
        item: {
          requestId: s.forged.requestId,
          status: v.status === 'accepted' ? 'verdict' : 'no-consensus',
          coordinator: s.listedCoordinator ?? request.from,
          origin: 'http',
          acceptedModels: request.body.acceptedModels,
          prompt: 'prompt' in request.body ? request.body.prompt : null,
          createdAt: s.createdAt ?? request.body.createdAt,
          updatedAt: s.createdAt ?? request.body.createdAt,
          verdictDigest: s.forged.verdictDigest,
          transcriptRoot: s.forged.root,
          winnerNodeId: v.winner?.nodeId ?? null,
          winnerModelId: v.winner?.model.id ?? null,
        },
      };
    })
    .sort((a, b) =>
      a.item.createdAt === b.item.createdAt
        ? a.item.requestId < b.item.requestId
          ? 1
          : -1
        : b.item.createdAt - a.item.createdAt,
    );
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      asked.push(url.pathname + url.search);
      const early = o.intercept?.(url);
      if (early) return early;
      if (url.pathname === '/healthz') return Response.json({ ok: true, coordinator: o.coordinator ?? '' });
      if (url.pathname === '/v1/history') {
        const q = url.searchParams;
        const limit = Number(q.get('limit') ?? '50');
        const after = q.get('cursor');
        const listed = items
          .map((x) => x.item)
          .filter((i) => q.get('status') === null || i.status === q.get('status'))
          .filter((i) => q.get('model') === null || i.acceptedModels.includes(q.get('model') as string))
          .filter((i) => after === null || `${i.createdAt}:${i.requestId}` < after);
        const page = listed.slice(0, limit);
        const last = page[page.length - 1];
        return Response.json({
          items: page,
          nextCursor: listed.length > limit && last ? `${last.createdAt}:${last.requestId}` : null,
        });
      }
      const m = /^\/v1\/verify\/(.+)$/.exec(url.pathname);
      const found = m
        ? items.find((x) => x.item.requestId === decodeURIComponent(m[1] as string))
        : undefined;
      if (found) return found.served.answer?.() ?? Response.json(found.served.forged.answer());
      return Response.json({ error: { code: 'NOT_FOUND', message: 'no such request' } }, { status: 404 });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, asked, stop: () => server.stop(true) };
}
