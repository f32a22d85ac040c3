import type { Client } from '@libsql/client';
import { LibsqlMachineStore, type ReembedConfig, SynodNode, type Transport } from '@synod/browser-node';
import type { EmbeddingModelRef, NodeKey } from '@synod/shared';
import type { Hono } from 'hono';
import { getConnInfo } from 'hono/bun';
import { createApp } from '../app.ts';
import { ApiKeyCache } from '../auth/api-key-cache.ts';
import type { ChainBridgeOptions } from '../chain/bridge-config.ts';
import type { ChainWatcher } from '../chain/chain-watcher.ts';
import { relayChainWatcher } from '../chain/relay-watcher.ts';
import { DEFAULT_EDGE_CONFIG, type EdgeConfig } from '../config.ts';
import { BodyBudget } from '../http/body-budget.ts';
import { Metrics } from '../metrics.ts';
import { RateLimiter } from '../rate-limit.ts';
import { checkMaxQueued, DEFAULT_MAX_QUEUED, Dispatcher, networkWindow } from '../relay/dispatcher.ts';
import { GroupCommit } from '../relay/group-commit.ts';
import { recordPacket } from '../relay/history-sink.ts';
import { HistoryWriter } from '../relay/history-writer.ts';
import { InProcessRelayNetwork, type NetworkWaits } from '../relay/in-process.ts';
import {
  exportIntakeMetrics,
  exportLateAnswerMetrics,
  exportReembedMetrics,
} from '../relay/intake-metrics.ts';
import { ProvenNodes } from '../relay/proven-nodes.ts';
import { mountInternal } from '../routes/internal.ts';
import { ABANDONED_AFTER_MS, type HistoryStore, NODE_RETENTION_MS } from '../store/history-store.ts';
import {
  checkIdempotencyRetention,
  IDEMPOTENCY_PRUNE_EVERY_MS,
  pruneExpiredIdempotency,
} from '../store/idempotency-retention.ts';
import { IntakeStore } from '../store/intake-store.ts';
import { IntakeWriterThread } from '../store/intake-writer-thread.ts';
import { MIGRATIONS } from '../store/migrations.gen.ts';
import { BUSY_TIMEOUT_MS, isLocalFile, openHistory } from '../store/open-history.ts';
import { SchemaWatch } from '../store/schema-watch.ts';

export type { ChainBridgeOptions } from '../chain/bridge-config.ts';

