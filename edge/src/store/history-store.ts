import {
  type AnyPacket,
  buildTranscript,
  FRAME_BOUNDS,
  type HeartbeatBody,
  LIMITS,
  MAX_OPEN_COMMITS,
  NON_MEMBER_REVEAL_BYTES,
  type Packet,
  parseEnvelope,
  REVEALS_PER_MEMBER,
  type RequestBody,
  revealBytes,
  selectReveals,
  sha256Hex,
  transcriptRoot,
  utf8,
  type Verdict,
} from '@synod/shared';
import {
  apiKeys,
  attestationRow,
  attestations,
  commitRow,
  commits,
  coordinatorLeases,
  declineRow,
  declines,
  healthProbes,
  type historySchema,
  nodeRow,
  nodes,
  type RequestStatus,
  reputation,
  reputationDeltas,
  reputationScore,
  requestCounts,
  requestIntake,
  requestModels,
  requestRows,
  requests,
  revealRow,
  reveals,
  sealMembers,
  sealRows,
  seals,
  usage,
  verdictEntriesTable,
  verdictRows,
  verdicts,
} from '@synod/shared/history';
import { and, asc, desc, eq, gt, gte, inArray, lt, notInArray, type SQL, sql } from 'drizzle-orm';
import type { LibSQLDatabase } from 'drizzle-orm/libsql';
import { utcDay } from '../http/auth.ts';
import { HeartbeatWrites } from './heartbeat-writes.ts';
import { type HistoryItem, type HistoryQuery, listHistory } from './history-pages.ts';
import { DB_NOW_MS } from './intake-store.ts';
import { listNodes, NO_RECORD, type NodeSummary, type NodesQuery } from './node-pages.ts';

export type HistoryDb = LibSQLDatabase<typeof historySchema>;

export interface Stored<T extends AnyPacket['type']> {
  id: string;
  packet: Packet<T>;
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
  /** Nodes' signed declines (at most `DECLINES_HELD`), by node id. */
  declines: Stored<'decline'>[];
}

function decode<T extends AnyPacket['type']>(raw: string): Packet<T> {
  return parseEnvelope(JSON.parse(raw)) as unknown as Packet<T>;
}

/**
 * The quorum history in libSQL, through drizzle. Every write that belongs together is one transaction;
 * packet inserts are idempotent (`on conflict do nothing` on the packet id), so replays from several
 * transports or several relays over one database store each packet once.
 */
/**
 * Attestations a request takes from anyone before it takes only its seal members' (at most 128 more:
 * `maxCommits`' bound), so that keys made for the purpose cannot grow a request without end.
 */
export const ATTESTATIONS_FROM_OTHERS = 64;

/**
 * Declines a request takes (one per node, before its seal): a decline counts toward ending a request only
 * where a seal would trust its node, so more than a seal's worth say nothing new, and keys made for the
 * purpose cannot grow a request without end.
 */
export const DECLINES_HELD = 64;

/** The statuses of a request not final yet. */
const OPEN_STATUSES: RequestStatus[] = ['pending', 'sealed'];

/** Commitments one node has stored for one request: its commit, and a second one as evidence. */
export const COMMITS_PER_NODE = 2;

export class HistoryStore {
  /**
   * `checkFile`: for a local database file, throws when the file was deleted or replaced under the
   * open connection (`databaseFileCheck`); `counts`, what /healthz asks, runs it first.
   */
  constructor(
    readonly db: HistoryDb,
    readonly checkFile?: () => void,
  ) {}

  /** The heartbeats this relay wrote lately, for `recordPacket` to write each node's once an interval. */
  readonly heartbeatWrites = new HeartbeatWrites();

  /**
   * Move queued requests from the admission log into the history, signed by their coordinator, in one
   * transaction per call: each `requests` row (with its models) is inserted and its `request_intake`
   * row deleted together, so a request is always in exactly one of the two. `expired` moves carry the
   * error code (e.g. `QUEUE_TIMEOUT`); `pending` ones are then coordinated by the caller. An `expired`
   * move never reached the network: its caller is given back the request its daily quota was charged
   * (`usage` of the UTC day of its `createdAt`, the day it was admitted), in the same transaction.
   *
   * Only rows still in the log move: one another relay moved meanwhile (its coordinator's dispatcher and
   * another relay's `Dispatcher.expireAbandoned` may race for a row), or dropped, is left as that relay made
   * it. Returns the seqs that moved here: the caller starts only those.
   */
  async moveFromIntake(
    moves: readonly {
      seq: number;
      request: Stored<'request'>;
      status: 'pending' | 'expired';
      error?: string;
    }[],
    now: number,
  ): Promise<Set<number>> {
    if (moves.length === 0) return new Set();
    return this.db.transaction(async (tx) => {
      const deleted = await tx
        .delete(requestIntake)
        .where(
          inArray(
            requestIntake.seq,
            moves.map((m) => m.seq),
          ),
        )
        .returning({
          seq: requestIntake.seq,
          callerId: requestIntake.callerId,
          createdAt: requestIntake.createdAt,
        });
      const moved = new Set(deleted.map((d) => d.seq));
      const expired = new Set(moves.filter((m) => m.status === 'expired').map((m) => m.seq));
      await refundUsage(
        tx,
        deleted.filter((d) => expired.has(d.seq)),
      );
      const rows = moves
        .filter((m) => moved.has(m.seq))
        .map((m) => {
          const { request, models } = requestRows(m.request, now);
          return {
            request: { ...request, status: m.status, error: m.error ?? null },
            models,
          };
        });
      if (rows.length === 0) return moved;
      await tx
        .insert(requests)
        .values(rows.map((r) => r.request))
        .onConflictDoNothing();
      const models = rows.flatMap((r) => r.models);
      if (models.length > 0) await tx.insert(requestModels).values(models).onConflictDoNothing();
      return moved;
    });
  }

