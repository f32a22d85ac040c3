import { CHAIN_REQUEST_ID_RE, canonicalBytes, type RequestBody, sha256Hex, utf8 } from '@synod/shared';
import type { ChainRequestStatus } from '@synod/shared/history';
import type { Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { ChainStore } from '../chain/chain-store.ts';
import { authenticate, type Caller, utcDay } from '../http/auth.ts';
import { bodyGuard, parseJson, readBody } from '../http/body.ts';
import {
  edgeError,
  publicReason,
  queueFullError,
  quorumUnavailableError,
  rateLimitedError,
} from '../http/errors.ts';
import { HeavyReads, readTokens } from '../http/heavy-reads.ts';
import { idempotencyKeyOf } from '../http/idempotency-key.ts';
import { type QuotaStanding, quotaExceededError, quotaStanding } from '../http/quota.ts';
import { keepAlive } from '../http/sse-keep-alive.ts';
import { buildRequest, relayDefaults } from '../inference-input.ts';
import type { AdmissionOutcome } from '../store/intake-store.ts';
import { ATTESTATION_WAIT_MS, awaitingAttestations, findRequest, foundView, TERMINAL } from '../views.ts';
import type { EdgeDeps } from './deps.ts';

const REQUEST_ID_PARAM = /^(?:[0-9a-f]{64}|\d{1,20}:0x[0-9a-f]{40}:\d{1,78})$/i;

/**
 * The `:id` of a path: a content id, or a chain request id `<chainId>:<oracle>:<requestNo>`. Hex is
 * taken in either case (an oracle's address is usually printed with its EIP-55 checksum) and lowercased,
 * the form ids are stored in.
 */
export function requestIdParam(c: Context): string {
  const id = c.req.param('id') ?? '';
  if (!REQUEST_ID_PARAM.test(id))
    throw edgeError(400, 'INVALID_INPUT', 'not a request id', { id: id.slice(0, 80) });
  return id.toLowerCase();
}

/** A request id as a URL path segment: a content id (hex) as it is, a chain id percent-encoded. */
function pathSegment(requestId: string): string {
  return /^[0-9a-f]{64}$/.test(requestId) ? requestId : encodeURIComponent(requestId);
}

/**
 * The SSE id of a `status` event: a digest of its data. A client that reconnects (an EventSource sends
 * the last id it saw as `Last-Event-ID`) is then sent only a status it does not hold yet, however many
 * connections it took, and the relay can tell when it already holds a request's final one.
 */
function statusEventId(json: string): string {
  return sha256Hex(utf8(json)).slice(0, 32);
}

export interface Submission {
  requestId: string;
  replayed: boolean;
  caller: Caller;
  /** The body admitted (for a replay: the one just built, not the stored one). */
  body: RequestBody;
  /** For a new request: where the caller's daily quota stands after it. */
  quota?: QuotaStanding;
}

/** What a route that submits learns of the admission as it goes (see `submit`). */
export interface SubmitOptions {
  /**
   * Called once the admission's write starts, with whether a retry would replay it (an Idempotency-Key,
   * or a signed request's signature). From then on an error may come after the request was stored (a lost
   * commit answer, a failure once it is in), so a retry without a key could make it a second time.
   */
  onAdmitting?: (keyed: boolean) => void;
  /**
   * What an Idempotency-Key is bound to, which a replay must match (else 409 IDEMPOTENCY_CONFLICT): the
   * whole body as sent (`body`, the default: POST /v1/inference, whose every member is its input), or the
   * inference input `toInput` made of it (`input`: the chat route's messages, models, params, frame and
   * embedder), so that members which do not change the request (`stream`, `stream_options`, members
   * Synod ignores) do not make a retry a conflict.
   */
  keyedBy?: 'body' | 'input';
}

/**
 * Authenticate, rate-limit, validate, meter and durably admit a request; shared by /v1/inference and
 * /v1/chat/completions. When this resolves the request is in libSQL (the admission log, with its quota
 * count and idempotency row, committed together).
 */
export async function submit(
  c: Context,
  deps: EdgeDeps,
  toInput: (raw: unknown) => unknown,
  options: SubmitOptions = {},
): Promise<Submission> {
  const bytes = await readBody(c, deps.config.bodyLimit, bodyGuard(c, deps));
  // The time once the body is in: a signed request's timestamp is judged by it (a body trickled in for
  // longer than the skew window, or than Idempotency-Keys are kept, must not stretch the window).
  const now = deps.now();
  const caller = await authenticate(c, deps, bytes, now);
  const wait = deps.limiter.take(caller.id);
  if (wait > 0) throw rateLimitedError(wait);
  const raw = parseJson(bytes);
  const input = toInput(raw);
  const { body, json: bodyJson } = buildRequest(
    input,
    await relayDefaults(deps.network, deps.config),
    now,
    deps.random,
  );
  const givenKey = idempotencyKeyOf(c.req.header('idempotency-key'));
  // A signed request without a key of its own is keyed by its signature: replaying it (the same
  // signature, within the skew window) answers the request it made, charges nothing and starts nothing.
  const idemKey = givenKey ?? (caller.signature !== undefined ? `sig:${caller.signature}` : undefined);
  // Outside the admission's try: a body with no canonical form is the caller's 400 ENCODING_INVALID, not
  // a store failure.
  const keyed = options.keyedBy === 'input' ? input : raw;
  const idempotency =
    idemKey === undefined ? undefined : { key: idemKey, bodyDigest: sha256Hex(canonicalBytes(keyed)) };
  if (deps.network.coordinatorId === '') {
    throw edgeError(503, 'NETWORK_UNAVAILABLE', 'no coordinator is known yet; retry shortly');
  }
  // (Not awaited where there is no such check: the accept path takes no extra turn for nothing.)
  if (deps.network.admissible !== undefined) await deps.network.admissible();
  // Load shedding at the door: while the coordinator's log is full, a new request would only wait there
  // to expire, and storing it would slow the relay for the requests already waiting. After validation,
  // so that a request that could never be taken gets its 4xx, not a 503 inviting a retry.
  const queue = deps.network.queue();
  let outcome: AdmissionOutcome | undefined;
  // Held from the check to the admission's end: concurrent requests each see the others' places.
  let release: (() => void) | undefined;
  // A quorum larger than the nodes that could serve the request now is never met: said at once, rather
  // than taken, charged, and expired QUORUM_NOT_MET at its deadline. What a retry would meet is said as
  // on a full queue (a replay is answered, a spent quota is a 429).
  const serving = deps.network.servingNodes?.(body);
  if (serving !== undefined && serving < body.frame.quorum) {
    outcome = await shedOutcome(deps, caller, now, idempotency);
    if (outcome === undefined) {
      deps.metrics.inc(NO_QUORUM.name, NO_QUORUM.help, { caller: caller.kind });
      throw quorumUnavailableError({ quorum: body.frame.quorum, serving, models: body.acceptedModels });
    }
  } else if (queue !== undefined && queue.queued >= queue.limit) {
    // What a retry would meet once there is room is said now: the request its Idempotency-Key already
    // names (a replay stores nothing), or a quota spent for the day (a 503 would invite retries that end
    // in a 429). Read on this path only: an admission reads them anyway, in its transaction.
    outcome = await shedOutcome(deps, caller, now, idempotency);
    if (outcome === undefined) {
      deps.metrics.inc(SHED.name, SHED.help, { caller: caller.kind });
      throw queueFullError(queue);
    }
  } else if (queue !== undefined) {
    release = deps.network.reserve?.();
  }
  // The place reserved above is held until the admission is counted (or refused), then released.
  try {
    if (outcome === undefined) options.onAdmitting?.(idemKey !== undefined);
    try {
      outcome ??= await deps.admitter.admit({
        body,
        bodyJson,
        callerId: caller.id,
        quotaPerDay: caller.quotaPerDay,
        day: utcDay(now),
        ...(idempotency ? { idempotency } : {}),
      });
    } catch (e) {
      // A lost commit answer (a writer thread that died, a remote database) may still have kept it.
      throw edgeError(
        503,
        'STORE_UNAVAILABLE',
        'the request could not be confirmed as stored',
        { reason: publicReason(e) },
        'retry with the same Idempotency-Key: a request that was stored is then replayed, not duplicated',
      );
    }
    if (outcome.kind === 'quota-exceeded') {
      throw quotaExceededError(outcome.quotaPerDay, outcome.day, now, caller.kind);
    }
    if (outcome.kind === 'conflict') {
      throw edgeError(409, 'IDEMPOTENCY_CONFLICT', 'this Idempotency-Key was used with a different body', {
        requestId: outcome.requestId,
      });
    }
    if (outcome.kind === 'created') {
      deps.metrics.inc(ACCEPTED.name, ACCEPTED.help, { caller: caller.kind });
      await deps.network.admitted([outcome.requestId]);
    }
  } finally {
    release?.();
  }
  return {
    requestId: outcome.requestId,
    replayed: outcome.kind === 'replayed',
    caller,
    body,
    ...(outcome.kind === 'created'
      ? { quota: quotaStanding(caller.quotaPerDay, outcome.usedToday, now) }
      : {}),
  };
}

/**
 * While the queue is full: the outcome an admission would have without storing anything (a replay, a
 * conflicting key, a spent quota), or undefined when it would store the request (then QUEUE_FULL). A
 * database that cannot be read is the 503 it would be for an admission.
 */
async function shedOutcome(
  deps: EdgeDeps,
  caller: Caller,
  now: number,
  idempotency: { key: string; bodyDigest: string } | undefined,
): Promise<AdmissionOutcome | undefined> {
  const day = utcDay(now);
  let standing: Awaited<ReturnType<EdgeDeps['intake']['standing']>>;
  try {
    standing = await deps.intake.standing(caller.id, day, idempotency?.key);
  } catch (e) {
    throw edgeError(503, 'STORE_UNAVAILABLE', 'the database could not be read', { reason: publicReason(e) });
  }
  const { prior, usedToday } = standing;
  if (prior !== null && idempotency !== undefined) {
    const kind = prior.bodyDigest === idempotency.bodyDigest ? 'replayed' : 'conflict';
    return { kind, requestId: prior.requestId };
  }
  if (usedToday >= caller.quotaPerDay)
    return { kind: 'quota-exceeded', quotaPerDay: caller.quotaPerDay, day };
  return undefined;
}

/**
 * 404 NOT_FOUND for a request id the history does not hold. A chain request id the relay recorded from
 * the chain and never ran (refused as it was read, as for a model no node serves, or found settled on
 * chain already) says so, with its settlement and, refunded, the reason the oracle's `LLMRefunded`
 * event of that transaction gives; one it ran and pruned since (`history prune`) says that.
 */
export async function notFound(deps: EdgeDeps, id: string) {
  const chain = await chainRecord(deps, id);
  if (chain === null) return edgeError(404, 'NOT_FOUND', `no request ${id}`);
  if (chain.prunedAt !== null) {
    return edgeError(
      404,
      'NOT_FOUND',
      `no request ${id} in the history: it ran here and was pruned on ${new Date(chain.prunedAt).toISOString()}`,
      { chain: { ...chainView(chain), prunedAt: chain.prunedAt } },
      "the relay's operator deleted it with history prune; an archive made then holds its transcript, which synod-verify reads (the settlement on chain is in details.chain)",
    );
  }
  return edgeError(
    404,
    'NOT_FOUND',
    `no request ${id} in the history: the relay read it from the chain and never ran it`,
    { chain: chainView(chain) },
    CHAIN_NOT_RUN_HINTS[chain.status],
  );
}

/** The relay's record of a chain request (`<chainId>:<oracle>:<requestNo>`); null for any other id. */
function chainRecord(deps: EdgeDeps, id: string) {
  return CHAIN_REQUEST_ID_RE.test(id) ? new ChainStore(deps.store.db).byRequestId(id) : Promise.resolve(null);
}

/**
 * What the relay recorded of a chain request's settlement: `status` (`pending`, `fulfilled`, `refunded`,
 * `reorged`), the `LLMRequested` event's `txHash` and `blockNumber`, `settlementTx`, the fulfil or
 * refund, `refundReason`, the reason the refund's event gives (null unless refunded, or while the
 * event is not read yet), and `callbackOk`, whether the consumer's callback ran without failing, as the
 * settlement's event says (null until it is settled and that event read).
 */
function chainView(chain: NonNullable<Awaited<ReturnType<typeof chainRecord>>>) {
  return {
    status: chain.status,
    txHash: chain.txHash,
    blockNumber: chain.blockNumber,
    settlementTx: chain.fulfilledTx,
    refundReason: chain.status === 'refunded' ? chain.refundReason : null,
    callbackOk: chain.status === 'fulfilled' || chain.status === 'refunded' ? chain.callbackOk : null,
  };
}

/** What a recorded chain request the relay never ran is, by its row's status. */
const CHAIN_NOT_RUN_HINTS: Record<ChainRequestStatus, string> = {
  refunded:
    "refused as it was read, or refunded on chain before: refundReason is the reason the oracle's LLMRefunded event of settlementTx gives",
  fulfilled: 'settled on chain by another transaction before this relay read it: see settlementTx',
  pending: 'its refund is being sent: read it again shortly',
  reorged: 'its event is gone from the chain (a reorg); it is read again if it comes back',
};

/** The admission counters (`/metrics`), each series there from the start at 0. */
const ACCEPTED = { name: 'synod_requests_accepted_total', help: 'Requests accepted and stored' };
const SHED = { name: 'synod_requests_shed_total', help: 'Requests refused with QUEUE_FULL' };
const NO_QUORUM = {
  name: 'synod_requests_quorum_unavailable_total',
  help: 'Requests refused with QUORUM_UNAVAILABLE (fewer nodes heard that could serve them than their quorum)',
};
const CALLER_KINDS: readonly Caller['kind'][] = ['api-key', 'signed'];

export function mountInference(app: Hono, deps: EdgeDeps): void {
  // A series born at its first increment hides that increment from increase() and rate().
  for (const caller of CALLER_KINDS) {
    deps.metrics.inc(ACCEPTED.name, ACCEPTED.help, { caller }, 0);
    deps.metrics.inc(SHED.name, SHED.help, { caller }, 0);
    deps.metrics.inc(NO_QUORUM.name, NO_QUORUM.help, { caller }, 0);
  }
  // A request's view can be megabytes (reveals from anyone on the network): such reads are charged to
  // the client address's `read:` bucket by their size (see HeavyReads); light ones cost nothing.
  const heavy = new HeavyReads(deps.limiter);
  app.post('/v1/inference', async (c) => {
    const s = await submit(c, deps, (raw) => raw);
    // A replay answers the request's current status; a new request is queued until dispatched.
    const found = s.replayed ? await findRequest(deps.store, deps.intake, s.requestId) : null;
    const status = found?.kind === 'stored' ? found.detail.status : 'queued';
    const id = pathSegment(s.requestId);
    const self = `/v1/inference/${id}`;
    const links = { self, events: `${self}/events`, verify: `/v1/verify/${id}` };
    // The quota in the body, not in headers: an agent reads it where it reads the id, and the accept
    // path stays lean (each extra header is parsed by every client, load generators included).
    return c.json(
      { requestId: s.requestId, status, replayed: s.replayed, links, ...(s.quota ? { quota: s.quota } : {}) },
      s.replayed ? 200 : 202,
    );
  });

  app.get('/v1/inference/:id', async (c) => {
    const id = requestIdParam(c);
    const bucket = () => `read:${deps.clientAddress(c)}`;
    const charged = heavy.before(bucket, id);
    const found = await findRequest(deps.store, deps.intake, id);
    if (!found) throw await notFound(deps, id);
    // A chain request's view says how it was settled on chain (a refund by anyone after the deadline
    // leaves the relay's verdict unpaid there): its record, beside what the relay holds.
    const chain = await chainRecord(deps, id);
    const view = foundView(found);
    const json = JSON.stringify(chain === null ? view : { ...view, chain: chainView(chain) });
    heavy.after(bucket, id, readTokens(json.length), charged);
    return c.body(json, 200, { 'content-type': 'application/json' });
  });

  app.get('/v1/inference/:id/events', async (c) => {
    const id = requestIdParam(c);
    const bucket = () => `read:${deps.clientAddress(c)}`;
    const charged = heavy.before(bucket, id);
    const first = await findRequest(deps.store, deps.intake, id);
    if (!first) throw await notFound(deps, id);
    // A stream sends the view again at each change: charged once, by its size now, as a read of it is.
    const firstView = foundView(first);
    const firstJson = JSON.stringify(firstView);
    heavy.after(bucket, id, readTokens(firstJson.length), charged);
    const lastEventId = c.req.header('last-event-id');
    // A reconnection to a request that ended, from a client that holds its final status: 204, which
    // tells an EventSource the stream is over (it would otherwise be sent that status and `end` again,
    // and reconnect again, every few seconds for as long as the page stays open).
    if (
      lastEventId !== undefined &&
      TERMINAL.has(firstView.status) &&
      statusEventId(firstJson) === lastEventId
    ) {
      return c.body(null, 204);
    }
    // HEAD runs this GET handler and drops the body unread: a stream started here would wait on its
    // reader (and poll the history) until the 15-minute deadline. The headers alone, then.
    if (c.req.method === 'HEAD') {
      return c.body(null, 200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    }
    // A slot of the client address's (and the relay's) bounded number of open streams, for as long as
    // this one stays open (see StreamSlots): 429 past it.
    const release = deps.streams?.take(deps.clientAddress(c));
    return streamSSE(c, async (stream) => {
      let changed = true;
      let wake: (() => void) | undefined;
      const unsubscribe = deps.network.subscribe(id, () => {
        changed = true;
        wake?.();
      });
      let lastJson = '';
      // What the client holds already: nothing, or on a reconnection the status it saw last.
      let lastId = lastEventId ?? '';
      stream.onAbort(() => {
        unsubscribe();
        wake?.();
      });
      const stopKeepAlive = keepAlive(stream, deps.config.sseKeepAliveMs);
      // Once the request has ended: when the stream ends at the latest, if its seal members' attestations
      // of the verdict (signed as each hears it, moments after it) are not all in yet.
      let endBy: number | null = null;
      try {
        const deadline = deps.now() + 15 * 60_000;
        while (!stream.aborted && !stream.closed && deps.now() < deadline) {
          if (changed) {
            changed = false;
            const found = await findRequest(deps.store, deps.intake, id);
            if (found) {
              const view = foundView(found);
              const json = JSON.stringify(view);
              if (json !== lastJson) {
                lastJson = json;
                const eventId = statusEventId(json);
                if (eventId !== lastId) {
                  lastId = eventId;
                  await stream.writeSSE({ event: 'status', id: eventId, data: json });
                }
              }
              if (TERMINAL.has(view.status)) {
                endBy ??= deps.now() + ATTESTATION_WAIT_MS;
                if (!awaitingAttestations(view) || deps.now() >= endBy) {
                  await stream.writeSSE({ event: 'end', data: JSON.stringify({ status: view.status }) });
                  break;
                }
              }
            }
          }
          // Wake on a notification, or poll the shared history (another relay may be the coordinator).
          await Promise.race([
            new Promise<void>((resolve) => {
              wake = resolve;
            }),
            deps.sleep(endBy === null ? 1_000 : Math.max(0, Math.min(1_000, endBy - deps.now()))).then(() => {
              changed = true;
            }),
          ]);
          wake = undefined;
        }
      } finally {
        stopKeepAlive();
        unsubscribe();
        release?.();
      }
    });
  });
}
