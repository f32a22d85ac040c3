/**
 * The relay on workerd (Cloudflare Workers): the same Hono app as under Bun, built from
 * - libSQL over HTTP (`@libsql/client/web`: sqld or Turso at `SYNOD_DB_URL`), migrated on the first
 *   request of each isolate (memoized);
 * - a `GatewayRelayNetwork`: requests are admitted into the shared admission log (one transaction per
 *   HTTP request: an isolate may not share a client between requests) naming a gateway relay (a Bun
 *   relay with a node, started with the same secret) as coordinator, which signs, dispatches and
 *   coordinates them in the shared history.
 *
 * Configuration (wrangler.toml `[vars]`, secrets with `wrangler secret put`):
 *   SYNOD_DB_URL          libSQL URL over HTTP(S), e.g. https://db.example.turso.io or http://127.0.0.1:8080
 *   SYNOD_DB_AUTH_TOKEN   secret: the libSQL auth token (absent for an open local sqld)
 *   SYNOD_GATEWAY_URL     base URL of the gateway relay
 *   SYNOD_GATEWAY_SECRET  secret: shared with the gateway (its --gateway-secret-env variable)
 *   SYNOD_MODELS          optional: comma-separated models assumed served besides the gateway's
 *   SYNOD_CORS_ORIGINS    optional: web origins whose pages may call the API (or *)
 *   SYNOD_SIGNED_QUOTA    optional: requests a UTC day per node key for signed requests, default 1000
 *
 * The chain watcher (optional; the `scheduled` handler, run by the cron trigger of wrangler.toml): each
 * run is one pass of `ChainWatcher` over the shared history: it reads the oracle's confirmed
 * `LLMRequested` events, admits them for the gateway to coordinate, and settles finished ones on chain.
 * A run that cannot reach the database does nothing, and says why; one that cannot reach the gateway
 * takes no new event (the watcher reads an event again rather than refund it for a network out of
 * reach) but still settles what has its verdict; the next run tries again. One whose bridge key is not
 * the oracle's `bridge()` (BRIDGE_MISMATCH) runs as a Bun relay's watcher does when its bridge is changed
 * under it: refunds past their deadline are sent, nothing that would revert is.
 *   SYNOD_CHAIN_RPC            the chain's JSON-RPC URL (unset: the scheduled handler does nothing)
 *   SYNOD_CHAIN_ID             its chain id
 *   SYNOD_ORACLE               the SynodOracle address
 *   SYNOD_BRIDGE_KEY           secret: the oracle's bridge account key (0x + 64 hex)
 *   SYNOD_CHAIN_CONFIRMATIONS  optional, default 2
 *   SYNOD_CHAIN_FROM_BLOCK     optional: the oracle's deployment block, default 0
 *   SYNOD_CHAIN_REPLACE_AFTER_S    optional: re-send a settlement unmined after this long, default 60
 *   SYNOD_CHAIN_MIN_BRIDGE_BALANCE optional: ether below which the bridge balance is logged as low
 *   SYNOD_CHAIN_MAX_SETTLEMENT_GAS optional: most gas one fulfil may use (more: ANSWER_TOO_LARGE), 2^24
 *   SYNOD_CHAIN_DAILY_QUOTA    optional: requests a UTC day from the oracle (more: QUOTA_EXCEEDED), 1000000
 */
