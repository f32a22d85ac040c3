import type { RequestBody } from '@synod/shared';
import { edgeError } from '../http/errors.ts';
import { GATEWAY_SECRET_HEADER, type GatewayStatus } from '../routes/internal.ts';
import type { AdmissionQueue } from './dispatcher.ts';
import type { NetworkHealth, RelayNetwork } from './network.ts';
import { MAX_SERVING_GROUPS, type ServingGroup, servingCount } from './serving-groups.ts';

export interface GatewayOptions {
  /** Base URL of the gateway relay (a Bun relay started with a gateway secret), e.g. `https://gw.example`. */
  url: string;
  secret: string;
  /** Models assumed served in addition to the gateway's. */
  configuredModels?: readonly string[];
  /** How long a fetched status (coordinator, models, health) is reused. Default 5 s. */
  statusTtlMs?: number;
  now?: () => number;
  /** How long a call to the gateway may take before it is abandoned. Default 10 s. */
  timeoutMs?: number;
  /** Default: the global `fetch`, looked up at call time (workerd binds it per request). */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
}

/**
 * How long a gateway that answers may leave its lease in this relay's database unrenewed (it renews it
 * every 5 s) before this relay takes it to dispatch from another database: past a restart's pauses.
 */
export const LEASE_ELSEWHERE_MS = 60_000;

/** Whether a gateway's `serving` is what a relay can count from (a gateway's answer is read, not trusted). */
function isServingGroups(v: unknown): v is ServingGroup[] {
  const ids = (x: unknown) => Array.isArray(x) && x.every((i) => typeof i === 'string');
  const count = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0;
  return (
    Array.isArray(v) &&
    v.length <= MAX_SERVING_GROUPS &&
    v.every(
      (g) =>
        g !== null &&
        typeof g === 'object' &&
        ids(g.models) &&
        ids(g.embedders) &&
        count(g.able) &&
        count(g.paused),
    )
  );
}

/**
 * The relay on workerd: it holds no node, so it admits requests into the shared admission log naming a
 * gateway relay as their coordinator, and wakes it (`POST /internal/v1/wake`); the gateway signs,
 * dispatches and coordinates them; everything after that (commits, seal, reveals, verdict) reaches the
 * shared history through the gateway, where this relay's read routes find it. There is no push channel,
 * so `subscribe` never fires and the long-polling routes fall back to their polling interval.
 */
