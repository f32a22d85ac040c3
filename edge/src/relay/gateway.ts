import { packetId, parseEnvelope, type RequestBody } from '@synod/shared';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { edgeError, HttpError } from '../http/errors.ts';
import { GATEWAY_SECRET_HEADER, type GatewayStatus } from '../routes/internal.ts';
import type { Stored } from '../store/history-store.ts';
import type { AcceptOutcome, IdempotencyInput, NetworkHealth, RelayNetwork } from './network.ts';

export interface GatewayOptions {
  /** Base URL of the gateway relay (a Bun relay started with a gateway secret), e.g. `https://gw.example`. */
  url: string;
  secret: string;
  /** Models assumed served in addition to the gateway's. */
  configuredModels?: readonly string[];
  /** How long a fetched status (coordinator, models, health) is reused. Default 5 s. */
  statusTtlMs?: number;
  now?: () => number;
  /** Default: the global `fetch`, looked up at call time (workerd binds it per request). */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
}

/**
 * The relay on workerd: it holds no node, so it forwards each accepted request body to a gateway relay
 * (`POST /internal/v1/accept`), which signs it as the coordinator, stores it in the shared libSQL history
 * before answering, and coordinates it; everything after that (commits, seal, reveals, verdict) reaches
 * the shared history through the gateway, where this relay's read routes find it. There is no push
 * channel, so `subscribe` never fires and the long-polling routes fall back to their polling interval.
 */
export class GatewayRelayNetwork implements RelayNetwork {
  #status: GatewayStatus | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #lastError: string | undefined;
  readonly #base: string;
  readonly #ttl: number;
  readonly #now: () => number;

  constructor(private readonly o: GatewayOptions) {
    this.#base = o.url.replace(/\/+$/, '');
    this.#ttl = o.statusTtlMs ?? 5_000;
    this.#now = o.now ?? (() => Date.now());
  }

  /** The gateway's coordinator id, once its status was fetched (empty before). */
  get coordinatorId(): string {
    return this.#status?.coordinatorId ?? '';
  }

  /** The last status fetched, however old (undefined before the first success). */
  get cached(): GatewayStatus | undefined {
    return this.#status;
  }

  /** The gateway's last known status, refreshed when older than the TTL (or always with `force`). */
  async status(force = false): Promise<GatewayStatus | undefined> {
    if (!force && this.#status && this.#now() - this.#fetchedAt < this.#ttl) return this.#status;
    try {
      const r = await this.#call('GET', '/internal/v1/status');
      if (!r.ok) throw new Error(`status ${r.status}: ${(await r.text()).slice(0, 200)}`);
      this.#status = (await r.json()) as GatewayStatus;
      this.#fetchedAt = this.#now();
      this.#lastError = undefined;
    } catch (e) {
      this.#lastError = String((e as Error).message ?? e);
      // A stale status keeps the relay describable, but a failed refresh always shows in health().
      this.#fetchedAt = Number.NEGATIVE_INFINITY;
      return undefined;
    }
    return this.#status;
  }

  async accept(body: RequestBody, idempotency?: IdempotencyInput): Promise<AcceptOutcome> {
    let r: Response;
    try {
      r = await this.#call('POST', '/internal/v1/accept', { body, ...(idempotency ? { idempotency } : {}) });
    } catch (e) {
      throw unavailable(e);
    }
    const text = await r.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw unavailable(`gateway answered ${r.status} without JSON`);
    }
    if (!r.ok) {
      const err = (json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } })
        .error;
      // The gateway's 4xx are about the request and pass through; its 5xx and auth failures are ours.
      if (r.status >= 400 && r.status < 500 && r.status !== 401 && r.status !== 403 && err?.code) {
        throw new HttpError(
          r.status as ContentfulStatusCode,
          err.code,
          err.message ?? 'rejected',
          err.details,
        );
      }
      throw unavailable(`gateway answered ${r.status}${err?.code ? ` ${err.code}` : ''}`);
    }
    const outcome = json as AcceptOutcome;
    if (outcome.kind === 'created') {
      // Never trust the shape blindly: the packet must parse and its id must be its digest.
      const packet = parseEnvelope(outcome.request.packet);
      if (packet.type !== 'request' || packetId(packet) !== outcome.request.id) {
        throw unavailable('the gateway answered a malformed request packet');
      }
      return { kind: 'created', request: { id: outcome.request.id, packet } as Stored<'request'> };
    }
    if (
      (outcome.kind === 'replayed' || outcome.kind === 'conflict') &&
      typeof outcome.requestId === 'string'
    ) {
      return { kind: outcome.kind, requestId: outcome.requestId };
    }
    throw unavailable('the gateway answered an unknown outcome');
  }

  async servedModels(): Promise<ReadonlySet<string>> {
    const s = await this.status();
    if (!s) throw unavailable(this.#lastError ?? 'gateway unreachable');
    return new Set([...(this.o.configuredModels ?? []), ...s.models]);
  }

  subscribe(_requestId: string, _listener: () => void): () => void {
    return () => undefined;
  }

  health(): NetworkHealth {
    const s = this.#status;
    const fresh = s !== undefined && this.#lastError === undefined;
    return {
      ok: fresh,
      peers: s?.health.peers ?? 0,
      openRequests: s?.health.openRequests ?? 0,
      detail: {
        mode: 'gateway',
        gateway: this.#base,
        ...(s ? { gatewayHealth: s.health } : {}),
        ...(this.#lastError ? { error: this.#lastError } : {}),
      },
    };
  }

  #call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Response> {
    const f = this.o.fetch ?? ((input: string, init?: RequestInit) => fetch(input, init));
    return f(`${this.#base}${path}`, {
      method,
      headers: {
        [GATEWAY_SECRET_HEADER]: this.o.secret,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }
}

function unavailable(e: unknown): HttpError {
  return edgeError(
    503,
    'NETWORK_UNAVAILABLE',
    'the gateway relay did not confirm the request',
    { reason: String((e as Error)?.message ?? e).slice(0, 300) },
    'retry with the same Idempotency-Key: a request the gateway did store is then replayed, not duplicated',
  );
}
