import { type HeartbeatBody, type RequestBody, servesCoordinator } from '@synod/shared';

/**
 * The nodes heard online that could take a coordinator's requests, grouped by what they serve: the same
 * models and embedders, how many take requests (`able`) and how many advertise room for none
 * (`paused`: a tab whose contributor turned Serve off, a node whose state file cannot be written). A
 * gateway relay publishes them (`GatewayStatus.serving`) so that a relay on workerd, which hears no
 * heartbeat, refuses a quorum they cannot meet as the gateway itself would (`servingCount`).
 */
export interface ServingGroup {
  /** Model ids, sorted. */
  models: string[];
  /** Embedder ids, sorted. */
  embedders: string[];
  able: number;
  paused: number;
}

/** Most groups a gateway publishes: past it, it publishes none (relays then refuse nothing on it). */
export const MAX_SERVING_GROUPS = 64;

/**
 * A node whose heartbeat was signed this far ahead of the relay's clock at its receipt is not counted: it
 * skips every request as already late (as its own /healthz says, CLOCK_SKEW past 5 s).
 */
export const SERVING_CLOCK_AHEAD_MS = 5_000;

/**
 * The groups of the nodes whose heartbeats were heard (`at`, relay clock) that serve `coordinatorId`'s
 * requests (not another relay's only, by their `coordinators`), leaving out nodes whose clock runs ahead.
 */
export function servingGroups(
  heard: Iterable<{ body: HeartbeatBody; at: number }>,
  coordinatorId: string,
): ServingGroup[] {
  const groups = new Map<string, ServingGroup>();
  for (const { body, at } of heard) {
    if (body.createdAt - at > SERVING_CLOCK_AHEAD_MS) continue;
    // A node that serves other coordinators only (its `--coordinators`) never takes this relay's.
    if (!servesCoordinator(body, coordinatorId)) continue;
    const models = [...new Set(body.models.map((m) => m.id))].sort();
    const embedders = [...new Set(body.embedders.map((e) => e.id))].sort();
    if (models.length === 0 || embedders.length === 0) continue;
    const key = `${models.join('\n')}\t${embedders.join('\n')}`;
    let g = groups.get(key);
    if (g === undefined) {
      g = { models, embedders, able: 0, paused: 0 };
      groups.set(key, g);
    }
    // Room for no request at all: it takes none. A full queue is busy, not unable: it counts.
    if (body.capacity.maxQueue === 0) g.paused++;
    else g.able++;
  }
  return [...groups.values()];
}

/**
 * The groups as a relay's requests can use them: each group's models cut to those the relay serves and
 * its embedders to those it pins, merged where they then match, and dropped where nothing is left. What a
 * gateway publishes: heartbeats from keys made for the purpose, each naming another set of made-up
 * models, would otherwise make groups without end (past `MAX_SERVING_GROUPS` none are published, and
 * relays on workerd refuse nothing), while the sets a request can ask for are few.
 */
export function usableGroups(
  groups: readonly ServingGroup[],
  models: ReadonlySet<string>,
  embedders: ReadonlySet<string>,
): ServingGroup[] {
  const merged = new Map<string, ServingGroup>();
  for (const g of groups) {
    const m = g.models.filter((id) => models.has(id));
    const e = g.embedders.filter((id) => embedders.has(id));
    if (m.length === 0 || e.length === 0) continue;
    const key = `${m.join('\n')}\t${e.join('\n')}`;
    const into = merged.get(key);
    if (into === undefined) merged.set(key, { models: m, embedders: e, able: g.able, paused: g.paused });
    else {
      into.able += g.able;
      into.paused += g.paused;
    }
  }
  return [...merged.values()];
}

/**
 * How many nodes could serve `request` (one of its accepted models, its frame's embedder): those able to;
 * 0 when some serve it and every one of them takes no request now (refused); undefined when none serves
 * it at all (nothing is said: requests wait for nodes to come).
 */
export function servingCount(
  groups: readonly ServingGroup[],
  request: Pick<RequestBody, 'acceptedModels' | 'frame'>,
): number | undefined {
  const embedder = request.frame.embeddingModel.id;
  const models = new Set(request.acceptedModels);
  let able = 0;
  let paused = 0;
  for (const g of groups) {
    if (!g.models.some((m) => models.has(m))) continue;
    if (!g.embedders.includes(embedder)) continue;
    able += g.able;
    paused += g.paused;
  }
  return able > 0 ? able : paused > 0 ? 0 : undefined;
}
