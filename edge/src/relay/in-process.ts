import type { SynodNode } from '@synod/browser-node';
import { type AnyPacket, KeyedListeners, type NodeKey, type RequestBody } from '@synod/shared';
import type { HistoryStore, RequestDetail } from '../store/history-store.ts';
import type { AdmissionQueue, Dispatcher } from './dispatcher.ts';
import type { NetworkHealth, RelayNetwork } from './network.ts';
import { ONLINE_WITHIN_MS } from './proven-nodes.ts';
import { type ServingGroup, servingCount, servingGroups } from './serving-groups.ts';

/**
 * How long after its start a relay says nothing of the nodes that could serve a request
 * (`servingNodes`): two of their heartbeat intervals (10 s), so that every node connected had sent one.
 */
export const SERVING_SETTLE_MS = 20_000;

/** How long the set of served models (configured + trusted nodes' heartbeats) is reused. */
const MODELS_TTL_MS = 1_000;

/**
 * How long a relay that starts with requests to resume waits for a first peer before it resumes them
 * anyway (a relay with no node to reach: they end as they would, on their deadlines).
 */
export const RESUME_PEER_WAIT_MS = 10_000;
/**
 * Once it has a peer, how long the relay waits with no new peer before it resumes: time for the peers'
 * gossipsub subscriptions to reach it (a publish before that finds no one on the topic, and is dropped),
 * and for what they publish again as it joins them (re-announcing: 250 ms after they see it subscribe)
 * to reach it before a restored machine's overdue deadline is judged.
 */
export const RESUME_PEER_SETTLE_MS = 1_000;
/**
 * The longest the relay waits after its first peer for more (nodes that dial it come back within their
 * redial backoff, 5 s), and for the reveals of a sealed request's members (see `storedPackets`).
 */
export const RESUME_PEER_SETTLE_MAX_MS = 6_000;

/**
 * What `InProcessRelayNetwork` waits for after a start: before it resumes its requests (peers), and
 * before it says how many nodes could serve a request (their heartbeats).
 */
export interface NetworkWaits {
  /** Default `RESUME_PEER_WAIT_MS`. */
  peerWaitMs?: number;
  /** Default `RESUME_PEER_SETTLE_MS`. */
  peerSettleMs?: number;
  /** Default `RESUME_PEER_SETTLE_MAX_MS`. */
  peerSettleMaxMs?: number;
  /** Default `SERVING_SETTLE_MS`. */
  servingSettleMs?: number;
}

/**
 * The relay under Bun: it holds a Synod node of its own (role `relay`) and coordinates the requests it
 * admits. Durability: the HTTP route commits each request to the admission log (`request_intake`, group
 * commit) before its 2xx; the `Dispatcher` then signs it, moves it into `requests` and starts the
 * coordinator machine (whose first effect persists its state, then publishes the same deterministic
 * packet). A crash between the move and the machine's first save is repaired by `recover()` at start.
 */
export class InProcessRelayNetwork implements RelayNetwork {
  readonly coordinatorId: string;
  readonly #listeners = new KeyedListeners<void>();
  #models: { at: number; set: ReadonlySet<string> } | undefined;
  #dispatcher: Dispatcher | undefined;
  #heard: Promise<void> | undefined;
  /** When the relay's first peer was there (`whenHeard`): waits for more end `peerSettleMaxMs` after it. */
  #firstPeerAt: number | null = null;
  readonly #waits: Required<NetworkWaits>;
  /** From construction until `restored`: the relay takes requests, but starts none. */
  #restoring = true;
  /** `now()` at construction: `servingNodes` says nothing before every node had time to be heard. */
  readonly #startedAt: number;
  /** The nodes that could serve this relay's requests, grouped (`servingGroups`), as last counted. */
  #serving: { at: number; groups: ServingGroup[] } | undefined;