export interface RelayOptions {
  /** libSQL URL: `file:relay.db` (default embedded file), `http://127.0.0.1:8080` (sqld), `:memory:`. */
  dbUrl: string;
  /** How long a request body may take to arrive before a 408 `BODY_TIMEOUT`. Default 30 s (BodyBudget). */
  bodyDeadlineMs?: number;
  dbAuthToken?: string;
  /** Embedded replica: a local file synced from `dbUrl` (reads served locally). */
  replicaPath?: string;
  /** How often the embedded replica pulls changes from `dbUrl`. Default 1000 ms. */
  replicaSyncMs?: number;
  key: NodeKey;
  transports: Transport[];
  embedders: EmbeddingModelRef[];
  /**
   * The relay's own embedder: its node re-embeds every sealed member's reveal of the requests it
   * coordinates whose frame pins it, and its verdicts reject a reveal whose bits are not its text's
   * (EMBEDDING_DISAGREES; see `ReembedConfig`). Absent: reveals are taken with the bits they claim.
   */
  reembed?: ReembedConfig;
  /** Why the embedder asked for could not be loaded (`/healthz` warns REEMBED_UNAVAILABLE). */
  reembedUnavailable?: string;
  /**
   * With `reembed` from an embedder that starts its worker again when it dies (`RestartingEmbedder`):
   * those restarts, read at each scrape (`synod_reembed_restarts_total{outcome}`).
   */
  reembedRestarts?: () => { restarted: number; failed: number };
  /** The re-embedder's worker is dead and being started again (`RestartingEmbedder.down`): a /healthz warning. */
  reembedDown?: () => { since: number; error: string; attempts: number } | null;
  configuredModels: string[];
  defaultModels?: string[];
  hostname?: string;
  /** 0 picks a free port. */
  port?: number;
  config?: Partial<EdgeConfig>;
  now?: () => number;
  random?: (n: number) => Uint8Array;
  log?: (entry: Record<string, unknown>) => void;
  heartbeatIntervalMs?: number;
  /**
   * When set (16+ characters), serve `/internal/v1/*` so edge relays without a node of their own
   * (workerd, `GatewayRelayNetwork`) can forward accepted requests to this relay: see routes/internal.ts.
   */
  gatewaySecret?: string;
  /** Most requests the relay coordinates at once; the rest wait in the admission log. Default 256. */
  maxOpenRequests?: number;
  /**
   * Most requests that may wait in the admission log before new HTTP requests are refused with 503
   * QUEUE_FULL (on-chain requests are always taken). Default `DEFAULT_MAX_QUEUED` (1,024); `Infinity`
   * for no bound.
   */
  maxQueuedRequests?: number;
  /**
   * Write admissions on a thread of their own (`IntakeWriterThread`) instead of the HTTP thread.
   * Default: on for a local database file (whose client blocks its thread during a commit), off for
   * `:memory:`, a libSQL server and an embedded replica.
   */
  admissionThread?: boolean;
  /** Bridge a SynodOracle on an EVM chain (see chain/chain-watcher.ts): its requests join the network. */
  chain?: ChainBridgeOptions;
  /**
   * Node ids this relay's operator trusts: proven for the coordinator's seat policy from the start, and
   * the nodes proof spreads from (see ProvenNodes). None: no node is ever proven, and seals take anyone.
   */
  trustedNodes?: readonly string[];
  /**
   * What the relay waits for after a start: peers before it resumes its requests, heartbeats before it
   * refuses a quorum larger than the nodes that could serve it (`InProcessRelayNetwork`).
   */
  waits?: NetworkWaits;
  /**
   * Aborting it during the start (the restore waits for peers) stops the start: the port closes at once,
   * and `startRelay` rejects with `RelayStartAborted` (what was opened is closed as the restore's step in
   * progress ends). After the start it does nothing: `stop()` stops the relay.
   */
  signal?: AbortSignal;
  /**
   * How long `stop()` lets the HTTP requests under way finish (new connections are refused at once),
   * while the relay's node still coordinates, before it closes the connections left: a chat completion
   * waiting for its verdict gets its answer rather than a connection cut. Default 0 (closed at once);
   * `synod-relay` gives `STOP_GRACE_MS`.
   */
  stopGraceMs?: number;
  /**
   * Fields added to the `relay listening` log line, logged as the HTTP port opens (before the restore):
   * the CLI adds its node id and multiaddrs, so that nodes can be started against it at once.
   */
  listening?: Record<string, unknown>;
  /**
   * How often the running relay looks whether a newer relay migrated its database (`SchemaWatch`:
   * `DB_SCHEMA_NEWER`, logged once, and in /healthz and /metrics). Default `SCHEMA_CHECK_EVERY_MS` (60 s).
   */
  schemaCheckMs?: number;
}

export interface RunningRelay {
  url: string;
  port: number;
  app: Hono;
  node: SynodNode;
  store: HistoryStore;
  network: InProcessRelayNetwork;
  intake: IntakeStore;
  dispatcher: Dispatcher;
  admissions: GroupCommit;
  /** The admission writer thread, when admissions are written off the HTTP thread. */
  admissionWriter: IntakeWriterThread | null;
  /** The chain bridge, when `chain` was given. */
  chainWatcher: ChainWatcher | null;
  /** The coordinator's seat policy: the nodes proven by this history's verdicts. */
  seats: ProvenNodes;
  client: Client;
  stop(): Promise<void>;
}

/** A start stopped by `RelayOptions.signal` (a SIGINT or SIGTERM during the restore): exit 0, as a stop. */
export class RelayStartAborted extends Error {
  readonly code = 'START_ABORTED';
  constructor() {
    super('the start was interrupted: the port is closed, and what it had opened is closed');
    this.name = 'RelayStartAborted';
  }
}

/** Admissions handed to the writer thread at once (more wait for the end of the event-loop turn). */
const ADMISSION_HANDOVER = 8;

/**
 * The relay under Bun (the local default): libSQL (migrated on start), an in-process Synod node that
 * coordinates accepted requests and writes every packet of them into the history, and the Hono app on
 * `Bun.serve`, bound to 127.0.0.1 unless told otherwise.
 */
