import {
  type AnyPacket,
  type Packet,
  parseEnvelope,
  REVEALS_PER_MEMBER,
  type RequestBody,
  selectReveals,
  type Verdict,
} from '@synod/shared';
import {
  apiKeys,
  attestationRow,
  attestations,
  commitRow,
  commits,
  type historySchema,
  nodeRow,
  nodes,
  type OriginKind,
  type RequestStatus,
  reputation,
  reputationDeltas,
  reputationScore,
  requestIntake,
  requestModels,
  requestRows,
  requests,
  revealRow,
  reveals,
  sealMembers,
  sealRows,
  seals,
  verdictEntriesTable,
  verdictRows,
  verdicts,
} from '@synod/shared/history';
import { and, asc, desc, eq, exists, inArray, lt, notInArray, or, type SQL, sql } from 'drizzle-orm';
import type { LibSQLDatabase } from 'drizzle-orm/libsql';

export type HistoryDb = LibSQLDatabase<typeof historySchema>;

export interface Stored<T extends AnyPacket['type']> {
  id: string;
  packet: Packet<T>;
}

export interface HistoryQuery {
  model?: string;
  status?: RequestStatus;
  /** Requests this node committed to (or coordinated). */
  node?: string;
  /** Where requests came from: `http`, `peer` or `chain` (an oracle's `callLLM`). */
  origin?: OriginKind;
  /** Keyset cursor: `<createdAt>:<requestId>` of the last row of the previous page. */
  cursor?: string;
  limit: number;
}

export interface RequestDetail {
  requestId: string;
  status: RequestStatus;
  error: string | null;
  createdAt: number;
  updatedAt: number;
  request: Packet<'request'>;
  requestPacketId: string;
  commits: Stored<'commit'>[];
  seal: Stored<'seal'> | null;
  reveals: Stored<'reveal'>[];
  verdict: Stored<'verdict'> | null;
  attestations: Stored<'attestation'>[];
}

function decode<T extends AnyPacket['type']>(raw: string): Packet<T> {
  return parseEnvelope(JSON.parse(raw)) as unknown as Packet<T>;
}

/**
 * The quorum history in libSQL, through drizzle. Every write that belongs together is one transaction;
 * packet inserts are idempotent (`on conflict do nothing` on the packet id), so replays from several
 * transports or several relays over one database store each packet once.
 */
export class HistoryStore {
  /**
   * `checkFile`: for a local database file, throws when the file was deleted or replaced under the
   * open connection (`databaseFileCheck`); `counts`, what /healthz asks, runs it first.
   */
  constructor(
    readonly db: HistoryDb,
    readonly checkFile?: () => void,
  ) {}

  /**
   * Move queued requests from the admission log into the history, signed by their coordinator, in one
   * transaction per call: each `requests` row (with its models) is inserted and its `request_intake`
   * row deleted together, so a request is always in exactly one of the two. `expired` moves carry the
   * error code (e.g. `QUEUE_TIMEOUT`); `pending` ones are then coordinated by the caller.
   */
  async moveFromIntake(
    moves: readonly {
      seq: number;
      request: Stored<'request'>;
      status: 'pending' | 'expired';
      error?: string;
    }[],
    now: number,
  ): Promise<void> {
    if (moves.length === 0) return;
    await this.db.transaction(async (tx) => {
      const rows = moves.map((m) => {
        const { request, models } = requestRows(m.request, now);
        return {
          request: { ...request, status: m.status, error: m.error ?? null },
          models,
        };
      });
      await tx
        .insert(requests)
        .values(rows.map((r) => r.request))
        .onConflictDoNothing();
      const models = rows.flatMap((r) => r.models);
      if (models.length > 0) await tx.insert(requestModels).values(models).onConflictDoNothing();
      await tx.delete(requestIntake).where(
        inArray(
          requestIntake.seq,
          moves.map((m) => m.seq),
        ),
      );
    });
  }

