/**
 * Pages of the nodes a relay knows (`GET /v1/nodes`): their latest heartbeat's capabilities and their
 * record. Kept apart from history-store.ts, whose `listNodes` is this.
 */
import { nodes, reputation, unheardNodes } from '@synod/shared/history';
import { and, desc, eq, lt, or, sql } from 'drizzle-orm';
import type { HistoryDb } from './history-store.ts';

/**
 * Nodes, the most recently heard first, a page at a time (keyset on last seen and node id: a cursor
 * stays valid while heartbeats come in), or the one node `q.node`. A node with a record but no
 * heartbeat stored (sealed without ever sending one: a seat needs none, and the record is no less
 * its own) is listed too, without capabilities (`role` null), heard last when its record last changed
 * (a verdict naming it): otherwise a node could keep the withheld reveals and disagreements of its
 * record out of sight by never sending a heartbeat.
 */
export async function listNodes(
  db: HistoryDb,
  q: NodesQuery,
): Promise<{ nodes: NodeSummary[]; nextCursor: string | null }> {
  let after: [lastSeen: number, nodeId: string] | undefined;
  if (q.cursor !== undefined) {
    const [seen, id] = q.cursor.split(':') as [string, string];
    after = [Number(seen), id];
  }
  // Read first: a node whose first heartbeat is stored between the two reads is then in the second
  // (and kept from it alone below), never in neither.
  // Through `unheard_nodes`, kept by triggers: an index range from the cursor, not a scan of every
  // record for the few without a heartbeat.
  const unheard = (
    await db
      .select({ rep: reputation })
      .from(unheardNodes)
      .innerJoin(reputation, eq(reputation.nodeId, unheardNodes.nodeId))
      .where(
        and(
          q.node === undefined ? undefined : eq(unheardNodes.nodeId, q.node),
          after === undefined
            ? undefined
            : sql`(${unheardNodes.updatedAt}, ${unheardNodes.nodeId}) < (${after[0]}, ${after[1]})`,
        ),
      )
      .orderBy(desc(unheardNodes.updatedAt), desc(unheardNodes.nodeId))
      .limit(q.limit + 1)
  ).map((r) => r.rep);
  const heard = await db
    .select({ node: nodes, rep: reputation })
    .from(nodes)
    .leftJoin(reputation, eq(reputation.nodeId, nodes.nodeId))
    .where(
      and(
        q.node === undefined ? undefined : eq(nodes.nodeId, q.node),
        after === undefined
          ? undefined
          : or(lt(nodes.lastSeen, after[0]), and(eq(nodes.lastSeen, after[0]), lt(nodes.nodeId, after[1]))),
      ),
    )
    .orderBy(desc(nodes.lastSeen), desc(nodes.nodeId))
    .limit(q.limit + 1);
  const listed = heard.map(toNodeSummary);
  const ids = new Set(listed.map((n) => n.nodeId));
  for (const rep of unheard) if (!ids.has(rep.nodeId)) listed.push(unheardNodeSummary(rep));
  listed.sort((x, y) =>
    x.lastSeen !== y.lastSeen
      ? y.lastSeen - x.lastSeen
      : x.nodeId < y.nodeId
        ? 1
        : x.nodeId > y.nodeId
          ? -1
          : 0,
  );
  const page = listed.slice(0, q.limit);
  const last = page.at(-1);
  return {
    nodes: page,
    nextCursor: listed.length > q.limit && last ? `${last.lastSeen}:${last.nodeId}` : null,
  };
}

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
    // A row written by hand (or damaged) may hold no packet: nothing named then.
    coordinators:
      (node.lastHeartbeat as Partial<typeof node.lastHeartbeat> | null)?.body?.coordinators ?? null,
    firstSeen: node.firstSeen,
    lastSeen: node.lastSeen,
    reputation: reputationSummary(rep ?? { score: 0, ...NO_RECORD }),
  };
}

/**
 * A node with a record and no heartbeat stored: no capabilities claimed, last heard (`lastSeen`) when
 * its record last changed, first seen unknown.
 */
function unheardNodeSummary(rep: typeof reputation.$inferSelect): NodeSummary {
  return {
    nodeId: rep.nodeId,
    role: null,
    software: null,
    models: [],
    embedders: [],
    tokensPerSecond: 0,
    embeddingsPerSecond: 0,
    coordinators: null,
    firstSeen: null,
    lastSeen: rep.updatedAt,
    reputation: reputationSummary(rep),
  };
}

/** The counters of a node without a reputation row. */
export const NO_RECORD = {
  agreements: 0,
  disagreements: 0,
  withheld: 0,
  invalid: 0,
  commits: 0,
  vouched: 0,
} as const;

/** What `/v1/nodes` shows of a node's reputation; its standing as `nodeStandings` reckons it. */
function reputationSummary(rep: { score: number } & { [K in keyof typeof NO_RECORD]: number }) {
  return {
    score: rep.score,
    agreements: rep.agreements,
    disagreements: rep.disagreements,
    withheld: rep.withheld,
    invalid: rep.invalid,
    commits: rep.commits,
    vouched: rep.vouched,
    standing: rep.vouched - rep.disagreements - rep.withheld - rep.invalid,
  };
}

export interface NodeSummary {
  nodeId: string;
  /** From its latest heartbeat: null for a node with a record but no heartbeat stored. */
  role: string | null;
  software: string | null;
  models: unknown;
  embedders: unknown;
  tokensPerSecond: number;
  embeddingsPerSecond: number;
  /**
   * The only coordinators it serves, as its latest heartbeat names them (`--coordinators`); null: any
   * (or no heartbeat stored).
   */
  coordinators: string[] | null;
  /** When its first stored heartbeat was heard; null without one. */
  firstSeen: number | null;
  /** When its latest heartbeat was heard, or, without one, when its record last changed. */
  lastSeen: number;
  reputation: {
    score: number;
    agreements: number;
    disagreements: number;
    withheld: number;
    invalid: number;
    commits: number;
    /** Agreements vouched for by a proven or trusted node beside it (see `provenNodes`). */
    vouched: number;
    /**
     * Its rank for the seat left to nodes without a record (`nodeStandings`): `vouched` less
     * disagreements, withheld reveals and invalid packets.
     */
    standing: number;
  };
}
