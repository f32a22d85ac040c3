/**
 * `npm start`: the local Synod network on embedded defaults, all on 127.0.0.1:
 *   - the relay (HTTP API, OpenAI-compatible endpoint, public verifier) with its libSQL file,
 *   - 3 headless nodes serving stories260K with the USE Lite embedder,
 *   - the contributor web app (a browser node that joins over the relay's WebSocket listener),
 *   - a local chain (anvil, a block a second) with SynodOracle deployed, bridged by the relay: contracts
 *     ask with `callLLM` (try `npm run chain:ask -- "Once upon a time"`),
 * connected over Waku relay (libp2p gossipsub), with a Gun relay as a second network that also carries
 * requests and verdicts (the nodes' intakes drop the duplicates). Prints the URLs and examples; Ctrl-C stops everything.
 *
 * Environment: SYNOD_MODELS_DIR (default ../shared/models), SYNOD_DATA_DIR (default .data/local),
 * SYNOD_RELAY_PORT (default 8787), SYNOD_WEB_PORT (default 8788), SYNOD_NODES (default 3),
 * SYNOD_CHAIN_PORT (default 8545; SYNOD_CHAIN=off leaves the chain out), SYNOD_PASSPHRASE (default
 * synod-local-development: seals the relay's and nodes' keys in SYNOD_DATA_DIR), SYNOD_VERBOSE=1.
 * The relay's P2P ports are fixed too, so that a tab left open finds it again after a restart:
 * SYNOD_RELAY_WS_PORT (default SYNOD_RELAY_PORT + 10: the WebSocket port tabs dial), SYNOD_RELAY_TCP_PORT
 * (+ 11: the nodes'), SYNOD_GUN_PORT (+ 12: its Gun relay); with SYNOD_RELAY_PORT 0, all are free ones.
 * SYNOD_NODE_BASE_PORT fixes the nodes' ports: node i (from 1) takes base + 3(i - 1) for /healthz and
 * /metrics, + 1 for libp2p TCP, + 2 for WebSocket; 0 or unset, free ones at each start.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { deployOracle, fundedAccount, rpcChain, startAnvil } from '@synod/contracts';
import type { Subprocess } from 'bun';
import { createPublicClient, createWalletClient, type Hex, http, type PublicClient } from 'viem';
import { loadOrCreateIdentity } from '../browser-node/src/cli/identity-file.ts';

const root = resolve(import.meta.dir, '..');
const data = resolve(process.env['SYNOD_DATA_DIR'] ?? join(root, '.data/local'));
const models = resolve(process.env['SYNOD_MODELS_DIR'] ?? join(root, '../shared/models'));

/**
 * A whole number from the environment variable `name` (digits only, at most `max`), or `fallback` when it
 * is unset or empty; anything else stops `npm start` at once, exit 2, naming the variable (a port of
 * "abc" was handed on as NaN, or to the relay, whose error named its flag, not the variable).
 */
function numberVar(name: string, fallback: number, max: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
  if (Number.isNaN(n) || n > max) {
    console.error(
      `npm start: ${name} must be a whole number from 0 to ${max} (digits only), got ${JSON.stringify(text)}`,
    );
    process.exit(2);
  }
  return n;
}
const port = (name: string, fallback: number) => numberVar(name, fallback, 65_535);

const relayPort = port('SYNOD_RELAY_PORT', 8787);
/** A relay P2P port: its variable, else `offset` above the relay's HTTP port (0 when that is 0: any free). */
const relayP2pPort = (name: string, offset: number) =>
  String(port(name, relayPort === 0 ? 0 : Math.min(65_535, relayPort + offset)));
