import type { RequestBody } from '@synod/shared';
import type { Stored } from '../store/history-store.ts';

/**
 * What the HTTP app needs from the network. Two implementations:
 * - under Bun, the relay holds a Synod node in-process and is itself the coordinator
 *   (`InProcessRelayNetwork` in relay/in-process.ts);
 * - on workerd, the relay forwards to a configured gateway node that coordinates
 *   (`GatewayRelayNetwork` in relay/gateway.ts).
 * Either way every packet of a request ends up in the shared libSQL history, which is what the read
 * routes serve, so two relays over one database serve the same history.
 */
export interface RelayNetwork {
  /** Node id of the coordinator that signs and seals the requests this relay accepts. */
  readonly coordinatorId: string;
  /** Sign a request body as the coordinator and store it durably (before any 2xx). */
  accept(body: RequestBody, idempotency?: IdempotencyInput): Promise<AcceptOutcome>;
  /** Models served by live nodes (heartbeats) plus those configured. */
  servedModels(): Promise<ReadonlySet<string>>;
  /** Notified after each stored change of the request; returns an unsubscribe. */
  subscribe(requestId: string, listener: () => void): () => void;
  /** Peers and queue state for /healthz and /metrics. */
  health(): NetworkHealth;
}

export interface IdempotencyInput {
  callerId: string;
  key: string;
  bodyDigest: string;
}

export type AcceptOutcome =
  | { kind: 'created'; request: Stored<'request'> }
  | { kind: 'replayed'; requestId: string }
  | { kind: 'conflict'; requestId: string };

export interface NetworkHealth {
  ok: boolean;
  peers: number;
  openRequests: number;
  detail?: Record<string, unknown>;
}
