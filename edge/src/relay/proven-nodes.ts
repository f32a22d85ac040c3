import type { HeartbeatBody, RequestBody, SeatPolicy } from '@synod/shared';
import type { HistoryStore } from '../store/history-store.ts';

/** The reputation score (Wilson lower bound of a node's agreement rate) that makes a node proven. */
export const PROVEN_SCORE = 0.5;
/** Most proven nodes held in memory (the best scores). */
export const MAX_PROVEN = 4_096;
/** How often the proven set is read again from the history. */
export const PROVEN_REFRESH_MS = 5_000;
/** How recently a proven node must have sent a heartbeat to count as online. */
export const ONLINE_WITHIN_MS = 60_000;

/** A node's latest heartbeat, as `SynodNode.knownNodes` gives it. */
export interface HeardNode {
  nodeId: string;
  body: HeartbeatBody;
}

/**
 * The relay coordinator's seat policy (`SeatPolicy`): a node is proven when its reputation, earned from
 * verdicts in this relay's history, scores at least `PROVEN_SCORE` (about four agreements and nothing
 * against it); the cap on other nodes' seats applies to a request when at least its `quorum` proven
 * nodes that can serve it were heard from within `ONLINE_WITHIN_MS`: their latest heartbeat lists one of
 * its accepted models and its embedder, and room in their queue. Otherwise (a network that is starting
 * and has no record yet, proven nodes away, busy or serving other models) any node takes any seat, so
 * the cap never stands between a request and the only nodes that could answer it. Keys made for the
 * purpose thus never fill a seal where proven nodes could: they get reputation only by agreeing with
 * them.
 *
 * The proven set is read from the history at `start()` and every `PROVEN_REFRESH_MS`, so the policy's
 * answers are synchronous, as a state machine needs them.
 */
export class ProvenNodes implements SeatPolicy {
  readonly #store: Pick<HistoryStore, 'provenNodes'>;
  readonly #online: (withinMs: number) => readonly HeardNode[];
  readonly #log: (entry: Record<string, unknown>) => void;
  #proven = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #refreshing: Promise<void> | null = null;

  constructor(
    store: Pick<HistoryStore, 'provenNodes'>,
    online: (withinMs: number) => readonly HeardNode[],
    log: (entry: Record<string, unknown>) => void = () => {},
  ) {
    this.#store = store;
    this.#online = online;
    this.#log = log;
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
    this.#refreshing ??= this.#store
      .provenNodes(PROVEN_SCORE, MAX_PROVEN)
      .then((ids) => {
        this.#proven = new Set(ids);
      })
      .catch((e) => this.#log({ level: 'warn', msg: 'reading the proven nodes failed', err: String(e) }))
      .finally(() => {
        this.#refreshing = null;
      });
    return this.#refreshing;
  }

  isProven(nodeId: string): boolean {
    return this.#proven.has(nodeId);
  }

  applies(request: RequestBody): boolean {
    const { quorum, embeddingModel } = request.frame;
    const models = new Set(request.acceptedModels);
    let able = 0;
    for (const n of this.#online(ONLINE_WITHIN_MS)) {
      if (!this.#proven.has(n.nodeId)) continue;
      const { body } = n;
      if (body.capacity.queued >= body.capacity.maxQueue) continue;
      if (!body.models.some((m) => models.has(m.id))) continue;
      if (!body.embedders.some((e) => e.id === embeddingModel.id)) continue;
      if (++able >= quorum) return true;
    }
    return false;
  }
}