export async function startRelay(o: RelayOptions): Promise<RunningRelay> {
  const now = o.now ?? (() => Date.now());
  const random = o.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n)));
  const log = o.log ?? (() => undefined);
  // Checked before anything is opened or started, so a bad value leaves nothing running.
  checkIdempotencyRetention(o.config?.idempotencyRetentionMs ?? DEFAULT_EDGE_CONFIG.idempotencyRetentionMs);
  checkMaxQueued(o.maxQueuedRequests ?? DEFAULT_MAX_QUEUED);
  const { client, store, checkFile, primaryHealth, rebuiltReplica, migrations } = await openHistory(
    o.dbUrl,
    o.dbAuthToken,
    o.replicaPath,
    o.replicaSyncMs,
    undefined,
    {
      onReplicaRebuilt: ({ movedTo, cause }) =>
        log({
          level: 'warn',
          msg: 'the embedded replica broke while the relay ran: moved aside, and made again from the server',
          code: 'REPLICA_REBUILT',
          ...(movedTo !== undefined ? { movedTo } : {}),
          cause,
        }),
    },
  ).catch((e: unknown) => {
    // Marked as the database's (a libSQL server out of reach, refusing the token): its start failure is
    // said as such (relay-cli.ts, databaseServerFailure), not another's that reads alike.
    if (e instanceof Error) Object.assign(e, { openingDatabase: true });
    throw e;
  });

  // An upgrade's migrations are said once, when applied (relays running older code over the database do
  // not take a newer schema's new rows; see docs/operating.md on upgrades).
  if (migrations.applied.length > 0) {
    log({ level: 'info', msg: 'database migrated', applied: migrations.applied, schema: migrations.schema });
  }
  // A newer relay migrated this database (a rolling upgrade, or this one rolled back): this relay runs
  // on, but knows nothing of what those migrations added. Said once, at the start or when a look while
  // it runs first finds it (a newer relay started beside this one).
  const schemaWatch = new SchemaWatch({
    client,
    migrations: MIGRATIONS,
    log,
    ...(o.schemaCheckMs !== undefined ? { everyMs: o.schemaCheckMs } : {}),
  });
  schemaWatch.found(migrations.newer);
  if (rebuiltReplica !== undefined) {
    log({
      level: 'warn',
      msg: 'the embedded replica was malformed: moved aside, and made again from the server',
      code: 'REPLICA_REBUILT',
      movedTo: rebuiltReplica,
    });
  }
  /**
   * After each admission commit: a commit into a database file deleted or replaced under the relay is
   * not kept, so it is refused (503 STORE_UNAVAILABLE), not acknowledged; logged once.
   */
  let fileGoneLogged = false;
  const committed = <T>(outcomes: T): T => {
    try {
      checkFile?.();
    } catch (e) {
      if (!fileGoneLogged)
        log({ level: 'error', msg: 'database file gone', err: String((e as Error).message) });
      fileGoneLogged = true;
      throw e;
    }
    return outcomes;
  };
  const intake = new IntakeStore(client);
  let network: InProcessRelayNetwork | undefined;
  let dispatcher: Dispatcher | undefined;
  // The coordinator's seat policy: nodes without a record in this history never fill a seal while
  // enough proven nodes are online (see ProvenNodes).
  const proven = new ProvenNodes(store, log, now, o.trustedNodes ?? [], o.key.nodeId);
  // What the relay's node sees goes into the history; a write that fails (the database out of reach, a
  // full disk) is written again, in order, once it works (see HistoryWriter).
  const history = new HistoryWriter({
    record: (id, packet) =>
      recordPacket(store, packet, id, now(), {
        heldCommits: (requestId, ids) => node.heldCommits(requestId, ids),
        vouches: (nodeId) => proven.isProven(nodeId),
        self: o.key.nodeId,
        log,
      }),
    stored: (packet, changed) => {
      if (changed && packet.type !== 'heartbeat') network?.changed(packet.body.requestId);
    },
    log,
    now,
  });
  const node = new SynodNode({
    key: o.key,
    role: 'relay',
    coordinator: { seats: proven },
    ...(o.reembed ? { reembed: o.reembed } : {}),
    transports: o.transports,
    store: new LibsqlMachineStore(client),
    // A coordinator machine restored at the start resumes with what the history kept for it since.
    restoreWith: async (requestId) => (network ? network.storedPackets(requestId) : []),
    random,
    log,
    ...(o.heartbeatIntervalMs
      ? {
          heartbeat: {
            intervalMs: o.heartbeatIntervalMs,
            software: 'synod-relay/0.1.0',
            addresses: [],
            tokensPerSecond: 0,
            embeddingsPerSecond: 0,
            engine: 'none',
          },
        }
      : {}),
    onPacket: async ({ id, packet }) => {
      if (packet.type === 'heartbeat') proven.heard(packet.from, packet.body);
      await history.write(id, packet);
    },
    onFinished: (requestId, outcome) => {
      dispatcher?.release(requestId);
      if (outcome.kind === 'expired') {
        void store
          .setStatus(requestId, 'expired', now(), outcome.reason.toUpperCase().replace(/-/g, '_'))
          .then(() => network?.changed(requestId))
          .catch((e) => log({ level: 'error', msg: 'status write failed', err: String(e) }));
      }
    },
  });
  // Models are served when configured, or advertised by nodes proven or trusted for the seat policy.
  network = new InProcessRelayNetwork(o.key, node, store, now, o.configuredModels, o.waits, (nodeId) =>
    proven.isProven(nodeId),
  );
  const net = network;
  dispatcher = new Dispatcher({
    intake,
    store,
    node,
    key: o.key,
    now,
    ...(o.maxOpenRequests !== undefined ? { maxOpen: o.maxOpenRequests } : {}),
    // No more open at once than the nodes heard in the last minute can queue, at the default quorum
    // (a heartbeat says its node's queue bound); none heard: `maxOpen` alone.
    networkWindow: () => networkWindow(node.knownNodes().map((n) => n.body.capacity.maxQueue)),
    maxQueued: o.maxQueuedRequests ?? DEFAULT_MAX_QUEUED,
    changed: (requestId) => net.changed(requestId),
    // Requests start once the relay's machines are restored (one moved to the history before `recover`
    // reads the open requests would look like one whose machine was never saved, and start twice) and
    // its node has a peer that can answer them (a relay just started has none; its own Gun client,
    // connected to its own Gun relay, is not one: requests were sent out to no one and expired).
    ready: () => !net.restoring() && node.protocolPeers() > 0,
    log,
  });
  network.attach(dispatcher);
  // The queue bound counts what a previous run left in the admission log from the first request on.
  await dispatcher.recount();
  const admissionWriter =
    (o.admissionThread ?? isLocalFile(o.dbUrl, o.replicaPath))
      ? await IntakeWriterThread.open({
          url: o.dbUrl,
          coordinator: net.coordinatorId,
          busyTimeoutMs: BUSY_TIMEOUT_MS,
        })
      : null;
  // With a writer thread, batches are handed over as they fill (it batches again on its side);
  // without one, one transaction at a time on this thread.
  const admissions = admissionWriter
    ? new GroupCommit(async (batch) => committed(await admissionWriter.admit(batch, now())), {
        pipelined: true,
        flushAt: ADMISSION_HANDOVER,
      })
    : new GroupCommit(async (batch) => committed(await intake.admit(batch, net.coordinatorId, now())));

  const config: EdgeConfig = {
    ...DEFAULT_EDGE_CONFIG,
    embedders: o.embedders,
    configuredModels: o.configuredModels,
    defaultModels: o.defaultModels ?? o.configuredModels.slice(0, 1),
    ...o.config,
  };
  // Expired Idempotency-Keys, and nodes silent for a day that never took part in a verdict, are
  // forgotten at start and then every 10 minutes; requests still open long after any could end (their
  // coordinator, another relay over this database perhaps, stopped and never came back) are expired.
  let pruning: Promise<void> | null = null;
  const prune = () => {
    if (pruning) return;
    pruning = pruneExpiredIdempotency(intake, now(), config.idempotencyRetentionMs)
      .then(async (pruned) => {
        if (pruned > 0) log({ level: 'info', msg: 'expired idempotency keys forgotten', pruned });
        const nodes = await store.pruneNodes(now() - NODE_RETENTION_MS);
        if (nodes > 0) log({ level: 'info', msg: 'silent nodes without a history forgotten', nodes });
        const gone = await store.expireAbandoned(now() - ABANDONED_AFTER_MS, now());
        for (const requestId of gone) network?.changed(requestId);
        if (gone.length > 0) {
          log({ level: 'warn', msg: 'requests whose coordinator never came back expired', requests: gone });
        }
      })
      .catch((e) =>
        log({
          level: 'error',
          msg: 'pruning the history failed (expired Idempotency-Keys, silent nodes, abandoned requests)',
          err: String(e),
        }),
      )
      .finally(() => {
        pruning = null;
      });
  };
  let pruneTimer: ReturnType<typeof setInterval> | undefined;
  const metrics = new Metrics();
  // The P2P intake's counters (the node's own series names), read at each scrape.
  metrics.onScrape(() => {
    const m = node.metrics();
    exportIntakeMetrics(metrics, m.intake, o.transports);
    exportLateAnswerMetrics(metrics, m);
    exportReembedMetrics(metrics, m.reembed, o.reembedRestarts?.());
  });
  const app = createApp({
    store,
    intake,
    admitter: admissions,
    apiKeys: new ApiKeyCache({ now, ttlMs: config.apiKeyCacheMs }),
    network,
    config,
    now,
    random,
    metrics,
    limiter: new RateLimiter(config.rateLimit, now),
    clientAddress: (c) => {
      try {
        return getConnInfo(c).remote.address ?? 'unknown';
      } catch {
        return 'unknown';
      }
    },
    sleep: (ms) => Bun.sleep(ms),
    ...(o.bodyDeadlineMs !== undefined ? { bodies: new BodyBudget({ deadlineMs: o.bodyDeadlineMs }) } : {}),
    admissionStats: () => {
      const s = admissions.stats();
      return {
        batches: s.batches,
        admissions: s.admissions,
        writerRestarts: admissionWriter?.restarts ?? 0,
      };
    },
    // On an embedded replica, /healthz asks its primary too (reads alone would not notice it down).
    ...(primaryHealth ? { primaryHealth } : {}),
    schema: () => schemaWatch.state(),
    ...(o.reembedUnavailable !== undefined ? { reembedUnavailable: o.reembedUnavailable } : {}),
    reembedFailing: () => node.metrics().reembed.failing,
    ...(o.reembedDown !== undefined ? { reembedDown: o.reembedDown } : {}),
  });
  if (o.gatewaySecret !== undefined) {
    mountInternal(app, { secret: o.gatewaySecret, network, config, databaseId: await intake.databaseId() });
  }
  // The port opens before the machines are restored: a relay started again with requests to resume
  // waits for its peers first (up to `RESUME_PEER_WAIT_MS`), and agents meanwhile got connection errors.
  // Requests are admitted into the log as at any time and dispatched once the restore is done; reads
  // answer from the history; /healthz says `restoring`.
  const server = Bun.serve({
    hostname: o.hostname ?? '127.0.0.1',
    port: o.port ?? 0,
    fetch: app.fetch,
    // Server-sent events and /v1/chat/completions hold a connection until the verdict.
    idleTimeout: 255,
  });
  const port = server.port ?? 0;
  const url = `http://${o.hostname ?? '127.0.0.1'}:${port}`;
  log({ level: 'info', msg: 'relay listening', url, ...o.listening, restoring: true });
  schemaWatch.start();
  let chainWatcher: ChainWatcher | null = null;
  /** Everything the start opened, closed (the HTTP server and the admission writer first). */
  const closeAll = async () => {
    clearInterval(pruneTimer);
    const grace = o.stopGraceMs ?? 0;
    if (grace > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        server.stop(false),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, grace);
        }),
      ]);
      clearTimeout(timer);
    }
    server.stop(true);
    await chainWatcher?.stop();
    await pruning;
    await admissionWriter?.close();
    await dispatcher?.stop();
    await node.close();
    history.close();
    await proven.stop();
    await schemaWatch.stop();
    client.close();
  };
  const signal = o.signal;
  /** Each step of the restore runs unless the start was aborted meanwhile. */
  const step = async <T>(f: () => Promise<T>): Promise<T> => {
    if (signal?.aborted) throw new RelayStartAborted();
    return f();
  };
  const restore = (async () => {
    await step(() => proven.start());
    await step(() => node.start());
    const recovered = await step(() => network.recover());
    if (recovered.resumed.length + recovered.expired.length > 0)
      log({ level: 'info', msg: 'recovered', ...recovered });
    if (signal?.aborted) throw new RelayStartAborted();
    network.restored();
    dispatcher.start();
    pruneTimer = setInterval(prune, IDEMPOTENCY_PRUNE_EVERY_MS);
    (pruneTimer as { unref?: () => void }).unref?.();
    prune();
    if (o.chain) {
      chainWatcher = relayChainWatcher(o.chain, {
        store,
        intake,
        network: net,
        config,
        admitter: admissions,
        now,
        random,
        log,
        metrics,
      });
      await step(async () => chainWatcher?.start());
    }
  })();
  // A stop asked for during the restore (which waits for peers, up to 16 s) is not held until it ends:
  // the port closes and the admission writer finishes its commit at once (what was acknowledged is
  // stored), and the rest is closed once the step in progress is over. The restore itself is safe to
  // cut anywhere, as a crash is.
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new RelayStartAborted());
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([restore, aborted]);
  } catch (e) {
    if (e instanceof RelayStartAborted) {
      server.stop(true);
      await admissionWriter?.close();
      void restore
        .catch(() => undefined)
        .then(closeAll)
        .catch((err) => log({ level: 'error', msg: 'closing a stopped start failed', err: String(err) }));
    } else {
      await restore.catch(() => undefined);
      await closeAll();
    }
    throw e;
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
  return {
    url,
    port,
    app,
    node,
    store,
    network,
    intake,
    dispatcher,
    admissions,
    admissionWriter,
    chainWatcher,
    seats: proven,
    client,
    async stop() {
      await closeAll();
    },
  };
}