import { createClient } from '@libsql/client/web';
import { historySchema } from '@synod/shared/history';
import { drizzle } from 'drizzle-orm/libsql/web';
import { type Context, Hono } from 'hono';
import { createApp } from '../app.ts';
import { ApiKeyCache } from '../auth/api-key-cache.ts';
import { parseChainBridge } from '../chain/bridge-config.ts';
import type { ChainWatcherStats } from '../chain/chain-watcher.ts';
import { WORKER_EVENTS_PER_PASS } from '../chain/events-budget.ts';
import { relayChainWatcher } from '../chain/relay-watcher.ts';
import { chainErrorText } from '../chain/rpc-errors.ts';
import { DEFAULT_EDGE_CONFIG, type EdgeConfig, parseCorsOrigins } from '../config.ts';
import { AdmissionHealth } from '../http/admission-health.ts';
import { BodyBudget } from '../http/body-budget.ts';
import { corsFor } from '../http/cors.ts';
import { edgeError, type HttpError, publicReason, toHttpError } from '../http/errors.ts';
import { Metrics } from '../metrics.ts';
import { RateLimiter } from '../rate-limit.ts';
import { GatewayRelayNetwork } from '../relay/gateway.ts';
import type { Admitter, RelayNetwork } from '../relay/network.ts';
import { openAiError } from '../routes/openai.ts';
import { HistoryStore, NODE_RETENTION_MS } from '../store/history-store.ts';
import { pruneExpiredIdempotency } from '../store/idempotency-retention.ts';
import { IntakeStore } from '../store/intake-store.ts';
import { applyMigrations } from '../store/migrate.ts';
import { MIGRATIONS } from '../store/migrations.gen.ts';
import { StreamLeases } from './stream-leases.ts';

export interface WorkerEnv {
  SYNOD_DB_URL?: string;
  SYNOD_DB_AUTH_TOKEN?: string;
  SYNOD_GATEWAY_URL?: string;
  SYNOD_GATEWAY_SECRET?: string;
  SYNOD_MODELS?: string;
  /** Optional: comma-separated web origins whose pages may call the API (CORS), or `*`. */
  SYNOD_CORS_ORIGINS?: string;
  SYNOD_SIGNED_QUOTA?: string;
  SYNOD_CHAIN_RPC?: string;
  SYNOD_CHAIN_ID?: string;
  SYNOD_ORACLE?: string;
  SYNOD_BRIDGE_KEY?: string;
  SYNOD_CHAIN_CONFIRMATIONS?: string;
  SYNOD_CHAIN_FROM_BLOCK?: string;
  SYNOD_CHAIN_REPLACE_AFTER_S?: string;
  SYNOD_CHAIN_MIN_BRIDGE_BALANCE?: string;
  SYNOD_CHAIN_MAX_SETTLEMENT_GAS?: string;
  SYNOD_CHAIN_DAILY_QUOTA?: string;
}

interface WorkerCtx {
  waitUntil(p: Promise<unknown>): void;
}

/** Per isolate: what outlives one request (plain data and timers-free objects only). */
interface Isolate {
  key: string;
  network: GatewayRelayNetwork;
  metrics: Metrics;
  limiter: RateLimiter;
  apiKeys: ApiKeyCache;
  /** How this isolate's latest admission went (an app is made per request; this outlives it). */
  admissionHealth: AdmissionHealth;
  /** Event streams this isolate holds open, per client address: leases their requests renew. */
  streams: StreamLeases;
  /** Request bodies this isolate is reading, per client address (an app is made per request). */
  bodies: BodyBudget;
  migrated: Promise<void> | undefined;
}

let isolate: Isolate | undefined;
const now = () => Date.now();

/**
 * The worker's own errors, met before the app exists (configuration, database), in the app's shapes: the
 * typed error body, OpenAI's on `/v1/chat/*` and `/v1/models` (with `x-should-retry` as the app sets it),
 * with the CORS headers of the configured origins once they are known (a page there then reads the error,
 * where it would otherwise see only a CORS failure).
 */
function failure(
  request: Request,
  e: HttpError,
  corsOrigins: readonly string[] = [],
): Response | Promise<Response> {
  const app = new Hono();
  if (corsOrigins.length > 0) app.use(corsFor(corsOrigins));
  app.all('*', () => {
    throw e;
  });
  app.onError((err, c) => {
    if (c.req.path.startsWith('/v1/chat') || c.req.path.startsWith('/v1/models')) return openAiError(c, err);
    const h = toHttpError(err);
    return c.json(h.body(), h.status, h.headers);
  });
  return app.fetch(request);
}