  /** Drop an admission-log row that can no longer be dispatched (its body does not parse). */
  async dropFromIntake(seq: number): Promise<void> {
    await this.db.delete(requestIntake).where(eq(requestIntake.seq, seq));
  }

  async hasRequest(requestId: string): Promise<boolean> {
    const r = await this.db
      .select({ id: requests.requestId })
      .from(requests)
      .where(eq(requests.requestId, requestId));
    return r.length > 0;
  }

  async recordCommit(c: Stored<'commit'>): Promise<void> {
    if (!(await this.hasRequest(c.packet.body.requestId))) return;
    await this.db.insert(commits).values(commitRow(c)).onConflictDoNothing();
  }

  async recordSeal(s: Stored<'seal'>, now: number): Promise<void> {
    const { seal, members } = sealRows(s);
    await this.db.transaction(async (tx) => {
      const existing = await tx
        .select({ id: requests.requestId })
        .from(requests)
        .where(eq(requests.requestId, seal.requestId));
      if (existing.length === 0) return;
      await tx.insert(seals).values(seal).onConflictDoNothing();
      if (members.length > 0) await tx.insert(sealMembers).values(members).onConflictDoNothing();
      // Reveals taken before the seal was (see recordReveal) from nodes it left out go.
      await tx.delete(reveals).where(
        and(
          eq(reveals.requestId, seal.requestId),
          notInArray(
            reveals.nodeId,
            members.map((m) => m.nodeId),
          ),
        ),
      );
      await tx
        .update(requests)
        .set({ status: 'sealed', updatedAt: now })
        .where(and(eq(requests.requestId, seal.requestId), eq(requests.status, 'pending')));
    });
  }

  /**
   * Store a reveal from a member of the request's seal, at most `REVEALS_PER_MEMBER` of them (the
   * observer's bound), until the verdict is recorded. A reveal from anyone else has no place in the
   * transcript: taken, a flood of them would only fill the database. One after the verdict is no part
   * of what the verdict was computed over, and a member's second valid reveal then would leave it
   * ambiguous which of the two the transcript holds (the verdict names only rejected members' reveals).
   * A reveal may be recorded before its seal is (the coordinator records its seal after publishing it):
   * then it is kept, and `recordSeal` drops those from nodes the seal left out.
   */
  async recordReveal(r: Stored<'reveal'>): Promise<void> {
    const { requestId } = r.packet.body;
    const [state] = await this.db
      .select({
        decided: sql<number>`exists (select 1 from ${verdicts} where ${verdicts.requestId} = ${requestId})`,
        sealed: sql<number>`exists (select 1 from ${seals} where ${seals.requestId} = ${requestId})`,
        member: sql<number>`exists (select 1 from ${sealMembers} where ${sealMembers.requestId} = ${requestId} and ${sealMembers.nodeId} = ${r.packet.from})`,
      })
      .from(requests)
      .where(eq(requests.requestId, requestId));
    if (state === undefined || Number(state.decided) === 1) return;
    if (Number(state.sealed) === 1 && Number(state.member) !== 1) return;
    const held = await this.db
      .select({ n: sql<number>`count(*)` })
      .from(reveals)
      .where(and(eq(reveals.requestId, requestId), eq(reveals.nodeId, r.packet.from)));
    if (Number(held[0]?.n ?? 0) >= REVEALS_PER_MEMBER) return;
    await this.db.insert(reveals).values(revealRow(r)).onConflictDoNothing();
  }

