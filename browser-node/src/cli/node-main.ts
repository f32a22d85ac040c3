import { existsSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type Client, createClient } from '@libsql/client';
import { multiaddr } from '@multiformats/multiaddr';
import { checkNewPassphrase, isSynodError, LIMITS, MIN_PASSPHRASE_LENGTH } from '@synod/shared';
import { measureEmbedder, measureEngine } from '../inference/capability.ts';
import type { Engine } from '../inference/engine.ts';
import { InferenceError, isInferenceError } from '../inference/errors.ts';
import { LLAMA_GPUS, type LlamaGpu } from '../inference/llama-cpp.ts';
import { DEFAULT_MODEL_MANIFEST, ModelsDir, modelsRootFromEnv } from '../inference/models-dir.ts';
import { InferenceQueue } from '../inference/queue.ts';
import { EMBEDDER_WAIT_WHILE_DOWN_MS, RestartingEmbedder } from '../inference/restarting-embedder.ts';
import { WorkerEmbedder, WorkerEngine } from '../inference/worker-client.ts';
import { coordinatorTrust, parseCoordinatorIds } from '../node/coordinator-trust.ts';
import { LibsqlMachineStore } from '../node/machine-store-libsql.ts';
import { SynodNode } from '../node/synod-node.ts';
import type { GunTransport } from '../p2p/gun.ts';
import { libp2pKeyFor } from '../p2p/peer-key.ts';
import { DEFAULT_CLUSTER_ID, isLoopbackAddress, parseWakuClusterId } from '../p2p/waku-relay.ts';
import { createHeadlessWakuRelay } from '../p2p/waku-relay-headless.ts';
import { forgottenValueMessage, got, joinNegativeNumbers } from './cli-args.ts';
import { LocalFileError } from './file-error.ts';
import { loadOrCreateIdentity, lockIdentity, lockNodeKey, newKeyPassphraseProblem } from './identity-file.ts';
import { renderNodeMetrics } from './metrics-text.ts';
import { NO_PEERS_GRACE_MS, nodeHealth, PeerlessClock } from './node-health.ts';
import { PassphrasePromptAborted, promptPassphrase } from './passphrase-prompt.ts';
import { watchPeers } from './peer-watch.ts';
import { checkPortsFree, PortInUseError } from './ports-free.ts';
import { ownerOnlyFile } from './private-file.ts';
import { onStopSignals } from './stop-signals.ts';
import { watchWork } from './work-watch.ts';

const HELP = `synod node: run a headless Synod node (Bun).

Usage: synod node [options]

  --identity FILE        sealed node key (created when absent)       [.data/node/identity.json]
                         (created: a new node id, with no standing; IDENTITY_CREATED warning)
  --passphrase-env VAR   environment variable holding the passphrase  [SYNOD_PASSPHRASE]
                         (unset, in a terminal: asked for, twice for a new key; a new key's
                         has 8 characters or more, else exit 2 PASSPHRASE_TOO_SHORT, typed or
                         from the variable; an existing key's any)
  --role ROLE            node (serve models) | follower               [node]
  --models-dir DIR       models directory                             [$SYNOD_MODELS_DIR or ../shared/models]
  --engine NAME          llama-cpp | transformers                     [llama-cpp]
  --model ID             model to serve                               [stories260K]
  --embedder NAME        use-lite                                     [use-lite]
  --threads N            inference threads                            [1]
  --gpu BACKEND          off | auto | cuda | vulkan | metal: llama-cpp on a GPU (its prebuilt
                         binary @node-llama-cpp/<platform>-<backend> and a device, else exit 1
                         ENGINE_UNAVAILABLE; auto: the first with a device, else the CPU)  [off]
  --gpu-layers N|max     layers offloaded to the GPU (with --gpu)    [max]
  --host ADDR            IP address the P2P ports listen on           [127.0.0.1]
  --tcp-port N           libp2p TCP port (0: any free)                [0]
  --ws-port N            libp2p WebSocket port for browsers (0: any)  [0]
  --bootstrap ADDRS      comma-separated multiaddrs with /p2p/<id>    []
                         (none: it dials no one, and is dialled or idle; NO_BOOTSTRAP warning)
  --dial POLICY          loopback: dial 127.0.0.0/8 and ::1 only (one machine); any: other
                         hosts too, e.g. a relay on another machine     [loopback]
  --coordinators IDS     node ids (64 hex, comma-separated) of the relays whose requests it
                         serves; another key's copy of a request is refused (NOT_COORDINATOR)
                         and the node waits for theirs; up to 16 are named in its heartbeats,
                         so other relays do not count it as able to serve  [any author]
  --waku-cluster N       Waku cluster (0-65535; 1: The Waku Network); nodes of other
                         clusters are not heard                       [$SYNOD_WAKU_CLUSTER or 42]
  --gun URLS             Gun relay peers (http://127.0.0.1:PORT/gun): a second network
                         for redundant delivery of requests and verdicts  []
  --health-host ADDR     IP address /healthz and /metrics listen on   [127.0.0.1]
                         (apart from --host: a node open to peers keeps them to itself)
  --http-port N          /healthz and /metrics port (0: any free)     [0]
                         (/healthz is 503 NO_PEERS while none of --bootstrap is reached, or,
                         without --bootstrap, after 30 s with no peer,
                         STORE_FAILING from a failed write to --db, e.g. a full disk, until one works,
                         CLOCK_SKEW while this clock is over 5 s off its peers')
  --db FILE              local state (libSQL file)                    [.data/node/state.db]
  --max-queue N          inference jobs waiting at most (each also    [64]
                         only if it can finish before its deadline)
  --quiet                no log line per request served
  --help

One process per identity: a second start on the same --identity exits 1 (IDENTITY_IN_USE).
Logs are JSON lines on stdout; the last one of a clean stop is "stopped". Each request a node takes
up gets a few lines (without --quiet): "committed" (model, inferenceMs: inference and embedding,
tokens), "revealed" (sealSize), then "verdict" (status; outcome accepted, rejected with the verdict's
reason, or not-sealed; winner: whether its output won) or "request expired" (reason). A stop
(SIGINT/SIGTERM/SIGHUP) first finishes the requests the node is computing or committed to, up to 60 s,
taking no new one ("stopping: finishing the requests this node owes first"); a second Ctrl-C stops at
once (exit 130). Exit codes: 0 on SIGINT/SIGTERM/SIGHUP (during the start too, and Ctrl-C at the
passphrase prompt), 1 on a start failure (its line says why, with a code), 2 on bad flags (each checked
before the passphrase is asked for), no passphrase, or a new key's too short (PASSPHRASE_TOO_SHORT).`;