// All read before anything starts: a bad value stops npm start with nothing left running.
const relayWsPort = relayP2pPort('SYNOD_RELAY_WS_PORT', 10);
const relayTcpPort = relayP2pPort('SYNOD_RELAY_TCP_PORT', 11);
const gunPort = relayP2pPort('SYNOD_GUN_PORT', 12);
/** The variable that sets each of the relay's port flags here, named when the relay finds one taken. */
const PORT_VARIABLES: Record<string, string> = {
  '--port': 'SYNOD_RELAY_PORT',
  '--ws-port': 'SYNOD_RELAY_WS_PORT',
  '--tcp-port': 'SYNOD_RELAY_TCP_PORT',
  '--gun-port': 'SYNOD_GUN_PORT',
};
const nodeCount = numberVar('SYNOD_NODES', 3, 64);
/** Ports each node takes from SYNOD_NODE_BASE_PORT: /healthz and /metrics, libp2p TCP, WebSocket. */
const PORTS_PER_NODE = 3;
const nodeBasePort = port('SYNOD_NODE_BASE_PORT', 0);
if (nodeBasePort !== 0 && nodeBasePort + PORTS_PER_NODE * nodeCount - 1 > 65_535) {
  console.error(
    `npm start: SYNOD_NODE_BASE_PORT must leave room for ${nodeCount} nodes of ${PORTS_PER_NODE} ports each ` +
      `(at most ${65_536 - PORTS_PER_NODE * nodeCount}), got ${JSON.stringify(String(nodeBasePort))}`,
  );
  process.exit(2);
}
/** Node `i`'s (from 0) port flags: fixed from SYNOD_NODE_BASE_PORT, else any free ones (0). */
const nodePorts = (i: number) => {
  const at = (k: number) => String(nodeBasePort === 0 ? 0 : nodeBasePort + PORTS_PER_NODE * i + k);
  return ['--http-port', at(0), '--tcp-port', at(1), '--ws-port', at(2)];
};
const webPort = port('SYNOD_WEB_PORT', 8788);
const passphrase = process.env['SYNOD_PASSPHRASE'] ?? 'synod-local-development';
const chainPort = port('SYNOD_CHAIN_PORT', 8545);
const withChain = process.env['SYNOD_CHAIN'] !== 'off';
// The nodes' fixed ports clear of every other fixed port here, said before anything starts.
if (nodeBasePort !== 0) {
  const last = nodeBasePort + PORTS_PER_NODE * nodeCount - 1;
  const others: [string, number][] = [
    ['SYNOD_RELAY_PORT', relayPort],
    ['SYNOD_RELAY_WS_PORT', Number(relayWsPort)],
    ['SYNOD_RELAY_TCP_PORT', Number(relayTcpPort)],
    ['SYNOD_GUN_PORT', Number(gunPort)],
    ['SYNOD_WEB_PORT', webPort],
    ...(withChain ? [['SYNOD_CHAIN_PORT', chainPort] as [string, number]] : []),
  ];
  const clash = others.find(([, p]) => p !== 0 && p >= nodeBasePort && p <= last);
  if (clash) {
    console.error(
      `npm start: SYNOD_NODE_BASE_PORT ${nodeBasePort} gives the nodes ports ${nodeBasePort}-${last}, ` +
        `which hold ${clash[0]} (${clash[1]}): move one of them`,
    );
    process.exit(2);
  }
}
mkdirSync(data, { recursive: true });

const children: Subprocess[] = [];
let stopping = false;

function spawn(
  name: string,
  args: string[],
  onLine: (line: string) => void,
  env: Record<string, string> = {},
): Subprocess {
  const child = Bun.spawn([process.execPath, ...args], {
    cwd: root,
    env: { ...process.env, SYNOD_PASSPHRASE: passphrase, SYNOD_MODELS_DIR: models, ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  children.push(child);
  const pump = async (stream: ReadableStream<Uint8Array>, isErr: boolean) => {
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of stream) {
      buf += decoder.decode(chunk, { stream: true });
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) {
          if (!isErr) onLine(line);
          if (process.env['SYNOD_VERBOSE'] || isErr || /"level":"(warn|error)"/.test(line)) {
            console.log(`[${name}] ${line}`);
          }
        }
        i = buf.indexOf('\n');
      }
    }
  };
  void pump(child.stdout as ReadableStream<Uint8Array>, false);
  void pump(child.stderr as ReadableStream<Uint8Array>, true);
  void child.exited.then((code) => {
    if (!stopping) {
      console.error(`[${name}] exited with code ${code}; stopping the local network`);
      void shutdown(1);
    }
  });
  return child;
}