  /**
   * Store a verdict, its entries, the request's final status, and the reputation deltas, at most once
   * per request (a second verdict packet for the same request changes nothing).
   */
  async recordVerdict(v: Stored<'verdict'>, now: number): Promise<boolean> {
    const { verdict, entries } = verdictRows(v);
    return this.db.transaction(async (tx) => {
      const existing = await tx
        .select({ id: verdicts.requestId })
        .from(verdicts)
        .where(eq(verdicts.requestId, verdict.requestId));
      if (existing.length > 0) return false;
      const sealed = await tx
        .select({ id: seals.packetId })
        .from(seals)
        .where(eq(seals.packetId, verdict.sealId));
      if (sealed.length === 0) return false;
      await tx.insert(verdicts).values(verdict);
      if (entries.length > 0) await tx.insert(verdictEntriesTable).values(entries);
      await tx
        .update(requests)
        .set({ status: verdict.status === 'accepted' ? 'verdict' : 'no-consensus', updatedAt: now })
        .where(eq(requests.requestId, verdict.requestId));
      for (const d of reputationDeltas(entries)) {
        const current = await tx.select().from(reputation).where(eq(reputation.nodeId, d.nodeId));
        const base = current[0] ?? { agreements: 0, disagreements: 0, withheld: 0, invalid: 0, commits: 0 };
        const next = {
          agreements: base.agreements + d.agreements,
          disagreements: base.disagreements + d.disagreements,
          withheld: base.withheld + d.withheld,
          invalid: base.invalid + d.invalid,
        };
        const row = { ...next, commits: base.commits + 1, score: reputationScore(next), updatedAt: now };
        await tx
          .insert(reputation)
          .values({ nodeId: d.nodeId, ...row })
          .onConflictDoUpdate({ target: reputation.nodeId, set: row });
      }
      return true;
    });
  }

  async recordAttestation(a: Stored<'attestation'>): Promise<void> {
    if (!(await this.hasRequest(a.packet.body.requestId))) return;
    await this.db.insert(attestations).values(attestationRow(a)).onConflictDoNothing();
  }

  async recordHeartbeat(h: Stored<'heartbeat'>, now: number): Promise<void> {
    const row = nodeRow(h, now);
    const { firstSeen: _keep, nodeId: _id, ...update } = row;
    await this.db.insert(nodes).values(row).onConflictDoUpdate({ target: nodes.nodeId, set: update });
  }

  async setStatus(
    requestId: string,
    status: RequestStatus,
    now: number,
    error: string | null = null,
  ): Promise<void> {
    await this.db
      .update(requests)
      .set({ status, error, updatedAt: now })
      .where(eq(requests.requestId, requestId));
  }

  /** Requests still open (pending or sealed): what a restarted relay resumes or expires. */
  async openRequests(): Promise<
    { requestId: string; status: RequestStatus; raw: string; packetId: string }[]
  > {
    return this.db
      .select({
        requestId: requests.requestId,
        status: requests.status,
        raw: requests.raw,
        packetId: requests.packetId,
      })
      .from(requests)
      .where(inArray(requests.status, ['pending', 'sealed']))
      .orderBy(asc(requests.createdAt));
  }

  async getRequest(requestId: string): Promise<RequestDetail | null> {
    const rows = await this.db.select().from(requests).where(eq(requests.requestId, requestId));
    const r = rows[0];
    if (!r) return null;
    const [c, s, rv, v, a] = await Promise.all([
      this.db.select().from(commits).where(eq(commits.requestId, requestId)).orderBy(asc(commits.packetId)),
      this.db.select().from(seals).where(eq(seals.requestId, requestId)),
      this.db.select().from(reveals).where(eq(reveals.requestId, requestId)).orderBy(asc(reveals.packetId)),
      this.db.select().from(verdicts).where(eq(verdicts.requestId, requestId)),
      this.db
        .select()
        .from(attestations)
        .where(eq(attestations.requestId, requestId))
        .orderBy(asc(attestations.nodeId)),
    ]);
    return {
      requestId,
      status: r.status,
      error: r.error,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      request: decode<'request'>(r.raw),
      requestPacketId: r.packetId,
      commits: c.map((x) => ({ id: x.packetId, packet: decode<'commit'>(x.raw) })),
      seal: s[0] ? { id: s[0].packetId, packet: decode<'seal'>(s[0].raw) } : null,
      reveals: rv.map((x) => ({ id: x.packetId, packet: decode<'reveal'>(x.raw) })),
      verdict: v[0] ? { id: v[0].packetId, packet: decode<'verdict'>(v[0].raw) } : null,
      attestations: a.map((x) => ({ id: x.packetId, packet: decode<'attestation'>(x.raw) })),
    };
  }