export interface NodeCliOptions {
  identity: string;
  passphrase: string;
  role: 'node' | 'follower';
  modelsDir: string;
  engine: 'llama-cpp' | 'transformers';
  model: string;
  embedder: 'use-lite';
  threads: number;
  /** llama-cpp's GPU backend (`--gpu`); `off`: the CPU. */
  gpu: LlamaGpu;
  /** Layers offloaded with a GPU (`--gpu-layers`). */
  gpuLayers: number | 'max';
  host: string;
  /** Where /healthz and /metrics listen: `--health-host`, 127.0.0.1 whatever `--host` is. */
  healthHost: string;
  tcpPort: number;
  wsPort: number;
  bootstrap: string[];
  /** Which addresses it dials (`--dial`): loopback IP addresses only (the default), or any. */
  dial: 'loopback' | 'any';
  /** The coordinators (relays' node ids) whose requests it serves; empty: any author. */
  coordinators: string[];
  /** The Waku cluster (RFC 51, a uint16): `--waku-cluster`, else `$SYNOD_WAKU_CLUSTER`, else 42. */
  wakuCluster: number;
  /** Gun relay peers; empty: no Gun transport. */
  gun: string[];
  httpPort: number;
  db: string;
  maxQueue: number;
  /** No log line per request served (`SynodNodeOptions.requestLog` off). */
  quiet: boolean;
}

export class CliUsageError extends Error {}

/** No passphrase in its variable: asked for on a terminal, else a usage error (exit 2). */
export class PassphraseMissing extends CliUsageError {
  constructor(readonly variable: string) {
    super(
      `set the passphrase of the node key in $${variable} (or start synod node in a terminal to type it)`,
    );
    this.name = 'PassphraseMissing';
  }
}

/**
 * How long a stop waits for the requests the node owes work to (see `SynodNode.drain`): past a default
 * request's deadline (30 s) and reveal window.
 */
export const DRAIN_MS = 60_000;

/** How often a running node looks at its peers, to log an outage (NO_PEERS) and its end. */
const PEER_WATCH_MS = 5_000;
/** How often a node looks for what keeps it from any work: its clock, its `--coordinators` (work-watch.ts). */
const WORK_WATCH_MS = 30_000;

/** The model format each `--engine` runs. */
const ENGINE_FORMATS = { 'llama-cpp': 'gguf', transformers: 'transformers' } as const;

/**
 * A start cut short by SIGINT/SIGTERM (or `runNode`'s abort signal): what it had opened is closed, and
 * `synod node` exits 0, as for a signal after the start.
 */
export class NodeStartAborted extends Error {
  readonly code = 'START_ABORTED';
  constructor() {
    super('the start was interrupted: everything it had opened is closed');
    this.name = 'NodeStartAborted';
  }
}

/** A TCP port: 0-65535, decimal digits only (not '', ' 80', '1e3' or '0x50'); 0 asks for any free port. */
function parsePort(flag: string, text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65_535) {
    throw new CliUsageError(`${flag} must be a port number (0-65535, digits only), ${got(text)}`);
  }
  return Number(text);
}

/** A whole number in `[min, max]`, decimal digits only (not ' 2', '1e2' or '0x10'). */
function parseWholeNumber(flag: string, text: string, min: number, max: number): number {
  if (!/^\d{1,16}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new CliUsageError(`${flag} must be a whole number from ${min} to ${max}, ${got(text)}`);
  }
  return Number(text);
}

/** parseArgs' error as one line naming the flag when it is about a forgotten value; others as they are. */
function oneLineParseError(e: unknown, argv: readonly string[]): unknown {
  const message = forgottenValueMessage(e, argv);
  return message === null ? e : new CliUsageError(message);
}

