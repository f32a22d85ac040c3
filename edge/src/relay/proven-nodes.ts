import { type HeartbeatBody, type RequestBody, type SeatPolicy, servesCoordinator } from '@synod/shared';
import type { HistoryStore } from '../store/history-store.ts';

/** The reputation score (Wilson lower bound of a node's agreement rate) a proven node must keep. */
export const PROVEN_SCORE = 0.5;
/** Agreements vouched for by another proven (or trusted) node that make a node proven. */
export const PROVEN_VOUCHED = 3;
/** Most proven nodes held in memory (the most vouched for). */
export const MAX_PROVEN = 4_096;
/** How often the proven set is read again from the history. */
export const PROVEN_REFRESH_MS = 5_000;
/** Most nodes on their way to a record whose standing is held in memory (the highest). */
export const MAX_STANDINGS = 4_096;
/** How recently a proven node must have sent a heartbeat to count as online. */
export const ONLINE_WITHIN_MS = 60_000;

/**
 * The relay coordinator's seat policy (`SeatPolicy`): a node is proven when the relay's operator trusts
 * it (`trusted`: `--trusted-nodes`), or when at least `PROVEN_VOUCHED` of its agreements in this relay's
 * history were vouched for (another accepted member of the same verdict was proven or trusted then) and
 * its reputation still scores at least `PROVEN_SCORE`. Keys of one party agreeing among themselves (on
 * requests the cap did not cover: a model only they serve, proven nodes away) earn nothing toward it, so
 * proof spreads only from the nodes the operator trusts; a relay that trusts none has no proven node,
 * and seals any node, as before the policy existed. The cap on other nodes' seats applies to a request when at least its `quorum` proven
 * nodes that can serve it were heard from within `ONLINE_WITHIN_MS`: their latest heartbeat lists one of
 * its accepted models and its embedder, and room in their queue. Otherwise (a network that is starting
 * and has no record yet, proven nodes away, busy or serving other models) any node takes any seat, so
 * the cap never stands between a request and the only nodes that could answer it. Keys made for the
 * purpose thus never fill a seal where proven nodes could: they get reputation only by agreeing with
 * them.
 *
 * The one seat (at the default frame) left to nodes without a record goes by `standing`: agreements
 * vouched for by a proven node less disagreements, withheld reveals and invalid packets
 * (`HistoryStore.nodeStandings`), then by lot, never to whoever committed first (see `SeatPolicy`): one
 * fast key no longer takes it every time, though a party with G keys still wins the lot G times in G + 1
 * against a newcomer without a standing; after one agreement vouched for, the newcomer ranks before
 * every key without one.
 *
 * The proven set and the standings are read from the history at `start()` and every `PROVEN_REFRESH_MS`, so the policy's
 * answers are synchronous, as a state machine needs them; so are the proven nodes' heartbeats the history
 * holds from the last minute (a relay that restarted knows at once who is online; two relays over one
 * database share what each heard). Heartbeats are given to `heard` as they come,
 * and only proven nodes' are kept (the newest each): a list of every node heard from is bounded, and
 * heartbeats from fresh keys, which cost nothing, would push the proven nodes out of it.
 */
export class ProvenNodes implements SeatPolicy {
  readonly #store: Pick<HistoryStore, 'provenNodes' | 'nodeStandings' | 'recentHeartbeats'>;
  readonly #log: (entry: Record<string, unknown>) => void;
  readonly #now: () => number;
  readonly #trusted: ReadonlySet<string>;
  readonly #coordinatorId: string | undefined;
  #proven = new Set<string>();
  #standings = new Map<string, number>();
  /** The newest heartbeat of each proven node, and when it came. */
  readonly #heard = new Map<string, { body: HeartbeatBody; at: number }>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #refreshing: Promise<void> | null = null;

  constructor(
    store: Pick<HistoryStore, 'provenNodes' | 'nodeStandings' | 'recentHeartbeats'>,
    log: (entry: Record<string, unknown>) => void = () => {},
    now: () => number = Date.now,
    trusted: readonly string[] = [],
    /** The relay's own node id: a node that serves other coordinators only does not count for it. */
    coordinatorId?: string,
  ) {
    this.#coordinatorId = coordinatorId;
    this.#store = store;
    this.#log = log;
    this.#now = now;
    this.#trusted = new Set(trusted);
    this.#proven = new Set(trusted);
  }

  /** Proven nodes known now. */
  get size(): number {
    return this.#proven.size;
  }

  async start(refreshMs = PROVEN_REFRESH_MS): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), refreshMs);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#refreshing;
  }

  /** Read the proven set again (a failed read keeps the last one, and is logged). */
  refresh(): Promise<void> {
    this.#refreshing ??= Promise.all([
      this.#store.provenNodes(PROVEN_VOUCHED, PROVEN_SCORE, MAX_PROVEN),
      this.#store.nodeStandings(MAX_STANDINGS),
    ])
      .then(async ([ids, standings]) => {
        this.#proven = new Set([...this.#trusted, ...ids]);
        this.#standings = new Map(standings.map((r) => [r.nodeId, r.standing]));
        for (const id of this.#heard.keys()) if (!this.#proven.has(id)) this.#heard.delete(id);
        // What the history holds of them: after a restart, the proven nodes are online from the start,
        // not only once each sends its next heartbeat (until then, the cap did not apply).
        const since = this.#now() - ONLINE_WITHIN_MS;
        for (const h of await this.#store.recentHeartbeats([...this.#proven], since)) {
          this.#take(h.nodeId, h.body, h.lastSeen);
        }
      })
      .catch((e) => this.#log({ level: 'warn', msg: 'reading the proven nodes failed', err: String(e) }))
      .finally(() => {
        this.#refreshing = null;
      });
    return this.#refreshing;
  }

  /**
   * A verified heartbeat: kept if its node is proven (a node proven later counts from its next one),
   * unless an older one than that node's newest (a copy replayed later, say of when its queue was full).
   */
  heard(nodeId: string, body: HeartbeatBody): void {
    this.#take(nodeId, body, this.#now());
  }

  #take(nodeId: string, body: HeartbeatBody, at: number): void {
    if (!this.#proven.has(nodeId)) return;
    const held = this.#heard.get(nodeId);
    if (held !== undefined && held.body.createdAt > body.createdAt) return;
    if (held !== undefined && held.body.createdAt === body.createdAt && held.at >= at) return;
    this.#heard.set(nodeId, { body, at });
  }

  isProven(nodeId: string): boolean {
    return this.#proven.has(nodeId);
  }

  standing(nodeId: string): number {
    return this.#standings.get(nodeId) ?? 0;
  }

  applies(request: RequestBody): boolean {
    const { quorum, embeddingModel } = request.frame;
    const models = new Set(request.acceptedModels);
    const since = this.#now() - ONLINE_WITHIN_MS;
    let able = 0;
    for (const [nodeId, { body, at }] of this.#heard) {
      if (at < since || !this.#proven.has(nodeId)) continue;
      if (body.capacity.queued >= body.capacity.maxQueue) continue;
      if (!body.models.some((m) => models.has(m.id))) continue;
      if (!body.embedders.some((e) => e.id === embeddingModel.id)) continue;
      if (this.#coordinatorId !== undefined && !servesCoordinator(body, this.#coordinatorId)) continue;
      if (++able >= quorum) return true;
    }
    return false;
  }
}