  /**
   * The transcript packets of a request (request, sealed commits, seal, reveals), or null. With a
   * verdict, the reveals are those it was computed over (`selectReveals`: the ones its entries name),
   * not every reveal stored: one that came after the verdict is no part of it.
   */
  async transcriptPackets(requestId: string): Promise<AnyPacket[] | null> {
    const d = await this.getRequest(requestId);
    if (!d?.seal) return null;
    const sealed = new Set(d.seal.packet.body.members.map((m) => m.commitId));
    const chosen = d.verdict
      ? selectReveals(
          d.verdict.packet.body.verdict,
          { id: d.requestPacketId, packet: d.request },
          d.seal,
          d.reveals,
        )
      : null;
    return [
      d.request,
      ...d.commits.filter((c) => sealed.has(c.id)).map((c) => c.packet),
      d.seal.packet,
      ...(chosen?.reveals ?? d.reveals).map((r) => r.packet),
    ] as AnyPacket[];
  }

  /**
   * A page of the history, newest first (keyset on created_at and request id). With `model`, the page
   * is read through that model's rows of `request_models` (`request_models_model_created_idx`), so a
   * model with few requests, or none, costs a few index seeks instead of a scan of every request; only
   * beside `status`, when the model has many requests, through the status index instead (a common model
   * and a rare status).
   */
  async listHistory(q: HistoryQuery): Promise<{ items: HistoryItem[]; nextCursor: string | null }> {
    const byModel = q.model !== undefined && (q.status === undefined || (await this.#fewRequests(q.model)));
    const where: SQL[] = [];
    if (q.status) where.push(eq(requests.status, q.status));
    if (q.origin) where.push(eq(requests.originKind, q.origin));
    if (q.model !== undefined && byModel) where.push(eq(requestModels.modelId, q.model));
    else if (q.model !== undefined) {
      where.push(
        exists(
          this.db
            .select({ one: sql`1` })
            .from(requestModels)
            .where(and(eq(requestModels.requestId, requests.requestId), eq(requestModels.modelId, q.model))),
        ),
      );
    }
    if (q.node) {
      const node = q.node;
      where.push(
        or(
          eq(requests.coordinator, node),
          exists(
            this.db
              .select({ one: sql`1` })
              .from(commits)
              .where(and(eq(commits.requestId, requests.requestId), eq(commits.nodeId, node))),
          ),
        ) as SQL,
      );
    }
    // Read through request_models, its (created_at, request_id) are the request's own.
    const createdAt = byModel ? requestModels.createdAt : requests.createdAt;
    const requestId = byModel ? requestModels.requestId : requests.requestId;
    if (q.cursor) {
      const [at, id] = parseCursor(q.cursor);
      where.push(or(lt(createdAt, at), and(eq(createdAt, at), lt(requestId, id))) as SQL);
    }
    const columns = {
      requestId: requests.requestId,
      status: requests.status,
      coordinator: requests.coordinator,
      origin: requests.originKind,
      acceptedModels: requests.acceptedModels,
      // As bytes: SQLite's text functions and the driver end a TEXT value at its first NUL, and a
      // prompt may hold one (the packet, and so GET /v1/inference/:id, has it whole).
      promptBytes: sql<unknown>`CAST(${requests.prompt} AS BLOB)`,
      createdAt: requests.createdAt,
      updatedAt: requests.updatedAt,
      verdictDigest: verdicts.verdictDigest,
      transcriptRoot: verdicts.transcriptRoot,
      winnerNodeId: verdicts.winnerNodeId,
      winnerModelId: verdicts.winnerModelId,
    };
    const rows = await (byModel
      ? this.db
          .select(columns)
          .from(requestModels)
          .innerJoin(requests, eq(requests.requestId, requestModels.requestId))
      : this.db.select(columns).from(requests)
    )
      .leftJoin(verdicts, eq(verdicts.requestId, requests.requestId))
      .where(where.length > 0 ? and(...where) : undefined)
      .orderBy(desc(createdAt), desc(requestId))
      .limit(q.limit + 1);
    const items = rows.slice(0, q.limit).map(({ promptBytes, ...r }) => {
      const prompt = textOfBytes(promptBytes);
      return {
        ...r,
        prompt: prompt === null ? null : prompt.length > 200 ? `${prompt.slice(0, 200)}…` : prompt,
      };
    });
    const last = items[items.length - 1];
    return {
      items,
      nextCursor: rows.length > q.limit && last ? `${last.createdAt}:${last.requestId}` : null,
    };
  }

  /** Whether fewer than `MODEL_PROBE` requests accepted `model` (counted through its index, bounded). */
  async #fewRequests(model: string): Promise<boolean> {
    const [row] = await this.db.all<{ n: number }>(
      sql`SELECT count(*) AS n FROM (SELECT 1 FROM ${requestModels} WHERE ${requestModels.modelId} = ${model} LIMIT ${MODEL_PROBE})`,
    );
    return Number(row?.n ?? 0) < MODEL_PROBE;
  }

  /**
   * Nodes, the most recently heard first, a page at a time (keyset on last seen and node id: a cursor
   * stays valid while heartbeats come in), or the one node `q.node`.
   */
  async listNodes(q: NodesQuery): Promise<{ nodes: NodeSummary[]; nextCursor: string | null }> {
    const where: SQL[] = [];
    if (q.node !== undefined) where.push(eq(nodes.nodeId, q.node));
    if (q.cursor !== undefined) {
      const [seen, id] = q.cursor.split(':') as [string, string];
      const lastSeen = Number(seen);
      where.push(
        or(lt(nodes.lastSeen, lastSeen), and(eq(nodes.lastSeen, lastSeen), lt(nodes.nodeId, id))) as SQL,
      );
    }
    const rows = await this.db
      .select({ node: nodes, rep: reputation })
      .from(nodes)
      .leftJoin(reputation, eq(reputation.nodeId, nodes.nodeId))
      .where(where.length > 0 ? and(...where) : undefined)
      .orderBy(desc(nodes.lastSeen), desc(nodes.nodeId))
      .limit(q.limit + 1);
    const page = rows.slice(0, q.limit);
    const last = page.at(-1)?.node;
    return {
      nodes: page.map(toNodeSummary),
      nextCursor: rows.length > q.limit && last ? `${last.lastSeen}:${last.nodeId}` : null,
    };
  }

  /**
   * Forget up to `limit` nodes last heard before `before` that never took part in a verdict (no
   * reputation row): the registry of a network anyone may send heartbeats to (from fresh keys, too)
   * stays bounded; a node with a history keeps its row. Returns how many went.
   */
  async pruneNodes(before: number, limit = 1_000): Promise<number> {
    const r = await this.db.run(sql`DELETE FROM ${nodes} WHERE ${nodes.nodeId} IN (
      SELECT ${nodes.nodeId} FROM ${nodes}
      WHERE ${nodes.lastSeen} < ${before}
        AND NOT EXISTS (SELECT 1 FROM ${reputation} WHERE ${reputation.nodeId} = ${nodes.nodeId})
      ORDER BY ${nodes.lastSeen} LIMIT ${limit})`);
    return r.rowsAffected;
  }

  /** Models that nodes advertised in heartbeats seen since `since`. */
  async advertisedModels(since: number): Promise<string[]> {
    const rows = await this.db
      .select({ models: nodes.models })
      .from(nodes)
      .where(sql`${nodes.lastSeen} >= ${since}`);
    return [...new Set(rows.flatMap((r) => r.models.map((m) => m.id)))].sort();
  }

  async apiKeyByHash(hash: string): Promise<{ id: string; quotaPerDay: number; revoked: boolean } | null> {
    const rows = await this.db.select().from(apiKeys).where(eq(apiKeys.hash, hash));
    const k = rows[0];
    return k ? { id: k.id, quotaPerDay: k.quotaPerDay, revoked: k.revokedAt !== null } : null;
  }

  async createApiKey(
    row: { id: string; hash: string; label: string; quotaPerDay: number },
    now: number,
  ): Promise<void> {
    await this.db
      .insert(apiKeys)
      .values({ ...row, createdAt: now })
      .onConflictDoNothing();
  }

  async counts(): Promise<Record<RequestStatus, number>> {
    this.checkFile?.();
    const rows = await this.db
      .select({ status: requests.status, n: sql<number>`count(*)` })
      .from(requests)
      .groupBy(requests.status);
    const out = { pending: 0, sealed: 0, verdict: 0, 'no-consensus': 0, expired: 0, failed: 0 } as Record<
      RequestStatus,
      number
    >;
    for (const r of rows) out[r.status] = Number(r.n);
    return out;
  }
}

export interface HistoryItem {
  requestId: string;
  status: RequestStatus;
  coordinator: string;
  origin: OriginKind;
  acceptedModels: string[];
  prompt: string | null;
  createdAt: number;
  updatedAt: number;
  verdictDigest: string | null;
  transcriptRoot: string | null;
  winnerNodeId: string | null;
  winnerModelId: string | null;
}

const UTF8 = new TextDecoder();

/**
 * The UTF-8 text of a BLOB as the drivers hand it over: an ArrayBuffer (the file client; from another
 * realm under workerd, where `instanceof` fails), a typed array or a plain array of bytes; null stays null.
 */
function textOfBytes(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (ArrayBuffer.isView(v)) return UTF8.decode(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  if (Object.prototype.toString.call(v) === '[object ArrayBuffer]') {
    return UTF8.decode(new Uint8Array(v as ArrayBuffer));
  }
  if (Array.isArray(v)) return UTF8.decode(Uint8Array.from(v as number[]));
  throw new TypeError(`a BLOB read as ${Object.prototype.toString.call(v)}`);
}

/**
 * `listHistory` with both `model` and `status`: a model with fewer requests than this is read through
 * its own index (at most this many rows looked at), a commoner one through the status index.
 */
const MODEL_PROBE = 10_000;

/** How long a node that never took part in a verdict stays in the registry after its last heartbeat. */
export const NODE_RETENTION_MS = 24 * 60 * 60 * 1000;

export interface NodesQuery {
  /** Page size. */
  limit: number;
  /** The previous page's `nextCursor` (`<lastSeen>:<nodeId>`). */
  cursor?: string;
  /** Only this node. */
  node?: string;
}

function toNodeSummary({
  node,
  rep,
}: {
  node: typeof nodes.$inferSelect;
  rep: typeof reputation.$inferSelect | null;
}): NodeSummary {
  return {
    nodeId: node.nodeId,
    role: node.role,
    software: node.software,
    models: node.models,
    embedders: node.embedders,
    tokensPerSecond: node.tokensPerSecond,
    embeddingsPerSecond: node.embeddingsPerSecond,
    firstSeen: node.firstSeen,
    lastSeen: node.lastSeen,
    reputation: rep
      ? {
          score: rep.score,
          agreements: rep.agreements,
          disagreements: rep.disagreements,
          withheld: rep.withheld,
          invalid: rep.invalid,
          commits: rep.commits,
        }
      : { score: 0, agreements: 0, disagreements: 0, withheld: 0, invalid: 0, commits: 0 },
  };
}

export interface NodeSummary {
  nodeId: string;
  role: string;
  software: string;
  models: unknown;
  embedders: unknown;
  tokensPerSecond: number;
  embeddingsPerSecond: number;
  firstSeen: number;
  lastSeen: number;
  reputation: {
    score: number;
    agreements: number;
    disagreements: number;
    withheld: number;
    invalid: number;
    commits: number;
  };
}

function parseCursor(cursor: string): [number, string] {
  const m = /^(\d{1,16}):([0-9a-zA-Z:x]{1,128})$/.exec(cursor);
  if (!m) throw new RangeError('bad cursor');
  return [Number(m[1]), m[2] as string];
}

export type { RequestBody, Verdict };
