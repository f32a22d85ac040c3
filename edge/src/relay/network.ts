import type { RequestBody } from '@synod/shared';
import type { Admission, AdmissionOutcome } from '../store/intake-store.ts';
import type { AdmissionQueue } from './dispatcher.ts';
import type { ServingGroup } from './serving-groups.ts';

/**
 * What the HTTP app needs from the network. Two implementations:
 * - under Bun, the relay holds a Synod node in-process and is itself the coordinator
 *   (`InProcessRelayNetwork` in relay/in-process.ts);
 * - on workerd, the relay names a configured gateway node as the coordinator (`GatewayRelayNetwork` in
 *   relay/gateway.ts).
 * Either way a request enters the shared libSQL history through the admission log (`request_intake`,
 * written by the relay that took the HTTP request) and the coordinator named there dispatches it; every
 * packet of it then ends up in the history, which is what the read routes serve, so two relays over one
 * database serve the same history.
 */
export interface RelayNetwork {
  /** Node id of the coordinator that signs, seals and publishes the requests this relay admits. */
  readonly coordinatorId: string;
  /** Tell the coordinator that admitted requests wait in the admission log (it also polls). */
  admitted(requestIds: readonly string[]): Promise<void>;
  /** Models configured, plus those that nodes the relay trusts (proven or trusted) advertise. */
  servedModels(): Promise<ReadonlySet<string>>;
  /**
   * How many nodes that could serve `request` (one of its accepted models, and its embedder, and room for
   * requests) were heard from lately, whatever their standing: 0 when those heard take no request now
   * (paused); undefined while the relay cannot tell (it started less than two heartbeats ago, or has heard
   * no node of those models at all: its requests then wait in the log for nodes to come).
   * Absent: never said.
   */
  servingNodes?(request: RequestBody): number | undefined;
  /**
   * The nodes heard that could serve this relay's requests, grouped by what they serve (what
   * `servingNodes` counts from), for a gateway to publish to relays on workerd; undefined while it
   * cannot say (its first seconds).
   */
  servingGroups?(): ServingGroup[] | undefined;
  /**
   * Whether the relay vouches for a node: proven by its history or trusted by its operator (the seat
   * policy's `isProven`). Absent: it cannot say (a relay on workerd).
   */
  vouchedFor?(nodeId: string): boolean;
  /** Notified after each stored change of the request; returns an unsubscribe. */
  subscribe(requestId: string, listener: () => void): () => void;
  /** Peers and queue state for /healthz and /metrics. */
  health(): NetworkHealth;
  /**
   * The coordinator's admission log as last known, against its bound (undefined: no bound). HTTP
   * submissions are refused with 503 QUEUE_FULL while it is full, rather than stored only to expire.
   */
  queue(): AdmissionQueue | undefined;
  /**
   * Hold a place in the admission log's bound for a request being admitted (counted in `queue()` until
   * the returned release is called, once its admission is done): requests that arrive together cannot
   * all pass the bound's check before any of them is counted. Absent: nothing to hold.
   */
  reserve?(): () => void;
  /**
   * Throws a typed error (a 503) when no request can be admitted for this relay's coordinator now,
   * checked before anything is stored or charged: on workerd, a gateway that dispatches from another
   * database than this relay's (its coordinator holds no fresh lease here).
   */
  admissible?(): Promise<void>;
}

/**
 * Durable admission: resolves once the request (or the decision not to take it: quota, idempotency)
 * is committed to libSQL. Under Bun a `GroupCommit` over `IntakeStore.admit`; on workerd one
 * transaction per HTTP request (an isolate may not share I/O objects between requests).
 */
export interface Admitter {
  admit(admission: Admission): Promise<AdmissionOutcome>;
}

export interface NetworkHealth {
  ok: boolean;
  peers: number;
  openRequests: number;
  detail?: Record<string, unknown>;
}