function json(line: string): Record<string, unknown> {
  try {
    const v = JSON.parse(line) as unknown;
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function waitForLine<T>(
  name: string,
  args: string[],
  match: (line: string) => T | undefined,
  timeoutMs = 60_000,
  env: Record<string, string> = {},
) {
  return new Promise<T>((resolvePromise, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start within ${timeoutMs} ms`)),
      timeoutMs,
    );
    spawn(
      name,
      args,
      (line) => {
        const found = match(line);
        if (found !== undefined) {
          clearTimeout(timer);
          resolvePromise(found);
        }
      },
      env,
    );
  });
}

async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    console.log('\nstopping the local network…');
    for (const c of children) c.kill('SIGTERM');
    // Past what each takes to stop cleanly: the relay's grace for requests under way (5 s) and its close,
    // a node finishing the requests it committed to (seconds here).
    const killer = setTimeout(() => {
      for (const c of children) c.kill('SIGKILL');
    }, 20_000);
    await Promise.all(children.map((c) => c.exited));
    clearTimeout(killer);
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
// Any failure while starting stops what did start: no process outlives `npm start`.
process.on('unhandledRejection', (e) => {
  console.error(`npm start failed: ${String(e)}`);
  void shutdown(1);
});
process.on('uncaughtException', (e) => {
  console.error(`npm start failed: ${String(e)}`);
  void shutdown(1);
});

/**
 * The local chain: anvil with a block a second (so oracle events get their confirmations), and a fresh
 * SynodOracle from a fresh deployer, so no earlier run's cursor or rows apply to it. The bridge key is
 * new each run too and lives only in the relay's environment.
 */
async function startChain() {
  const anvil = await startAnvil({ port: chainPort, blockTimeSeconds: 1 });
  children.push(anvil.proc);
  void anvil.proc.exited.then((code) => {
    if (!stopping) {
      console.error(`[chain] anvil exited with code ${code}; stopping the local network`);
      void shutdown(1);
    }
  });
  const chain = rpcChain(anvil.chainId, anvil.url);
  const client = createPublicClient({ chain, transport: http(anvil.url) }) as PublicClient;
  const deployer = await fundedAccount(anvil.url, '1000');
  const bridge = await fundedAccount(anvil.url, '1000');
  const wallet = createWalletClient({ chain, transport: http(anvil.url), account: deployer.account });
  const oracle = await deployOracle(wallet, client, { bridge: bridge.account.address, minFee: 0n });
  const fromBlock = await client.getBlockNumber();
  return {
    rpc: anvil.url,
    chainId: anvil.chainId,
    oracle,
    fromBlock: Number(fromBlock),
    bridgeKey: bridge.key as Hex,
  };
}
const chain = withChain ? await startChain() : null;

// The nodes' identities, made (or opened) before the relay starts: the relay trusts its own nodes
// (`--trusted-nodes`), so its coordinator's seat policy has proven nodes from the first request, and
// keys made elsewhere earn proof only by agreeing beside them.
const nodeIds = await Promise.all(
  Array.from({ length: nodeCount }, async (_, i) => {
    const { key } = await loadOrCreateIdentity(join(data, `node-${i + 1}`, 'identity.json'), passphrase);
    return key.nodeId;
  }),
);

/** The relay's `relay started` line: its restore done and its development key written. */
const relayStarted = Promise.withResolvers<void>();
const relay = await waitForLine(
  'relay',
  [
    'edge/src/main.ts',
    '--db',
    `file:${join(data, 'relay.db')}`,
    '--identity',
    join(data, 'relay-identity.json'),
    '--port',
    String(relayPort),
    '--dev-key-file',
    join(data, 'dev-api-key'),
    '--ws-port',
    relayWsPort,
    '--tcp-port',
    relayTcpPort,
    '--gun-port',
    gunPort,
    ...(nodeIds.length > 0 ? ['--trusted-nodes', nodeIds.join(',')] : []),
    ...(chain
      ? [
          '--chain-rpc',
          chain.rpc,
          '--chain-id',
          String(chain.chainId),
          '--oracle',
          chain.oracle,
          '--from-block',
          String(chain.fromBlock),
        ]
      : []),
  ],
  (line) => {
    const j = json(line);
    if (j['msg'] === 'relay started') relayStarted.resolve();
    // A port taken: its flag is the relay's; here it is set by a variable, which is said.
    if (j['code'] === 'EADDRINUSE') {
      const flag = /^(--[a-z-]+)/.exec(String(j['err'] ?? ''))?.[1];
      const variable = flag === undefined ? undefined : PORT_VARIABLES[flag];
      if (variable !== undefined) {
        console.error(`[relay] ${flag} is set by ${variable}: give it a free port (0 for any free one)`);
      }
    }
    // Its port and addresses are there before it restores what an earlier run left open (which waits
    // for its peers): the nodes are started at once, not after a restore that waited for them in vain.
    return j['msg'] === 'relay listening'
      ? (j as { url: string; multiaddrs: string[]; coordinator: string; gun?: string })
      : undefined;
  },
  60_000,
  chain ? { SYNOD_BRIDGE_KEY: chain.bridgeKey } : {},
);
const bootstrap = relay.multiaddrs.find((a) => !a.includes('/ws/')) ?? relay.multiaddrs[0] ?? '';

const nodes = await Promise.all(
  Array.from({ length: nodeCount }, (_, i) =>
    waitForLine(
      `node-${i + 1}`,
      [
        'browser-node/src/cli/main.ts',
        'node',
        '--identity',
        join(data, `node-${i + 1}`, 'identity.json'),
        '--db',
        join(data, `node-${i + 1}`, 'state.db'),
        '--models-dir',
        models,
        '--bootstrap',
        bootstrap,
        ...nodePorts(i),
        // They serve this relay's requests only: another key's copy of one is refused.
        '--coordinators',
        relay.coordinator,
        ...(relay.gun ? ['--gun', relay.gun] : []),
      ],
      (line) => {
        const j = json(line);
        // A fixed port taken: set here by SYNOD_NODE_BASE_PORT, which is said.
        if (j['code'] === 'EADDRINUSE' && nodeBasePort !== 0) {
          console.error(
            `[node-${i + 1}] its ports come from SYNOD_NODE_BASE_PORT (${nodeBasePort}): give it a base with ${PORTS_PER_NODE * nodeCount} free ports (0 for free ones)`,
          );
        }
        return j['msg'] === 'node started' ? (j as { nodeId: string; http: string }) : undefined;
      },
      120_000,
    ),
  ),
);

const wsBootstrap = relay.multiaddrs.filter((a) => a.includes('/ws/'));
const web = await waitForLine(
  'web',
  [
    'apps/web/serve.ts',
    '--port',
    String(webPort),
    '--bootstrap',
    wsBootstrap.join(','),
    '--coordinators',
    relay.coordinator,
    '--relay',
    relay.url,
    '--models-dir',
    models,
  ],
  (line) => {
    const m = /^Synod contributor app: (\S+)/.exec(line);
    return m ? { url: m[1] as string } : undefined;
  },
  120_000,
).catch((e: unknown) => {
  console.error(`the web app did not start: ${String(e)}`);
  return { url: 'not running (see the log above)' };
});

// Wait until the relay has heard every node's heartbeat, so the first request finds a full quorum.
const deadline = Date.now() + 60_000;
for (;;) {
  const r = await fetch(`${relay.url}/v1/nodes`).then(
    (x) => x.json() as Promise<{ nodes: { role: string }[] }>,
  );
  if (r.nodes.filter((n) => n.role === 'node').length >= nodeCount || Date.now() > deadline) break;
  await Bun.sleep(250);
}

await relayStarted.promise;
const apiKey = readFileSync(join(data, 'dev-api-key'), 'utf8').trim();
if (chain) {
  const { bridgeKey: _secret, ...info } = chain;
  writeFileSync(join(data, 'chain.json'), `${JSON.stringify({ ...info, relay: relay.url }, null, 2)}\n`);
}
console.log(`
Synod local network is up.

  relay (HTTP API, OpenAI-compatible, verifier)  ${relay.url}
  relay coordinator node id                      ${relay.coordinator}
  libSQL history                                 ${join(data, 'relay.db')}
  Gun relay (second network: requests, verdicts)  ${relay.gun ?? 'off'}
${nodes.map((n, i) => `  node ${i + 1}  ${n.nodeId.slice(0, 16)}…  health ${n.http}/healthz`).join('\n')}
  contributor web app (browser node)            ${web.url}
  development API key                            ${apiKey}   (in ${join(data, 'dev-api-key')})
  local chain (anvil)                            ${chain ? `${chain.rpc}   (chain id ${chain.chainId})` : 'off'}
  SynodOracle (callLLM), bridged by the relay    ${chain?.oracle ?? 'off'}

Try it:

  curl -s ${relay.url}/v1/inference -H 'content-type: application/json' \\
    -H 'authorization: Bearer ${apiKey}' -d '{"prompt":"Once upon a time","params":{"maxTokens":48}}'
  curl -s ${relay.url}/v1/inference/<requestId>
  npm run verify -- ${relay.url}/v1/verify/<requestId>   # re-derive the verdict on your side
  npm run verify -- --relay ${relay.url}   # audit this relay's newest 1,000 verdicts (--limit N)

  # the official openai client (npm i openai), unchanged:
  import OpenAI from 'openai';
  const client = new OpenAI({ baseURL: '${relay.url}/v1', apiKey: '${apiKey}' });
  const r = await client.chat.completions.create({ model: 'stories260K', messages: [{ role: 'user', content: 'Once upon a time' }] });
  console.log(r.choices[0].message.content, r.synod.verdictDigest);

  # a box of yours joining this network as a node (its own key, made at its first start, sealed with
  # the passphrase in $SYNOD_PASSPHRASE; one process per key):
  SYNOD_PASSPHRASE=<a passphrase> npm run node -- --identity ${join(data, 'my-box', 'identity.json')} --db ${join(data, 'my-box', 'state.db')} --models-dir ${models} --bootstrap ${bootstrap} --coordinators ${relay.coordinator}

  # API keys of this relay: more, their use today, revoking one
  npm run relay -- keys create --label my-agent --db file:${join(data, 'relay.db')}
  npm run relay -- keys list --db file:${join(data, 'relay.db')}
${
  chain
    ? `
  # a smart contract's view: callLLM on the local chain, answered by the network and written back
  ${process.env['SYNOD_DATA_DIR'] !== undefined ? `SYNOD_DATA_DIR=${data} ` : ''}npm run chain:ask -- "Once upon a time"
  # audit every answer the oracle wrote on chain against its transcript and the question asked
  npm run verify -- --chain ${chain.rpc} --oracle ${chain.oracle} --relay ${relay.url}
  # Solidity: SynodOracle(${chain.oracle}).callLLM{value: fee}(prompt, models, maxTokens, temperatureCenti, quorum)
  # and implement ISynodConsumer.onLLMResult (contracts/src/SynodOracle.sol)
`
    : ''
}
Press Ctrl-C to stop.`);