export class GatewayRelayNetwork implements RelayNetwork {
  #status: GatewayStatus | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #lastError: string | undefined;
  /** The HTTP status of the last status call the gateway refused (undefined: it answered, or no answer). */
  #refusedWith: number | undefined;
  #wakeFailures = 0;
  #lastWakeError: string | undefined;
  /** When the last status was fetched that answered (for health while the gateway is out of reach). */
  #lastOkAt: number | undefined;
  /**
   * The gateway's coordinator lease as this relay's own database holds it, last looked at (`noteLease`):
   * none, or one not renewed for `LEASE_ELSEWHERE_MS` while the gateway answers, means the gateway
   * dispatches from another database.
   */
  #lease: { coordinator: string; ageMs: number | 'released' | null; at: number } | undefined;
  /** This relay's database identity (`noteDatabase`), to compare with the gateway's; undefined until read. */
  #databaseId: string | null | undefined;
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
      this.#refusedWith = undefined;
      const r = await this.#call('GET', '/internal/v1/status');
      if (!r.ok) {
        this.#refusedWith = r.status;
        throw new Error(`status ${r.status}: ${(await r.text()).slice(0, 200)}`);
      }
      this.#status = (await r.json()) as GatewayStatus;
      this.#fetchedAt = this.#now();
      this.#lastOkAt = this.#fetchedAt;
      this.#lastError = undefined;
    } catch (e) {
      this.#lastError = this.#redact(String((e as Error).message ?? e));
      // A stale status keeps the relay describable, but a failed refresh always shows in health().
      this.#fetchedAt = Number.NEGATIVE_INFINITY;
      return undefined;
    }
    return this.#status;
  }

  /**
   * Wake the gateway's dispatcher for rows this relay just admitted. Best effort: the request is already
   * durable in the shared admission log and the gateway polls it, so a failed wake only costs latency.
   */
  async admitted(requestIds: readonly string[]): Promise<void> {
    try {
      const r = await this.#call('POST', '/internal/v1/wake', { requestIds });
      await r.body?.cancel();
      if (!r.ok) throw new Error(`wake answered ${r.status}`);
    } catch (e) {
      // Not a health failure: the rows are durable and the gateway polls; shown in health() detail.
      this.#wakeFailures++;
      this.#lastWakeError = this.#redact(String((e as Error)?.message ?? e)).slice(0, 300);
    }
  }

  async servedModels(): Promise<ReadonlySet<string>> {
    const s = await this.status();
    if (!s) {
      const reason = { reason: (this.#lastError ?? 'gateway unreachable').slice(0, 300) };
      const refused = this.#refusedWith;
      if (refused === 401 || refused === 403) {
        throw edgeError(
          503,
          'NETWORK_UNAVAILABLE',
          "the gateway relay refused this relay's gateway secret",
          reason,
          "SYNOD_GATEWAY_SECRET must be the gateway relay's own (its --gateway-secret-env variable)",
        );
      }
      if (refused === 404) {
        throw edgeError(
          503,
          'NETWORK_UNAVAILABLE',
          'the gateway relay does not serve /internal/v1 to edge relays',
          reason,
          'start the gateway relay with its gateway secret set (SYNOD_GATEWAY_SECRET, --gateway-secret-env)',
        );
      }
      throw edgeError(503, 'NETWORK_UNAVAILABLE', 'the gateway relay is unreachable', reason);
    }
    return new Set([...(this.o.configuredModels ?? []), ...s.models]);
  }

  /**
   * The gateway's admission queue as its status said, while that status is fresh (younger than
   * `statusTtlMs`; each submission refreshes a stale one), so edge relays shed load when the gateway's
   * log is full.
   */
  queue(): AdmissionQueue | undefined {
    // A stale status decides nothing: the submission's own refresh (servedModels) comes after this check,
    // so a "full" that is no longer true must not keep refusing every request.
    if (this.#now() - this.#fetchedAt >= this.#ttl) return undefined;
    return this.#status?.queue ?? undefined;
  }

  subscribe(_requestId: string, _listener: () => void): () => void {
    return () => undefined;
  }

  /**
   * How many of the gateway's nodes could serve `request`, from the groups its fresh status published
   * (`GatewayStatus.serving`), as the gateway counts them itself; undefined when the status is stale, or
   * says nothing (its first seconds, a gateway older than it, or groups that are not groups): a relay
   * then refuses nothing on it, as before.
   */
  servingNodes(request: RequestBody): number | undefined {
    if (this.#now() - this.#fetchedAt >= this.#ttl) return undefined;
    const groups = this.#status?.serving;
    return isServingGroups(groups) ? servingCount(groups, request) : undefined;
  }

  /**
   * Whether the gateway's coordinator lease must be looked at again (`noteLease`): not yet for this
   * coordinator, a status TTL ago, or at every call while the last look found a problem (a gateway that
   * comes back is taken at once).
   */
  leaseCheckDue(): boolean {
    const l = this.#lease;
    return (
      l === undefined ||
      l.coordinator !== this.coordinatorId ||
      this.#now() - l.at >= this.#ttl ||
      this.#leaseProblem() !== undefined
    );
  }

  /**
   * Record the gateway's coordinator lease as this relay's database holds it (`IntakeStore.leaseAgeMs`:
   * its age, `released` after a clean stop, null for none).
   */
  noteLease(coordinator: string, ageMs: number | 'released' | null): void {
    this.#lease = { coordinator, ageMs, at: this.#now() };
  }

  /** Whether this relay's database identity is still to be read (`noteDatabase`). */
  get databaseUnknown(): boolean {
    return this.#databaseId === undefined;
  }

  /**
   * Record this relay's database identity (`IntakeStore.databaseId`): a gateway whose status names
   * another is dispatching from another database, found at once, whatever its lease here says.
   */
  noteDatabase(id: string | null): void {
    this.#databaseId = id;
  }

  /**
   * 503 NETWORK_UNAVAILABLE when this relay's database holds no fresh lease of the gateway's coordinator:
   * the gateway dispatches from another database (its `--db` is not this relay's `SYNOD_DB_URL`), so a
   * request admitted here would wait in a log no relay reads, charged, for ever.
   */
  checkLease(): void {
    const problem = this.#leaseProblem();
    if (problem !== undefined)
      throw edgeError(503, 'NETWORK_UNAVAILABLE', problem.message, problem.detail, problem.hint);
  }

  #leaseProblem() {
    const hint =
      "the gateway relay's --db must be this relay's SYNOD_DB_URL (its coordinator renews a lease there every 5 s)";
    const theirs = this.#status?.databaseId;
    const ours = this.#databaseId;
    if (typeof theirs === 'string' && typeof ours === 'string' && theirs !== ours) {
      // Another database altogether (a gateway that moved after a clean stop left a released lease here,
      // which says nothing): what is admitted here would never be dispatched.
      return {
        message: "the gateway relay dispatches from another database than this relay's",
        detail: {
          reason: 'GATEWAY_NOT_ON_THIS_DATABASE',
          coordinator: this.coordinatorId,
          databaseId: ours,
          gatewayDatabaseId: theirs,
        },
        hint,
      };
    }
    const l = this.#lease;
    if (l === undefined || l.coordinator !== this.coordinatorId || l.coordinator === '') return undefined;
    // Given up by a clean stop: the gateway is stopping or starting again (its status says if it is down),
    // and what is admitted meanwhile waits for it, as it did before.
    if (l.ageMs === 'released') return undefined;
    if (l.ageMs !== null && l.ageMs < LEASE_ELSEWHERE_MS) return undefined;
    return {
      message:
        l.ageMs === null
          ? "the gateway relay does not dispatch from this relay's database"
          : `the gateway relay has not dispatched from this relay's database for ${Math.round(l.ageMs / 1000)} s`,
      detail: {
        reason: 'GATEWAY_NOT_ON_THIS_DATABASE',
        coordinator: l.coordinator,
        leaseAgeMs: l.ageMs,
      },
      hint,
    };
  }

  health(): NetworkHealth {
    const s = this.#status;
    const fresh = s !== undefined && this.#lastError === undefined;
    // The gateway answers, but its own network cannot take requests (no peer): neither can this relay.
    const gatewayDown = fresh && s.health.ok === false;
    const lease = fresh ? this.#leaseProblem() : undefined;
    return {
      ok: fresh && !gatewayDown && lease === undefined,
      // Out of reach, the gateway's last numbers are not what holds now: none, and its last health apart.
      peers: fresh ? s.health.peers : 0,
      openRequests: fresh ? s.health.openRequests : 0,
      detail: {
        mode: 'gateway',
        ...(gatewayDown
          ? {
              reason: String(s.health.detail?.['reason'] ?? 'GATEWAY_NETWORK_DOWN'),
              hint: 'the gateway relay cannot take requests now: see its /healthz',
            }
          : lease !== undefined
            ? { ...lease.detail, hint: lease.hint }
            : {}),
        ...(fresh ? { gatewayHealth: s.health } : {}),
        ...(!fresh && s !== undefined
          ? { lastGatewayHealth: s.health, lastGatewayHealthAt: this.#lastOkAt ?? null }
          : {}),
        ...(this.#lastError ? { error: this.#lastError } : {}),
        ...(this.#wakeFailures > 0
          ? { wakeFailures: this.#wakeFailures, lastWakeError: this.#lastWakeError }
          : {}),
      },
    };
  }

  /**
   * A failure's words without the gateway's address: they reach public answers (`/healthz`, a 503's
   * reason), and where the gateway runs is the operator's to tell, not the relay's.
   */
  #redact(text: string): string {
    const { host, hostname } = new URL(this.#base);
    return text
      .replaceAll(this.#base, '<gateway>')
      .replaceAll(host, '<gateway>')
      .replaceAll(hostname, '<gateway>');
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
      // A gateway that accepts the connection and never answers must not hold the caller (an admitted
      // request's 202 waits for its wake).
      signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000),
    });
  }
}