const VARS_HINT = 'see wrangler.toml [vars]';
const SECRET_HINT =
  "set it with `wrangler secret put SYNOD_GATEWAY_SECRET` (under `wrangler dev`: in .dev.vars), the same as the gateway relay's";
const DB_URL_HINT =
  'libSQL over HTTP(S): https://<db>.turso.io (or libsql://…), or http://HOST:PORT for a sqld; see wrangler.toml [vars]';

function configError(request: Request, message: string, hint = VARS_HINT): Response | Promise<Response> {
  return failure(request, edgeError(500, 'INTERNAL', message, undefined, hint));
}

/** The libSQL client of `SYNOD_DB_URL`, or why that URL cannot be one (createClient throws on it). */
function dbClient(env: WorkerEnv & { SYNOD_DB_URL: string }): ReturnType<typeof createClient> | Error {
  try {
    return createClient({
      url: env.SYNOD_DB_URL,
      ...(env.SYNOD_DB_AUTH_TOKEN ? { authToken: env.SYNOD_DB_AUTH_TOKEN } : {}),
    });
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}

/** Why `SYNOD_GATEWAY_URL` is no http(s) base URL, or undefined when it is one. */
function gatewayUrlProblem(url: string): string | undefined {
  try {
    const u = new URL(url);
    if (u.protocol === 'http:' || u.protocol === 'https:') return undefined;
  } catch {
    // reported below
  }
  return `SYNOD_GATEWAY_URL must be the gateway relay's http(s) base URL, e.g. https://gw.example; got ${JSON.stringify(url)}`;
}

/**
 * The network a request's app sees: the isolate's gateway, with the wake of an admitted request sent
 * after the answer (`waitUntil`; the row is durable before the 202 and the gateway polls its log every
 * second, so a slow or silent gateway must not hold the 202 for the wake's timeout), and, before an
 * admission, the check that the gateway dispatches from this relay's database (`admissible`).
 */
function wakeAfterAnswer(
  network: GatewayRelayNetwork,
  ctx: WorkerCtx | undefined,
  intake: IntakeStore,
): RelayNetwork {
  return {
    get coordinatorId() {
      return network.coordinatorId;
    },
    admitted: async (requestIds) => {
      if (ctx) ctx.waitUntil(network.admitted(requestIds));
      else await network.admitted(requestIds);
    },
    servedModels: () => network.servedModels(),
    servingNodes: (request) => network.servingNodes(request),
    subscribe: (requestId, listener) => network.subscribe(requestId, listener),
    health: () => network.health(),
    queue: () => network.queue(),
    // Before an admission: this database must be the one the gateway dispatches from.
    admissible: async () => {
      await leaseLooked(network, intake);
      network.checkLease();
    },
  };
}

function isolateFor(
  env: Required<Pick<WorkerEnv, 'SYNOD_GATEWAY_URL' | 'SYNOD_GATEWAY_SECRET'>> & WorkerEnv,
) {
  const key = `${env.SYNOD_DB_URL}|${env.SYNOD_GATEWAY_URL}`;
  if (isolate?.key !== key) {
    const configuredModels = (env.SYNOD_MODELS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    isolate = {
      key,
      network: new GatewayRelayNetwork({
        url: env.SYNOD_GATEWAY_URL,
        secret: env.SYNOD_GATEWAY_SECRET,
        configuredModels,
        now,
      }),
      metrics: new Metrics(),
      limiter: new RateLimiter(DEFAULT_EDGE_CONFIG.rateLimit, now),
      apiKeys: new ApiKeyCache({ now, ttlMs: DEFAULT_EDGE_CONFIG.apiKeyCacheMs }),
      admissionHealth: new AdmissionHealth(now),
      streams: new StreamLeases({ now }),
      bodies: new BodyBudget(),
      migrated: undefined,
    };
  }
  return isolate;
}

export async function handle(request: Request, env: WorkerEnv, ctx?: WorkerCtx): Promise<Response> {
  const { SYNOD_DB_URL: dbUrl, SYNOD_GATEWAY_URL: gatewayUrl, SYNOD_GATEWAY_SECRET: secret } = env;
  if (!dbUrl) return configError(request, 'SYNOD_DB_URL is not set', DB_URL_HINT);
  if (!gatewayUrl) return configError(request, 'SYNOD_GATEWAY_URL is not set');
  const badGateway = gatewayUrlProblem(gatewayUrl);
  if (badGateway) return configError(request, badGateway);
  if (!secret) return configError(request, 'SYNOD_GATEWAY_SECRET is not set', SECRET_HINT);
  let corsOrigins: string[];
  try {
    corsOrigins = parseCorsOrigins(env.SYNOD_CORS_ORIGINS ?? '');
  } catch (e) {
    return configError(request, `SYNOD_CORS_ORIGINS: ${(e as Error).message}`);
  }
  // Empty, as wrangler.toml's other optional vars may be: the default.
  const signedQuota = env.SYNOD_SIGNED_QUOTA || String(DEFAULT_EDGE_CONFIG.signedQuotaPerDay);
  if (!/^\d{1,9}$/.test(signedQuota)) {
    return configError(
      request,
      'SYNOD_SIGNED_QUOTA must be a whole number of requests a day up to 999999999',
    );
  }

  // A client per request: workerd forbids reusing one request's I/O objects in another.
  const client = dbClient({ ...env, SYNOD_DB_URL: dbUrl });
  if (client instanceof Error) {
    // libSQL's message quotes the value (`The URL '…' is not in a valid format`, an unknown `tls`
    // value), and a value that is no URL may be a secret set in the wrong variable (the auth token):
    // the answer, which any caller gets, and the log name libSQL's code only.
    const code = (client as { code?: unknown }).code;
    const why = typeof code === 'string' && /^[A-Z_]{1,64}$/.test(code) ? code : 'not a URL';
    console.log(JSON.stringify({ level: 'error', msg: 'SYNOD_DB_URL is not a libSQL URL', code: why }));
    return failure(
      request,
      edgeError(
        500,
        'INTERNAL',
        `SYNOD_DB_URL: not a libSQL URL this worker can use (${why})`,
        undefined,
        DB_URL_HINT,
      ),
      corsOrigins,
    );
  }
  const iso = isolateFor({ ...env, SYNOD_GATEWAY_URL: gatewayUrl, SYNOD_GATEWAY_SECRET: secret });
  try {
    await migrated(iso, client);
  } catch (e) {
    return failure(
      request,
      edgeError(
        503,
        'STORE_UNAVAILABLE',
        'the history database is unavailable',
        { reason: publicReason(e) },
        'retry shortly; the relay reaches its libSQL database at SYNOD_DB_URL',
      ),
      corsOrigins,
    );
  }

  // The gateway's status (coordinator, models, embedders) is cached per isolate. Reads never wait for
  // the gateway; a submission refreshes it through `servedModels()` before it reads `embedders` and
  // `defaultModels` below; /healthz and /metrics refresh it because `health()` is synchronous.
  const path = new URL(request.url).pathname;
  const intake = new IntakeStore(client);
  if (path === '/healthz' || path === '/metrics') {
    await iso.network.status(true);
    await leaseLooked(iso.network, intake, true).catch(() => undefined);
  }
  const network = wakeAfterAnswer(iso.network, ctx, intake);
  const config = gatewayConfig(iso.network, corsOrigins, Number(signedQuota));
  // An event stream's slot is a lease its loop renews each time it waits (see StreamLeases): workerd
  // drops the I/O of a request whose client left, and such a stream never gives its slot back itself.
  const streams = iso.streams.forRequest();
  const app = createApp({
    store: new HistoryStore(drizzle(client, { schema: historySchema })),
    intake,
    admitter: gatewayAdmitter(intake, iso.network),
    admissionHealth: iso.admissionHealth,
    streams,
    bodies: iso.bodies,
    apiKeys: iso.apiKeys,
    network,
    config,
    now,
    random: (n) => crypto.getRandomValues(new Uint8Array(n)),
    metrics: iso.metrics,
    limiter: iso.limiter,
    clientAddress: (c: Context) => c.req.header('cf-connecting-ip') ?? 'unknown',
    sleep: (ms) => {
      streams.renew();
      return new Promise((r) => setTimeout(r, ms));
    },
  });
  return app.fetch(request);
}

/** The relay's settings, its embedders and default models being the gateway's (as last fetched). */
/**
 * The worker's configuration: its embedders and default models are the gateway's, read when asked (the
 * getters; a spread of this object would freeze them as they are now, empty before the first status).
 */
function gatewayConfig(
  network: GatewayRelayNetwork,
  corsOrigins: readonly string[] = [],
  signedQuotaPerDay = DEFAULT_EDGE_CONFIG.signedQuotaPerDay,
): EdgeConfig {
  return {
    ...DEFAULT_EDGE_CONFIG,
    corsOrigins,
    signedQuotaPerDay,
    get embedders() {
      return network.cached?.embedders ?? [];
    },
    configuredModels: [],
    get defaultModels() {
      return network.cached?.defaultModels ?? [];
    },
  };
}

/**
 * Look at the gateway's coordinator lease in this relay's database (at most once a status TTL, unless
 * `force`), and once this database's identity, so that a gateway dispatching from another database is
 * found (`GatewayRelayNetwork.checkLease`).
 */
async function leaseLooked(network: GatewayRelayNetwork, intake: IntakeStore, force = false): Promise<void> {
  // The database's identity never changes: read once per isolate (whose key holds the database URL).
  if (network.databaseUnknown) network.noteDatabase(await intake.databaseId());
  const coordinator = network.coordinatorId;
  if (coordinator === '' || (!force && !network.leaseCheckDue())) return;
  network.noteLease(coordinator, await intake.leaseAgeMs(coordinator));
}

/** One transaction per admission, naming the gateway as coordinator (an isolate shares no client). */
function gatewayAdmitter(intake: IntakeStore, network: GatewayRelayNetwork): Admitter {
  return {
    admit: async (a) => {
      const [outcome] = await intake.admit([a], network.coordinatorId, now());
      if (!outcome) throw new Error('the admission gave no outcome');
      return outcome;
    },
  };
}

/** Migrations run once per isolate (memoized; retried after a failure). */
function migrated(iso: Isolate, client: ReturnType<typeof createClient>): Promise<void> {
  if (!iso.migrated) {
    const m = applyMigrations(client, MIGRATIONS).then(() => undefined);
    iso.migrated = m;
    m.catch(() => {
      if (iso.migrated === m) iso.migrated = undefined;
    });
  }
  return iso.migrated;
}

/**
 * Why a scheduled run did not run the chain watcher, as a stable code: `CHAIN_NOT_CONFIGURED` (no
 * `SYNOD_CHAIN_RPC`: a worker without a chain), `CHAIN_CONFIG_INVALID` (a var missing or not valid, named
 * in the reason), `STORE_UNAVAILABLE` (the database could not be reached or migrated).
 */
export type ChainPassSkip = 'CHAIN_NOT_CONFIGURED' | 'CHAIN_CONFIG_INVALID' | 'STORE_UNAVAILABLE';

/** What one scheduled run of the chain watcher did. */
export type ChainPassResult =
  | { ran: false; code: ChainPassSkip; reason: string }
  | { ran: true; stats: ChainWatcherStats; error?: { code: string; message: string } };

/**
 * One pass of the chain watcher (see the header): read confirmed oracle events, admit them for the
 * gateway, settle what is done. Configuration errors and a wrong chain or oracle are reported, never
 * thrown (`ran: false` with a code and the reason, or `error` beside the stats); the next run tries again.
 * Another account as the oracle's bridge is no such error: the pass runs, its stats' `bridgeMismatch`
 * and errors saying it.
 */
export async function chainPass(env: WorkerEnv): Promise<ChainPassResult> {
  const rpc = env.SYNOD_CHAIN_RPC;
  if (!rpc) return { ran: false, code: 'CHAIN_NOT_CONFIGURED', reason: 'SYNOD_CHAIN_RPC is not set' };
  const { SYNOD_DB_URL: dbUrl, SYNOD_GATEWAY_URL: gatewayUrl, SYNOD_GATEWAY_SECRET: secret } = env;
  if (!dbUrl || !gatewayUrl || !secret) {
    return {
      ran: false,
      code: 'CHAIN_CONFIG_INVALID',
      reason: 'SYNOD_DB_URL, SYNOD_GATEWAY_URL and SYNOD_GATEWAY_SECRET are needed',
    };
  }
  const chain = parseChainBridge(
    {
      rpcUrl: rpc,
      chainId: env.SYNOD_CHAIN_ID,
      oracle: env.SYNOD_ORACLE,
      bridgeKey: env.SYNOD_BRIDGE_KEY,
      confirmations: env.SYNOD_CHAIN_CONFIRMATIONS,
      fromBlock: env.SYNOD_CHAIN_FROM_BLOCK,
      replaceAfterS: env.SYNOD_CHAIN_REPLACE_AFTER_S,
      minBridgeBalance: env.SYNOD_CHAIN_MIN_BRIDGE_BALANCE,
      maxSettlementGas: env.SYNOD_CHAIN_MAX_SETTLEMENT_GAS,
      dailyQuota: env.SYNOD_CHAIN_DAILY_QUOTA,
    },
    {
      rpcUrl: 'SYNOD_CHAIN_RPC',
      chainId: 'SYNOD_CHAIN_ID',
      oracle: 'SYNOD_ORACLE',
      bridgeKey: 'SYNOD_BRIDGE_KEY',
      confirmations: 'SYNOD_CHAIN_CONFIRMATIONS',
      fromBlock: 'SYNOD_CHAIN_FROM_BLOCK',
      replaceAfterS: 'SYNOD_CHAIN_REPLACE_AFTER_S',
      minBridgeBalance: 'SYNOD_CHAIN_MIN_BRIDGE_BALANCE',
      maxSettlementGas: 'SYNOD_CHAIN_MAX_SETTLEMENT_GAS',
      dailyQuota: 'SYNOD_CHAIN_DAILY_QUOTA',
    },
  );
  if (chain === undefined)
    return { ran: false, code: 'CHAIN_NOT_CONFIGURED', reason: 'SYNOD_CHAIN_RPC is not set' };
  if ('error' in chain) return { ran: false, code: 'CHAIN_CONFIG_INVALID', reason: chain.error };

  const iso = isolateFor({ ...env, SYNOD_GATEWAY_URL: gatewayUrl, SYNOD_GATEWAY_SECRET: secret });
  const client = createClient({
    url: dbUrl,
    ...(env.SYNOD_DB_AUTH_TOKEN ? { authToken: env.SYNOD_DB_AUTH_TOKEN } : {}),
  });
  try {
    await migrated(iso, client);
  } catch (e) {
    return { ran: false, code: 'STORE_UNAVAILABLE', reason: publicReason(e) };
  }
  const network = iso.network;
  await network.status(true);
  const intake = new IntakeStore(client);
  const watcher = relayChainWatcher(
    { ...chain, maxEventsPerPass: WORKER_EVENTS_PER_PASS },
    {
      store: new HistoryStore(drizzle(client, { schema: historySchema })),
      intake,
      network,
      config: gatewayConfig(network),
      admitter: gatewayAdmitter(intake, network),
      now,
      log: (entry) => console.log(JSON.stringify(entry)),
    },
  );
  try {
    // Another account as the oracle's bridge stops nothing that needs no bridge role (refunds past
    // their deadline, recording what the chain holds): the pass runs, sends nothing that would revert,
    // and says BRIDGE_MISMATCH (its stats' `bridgeMismatch`, an error counted), as the Bun relay's does.
    await watcher.check({ mismatch: 'tolerate' });
  } catch (e) {
    const err = e as { code?: unknown };
    return {
      ran: true,
      stats: watcher.stats(),
      error: {
        code: typeof err.code === 'string' ? err.code : 'INTERNAL',
        // Never viem's whole message: it names SYNOD_CHAIN_RPC, a provider's API key with it.
        message: chainErrorText(e, chain.rpcUrl),
      },
    };
  }
  await watcher.poll();
  return { ran: true, stats: watcher.stats() };
}

/**
 * The cron trigger's housekeeping, with or without a chain: Idempotency-Keys older than the retention
 * (24 h) are forgotten, as the Bun relay does every 10 minutes. Returns how many went.
 */
export async function forgetExpiredKeys(env: WorkerEnv): Promise<number> {
  if (!env.SYNOD_DB_URL) return 0;
  const client = createClient({
    url: env.SYNOD_DB_URL,
    ...(env.SYNOD_DB_AUTH_TOKEN ? { authToken: env.SYNOD_DB_AUTH_TOKEN } : {}),
  });
  try {
    const keys = await pruneExpiredIdempotency(
      new IntakeStore(client),
      now(),
      DEFAULT_EDGE_CONFIG.idempotencyRetentionMs,
    );
    // Nodes silent for a day that never took part in a verdict, as the Bun relay forgets them.
    await new HistoryStore(drizzle(client, { schema: historySchema })).pruneNodes(now() - NODE_RETENTION_MS);
    return keys;
  } finally {
    client.close();
  }
}

/**
 * How a chain pass is logged: `error` when it failed or could not run although the chain bridge is
 * configured (SYNOD_CHAIN_RPC set: a wrong or missing var, an unreachable RPC, another chain), so a log
 * filter on errors finds it; `info` for a pass that ran cleanly or a worker without a chain.
 */
export function chainPassLevel(r: ChainPassResult, env: WorkerEnv): 'info' | 'error' {
  // A pass whose watcher counted failures (the RPC down, rows it could not settle, an unfunded bridge)
  // is an error line too, not only one that could not start.
  if (r.ran) return r.error || r.stats.errors > 0 ? 'error' : 'info';
  return env.SYNOD_CHAIN_RPC ? 'error' : 'info';
}

export default {
  fetch(request: Request, env: WorkerEnv, ctx: WorkerCtx): Promise<Response> {
    return handle(request, env, ctx);
  },
  scheduled(_event: unknown, env: WorkerEnv, ctx: WorkerCtx): void {
    ctx.waitUntil(
      chainPass(env).then(
        (r) => console.log(JSON.stringify({ level: chainPassLevel(r, env), msg: 'chain pass', ...r })),
        (e) =>
          console.log(
            JSON.stringify({
              level: 'error',
              msg: 'chain pass failed',
              err: chainErrorText(e, env.SYNOD_CHAIN_RPC),
            }),
          ),
      ),
    );
    ctx.waitUntil(
      forgetExpiredKeys(env).then(
        (pruned) =>
          pruned > 0 &&
          console.log(JSON.stringify({ level: 'info', msg: 'expired idempotency keys forgotten', pruned })),
        (e) =>
          console.log(
            JSON.stringify({
              level: 'error',
              msg: 'forgetting expired idempotency keys failed',
              err: String(e),
            }),
          ),
      ),
    );
  },
};