  /** Drop an admission-log row that can no longer be dispatched (its body does not parse). */
  async dropFromIntake(seq: number): Promise<void> {
    await this.db.delete(requestIntake).where(eq(requestIntake.seq, seq));
  }

  /**
   * Why a request's history would take no verdict now, for a log line: `no-request`, its `status` when
   * it is not open, the seals it holds (ids) when it is, or null when it holds a verdict already.
   */
  async verdictRefusal(
    requestId: string,
  ): Promise<{ request: 'missing' } | { status: string; coordinator: string; seals: string[] } | null> {
    if ((await this.db.select().from(verdicts).where(eq(verdicts.requestId, requestId))).length > 0)
      return null;
    const r = await this.db
      .select({ status: requests.status, coordinator: requests.coordinator })
      .from(requests)
      .where(eq(requests.requestId, requestId));
    const row = r[0];
    if (row === undefined) return { request: 'missing' };
    const held = await this.db
      .select({ id: seals.packetId })
      .from(seals)
      .where(eq(seals.requestId, requestId));
    return { status: row.status, coordinator: row.coordinator, seals: held.map((s) => s.id) };
  }

  async hasRequest(requestId: string): Promise<boolean> {
    const r = await this.db
      .select({ id: requests.requestId })
      .from(requests)
      .where(eq(requests.requestId, requestId));
    return r.length > 0;
  }

  /**
   * Store a commit, as far as a coordinator could seal it or it is evidence: at most
   * `COMMITS_PER_NODE` commitments a node for one request (a second, different one is evidence of
   * equivocation, and no coordinator seals either: a third adds nothing), and once the request is
   * sealed, only its members' (a member's second commitment is evidence against it); before the seal,
   * at most `MAX_OPEN_COMMITS` for the request, from all nodes together, as a node's observer holds
   * them. Any key can sign a commit: taken from anyone after the seal, or without end before it, they
   * would only fill the database and every read of the request. Keys made for the purpose may take that
   * room before the nodes the coordinator seals (it knows which nodes are eligible; the history does
   * not): the seal then brings its members' commits, as the coordinator's machine holds them
   * (`recordSeal`).
   */
  async recordCommit(c: Stored<'commit'>): Promise<void> {
    const { requestId } = c.packet.body;
    const [state] = await this.db
      .select({
        sealed: sql<number>`exists (select 1 from ${seals} where ${seals.requestId} = ${requestId})`,
        member: sql<number>`exists (select 1 from ${sealMembers} where ${sealMembers.requestId} = ${requestId} and ${sealMembers.nodeId} = ${c.packet.from})`,
        held: sql<number>`(select count(*) from ${commits} where ${commits.requestId} = ${requestId} and ${commits.nodeId} = ${c.packet.from})`,
        open: sql<number>`(select count(*) from (select 1 from ${commits} where ${commits.requestId} = ${requestId} limit ${MAX_OPEN_COMMITS}))`,
      })
      .from(requests)
      .where(eq(requests.requestId, requestId));
    if (state === undefined) return;
    if (Number(state.sealed) === 1 && Number(state.member) !== 1) return;
    if (Number(state.held) >= COMMITS_PER_NODE) return;
    if (Number(state.sealed) !== 1 && Number(state.open) >= MAX_OPEN_COMMITS) return;
    await this.db.insert(commits).values(commitRow(c)).onConflictDoNothing();
  }