  constructor(
    key: NodeKey,
    private readonly node: SynodNode,
    private readonly store: HistoryStore,
    private readonly now: () => number,
    private readonly configuredModels: readonly string[],
    waits: NetworkWaits = {},
    /**
     * Whether a node is one the relay has reason to trust: proven or trusted for its seat policy
     * (`ProvenNodes.isProven`). Only such nodes' heartbeats add models to `servedModels`. Default: none.
     */
    private readonly vouches: (nodeId: string) => boolean = () => false,
  ) {
    this.coordinatorId = key.nodeId;
    this.#startedAt = now();
    this.#waits = {
      peerWaitMs: waits.peerWaitMs ?? RESUME_PEER_WAIT_MS,
      peerSettleMs: waits.peerSettleMs ?? RESUME_PEER_SETTLE_MS,
      peerSettleMaxMs: waits.peerSettleMaxMs ?? RESUME_PEER_SETTLE_MAX_MS,
      servingSettleMs: waits.servingSettleMs ?? SERVING_SETTLE_MS,
    };
  }

  /**
   * Resolves once the relay's node has peers to hear what it publishes, and they had time to publish
   * again what it missed (no new peer for `peerSettleMs`, at most `peerSettleMaxMs` after the first), or
   * after `peerWaitMs` with no peer; waited for once, as the relay starts. A relay killed and started
   * again resumed its requests while it was still dialling its bootstrap nodes: a restored machine whose
   * commits were all in the history sealed at once, to no one (Waku drops a publish without peers, and
   * does not send the same message again for two minutes), so its members never revealed and the request
   * ended `no-consensus`, every honest member counted NOT_REVEALED. The same for a request `recover()`
   * starts again.
   */
  whenHeard(): Promise<void> {
    this.#heard ??= (async () => {
      const until = Date.now() + this.#waits.peerWaitMs;
      while (this.node.protocolPeers() === 0 && Date.now() < until) await sleep(25);
      if (this.node.protocolPeers() === 0) return;
      const first = Date.now();
      this.#firstPeerAt = first;
      let peers = this.node.protocolPeers();
      let quietSince = first;
      while (
        Date.now() - quietSince < this.#waits.peerSettleMs &&
        Date.now() - first < this.#waits.peerSettleMaxMs
      ) {
        await sleep(25);
        if (this.node.protocolPeers() > peers) {
          peers = this.node.protocolPeers();
          quietSince = Date.now();
        }
      }
    })();
    return this.#heard;
  }

  /**
   * Whether the relay is still restoring what it coordinated before a restart (its machines, given what
   * the history kept, and the requests `recover` starts again). Requests admitted meanwhile wait in the
   * admission log; /healthz says so (`network.detail.restoring`).
   */
  restoring(): boolean {
    return this.#restoring;
  }

  /** The restore is over: from now on admitted requests are dispatched. */
  restored(): void {
    this.#restoring = false;
  }

  /** The dispatcher that drains this relay's admission log (set once, by the runtime). */
  attach(dispatcher: Dispatcher): void {
    this.#dispatcher = dispatcher;
  }

  async admitted(requestIds: readonly string[]): Promise<void> {
    this.#dispatcher?.admitted(requestIds.length);
  }

  queue(): AdmissionQueue | undefined {
    return this.#dispatcher?.queue();
  }

  reserve(): () => void {
    return this.#dispatcher?.reserve() ?? (() => undefined);
  }

  /**
   * The relay's configured models, plus those advertised by nodes it has reason to trust (`vouches`:
   * proven or trusted for its seat policy). A heartbeat costs nothing to sign with a fresh key, so a model
   * that only unproven nodes advertise is not served: it was listed in /v1/models (1,000 keys x 32 ids
   * made a list of 5 MB) and requests for it were accepted, charged, and expired QUORUM_NOT_MET.
   */
  async servedModels(): Promise<ReadonlySet<string>> {
    const t = this.now();
    if (this.#models && t - this.#models.at < MODELS_TTL_MS) return this.#models.set;
    const out = new Set(this.configuredModels);
    for (const n of this.node.knownNodes()) {
      if (!this.vouches(n.nodeId)) continue;
      for (const m of n.body.models) out.add(m.id);
    }
    this.#models = { at: t, set: out };
    return out;
  }

  servingNodes(request: RequestBody): number | undefined {
    const groups = this.servingGroups();
    return groups === undefined ? undefined : servingCount(groups, request);
  }

  /**
   * The nodes heard online that could serve this relay's requests, grouped by what they serve
   * (serving-groups.ts); undefined until every node connected had time to be heard (`servingSettleMs`).
   * Counted once a `MODELS_TTL_MS`: this is the accept path.
   */
  servingGroups(): ServingGroup[] | undefined {
    const t = this.now();
    if (t - this.#startedAt < this.#waits.servingSettleMs) return undefined;
    if (this.#serving !== undefined && t - this.#serving.at < MODELS_TTL_MS) return this.#serving.groups;
    const groups = servingGroups(this.node.knownNodes(ONLINE_WITHIN_MS), this.coordinatorId);
    this.#serving = { at: t, groups };
    return groups;
  }

  vouchedFor(nodeId: string): boolean {
    return this.vouches(nodeId);
  }

  subscribe(requestId: string, listener: () => void): () => void {
    return this.#listeners.add(requestId, listener);
  }

  /** Tell subscribers of a request that its stored view changed. */
  changed(requestId: string): void {
    this.#listeners.emit(requestId, undefined);
  }

  /**
   * Down (`/healthz` 503 NETWORK_UNAVAILABLE, `detail.reason: NO_PEERS`) while the relay's node has no
   * peer through which a request can be answered (`SynodNode.protocolPeers`: its own Gun client is not
   * one) and it is not restoring: requests are still taken and wait in the admission log, but a load
   * balancer should send them to a relay that can start them. `peers` counts those peers;
   * `detail.connections` every connection.
   */
  health(): NetworkHealth {
    const m = this.node.metrics();
    const peers = this.node.protocolPeers();
    const down = peers === 0 && !this.#restoring;
    return {
      ok: !down,
      peers,
      // Those under way: a machine ended is held a minute more (late packets) and is no open request.
      openRequests: m.openMachines.coordinator,
      detail: {
        ...(down
          ? {
              reason: 'NO_PEERS',
              hint: 'no node is connected over Waku relay: requests wait in the admission log until one is (bootstrap nodes to this relay)',
            }
          : {}),
        connections: m.peers,
        ...(this.#restoring ? { restoring: true } : {}),
        knownNodes: m.knownNodes,
        intake: { accepted: m.intake.accepted, rejected: m.intake.rejectedTotal },
        ...(this.#dispatcher ? { dispatcher: this.#dispatcher.stats() } : {}),
        ...(this.#dispatcher?.queue() ? { queue: this.#dispatcher.queue() } : {}),
      },
    };
  }

  /**
   * The commits, declines and reveals the history holds for a request this relay coordinates, which its machine,
   * restored after a restart, is given before it resumes (`SynodNodeOptions.restoreWith`). The machine
   * was saved at its last write-ahead barrier; what came after is in the history, not in the machine.
   * Without them a restarted coordinator expired requests that had their commits (QUORUM_NOT_MET), even
   * more so when their seal deadline passed while it was down, and counted revealed members NOT_REVEALED.
   * Each restored machine resumes right after this read: it waits first for a peer (`whenHeard`).
   */
  async storedPackets(requestId: string): Promise<AnyPacket[]> {
    // Read after the wait: what came meanwhile is in the history too.
    await this.whenHeard();
    let detail = await this.store.getRequest(requestId);
    if (!detail || detail.request.from !== this.coordinatorId) return [];
    // Sealed, its reveal window over while the relay was down, a member's reveal missing: the machine
    // judges the reveals as soon as it resumes, so the members get until `peerSettleMaxMs` after the
    // first peer to publish theirs again (they do as the relay joins them, each when it reconnects).
    const waitUntil = (this.#firstPeerAt ?? 0) + this.#waits.peerSettleMaxMs;
    while (detail && revealsMissing(detail, this.now()) && Date.now() < waitUntil) {
      await sleep(100);
      detail = await this.store.getRequest(requestId);
    }
    if (!detail) return [];
    // Declines too: the nodes that sent them are done with the request and do not send them again.
    return [
      ...detail.commits.map((c) => c.packet),
      ...detail.declines.map((x) => x.packet),
      ...detail.reveals.map((x) => x.packet),
    ];
  }

  /**
   * After a restart: requests this relay stored but whose coordinator machine was never saved (a crash
   * between the insert and the machine's first persist) are coordinated now if still before their seal
   * deadline, else marked expired. Machines that were saved are restored by the node itself (`restored`),
   * given what the history kept for them (`storedPackets`).
   */
  async recover(): Promise<{ resumed: string[]; expired: string[]; restored: string[] }> {
    const resumed: string[] = [];
    const restored: string[] = [];
    const expired: string[] = [];
    for (const r of await this.store.openRequests()) {
      if (this.node.status(r.requestId) !== null) {
        restored.push(r.requestId);
        continue;
      }
      const detail = await this.store.getRequest(r.requestId);
      if (!detail || detail.request.from !== this.coordinatorId) continue;
      const body = detail.request.body;
      const sealAt = body.createdAt + body.frame.maxTimeMs;
      // One started again publishes its request packet as it starts: once a peer is there to hear it.
      if (r.status === 'pending' && this.now() < sealAt) await this.whenHeard();
      const now = this.now();
      if (r.status === 'pending' && now < sealAt) {
        await this.node.submit(body);
        resumed.push(r.requestId);
      } else {
        await this.store.setStatus(r.requestId, 'expired', now, 'COORDINATOR_RESTARTED');
        expired.push(r.requestId);
      }
    }
    return { resumed, expired, restored };
  }
}

/** Sealed, past its reveal window, no verdict yet, and a member's reveal is not in the history. */
function revealsMissing(detail: RequestDetail, now: number): boolean {
  const seal = detail.seal?.packet.body;
  // With its verdict published, the machine judges nothing more: a late reveal would change nothing.
  if (!seal || detail.verdict !== null) return false;
  if (now < seal.createdAt + detail.request.body.frame.revealWindowMs) return false;
  const revealed = new Set(detail.reveals.map((r) => r.packet.from));
  return seal.members.some((m) => !revealed.has(m.nodeId));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
