#!/usr/bin/env bun
/**
 * `synod-relay`: the edge relay under Bun (the local default), with its libSQL history and an
 * in-process node on the Waku relay network. `bun edge/src/main.ts --help` for the flags.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isSynodError } from '@synod/shared';
import { createApiKey, hashApiKey } from './auth/api-keys.ts';
import { parseChainBridge } from './chain/bridge-config.ts';
import { ChainBridgeError } from './chain/chain-watcher.ts';
import { parseCorsOrigins } from './config.ts';
import { KEYS_USAGE, keysCommand } from './keys-command.ts';
import { DEFAULT_MAX_OPEN, DEFAULT_MAX_QUEUED } from './relay/dispatcher.ts';

const USE_LITE = {
  id: 'use-lite-512',
  fileHash: '90fbe884073c0c28210e08042142dd4f8b45ef906c053a7fb34f64bc4b931da6',
  bits: 512,
};

const HELP = `synod-relay: the Synod edge relay (Bun).

  --db URL               libSQL URL: file:PATH, http://HOST:PORT (sqld)  [file:.data/relay/history.db]
  --db-auth-token-env V  environment variable with the libSQL auth token  [SYNOD_DB_AUTH_TOKEN]
  --replica FILE         embedded replica file synced from --db (read scale-out)
  --replica-sync-ms N    how often the replica pulls the server's changes   [1000]
  --identity FILE        sealed relay key (created when absent)           [.data/relay/identity.json]
  --passphrase-env VAR   environment variable holding the passphrase       [SYNOD_PASSPHRASE]
  --host ADDR            HTTP and P2P listen address                       [127.0.0.1]
  --port N               HTTP port                                         [8787]
  --tcp-port N           libp2p TCP port                                   [0]
  --ws-port N            libp2p WebSocket port (browsers dial it)          [0]
  --bootstrap ADDRS      comma-separated multiaddrs                        []
  --gun-port N           also run a Gun relay on this port (0: any free) as a second network
                         for redundant delivery of requests and verdicts; omit for none
  --models IDS           models served on the network (comma-separated)    [stories260K]
  --cors-origins LIST    web origins whose pages may call the API (https://app.example,…; * for
                         any); default none
  --max-open N           requests the relay coordinates at once; the rest wait in its log [256]
  --max-queued N         requests that may wait for the network before new HTTP requests get
                         503 QUEUE_FULL (on-chain ones are always taken); 0: no bound [1024]
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
  --help

Subcommands, on the relay's database (no relay needs to run):
${KEYS_USAGE.replace(/^usage: /, '       ')}`;

function log(e: Record<string, unknown>): void {
  console.log(JSON.stringify({ t: new Date().toISOString(), ...e }));
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'keys') return keysCommand(argv.slice(1));
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
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
        'gun-port': { type: 'string' },
        models: { type: 'string', default: 'stories260K' },
        'cors-origins': { type: 'string', default: '' },
        'max-open': { type: 'string', default: String(DEFAULT_MAX_OPEN) },
        'max-queued': { type: 'string', default: String(DEFAULT_MAX_QUEUED) },
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
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (e) {
    console.error(`synod-relay: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values['help']) {
    console.log(HELP);
    return 0;
  }
  const passphrase = process.env[values['passphrase-env'] as string];
  if (!passphrase) {
    console.error(`synod-relay: set the relay key's passphrase in $${values['passphrase-env']}`);
    return 2;
  }
  const port = Number(values['port']);
  const tcpPort = Number(values['tcp-port']);
  const wsPort = Number(values['ws-port']);
  for (const [name, n] of [
    ['port', port],
    ['tcp-port', tcpPort],
    ['ws-port', wsPort],
  ] as const) {
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      console.error(`synod-relay: --${name} must be a port number`);
      return 2;
    }
  }
  let corsOrigins: string[];
  try {
    corsOrigins = parseCorsOrigins(values['cors-origins'] as string);
  } catch (e) {
    console.error(`synod-relay: --cors-origins: ${(e as Error).message}`);
    return 2;
  }
  const maxOpenText = values['max-open'] as string;
  if (!/^\d{1,6}$/.test(maxOpenText) || Number(maxOpenText) === 0) {
    console.error('synod-relay: --max-open must be a whole number from 1');
    return 2;
  }
  const maxOpen = Number(maxOpenText);
  const maxQueuedText = values['max-queued'] as string;
  if (!/^\d{1,9}$/.test(maxQueuedText)) {
    console.error('synod-relay: --max-queued must be a whole number (0: no bound)');
    return 2;
  }
  const maxQueued = Number(maxQueuedText) === 0 ? Number.POSITIVE_INFINITY : Number(maxQueuedText);
  const replicaSyncMs = Number(values['replica-sync-ms']);
  if (!(Number.isFinite(replicaSyncMs) && replicaSyncMs > 0)) {
    console.error('synod-relay: --replica-sync-ms must be a positive number');
    return 2;
  }
  const keyEnv = values['bridge-key-env'] as string;
  const chain = parseChainBridge(
    {
      rpcUrl: values['chain-rpc'] as string | undefined,
      chainId: values['chain-id'] as string | undefined,
      oracle: values['oracle'] as string | undefined,
      bridgeKey: process.env[keyEnv],
      confirmations: values['confirmations'] as string,
      fromBlock: values['from-block'] as string,
      replaceAfterS: values['replace-after-s'] as string,
      minBridgeBalance: values['min-bridge-balance'] as string | undefined,
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
    },
  );
  if (chain !== undefined && 'error' in chain) {
    console.error(`synod-relay: ${chain.error}`);
    return 2;
  }
  const dbUrl = values['db'] as string;
  try {
    // The node, its transports and the relay runtime load only here: `keys …` and `--help` need
    // none of them. Gun prints a welcome line with console.log as it loads: to stderr, since this
    // process's stdout is JSON lines.
    const consoleLog = console.log;
    console.log = console.error;
    const [
      { GunTransport },
      { loadOrCreateIdentity },
      { createHeadlessWakuRelay, startGunRelay },
      { startRelay },
    ] = await Promise.all([
      import('@synod/browser-node'),
      import('@synod/browser-node/cli'),
      import('@synod/browser-node/headless'),
      import('./runtime/bun.ts'),
    ]).finally(() => {
      console.log = consoleLog;
    });
    const { key } = await loadOrCreateIdentity(values['identity'] as string, passphrase);
    const waku = await createHeadlessWakuRelay({
      host: values['host'] as string,
      tcpPort,
      wsPort,
      bootstrap: (values['bootstrap'] as string).split(',').filter(Boolean),
    });
    const gunPortFlag = values['gun-port'] as string | undefined;
    const gunPort = gunPortFlag === undefined ? undefined : Number(gunPortFlag);
    if (gunPort !== undefined && !(Number.isInteger(gunPort) && gunPort >= 0 && gunPort <= 65535)) {
      console.error('synod-relay: --gun-port must be a port number');
      return 2;
    }
    const gunRelay =
      gunPort === undefined
        ? undefined
        : await startGunRelay({ host: values['host'] as string, port: gunPort });
    const gun = gunRelay ? new GunTransport({ peers: [gunRelay.url] }) : undefined;
    const authToken = process.env[values['db-auth-token-env'] as string];
    const gatewaySecret = process.env[values['gateway-secret-env'] as string];
    const models = (values['models'] as string)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const relay = await startRelay({
      dbUrl,
      ...(authToken ? { dbAuthToken: authToken } : {}),
      ...(values['replica'] ? { replicaPath: values['replica'] as string, replicaSyncMs } : {}),
      config: { corsOrigins },
      maxOpenRequests: maxOpen,
      maxQueuedRequests: maxQueued,
      key,
      transports: gun ? [waku, gun] : [waku],
      embedders: [USE_LITE],
      configuredModels: models,
      hostname: values['host'] as string,
      port,
      log,
      heartbeatIntervalMs: 10_000,
      ...(gatewaySecret ? { gatewaySecret } : {}),
      ...(chain ? { chain } : {}),
    });
    const devKeyFile = values['dev-key-file'] as string | undefined;
    let devKey: string | undefined;
    if (devKeyFile) {
      if (existsSync(devKeyFile)) devKey = readFileSync(devKeyFile, 'utf8').trim();
      if (!devKey || !(await relay.store.apiKeyByHash(hashApiKey(devKey)))) {
        const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
        await relay.store.createApiKey(
          { id: k.id, hash: k.hash, label: 'local development', quotaPerDay: 100_000 },
          Date.now(),
        );
        mkdirSync(dirname(resolve(devKeyFile)), { recursive: true });
        writeFileSync(devKeyFile, `${k.key}\n`, { mode: 0o600 });
        devKey = k.key;
      }
    }
    log({
      level: 'info',
      msg: 'relay started',
      url: relay.url,
      coordinator: key.nodeId,
      multiaddrs: waku.addresses(),
      ...(gunRelay ? { gun: gunRelay.url } : {}),
      db: dbUrl.startsWith('file:') ? dbUrl : dbUrl.replace(/\/\/[^@]*@/, '//'),
      ...(devKeyFile ? { devKeyFile } : {}),
      ...(chain ? { chain: { chainId: chain.chainId, oracle: chain.oracle, rpc: chain.rpcUrl } } : {}),
    });
    await new Promise<void>((r) => {
      process.once('SIGINT', () => r());
      process.once('SIGTERM', () => r());
    });
    log({ level: 'info', msg: 'stopping' });
    await relay.stop();
    await waku.close();
    await gun?.close();
    await gunRelay?.close();
    return 0;
  } catch (e) {
    log({
      level: 'error',
      msg: 'start failed',
      code: isSynodError(e) || e instanceof ChainBridgeError ? e.code : 'INTERNAL',
      err: String((e as Error).message ?? e),
    });
    return 1;
  }
}

process.exit(await main(process.argv.slice(2)));