  /**
   * Store a request's seal: only its coordinator's (the request packet's author, as every node's
   * observer checks, NOT_COORDINATOR), over that request packet, and only the first. Any node can sign a
   * well-formed seal of the commits it saw: taken first, it would have kept the coordinator's seal out,
   * and with it the verdict computed over that seal. A second seal changes nothing stored.
   */
  async recordSeal(s: Stored<'seal'>, now: number, sealed: readonly Stored<'commit'>[] = []): Promise<void> {
    const { seal, members } = sealRows(s);
    await this.db.transaction(async (tx) => {
      const [request] = await tx
        .select({ coordinator: requests.coordinator, packetId: requests.packetId })
        .from(requests)
        .where(eq(requests.requestId, seal.requestId));
      if (request === undefined) return;
      if (request.coordinator !== seal.coordinator || request.packetId !== seal.requestPacketId) return;
      // The first seal only: a second one stores nothing, not even the commits it brings.
      const inserted = await tx
        .insert(seals)
        .values(seal)
        .onConflictDoNothing()
        .returning({ id: seals.packetId });
      if (inserted.length === 0) return;
      // The members' commits, as the coordinator's machine holds them, where the history bounded them
      // out before the seal (`recordCommit`): each exactly the one the seal names for its node.
      const named = new Map(s.packet.body.members.map((m) => [m.commitId, m]));
      for (const c of sealed) {
        const m = named.get(c.id);
        const b = c.packet.body;
        if (m === undefined || c.packet.from !== m.nodeId || b.requestId !== seal.requestId) continue;
        if (b.commitment !== m.commitment) continue;
        await tx.insert(commits).values(commitRow(c)).onConflictDoNothing();
      }
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
   * Store a reveal as a node's observer holds it (`revealRoom` with `REVEALS_PER_MEMBER`), until the
   * verdict is recorded: at most that many from one node, and from nodes outside the seal, together,
   * that many times what the seal's members leave of the verdict's `rejected` bound. Those are part of
   * the verdict's transcript too: the coordinator holds one of each (within the same bound) and its
   * verdict rejects it NOT_SEALED, citing its packet id, so without it /v1/verify/:id could not
   * recompute the verdict. Beyond the bound a flood under fresh keys would only fill the database. One
   * after the verdict is no part of what the verdict was computed over, and a member's second valid
   * reveal then would leave it ambiguous which of the two the transcript holds (the verdict names only
   * rejected members' reveals).
   * A reveal may be recorded before its seal is (the coordinator records its seal after publishing it):
   * then it is kept if its node committed to the request (no one else can be sealed), and `recordSeal`
   * drops those from nodes the seal left out (the coordinator refuses a reveal before its seal).
   */
  async recordReveal(r: Stored<'reveal'>): Promise<void> {
    const { requestId } = r.packet.body;
    const from = r.packet.from;
    const [state] = await this.db
      .select({
        decided: sql<number>`exists (select 1 from ${verdicts} where ${verdicts.requestId} = ${requestId})`,
        sealSize: sql<
          number | null
        >`(select ${seals.memberCount} from ${seals} where ${seals.requestId} = ${requestId})`,
        member: sql<number>`exists (select 1 from ${sealMembers} where ${sealMembers.requestId} = ${requestId} and ${sealMembers.nodeId} = ${from})`,
        committed: sql<number>`exists (select 1 from ${commits} where ${commits.requestId} = ${requestId} and ${commits.nodeId} = ${from})`,
        held: sql<number>`(select count(*) from ${reveals} where ${reveals.requestId} = ${requestId} and ${reveals.nodeId} = ${from})`,
      })
      .from(requests)
      .where(eq(requests.requestId, requestId));
    if (state === undefined || Number(state.decided) === 1) return;
    if (Number(state.held) >= REVEALS_PER_MEMBER) return;
    if (state.sealSize === null) {
      if (Number(state.committed) !== 1) return;
    } else if (Number(state.member) !== 1) {
      const room = REVEALS_PER_MEMBER * Math.max(0, LIMITS.maxVerdictEntries - 2 * Number(state.sealSize));
      const [outside] = await this.db
        .select({
          n: sql<number>`count(*)`,
          bytes: sql<number>`coalesce(sum(length(cast(${reveals.raw} as blob))), 0)`,
        })
        .from(reveals)
        .where(
          and(
            eq(reveals.requestId, requestId),
            sql`${reveals.nodeId} not in (select ${sealMembers.nodeId} from ${sealMembers} where ${sealMembers.requestId} = ${requestId})`,
          ),
        );
      if (Number(outside?.n ?? 0) >= room) return;
      // And within the bytes an observer holds of them (`revealRoom`): a flood of large reveals under
      // fresh keys stores at most that much for a request, not hundreds of ~256 KiB packets.
      const budget = REVEALS_PER_MEMBER * NON_MEMBER_REVEAL_BYTES;
      if (Number(outside?.bytes ?? 0) + revealBytes(r.packet) > budget) return;
    }
    await this.db.insert(reveals).values(revealRow(r)).onConflictDoNothing();
  }

  /**
   * Store a verdict, its entries, the request's final status, and the reputation deltas, at most once
   * per request (a second verdict packet for the same request changes nothing), and only the request
   * coordinator's, over the seal stored for it: a verdict signed by anyone else is not the request's
   * (NOT_COORDINATOR to every node's observer), whatever it says. A request already expired or failed
   * takes none: its final status was told (and, for a chain request, settled) on that.
   * `vouches` says which nodes are proven (or trusted) now: an accepted member's agreement is vouched for
   * (`reputation.vouched`) when another accepted member is one of them.
   */
  async recordVerdict(
    v: Stored<'verdict'>,
    now: number,
    vouches: (nodeId: string) => boolean = () => false,
  ): Promise<boolean> {
    const { verdict, entries } = verdictRows(v);
    return this.db.transaction(async (tx) => {
      const existing = await tx
        .select({ id: verdicts.requestId })
        .from(verdicts)
        .where(eq(verdicts.requestId, verdict.requestId));
      if (existing.length > 0) return false;
      // The request's own seal, signed (as the verdict must be) by the request's coordinator.
      const sealed = await tx
        .select({ id: seals.packetId })
        .from(seals)
        .innerJoin(requests, eq(requests.requestId, seals.requestId))
        .where(
          and(
            eq(seals.packetId, verdict.sealId),
            eq(seals.requestId, verdict.requestId),
            eq(requests.coordinator, verdict.coordinator),
            inArray(requests.status, OPEN_STATUSES),
          ),
        );
      if (sealed.length === 0) return false;
      await tx.insert(verdicts).values(verdict);
      if (entries.length > 0) await tx.insert(verdictEntriesTable).values(entries);
      await tx
        .update(requests)
        .set({ status: verdict.status === 'accepted' ? 'verdict' : 'no-consensus', updatedAt: now })
        .where(eq(requests.requestId, verdict.requestId));
      // A node outside the seal (a NOT_SEALED reveal) counts only if it already has a reputation: keys
      // made for one reveal each would each get a row, and a node with one is never forgotten.
      const members = new Set(
        (
          await tx
            .select({ nodeId: sealMembers.nodeId })
            .from(sealMembers)
            .where(eq(sealMembers.requestId, verdict.requestId))
        ).map((m) => m.nodeId),
      );
      // Accepted members proven (or trusted) now: each vouches for the others' agreements.
      const vouchers = new Set(
        entries.filter((e) => e.outcome === 'accepted' && vouches(e.nodeId)).map((e) => e.nodeId),
      );
      for (const d of reputationDeltas(entries, verdict.status)) {
        const current = await tx.select().from(reputation).where(eq(reputation.nodeId, d.nodeId));
        if (current.length === 0 && !members.has(d.nodeId)) continue;
        const base = current[0] ?? NO_RECORD;
        const vouched =
          base.vouched + (d.agreements > 0 && [...vouchers].some((n) => n !== d.nodeId) ? d.agreements : 0);
        const next = {
          agreements: base.agreements + d.agreements,
          disagreements: base.disagreements + d.disagreements,
          withheld: base.withheld + d.withheld,
          invalid: base.invalid + d.invalid,
        };
        const row = {
          ...next,
          commits: base.commits + 1,
          vouched,
          score: reputationScore(next),
          updatedAt: now,
        };
        await tx
          .insert(reputation)
          .values({ nodeId: d.nodeId, ...row })
          .onConflictDoUpdate({ target: reputation.nodeId, set: row });
      }
      return true;
    });
  }

  /**
   * Store a node's attestation of a request's verdict, one per node. Anyone may attest (a verifier
   * recomputes the verdict and signs it), but fresh keys cost nothing: past `ATTESTATIONS_FROM_OTHERS`
   * attestations a request takes only its seal members', so a flood of them neither fills the database
   * nor swells every read of the request.
   */
  async recordAttestation(a: Stored<'attestation'>): Promise<void> {
    const { requestId } = a.packet.body;
    const [state] = await this.db
      .select({
        member: sql<number>`exists (select 1 from ${sealMembers} where ${sealMembers.requestId} = ${requestId} and ${sealMembers.nodeId} = ${a.packet.from})`,
        held: sql<number>`(select count(*) from (select 1 from ${attestations} where ${attestations.requestId} = ${requestId} limit ${ATTESTATIONS_FROM_OTHERS}))`,
      })
      .from(requests)
      .where(eq(requests.requestId, requestId));
    if (state === undefined) return;
    if (Number(state.member) !== 1 && Number(state.held) >= ATTESTATIONS_FROM_OTHERS) return;
    await this.db.insert(attestations).values(attestationRow(a)).onConflictDoNothing();
  }

  /**
   * Store a node's decline of a request: only for that request packet, before its seal, and while the
   * request holds fewer than `DECLINES_HELD`. One per node (a second stores nothing).
   */
  async recordDecline(d: Stored<'decline'>): Promise<void> {
    const { requestId, requestPacketId } = d.packet.body;
    const [state] = await this.db
      .select({
        packetId: requests.packetId,
        sealed: sql<number>`exists (select 1 from ${seals} where ${seals.requestId} = ${requestId})`,
        held: sql<number>`(select count(*) from (select 1 from ${declines} where ${declines.requestId} = ${requestId} limit ${DECLINES_HELD}))`,
      })
      .from(requests)
      .where(eq(requests.requestId, requestId));
    if (state === undefined || state.packetId !== requestPacketId) return;
    if (Number(state.sealed) === 1 || Number(state.held) >= DECLINES_HELD) return;
    await this.db.insert(declines).values(declineRow(d)).onConflictDoNothing();
  }

  /**
   * Store a node's heartbeat (its `nodes` row: capabilities, last seen), and, when its row is new, keep
   * the rows of nodes that never took part in a request (no reputation row, no commit, no seal
   * membership) at `MAX_IDLE_NODES`: past it, the least recently seen of them go, in the same transaction
   * (one batch), so the bound holds whichever relays over the database write. A row only updated adds
   * none, and pushes out none. Returns the node ids pushed out (`HeartbeatWrites.forget` them).
   * Every call writes: the relay's node writes through `recordPacket`, which writes a node's heartbeat
   * at most once per `HEARTBEAT_WRITE_INTERVAL_MS` unless what it advertises changed.
   */
  async recordHeartbeat(h: Stored<'heartbeat'>, now: number): Promise<string[]> {
    const row = nodeRow(h, now);
    const { firstSeen: _keep, nodeId: _id, ...update } = row;
    const [, evicted] = await this.db.batch([
      this.db
        .insert(nodes)
        .values(row)
        .onConflictDoUpdate({
          target: nodes.nodeId,
          // Never backwards: two relays over one database write with their own clocks (one a little
          // behind would set `last_seen` below the other's `first_seen`: nodes_seen_ck refused it).
          set: { ...update, lastSeen: sql`max(excluded.last_seen, ${nodes.lastSeen})` },
        }),
      // Only for a row just made (its first heartbeat is this one) in a table of more rows than the
      // bound at all (both in the LIMIT, which SQLite evaluates first and lazily: as a WHERE term, it
      // would walk the idle rows on every heartbeat): the idle rows counted (a walk of the primary key, a
      // seek into each aggregate a row), and as many as are past the bound go, the least recently seen
      // first (from the old end of `nodes_last_seen_idx`: past nodes that took part and went silent, then
      // a flood's oldest keys).
      this.db
        .delete(nodes)
        .where(
          sql`${nodes.nodeId} IN (
            SELECT i.node_id FROM ${nodes} i WHERE ${idle(sql`i`)}
            ORDER BY i.last_seen, i.node_id
            LIMIT CASE
              WHEN EXISTS (SELECT 1 FROM ${nodes} m WHERE m.node_id = ${row.nodeId} AND m.first_seen = ${now})
                AND (SELECT count(*) FROM ${nodes}) > ${MAX_IDLE_NODES}
              THEN max(0, (SELECT count(*) FROM ${nodes} j WHERE ${idle(sql`j`)}) - ${MAX_IDLE_NODES})
              ELSE 0 END)`,
        )
        .returning({ nodeId: nodes.nodeId }),
    ]);
    return evicted.map((e) => e.nodeId);
  }

  /**
   * Set an open request's status (with its error code): a request already final (a verdict, no
   * consensus, expired, failed) keeps its status, so a late `expired` (a restart's, a machine's) never
   * overwrites a stored verdict, nor a late `failed` an expiry.
   */
  /**
   * A request moved out of the admission log to start (`pending`) that never reached the network (its
   * time ran out while its coordinator signed and stored the step's rows, or its start failed past its
   * deadline): `expired` with `code`, and its caller given back the request its quota was charged (see
   * `moveFromIntake`), both only if it is still `pending`. Returns whether it was.
   */
  async expireUnstarted(
    requestId: string,
    charged: { callerId: string; createdAt: number },
    now: number,
    code = 'QUEUE_TIMEOUT',
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const ended = await tx
        .update(requests)
        .set({ status: 'expired', error: code, updatedAt: now })
        .where(and(eq(requests.requestId, requestId), eq(requests.status, 'pending')))
        .returning({ requestId: requests.requestId });
      if (ended.length === 0) return false;
      await refundUsage(tx, [charged]);
      return true;
    });
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
      .where(and(eq(requests.requestId, requestId), inArray(requests.status, OPEN_STATUSES)));
  }

  /**
   * End requests still open (pending or sealed) that were created before `before`, whoever coordinates
   * them: `expired` with `COORDINATOR_GONE`. For a `before` past any request's seal and reveal windows (and
   * a margin), only requests whose coordinator stopped and never came back are still open then (a live
   * one ends its own, and a restarted one expires its late ones as it starts); without this they stayed
   * `pending` for every relay over the database, and a chain request was never refunded. Returns their ids.
   */
  async expireAbandoned(before: number, now: number): Promise<string[]> {
    const rows = await this.db
      .update(requests)
      .set({ status: 'expired', error: 'COORDINATOR_GONE', updatedAt: now })
      .where(and(inArray(requests.status, OPEN_STATUSES), lt(requests.createdAt, before)))
      .returning({ requestId: requests.requestId });
    return rows.map((r) => r.requestId);
  }

  /**
   * End requests still open (pending or sealed) whose coordinator's lease was last renewed more than
   * `staleMs` before the database's time (`DB_NOW_MS`, the clock leases are renewed on: it crashed or
   * stopped, `coordinator_leases`) and whose own seal and reveal windows
   * ended `graceMs` before `now`: nothing will move them any more (the coordinator's machine holds their
   * seal and reveals), so they are `expired` with `COORDINATOR_GONE` at once, rather than 20 minutes
   * after they were made (`expireAbandoned`, which also covers coordinators without a lease). A
   * coordinator that comes back finds them ended and resumes nothing of them. Read through the status
   * index: open requests are few. Returns their ids.
   */
  async expireOrphaned(except: string, staleMs: number, now: number, graceMs: number): Promise<string[]> {
    const rows = await this.db
      .update(requests)
      .set({ status: 'expired', error: 'COORDINATOR_GONE', updatedAt: now })
      .where(
        and(
          inArray(requests.status, OPEN_STATUSES),
          lt(requests.createdAt, now - graceMs),
          sql`${requests.coordinator} <> ${except}`,
          sql`${requests.coordinator} in (select ${coordinatorLeases.coordinator} from ${coordinatorLeases} where ${coordinatorLeases.renewedAt} < ${sql.raw(DB_NOW_MS)} - ${staleMs})`,
          sql`${requests.createdAt} + json_extract(${requests.frame}, '$.maxTimeMs') + json_extract(${requests.frame}, '$.revealWindowMs') < ${now - graceMs}`,
        ),
      )
      .returning({ requestId: requests.requestId });
    return rows.map((r) => r.requestId);
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
      .where(inArray(requests.status, OPEN_STATUSES))
      .orderBy(asc(requests.createdAt));
  }

  async getRequest(requestId: string): Promise<RequestDetail | null> {
    const rows = await this.db.select().from(requests).where(eq(requests.requestId, requestId));
    const r = rows[0];
    if (!r) return null;
    const [c, s, rv, v, a, dc] = await Promise.all([
      this.db.select().from(commits).where(eq(commits.requestId, requestId)).orderBy(asc(commits.packetId)),
      this.db.select().from(seals).where(eq(seals.requestId, requestId)),
      this.db.select().from(reveals).where(eq(reveals.requestId, requestId)).orderBy(asc(reveals.packetId)),
      this.db.select().from(verdicts).where(eq(verdicts.requestId, requestId)),
      this.db
        .select()
        .from(attestations)
        .where(eq(attestations.requestId, requestId))
        .orderBy(asc(attestations.nodeId)),
      this.db.select().from(declines).where(eq(declines.requestId, requestId)).orderBy(asc(declines.nodeId)),
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
      declines: dc.map((x) => ({ id: x.packetId, packet: decode<'decline'>(x.raw) })),
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
    return [...transcriptHead(d, d.seal), ...verdictReveals(d).map((r) => r.packet)];
  }

  /** A page of the history, newest first: see `listHistory` (history-pages.ts). */
  listHistory(q: HistoryQuery): Promise<{ items: HistoryItem[]; nextCursor: string | null }> {
    return listHistory(this.db, q);
  }

  /**
   * Nodes with at least `minVouched` agreements vouched for by a proven node (`reputation.vouched`) and a
   * reputation score (`reputationScore`, the Wilson lower bound of their agreement rate) of at least
   * `minScore`, most vouched first, at most `limit` (read through `reputation_vouched_idx`).
   */
  async provenNodes(minVouched: number, minScore: number, limit: number): Promise<string[]> {
    const rows = await this.db
      .select({ nodeId: reputation.nodeId })
      .from(reputation)
      .where(and(gte(reputation.vouched, minVouched), gte(reputation.score, minScore)))
      .orderBy(desc(reputation.vouched))
      .limit(limit);
    return rows.map((r) => r.nodeId);
  }

  /**
   * The newest stored heartbeat of each of `nodeIds` heard at or after `since` (relay clock), with when:
   * what a relay that restarted (or another relay over the same database) knows of those nodes before
   * they send their next one.
   */
  async recentHeartbeats(
    nodeIds: readonly string[],
    since: number,
  ): Promise<{ nodeId: string; body: HeartbeatBody; lastSeen: number }[]> {
    const out: { nodeId: string; body: HeartbeatBody; lastSeen: number }[] = [];
    for (let i = 0; i < nodeIds.length; i += 500) {
      const rows = await this.db
        .select({ nodeId: nodes.nodeId, packet: nodes.lastHeartbeat, lastSeen: nodes.lastSeen })
        .from(nodes)
        .where(and(inArray(nodes.nodeId, nodeIds.slice(i, i + 500)), gte(nodes.lastSeen, since)));
      for (const r of rows) out.push({ nodeId: r.nodeId, body: r.packet.body, lastSeen: r.lastSeen });
    }
    return out;
  }

  /**
   * Nodes on their way to a record, for the seat policy's ranking (`SeatPolicy.standing`): a node's
   * standing is its agreements vouched for by a proven node less its disagreements, withheld reveals
   * and invalid packets; those above 0, the highest first, at most `limit`. Only work a proven node
   * agreed with raises it, so keys made for the purpose start at 0, and a node that spoils the seats it
   * is given loses it.
   */
  async nodeStandings(limit: number): Promise<{ nodeId: string; standing: number }[]> {
    const standing = sql<number>`${reputation.vouched} - ${reputation.disagreements} - ${reputation.withheld} - ${reputation.invalid}`;
    return this.db
      .select({ nodeId: reputation.nodeId, standing })
      .from(reputation)
      .where(and(gte(reputation.vouched, 1), gt(standing, 0)))
      .orderBy(desc(standing))
      .limit(limit);
  }

  /** Nodes, the most recently heard first, a page at a time: see `listNodes` (node-pages.ts). */
  listNodes(q: NodesQuery): Promise<{ nodes: NodeSummary[]; nextCursor: string | null }> {
    return listNodes(this.db, q);
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

  /**
   * Requests in the history by status: the counters `request_counts` that triggers keep in the
   * transaction of every insert, status change and delete of a request (migration 0006), so six rows
   * read, however long the history, and the same numbers from every relay over the database.
   */
  async counts(): Promise<Record<RequestStatus, number>> {
    this.checkFile?.();
    const rows = await this.db
      .select({ status: requestCounts.status, n: requestCounts.n })
      .from(requestCounts);
    const out = { pending: 0, sealed: 0, verdict: 0, 'no-consensus': 0, expired: 0, failed: 0 } as Record<
      RequestStatus,
      number
    >;
    for (const r of rows) out[r.status] = Number(r.n);
    return out;
  }

  /**
   * A write of one small row (`health_probes`, `relay`'s own), committed like any other: what /healthz
   * tries once admissions have failed and none was stored since, to find whether the database takes
   * writes again (on a full disk it fails as the admissions did: the log cannot grow).
   */
  async probeWrite(relay: string, now: number): Promise<void> {
    this.checkFile?.();
    await this.db
      .insert(healthProbes)
      .values({ relay, probedAt: now })
      .onConflictDoUpdate({ target: healthProbes.relay, set: { probedAt: now } });
  }
}

/**
 * The reveals of a request as its transcript holds them: with a verdict, those it was computed over
 * (`countedReveals`), so neither /v1/verify/:id nor GET /v1/inference/:id shows a reveal the verdict
 * did not count as a member's; before it (or when a reveal the verdict cites is not stored), every
 * reveal stored.
 */
export function verdictReveals(d: RequestDetail): Stored<'reveal'>[] {
  if (d.seal === null || d.verdict === null) return d.reveals;
  return countedReveals(d, d.seal, d.verdict) ?? d.reveals;
}

/** The transcript packets of a sealed request but its reveals: the request, sealed commits and seal. */
export function transcriptHead(d: RequestDetail, seal: Stored<'seal'>): AnyPacket[] {
  const sealed = new Set(seal.packet.body.members.map((m) => m.commitId));
  return [d.request, ...d.commits.filter((c) => sealed.has(c.id)).map((c) => c.packet), seal.packet];
}

/**
 * Most transcripts tried for the reveals a verdict counted, when members it accepted have more than one
 * stored reveal it does not cite (2 a member at most: `REVEALS_PER_MEMBER`), so 8 such members.
 */
const COUNTED_REVEALS_TRIES = 256;

/**
 * The stored reveals a verdict was computed over (`selectReveals`), or null when one it cites is not
 * stored. A member the verdict accepted may have two stored reveals it does not cite: one the history
 * took before the seal was (it takes reveals of committed nodes then, for its own seal's write races
 * the answers to it), which the coordinator refused (REVEAL_BEFORE_SEAL), beside the one it counted.
 * `selectReveals` then takes the smaller packet id, which may be the refused one, and the transcript
 * would not have the verdict's root: so each choice is tried, and the one whose transcript has the
 * published root is taken.
 */
function countedReveals(
  d: RequestDetail,
  seal: Stored<'seal'>,
  verdict: Stored<'verdict'>,
): Stored<'reveal'>[] | null {
  const head = transcriptHead(d, seal);
  const body = verdict.packet.body;
  const selection = selectReveals(
    body.verdict,
    { id: d.requestPacketId, packet: d.request },
    seal,
    d.reveals,
  );
  if (selection === null || selection.exact) return selection?.reveals ?? null;
  const cited = new Set(body.verdict.rejected.flatMap((r) => (r.revealId === null ? [] : [r.revealId])));
  const fixed: Stored<'reveal'>[] = [];
  const open: Stored<'reveal'>[][] = [];
  for (const r of selection.reveals) {
    const options = cited.has(r.id)
      ? [r]
      : d.reveals.filter((o) => o.packet.from === r.packet.from && !cited.has(o.id));
    if (options.length > 1) open.push(options);
    else fixed.push(r);
  }
  let tries = 1;
  for (const o of open) tries *= o.length;
  if (tries > COUNTED_REVEALS_TRIES) return selection.reveals;
  // The search is remembered: the reveals stored for a request change no more once its verdict is
  // (`recordReveal`), and every read of the request (event streams poll it each second) would redo it.
  const key = `${verdict.id}:${sha256Hex(utf8(d.reveals.map((r) => r.id).join(',')))}`;
  const known = COUNTED_REVEALS_CACHE.get(key);
  if (known !== undefined) {
    const byId = new Map(d.reveals.map((r) => [r.id, r]));
    return known.map((id) => byId.get(id) as Stored<'reveal'>);
  }
  let found = selection.reveals;
  for (let n = 0; n < tries; n++) {
    let rest = n;
    const picked = open.map((o) => {
      const r = o[rest % o.length] as Stored<'reveal'>;
      rest = Math.floor(rest / o.length);
      return r;
    });
    const reveals = [...fixed, ...picked];
    const root = transcriptRoot(buildTranscript([...head, ...reveals.map((r) => r.packet)]));
    if (root === body.transcriptRoot) {
      found = reveals;
      break;
    }
  }
  if (COUNTED_REVEALS_CACHE.size >= COUNTED_REVEALS_CACHED) {
    const oldest = COUNTED_REVEALS_CACHE.keys().next().value;
    if (oldest !== undefined) COUNTED_REVEALS_CACHE.delete(oldest);
  }
  COUNTED_REVEALS_CACHE.set(
    key,
    found.map((r) => r.id),
  );
  return found;
}

/** Searches of `countedReveals` remembered (by verdict and stored reveals), the oldest forgotten first. */
const COUNTED_REVEALS_CACHED = 1_024;
export const COUNTED_REVEALS_CACHE = new Map<string, string[]>();

/**
 * Most rows of `nodes` for nodes that never took part in a request (no commit, so no seal membership
 * either, and no reputation row): heartbeats from keys made for the purpose cost nothing, and each new key
 * was a new row for a day (`NODE_RETENTION_MS`). A new such node past the bound pushes out the least
 * recently seen of them, in the transaction of its insert (`recordHeartbeat`), whichever relay writes. Nodes
 * that took part are not counted and never pushed out.
 */
export const MAX_IDLE_NODES = 2_000;

/**
 * The condition that the `nodes` row `n` (an alias) is of a node that never took part in a request: no
 * reputation row (a verdict named it), no commit stored, no seal membership (which needs a commit too).
 */
function idle(n: SQL): SQL {
  return sql`NOT EXISTS (SELECT 1 FROM ${reputation} WHERE ${reputation}.node_id = ${n}.node_id)
    AND NOT EXISTS (SELECT 1 FROM ${commits} WHERE ${commits}.node_id = ${n}.node_id)
    AND NOT EXISTS (SELECT 1 FROM ${sealMembers} WHERE ${sealMembers}.node_id = ${n}.node_id)`;
}

/** How long a node that never took part in a verdict stays in the registry after its last heartbeat. */
export const NODE_RETENTION_MS = 24 * 60 * 60 * 1000;

/**
 * How long after its creation a request still open is taken for abandoned (`expireAbandoned`): the
 * longest seal window and reveal window a frame allows, and 5 minutes more (a live coordinator ends its
 * requests within its reveal window, a stranded machine a minute after it).
 */
export const ABANDONED_AFTER_MS = FRAME_BOUNDS.maxTimeMs.max + FRAME_BOUNDS.revealWindowMs.max + 5 * 60_000;

export type { RequestBody, Verdict };

/**
 * Give callers back the requests their daily quota was charged for admissions that never reached the
 * network: one per row, from the `usage` count of the UTC day of its `createdAt` (the day the edge
 * charged: an admitted request's `createdAt` is its admission's time), never below zero.
 */
async function refundUsage(
  tx: Pick<LibSQLDatabase<Record<string, unknown>>, 'update'>,
  rows: readonly { callerId: string; createdAt: number }[],
): Promise<void> {
  const counts = new Map<string, { callerId: string; day: string; n: number }>();
  for (const r of rows) {
    const day = utcDay(r.createdAt);
    const k = `${r.callerId}\u0000${day}`;
    const c = counts.get(k);
    if (c) c.n++;
    else counts.set(k, { callerId: r.callerId, day, n: 1 });
  }
  for (const { callerId, day, n } of counts.values()) {
    await tx
      .update(usage)
      .set({ count: sql`max(0, ${usage.count} - ${n})` })
      .where(and(eq(usage.keyId, callerId), eq(usage.day, day)));
  }
}