/**
 * Inference jobs a node lets wait by default. A job is only queued if it can finish before its deadline
 * (the queue's estimate, from the measured speed), so the bound is for memory, not for time: at 8, a burst
 * of 80 requests (quorum 2, 3 nodes) had 69 of them expire QUORUM_NOT_MET, as every node skipped what did
 * not fit in its 8 places; at 64, 68 reached a verdict (the rest could not be computed in time).
 */
export const DEFAULT_MAX_QUEUE = 64;

/** The flags that take a number: a negative one after them is their value (refused by their check). */
const NUMERIC_FLAGS: ReadonlySet<string> = new Set([
  'threads',
  'gpu-layers',
  'tcp-port',
  'ws-port',
  'waku-cluster',
  'http-port',
  'max-queue',
]);

/** The flags as parseArgs reads them, with the tokens that show a flag given twice. */
function parseNodeFlags(args: string[]) {
  return parseArgs({
    args,
    strict: true,
    tokens: true,
    options: {
      identity: { type: 'string', default: '.data/node/identity.json' },
      'passphrase-env': { type: 'string', default: 'SYNOD_PASSPHRASE' },
      role: { type: 'string', default: 'node' },
      'models-dir': { type: 'string' },
      engine: { type: 'string', default: 'llama-cpp' },
      model: { type: 'string', default: 'stories260K' },
      embedder: { type: 'string', default: 'use-lite' },
      threads: { type: 'string', default: '1' },
      gpu: { type: 'string', default: 'off' },
      'gpu-layers': { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      'health-host': { type: 'string', default: '127.0.0.1' },
      'tcp-port': { type: 'string', default: '0' },
      'ws-port': { type: 'string', default: '0' },
      bootstrap: { type: 'string', default: '' },
      dial: { type: 'string', default: 'loopback' },
      coordinators: { type: 'string', default: '' },
      'waku-cluster': { type: 'string' },
      gun: { type: 'string', default: '' },
      'http-port': { type: 'string', default: '0' },
      db: { type: 'string', default: '.data/node/state.db' },
      'max-queue': { type: 'string', default: String(DEFAULT_MAX_QUEUE) },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
}

export function parseNodeArgs(
  argv: string[],
  env: Record<string, string | undefined>,
): NodeCliOptions | 'help' {
  const args = joinNegativeNumbers(argv, NUMERIC_FLAGS);
  let parsed: ReturnType<typeof parseNodeFlags>;
  try {
    parsed = parseNodeFlags(args);
  } catch (e) {
    throw oneLineParseError(e, args);
  }
  const { values, tokens } = parsed;
  const given = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    // The last of two would win unseen (a wrapper's flag and the operator's, say): refused instead.
    if (given.has(t.name)) throw new CliUsageError(`--${t.name} is given twice`);
    given.add(t.name);
  }
  if (values.help) return 'help';
  const oneOf = <T extends string>(name: string, v: string, allowed: readonly T[]): T => {
    if (!(allowed as readonly string[]).includes(v))
      throw new CliUsageError(`--${name} must be one of ${allowed.join(', ')}`);
    return v as T;
  };
  const list = (v: string) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  // Gun ignores a peer it cannot parse, without a word: refuse it here instead.
  const gunPeer = (v: string) => {
    const url = URL.canParse(v) ? new URL(v) : undefined;
    if (url === undefined || !['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol))
      throw new CliUsageError(
        `--gun takes http(s) or ws(s) URLs of Gun relays, e.g. http://127.0.0.1:8765/gun; got ${v}`,
      );
    return v;
  };
  const dial = oneOf('dial', values.dial as string, ['loopback', 'any'] as const);
  // Checked here (exit 2) as the transport would check it, not after the key is opened (exit 1).
  const bootstrapAddress = (v: string) => {
    let address: ReturnType<typeof multiaddr> | null = null;
    try {
      address = multiaddr(v);
    } catch {
      // not a multiaddr: refused below
    }
    if (address?.getPeerId() == null)
      throw new CliUsageError(
        `--bootstrap takes multiaddrs with /p2p/<peer id>, e.g. /ip4/127.0.0.1/tcp/60000/p2p/12D3KooW…; got ${v}`,
      );
    // The transport would never dial it, and the node would wait for peers forever (NO_PEERS).
    if (dial === 'loopback' && !isLoopbackAddress(address))
      throw new CliUsageError(
        `--bootstrap ${v} is not a loopback IP address (127.0.0.0/8, ::1), and this node dials no other ` +
          'unless --dial any is given (to join a relay on another machine)',
      );
    return v;
  };
  // libp2p and the HTTP server listen on an IP address only; anything else would fail after the key is
  // opened (exit 1).
  const ipAddress = (name: string, v: string) => {
    if (isIP(v) === 0) throw new CliUsageError(`--${name} must be an IP address (e.g. 127.0.0.1); got ${v}`);
    return v;
  };
  const engine = oneOf('engine', values.engine as string, ['llama-cpp', 'transformers'] as const);
  const model = values.model as string;
  // The model must be one the manifest knows, in the format the engine runs (refused here, exit 2, not
  // after the key is opened and the models directory searched).
  const entry = Object.hasOwn(DEFAULT_MODEL_MANIFEST, model) ? DEFAULT_MODEL_MANIFEST[model] : undefined;
  if (entry === undefined) {
    throw new CliUsageError(`--model must be one of ${Object.keys(DEFAULT_MODEL_MANIFEST).join(', ')}`);
  }
  const runs = ENGINE_FORMATS[engine];
  if (entry.format !== runs) {
    throw new CliUsageError(
      `--engine ${engine} runs ${runs} models, and ${model} is a ${entry.format} model` +
        (engine === 'llama-cpp' ? '' : ' (for it, leave --engine at llama-cpp)'),
    );
  }
  const gpu = oneOf('gpu', values.gpu as string, LLAMA_GPUS);
  if (gpu !== 'off' && engine !== 'llama-cpp')
    throw new CliUsageError(`--gpu is for --engine llama-cpp (${engine} runs on the CPU here)`);
  const layersFlag = values['gpu-layers'] as string | undefined;
  if (layersFlag !== undefined && gpu === 'off')
    throw new CliUsageError('--gpu-layers needs --gpu (auto, cuda, vulkan or metal)');
  const gpuLayers =
    layersFlag === undefined || layersFlag === 'max'
      ? ('max' as const)
      : parseWholeNumber('--gpu-layers', layersFlag, 0, 10_000);
  // The flag, else the environment (an empty variable counts as unset), else Synod's own cluster.
  const clusterFlag = values['waku-cluster'] as string | undefined;
  const clusterEnv = env['SYNOD_WAKU_CLUSTER'] || undefined;
  const wakuCluster =
    clusterFlag !== undefined
      ? parseWakuClusterId('--waku-cluster', clusterFlag)
      : clusterEnv !== undefined
        ? parseWakuClusterId('$SYNOD_WAKU_CLUSTER', clusterEnv)
        : DEFAULT_CLUSTER_ID;
  const coordinators = parseCoordinatorIds(values.coordinators as string);
  if (!Array.isArray(coordinators)) {
    throw new CliUsageError(
      `--coordinators: ${coordinators.error} (a relay's node id is the "coordinator" of its "relay started" ` +
        'log line, not the 12D3KooW… peer id of its multiaddrs)',
    );
  }
  const options: Omit<NodeCliOptions, 'passphrase'> = {
    identity: values.identity as string,
    role: oneOf('role', values.role as string, ['node', 'follower'] as const),
    modelsDir: (values['models-dir'] as string | undefined) ?? modelsRootFromEnv('../shared/models'),
    engine,
    model,
    embedder: oneOf('embedder', values.embedder as string, ['use-lite'] as const),
    threads: parseWholeNumber('--threads', values.threads as string, 1, 64),
    gpu,
    gpuLayers,
    host: ipAddress('host', values.host as string),
    healthHost: ipAddress('health-host', values['health-host'] as string),
    tcpPort: parsePort('--tcp-port', values['tcp-port'] as string),
    wsPort: parsePort('--ws-port', values['ws-port'] as string),
    bootstrap: list(values.bootstrap as string).map(bootstrapAddress),
    dial,
    coordinators,
    wakuCluster,
    gun: list(values.gun as string).map(gunPeer),
    httpPort: parsePort('--http-port', values['http-port'] as string),
    db: values.db as string,
    // 0 would take no job at all (the running one passes through the queue too): a node serving nothing.
    maxQueue: parseWholeNumber('--max-queue', values['max-queue'] as string, 1, 10_000),
    quiet: values.quiet as boolean,
  };
  // Last: a flag that is wrong is said as such, not hidden behind the passphrase that is missing.
  const passphraseVar = values['passphrase-env'] as string;
  const passphrase = env[passphraseVar];
  if (!passphrase) throw new PassphraseMissing(passphraseVar);
  return { ...options, passphrase };
}

export interface RunningNode {
  node: SynodNode;
  httpUrl: string;
  multiaddrs: string[];
  stop(): Promise<void>;
}

/**
 * What a start has opened so far, closed in reverse order by `closeAll()`: by `stop()`, or at once when
 * the start fails or is aborted. `step()` runs one piece of start-up work unless the start was aborted,
 * stops waiting for it as soon as it is (a model load can take minutes), and registers how to close
 * what it opens; a step still running when the start was aborted is closed when it finishes.
 */
class Startup {
  readonly #opened: Array<() => unknown> = [];
  readonly #signal: AbortSignal | undefined;

  constructor(signal: AbortSignal | undefined) {
    this.#signal = signal;
  }

  opened(close: () => unknown): void {
    this.#opened.push(close);
  }

  async step<T>(work: () => Promise<T>, close?: (value: T) => unknown): Promise<T> {
    const signal = this.#signal;
    if (signal?.aborted) throw new NodeStartAborted();
    const running = work();
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new NodeStartAborted());
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const value = await Promise.race([running, aborted]);
      if (close) this.opened(() => close(value));
      return value;
    } catch (e) {
      if (e instanceof NodeStartAborted && close) void running.then(close).catch(() => undefined);
      throw e;
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Close everything opened, newest first; one that fails to close does not keep the others open. */
  async closeAll(): Promise<void> {
    for (const close of this.#opened.splice(0).reverse()) {
      try {
        await close();
      } catch {
        // Closing is best effort: the rest still gets closed.
      }
    }
  }
}

/**
 * Start a node. When `signal` aborts before the node is up, the start stops at once (without waiting
 * for a model load to finish), closes what it had opened and rejects with NodeStartAborted.
 */
export async function runNode(
  o: NodeCliOptions,
  log: (e: Record<string, unknown>) => void,
  signal?: AbortSignal,
): Promise<RunningNode> {
  const startup = new Startup(signal);
  try {
    return await startNode(o, log, startup);
  } catch (e) {
    await startup.closeAll();
    throw stateFileFailure(e, o.db);
  }
}

/**
 * A bare SQLite error out of a start (a full disk while the state's tables are made, say) comes from
 * the state file: the identity's lock file reports its own (LocalFileError). Named as --db's.
 */
function stateFileFailure(e: unknown, db: string): unknown {
  const errno = (e as { code?: unknown } | null)?.code;
  if (e instanceof LocalFileError || typeof errno !== 'string' || !errno.startsWith('SQLITE_')) return e;
  const malformed = errno.startsWith('SQLITE_NOTADB') || errno.startsWith('SQLITE_CORRUPT');
  return new LocalFileError(malformed ? 'STATE_FILE_MALFORMED' : 'STATE_FILE_UNWRITABLE', {
    action: malformed ? 'use' : 'write',
    what: 'the state file',
    path: resolve(db),
    flag: '--db',
    cause: e,
  });
}

async function startNode(
  o: NodeCliOptions,
  log: (e: Record<string, unknown>) => void,
  startup: Startup,
): Promise<RunningNode> {
  // One process per key: a second node on it would sign commitments of its own (equivocation).
  startup.opened(lockIdentity(o.identity));
  // A fixed port that is taken is said at once, naming its flag, not after a model load of minutes.
  await startup.step(() => checkNodePortsFree(o));
  // The model's file is looked for before a key is made: a start that cannot serve (a typo in
  // --models-dir) leaves no new key file behind. Hashing and loading it come later, after the key.
  if (o.role === 'node') await startup.step(() => modelOnDisk(o));
  const { key, created, exposedMode } = await startup.step(() =>
    loadOrCreateIdentity(o.identity, o.passphrase),
  );
  // The key itself too: a copy of the key file at another path is the same key.
  startup.opened(lockNodeKey(key.nodeId, o.identity));
  if (created) {
    // A wrong or moved --identity makes a new key as surely as a first start does: said loudly.
    log({
      level: 'warn',
      msg: 'created a new node identity: a new node id, with no standing',
      code: 'IDENTITY_CREATED',
      nodeId: key.nodeId,
      path: resolve(o.identity),
      hint: `no key file was at ${resolve(o.identity)}. To run an existing node instead, stop this one and pass its key file with --identity (and its --db)`,
    });
  } else {
    log({ level: 'info', msg: 'opened node identity', nodeId: key.nodeId, path: resolve(o.identity) });
  }
  if (o.coordinators.length > LIMITS.maxHeartbeatCoordinators) {
    log({
      level: 'warn',
      msg: 'more --coordinators than a heartbeat names: they are not advertised',
      code: 'COORDINATORS_NOT_ADVERTISED',
      coordinators: o.coordinators.length,
      max: LIMITS.maxHeartbeatCoordinators,
      hint: 'other relays count this node as able to serve their requests, which it refuses; name at most 16',
    });
  }
  if (exposedMode !== null) {
    log({
      level: 'warn',
      msg: 'the identity file can be read by other users',
      code: 'IDENTITY_FILE_EXPOSED',
      mode: exposedMode,
      hint: `chmod 600 ${o.identity}`,
    });
  }
  // Outputs and salts before their reveal: readable by this user only.
  const client = createClient({ url: `file:${stateFile(o.db)}` });
  startup.opened(() => client.close());
  await startup.step(() => checkStateFile(client, o.db));
  // Its table made (and this key's rows read) before the models load: a full disk or a read-only file
  // fails the start now (STATE_FILE_UNWRITABLE), not after a model load of minutes.
  const store = new LibsqlMachineStore(client);
  await startup.step(() => store.load(key.nodeId));

  let serving: ConstructorParameters<typeof SynodNode>[0]['serving'];
  let engine: Engine | undefined;
  let rates = { tokensPerSecond: 0, embeddingsPerSecond: 0 };
  if (o.role === 'node') {
    // The slow part of a start (hashing the model file, loading it, measuring): a signal stops it.
    log({ level: 'info', msg: 'loading models', model: o.model, engine: o.engine, modelsDir: o.modelsDir });
    const dir = new ModelsDir({ root: o.modelsDir });
    const model = await startup.step(() =>
      dir.resolve(o.model).catch((e: unknown) => {
        throw isInferenceError(e, 'MODEL_NOT_FOUND') ? modelMissing(dir, o.model, e) : e;
      }),
    );
    const loadedEngine = new WorkerEngine(
      o.engine === 'llama-cpp'
        ? { kind: 'llama-cpp', options: { threads: o.threads, gpu: o.gpu, gpuLayers: o.gpuLayers } }
        : { kind: 'transformers' },
    );
    engine = loadedEngine;
    await startup.step(
      () => loadedEngine.load({ id: model.id, fileHash: model.fileHash, path: model.path }),
      () => loadedEngine.unload(),
    );
    // Its worker, should it die (out of memory, a WASM abort), is started again: the node's commitments
    // need their embeddings (logged EMBEDDER_WORKER_DIED, then EMBEDDER_RESTORED).
    const loadedEmbedder = new RestartingEmbedder({
      create: (died) => new WorkerEmbedder({ kind: 'use-lite' }, { onWorkerFailed: died }),
      // An output, or a claim to check, waits for a restart under way rather than fail its request.
      waitWhileDownMs: EMBEDDER_WAIT_WHILE_DOWN_MS,
      log,
    });
    await startup.step(
      () => loadedEmbedder.load(),
      () => loadedEmbedder.unload(),
    );
    // Capability self-assessment: a fixed workload, advertised in heartbeats and used for deadlines.
    const measuredEngine = await startup.step(() => measureEngine(loadedEngine));
    const measuredEmbedder = await startup.step(() => measureEmbedder(loadedEmbedder));
    rates = {
      tokensPerSecond: measuredEngine.tokensPerSecond,
      embeddingsPerSecond: measuredEmbedder.embeddingsPerSecond,
    };
    log({
      level: 'info',
      msg: 'models loaded',
      model: model.id,
      fileHash: model.fileHash,
      // With a GPU, its backend: node-llama-cpp@3.22.1+vulkan.
      engine: loadedEngine.id,
      embedder: loadedEmbedder.ref,
      ...rates,
    });
    if (o.gpu === 'auto' && !loadedEngine.id.includes('+')) {
      // `auto` falls back to the CPU: said, not left to be read off the engine id.
      log({
        level: 'info',
        msg: 'no GPU backend runs here: serving on the CPU',
        gpu: 'auto',
        hint: 'name one (--gpu cuda, vulkan or metal) to see why it cannot run: its start failure says',
      });
    }
    const queue = new InferenceQueue({
      engine: loadedEngine,
      embedder: loadedEmbedder,
      maxQueued: o.maxQueue,
      ...rates,
    });
    startup.opened(() => queue.close());
    serving = { queue, models: [{ id: model.id, fileHash: model.fileHash }], embedder: loadedEmbedder.ref };
  }

  const waku = await startup.step(
    async () =>
      createHeadlessWakuRelay({
        host: o.host,
        tcpPort: o.tcpPort,
        wsPort: o.wsPort,
        bootstrap: o.bootstrap,
        dialPolicy: o.dial,
        clusterId: o.wakuCluster,
        // The same peer id at every start: the multiaddrs given out for this node keep working.
        privateKey: await libp2pKeyFor(key),
        // BOOTSTRAP_PEER_MISMATCH: a --bootstrap address answered by another peer than it names.
        log,
      }).catch((e: unknown) => {
        // libp2p's own error is a paragraph with a stack trace in it: say which flag instead.
        if (!String((e as Error)?.message).includes('EADDRINUSE')) throw e;
        throw new PortInUseError(
          `--tcp-port ${o.tcpPort} or --ws-port ${o.wsPort}`,
          o.host,
          String((e as Error).message).match(/EADDRINUSE[^\n]*/)?.[0] ?? '',
        );
      }),
    (w) => w.close(),
  );
  // Gun: an optional second network carrying requests and verdicts; the intake dedups across both.
  const gun =
    o.gun.length > 0 ? new (await startup.step(() => loadGunTransport()))({ peers: o.gun }) : undefined;
  if (gun) startup.opened(() => gun.close());
  const node = new SynodNode({
    key,
    role: o.role,
    transports: gun ? [waku, gun] : [waku],
    store,
    ...(serving ? { serving } : {}),
    observer: coordinatorTrust(o.coordinators),
    heartbeat: {
      intervalMs: 10_000,
      software: 'synod-node/0.1.0',
      addresses: waku.addresses(),
      tokensPerSecond: rates.tokensPerSecond,
      embeddingsPerSecond: rates.embeddingsPerSecond,
      engine: engine?.id ?? 'none',
      coordinators: o.coordinators,
    },
    log,
    requestLog: !o.quiet,
  });
  await startup.step(
    () => node.start(),
    () => node.close(),
  );
  // A node that has heard nothing yet has been silent since it joined (`NETWORK_SILENT`).
  const startedAt = Date.now();
  // Alone since the start until a first peer: NO_PEERS past a grace, --bootstrap or not.
  const peerless = new PeerlessClock(startedAt);

  const serve = (options: Parameters<typeof Bun.serve>[0]) => {
    try {
      return Bun.serve(options);
    } catch (e) {
      if ((e as { code?: string }).code !== 'EADDRINUSE') throw e;
      throw new PortInUseError(`--http-port ${o.httpPort}`, o.healthHost, String((e as Error).message));
    }
  };
  // Apart from the P2P ports: a node that listens publicly for peers keeps its metrics to itself.
  const http = serve({
    hostname: o.healthHost,
    port: o.httpPort,
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === '/healthz') {
        const m = node.metrics();
        const now = Date.now();
        const peerlessSince = peerless.look(m.peers, now);
        const { status, body } = nodeHealth(m, { ...o, now, startedAt, peerlessSince });
        return Response.json(body, { status });
      }
      if (path === '/metrics') {
        return new Response(renderNodeMetrics(node.metrics()), {
          headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' },
        });
      }
      return Response.json({ error: { code: 'NOT_FOUND', message: `no route ${path}` } }, { status: 404 });
    },
  });
  startup.opened(() => http.stop(true));
  startup.opened(
    // On /healthz's clock and grace: its warning and /healthz's 503 NO_PEERS come together (within a look).
    watchPeers({
      peers: () => node.peers(),
      topicPeers: () => node.topicPeers(),
      wakuCluster: o.wakuCluster,
      bootstrap: o.bootstrap,
      log,
      intervalMs: PEER_WATCH_MS,
      aloneGraceMs: NO_PEERS_GRACE_MS,
      peerless,
    }),
  );
  startup.opened(
    watchWork({
      metrics: () => node.metrics(),
      startedAt,
      coordinators: o.coordinators,
      log,
      intervalMs: WORK_WATCH_MS,
    }),
  );
  const httpUrl = httpUrlOf(o.healthHost, http.port ?? o.httpPort);
  const multiaddrs = waku.addresses();
  if (o.bootstrap.length === 0) {
    log({
      level: 'warn',
      msg: 'no --bootstrap: this node dials no one: it gets work only if a relay or node dials it',
      code: 'NO_BOOTSTRAP',
      hint: `pass --bootstrap with a relay's multiaddr (its "relay listening" line; --dial any for one on another machine); alone for ${NO_PEERS_GRACE_MS / 1000} s, /healthz is 503 NO_PEERS`,
    });
  }
  log({
    level: 'info',
    msg: 'node started',
    nodeId: node.nodeId,
    role: node.role,
    http: httpUrl,
    multiaddrs,
    wakuCluster: o.wakuCluster,
  });
  return {
    node,
    httpUrl,
    multiaddrs,
    stop: () => startup.closeAll(),
  };
}

export async function nodeCommand(argv: string[]): Promise<number> {
  const log = (e: Record<string, unknown>) =>
    console.log(JSON.stringify({ t: new Date().toISOString(), ...e }));
  let options: NodeCliOptions | 'help';
  try {
    options = parseNodeArgs(argv, process.env);
  } catch (e) {
    if (!(e instanceof PassphraseMissing && process.stdin.isTTY)) {
      // One line naming what is wrong (as the relay's), not the whole help under it.
      console.error(`synod node: ${(e as Error).message} (synod node --help lists every flag)`);
      return 2;
    }
    // In a terminal: the passphrase is asked for (twice for a key not created yet), not echoed.
    try {
      options = await withTypedPassphrase(argv, e.variable);
    } catch (failed) {
      if (failed instanceof PassphrasePromptAborted && failed.interrupted) {
        // Ctrl-C at the prompt is a stop, as a SIGINT during the start: exit 0, nothing was opened.
        log({
          level: 'info',
          msg: 'stopped before the start',
          code: 'START_ABORTED',
          reason: failed.message,
        });
        return 0;
      }
      const code = (failed as { code?: unknown }).code;
      console.error(
        `synod node: ${(failed as Error).message}${typeof code === 'string' ? ` (${code})` : ''}`,
      );
      return 2;
    }
  }
  if (options === 'help') {
    console.log(HELP);
    return 0;
  }
  // A new key's passphrase too short is refused as a bad flag is, whether it was typed (refused at the
  // prompt) or came from the variable: exit 2, before anything is opened.
  const tooShort = newKeyPassphraseProblem(options.identity, options.passphrase, 'node');
  if (tooShort !== null) {
    const hint = tooShort.hint === undefined ? '' : `: ${tooShort.hint}`;
    console.error(`synod node: ${tooShort.message} (${tooShort.code})${hint}`);
    return 2;
  }
  // Signals are taken from here on, before the slow part of the start (hashing and loading models):
  // one stops the start, or the running node, cleanly (exit 0); SIGHUP too, sent when the terminal it
  // runs in is closed. Another within a second is the same Ctrl-C (the terminal's, and npm's or `npm
  // start`'s copy of it); a second Ctrl-C after that ends the process at once if stopping hangs.
  const stopping = new AbortController();
  const removeSignalHandlers = onStopSignals(() => stopping.abort());
  try {
    let running: RunningNode;
    try {
      running = await runNode(options, log, stopping.signal);
    } catch (e) {
      if (e instanceof NodeStartAborted) {
        log({ level: 'info', msg: 'stopped during the start', code: e.code });
        return 0;
      }
      const hint = (e as { hint?: unknown }).hint;
      log({
        level: 'error',
        msg: 'start failed',
        code: isSynodError(e) ? e.code : ((e as { code?: string }).code ?? 'INTERNAL'),
        err: String((e as Error).message ?? e),
        ...(typeof hint === 'string' ? { hint } : {}),
      });
      // The key file removed between the check above and the start: still the passphrase's fault (exit 2).
      return isSynodError(e, 'PASSPHRASE_TOO_SHORT') ? 2 : 1;
    }
    if (!stopping.signal.aborted) {
      await new Promise<void>((resolve) => stopping.signal.addEventListener('abort', () => resolve()));
    }
    // Requests it is computing or committed to are finished first (a sealed member that does not reveal
    // has withheld, against its standing): no new one is taken meanwhile. A second signal, a second or
    // more after the first (onStopSignals), ends the process at once by that signal; what it committed
    // to is resumed at its next start.
    const owed = running.node.duties();
    if (owed > 0) {
      log({
        level: 'info',
        msg: 'stopping: finishing the requests this node owes first',
        requests: owed,
        upToS: DRAIN_MS / 1000,
        hint: 'no new request is taken; Ctrl-C again stops at once (a request it committed to and does not reveal counts as withheld)',
      });
      const left = await running.node.drain(DRAIN_MS);
      if (left > 0) {
        log({
          level: 'warn',
          msg: 'stopping with requests unfinished',
          code: 'DRAIN_TIMEOUT',
          requests: left,
          hint: 'they are resumed at the next start, if their deadlines allow; a sealed one not revealed in time counts as withheld',
        });
      }
    }
    log({ level: 'info', msg: 'stopping' });
    await running.stop();
    log({ level: 'info', msg: 'stopped' });
    return 0;
  } finally {
    removeSignalHandlers();
  }
}

/** The options, with the passphrase typed at the terminal (the other flags checked first). */
async function withTypedPassphrase(argv: string[], variable: string): Promise<NodeCliOptions | 'help'> {
  // Every other flag is checked before anyone is asked to type anything.
  const checked = parseNodeArgs(argv, { ...process.env, [variable]: 'unset' });
  if (checked === 'help') return checked;
  const creating = !existsSync(checked.identity);
  const passphrase = await promptPassphrase({
    prompt: creating
      ? `Passphrase to seal the new node key ${resolve(checked.identity)} (at least ${MIN_PASSPHRASE_LENGTH} characters): `
      : `Passphrase of the node key ${resolve(checked.identity)}: `,
    confirm: creating,
    // A passphrase too short for a new key is refused before it is typed a second time.
    check: checkNewPassphrase,
  });
  return { ...checked, passphrase };
}

/** The Gun transport, loaded only when asked for (Gun's welcome banner is kept out: gun-module.ts). */
async function loadGunTransport(): Promise<typeof GunTransport> {
  return (await import('../p2p/gun.ts')).GunTransport;
}

/**
 * Read the state file's schema once, before the models load, so a file that is no database (or cannot
 * be opened) is refused at once, naming --db (STATE_FILE_MALFORMED / STATE_FILE_UNWRITABLE).
 */
async function checkStateFile(client: Client, db: string): Promise<void> {
  try {
    await client.execute('PRAGMA schema_version');
  } catch (cause) {
    throw stateFileFailure(cause, db);
  }
}

/** The fixed ports (`--tcp-port`, `--ws-port` on `--host`, `--http-port` on `--health-host`) are free. */
function checkNodePortsFree(o: NodeCliOptions): Promise<void> {
  return checkPortsFree([
    { flag: '--tcp-port', host: o.host, port: o.tcpPort },
    { flag: '--ws-port', host: o.host, port: o.wsPort },
    { flag: '--http-port', host: o.healthHost, port: o.httpPort },
  ]);
}

/** The URL of the node's HTTP server (/healthz, /metrics) on `--health-host`, an IPv6 host in brackets. */
export function httpUrlOf(host: string, port: number): string {
  return `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/**
 * The state file made (0600), or STATE_FILE_UNWRITABLE naming it and `--db` (a folder this user may not
 * write, a path through a file).
 */
function stateFile(db: string): string {
  try {
    return ownerOnlyFile(db);
  } catch (cause) {
    throw new LocalFileError('STATE_FILE_UNWRITABLE', {
      action: 'create',
      what: 'the state file',
      path: resolve(db),
      flag: '--db',
      cause,
    });
  }
}

/** MODEL_NOT_FOUND (as `modelMissing` says it) unless the model's file or folder is on disk. */
async function modelOnDisk(o: NodeCliOptions): Promise<void> {
  const dir = new ModelsDir({ root: o.modelsDir });
  if (await dir.has(o.model)) return;
  throw modelMissing(
    dir,
    o.model,
    new InferenceError('MODEL_NOT_FOUND', `model ${o.model} is not in ${dir.root}`, {
      details: { id: o.model, path: dir.pathOf(o.model) },
    }),
  );
}

/** MODEL_NOT_FOUND as the one running `synod node` can act on: which file, where, and the flags. */
function modelMissing(dir: ModelsDir, id: string, cause: InferenceError): InferenceError {
  const entry = dir.entry(id);
  const path = dir.pathOf(id);
  // A directory that is not there (a typo in --models-dir, a relative default from another folder):
  // said as such, not as one file missing from it.
  const root = statSync(dir.root, { throwIfNoEntry: false });
  const rootProblem =
    root === undefined ? 'does not exist' : root.isDirectory() ? null : 'is not a directory';
  return new InferenceError(
    'MODEL_NOT_FOUND',
    rootProblem !== null
      ? `the models directory ${dir.root} ${rootProblem}`
      : `model ${id} is not in ${dir.root}: no ${entry.kind} at ${path}`,
    {
      details: { ...cause.details, id, path },
      hint:
        `${dir.sourceHint(id)}${entry.hub === undefined ? '' : ` (or copy ${entry.path} there)`}, ` +
        'or point --models-dir (or $SYNOD_MODELS_DIR) at the directory that holds it',
      cause,
    },
  );
}
