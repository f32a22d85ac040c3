/**
 * The HTTP load generators of the edge benchmark, each in a process of its own, on 127.0.0.1 only:
 * autocannon (npm, under Node; always there) and wrk (C; used when it is on PATH, e.g. Debian's `wrk`).
 * Both are run with one client thread and the same connection count, and summarized the same way.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LoadRequest {
  method?: string;
  body?: string;
  headers?: Record<string, string>;
}

export interface LoadResult {
  /** Responses with a 2xx status. */
  ok: number;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  /** 2xx responses per second. */
  perSecond: number;
  /** Latency percentiles in milliseconds. */
  p50: number;
  p99: number;
  /** CPU time the load generator's process spent (user + system), in ms; NaN if it could not be read. */
  generatorCpuMs: number;
}

export type LoadGenerator = 'autocannon' | 'wrk';

export interface LoadOptions {
  connections: number;
  durationSeconds: number;
  /** The repository root (autocannon is run from its node_modules). */
  repo: string;
}

/** The generators available here: autocannon always, wrk when the binary is found. */
export function availableGenerators(): LoadGenerator[] {
  return Bun.which('wrk') ? ['autocannon', 'wrk'] : ['autocannon'];
}

export function runLoad(
  tool: LoadGenerator,
  url: string,
  req: LoadRequest,
  o: LoadOptions,
): Promise<LoadResult> {
  return tool === 'wrk' ? wrk(url, req, o) : autocannon(url, req, o);
}

async function autocannon(url: string, req: LoadRequest, o: LoadOptions): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'synod-bench-'));
  try {
    const args = [
      join(o.repo, 'node_modules/autocannon/autocannon.js'),
      '-c',
      String(o.connections),
      '-d',
      String(o.durationSeconds),
      '-j',
    ];
    if (req.method) args.push('-m', req.method);
    for (const [k, v] of Object.entries(req.headers ?? {})) args.push('-H', `${k}=${v}`);
    if (req.body !== undefined) {
      const f = join(dir, 'body.json');
      writeFileSync(f, req.body);
      args.push('-i', f);
    }
    args.push(url);
    const p = Bun.spawn(['node', ...args], { stdout: 'pipe', stderr: 'ignore' });
    const out = await new Response(p.stdout).text();
    await p.exited;
    const generatorCpuMs = cpuMsOf(p);
    const j = JSON.parse(out) as {
      '2xx': number;
      non2xx: number;
      errors: number;
      timeouts: number;
      duration: number;
      latency: { p50: number; p99: number };
    };
    return {
      ok: j['2xx'],
      non2xx: j.non2xx,
      errors: j.errors + (j.timeouts ?? 0),
      perSecond: j['2xx'] / j.duration,
      p50: j.latency.p50,
      p99: j.latency.p99,
      generatorCpuMs,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A Lua script that makes wrk send `req` on every request. */
export function wrkScript(req: LoadRequest): string {
  const lines: string[] = [];
  if (req.method) lines.push(`wrk.method = ${luaString(req.method)}`);
  if (req.body !== undefined) lines.push(`wrk.body = ${luaString(req.body)}`);
  for (const [k, v] of Object.entries(req.headers ?? {}))
    lines.push(`wrk.headers[${luaString(k)}] = ${luaString(v)}`);
  return `${lines.join('\n')}\n`;
}

/** A Lua string literal (decimal escapes for every byte outside printable ASCII, quote and backslash). */
function luaString(s: string): string {
  let out = '"';
  for (const b of new TextEncoder().encode(s)) {
    out += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${b}`;
  }
  return `${out}"`;
}

async function wrk(url: string, req: LoadRequest, o: LoadOptions): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'synod-bench-'));
  try {
    const script = join(dir, 'request.lua');
    writeFileSync(script, wrkScript(req));
    const args = ['wrk', '-t', '1', '-c', String(o.connections), '-d', `${o.durationSeconds}s`];
    args.push('--latency', '-s', script, url);
    const p = Bun.spawn(args, { stdout: 'pipe', stderr: 'pipe' });
    const out = await new Response(p.stdout).text();
    if ((await p.exited) !== 0) throw new Error(`wrk failed: ${await new Response(p.stderr).text()}`);
    return { ...parseWrkReport(out), generatorCpuMs: cpuMsOf(p) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU time (user + system) of an exited child process, in ms; NaN if the runtime could not tell. */
function cpuMsOf(p: { resourceUsage(): { cpuTime: { user: bigint; system: bigint } } | undefined }): number {
  const u = p.resourceUsage();
  return u ? Number(u.cpuTime.user + u.cpuTime.system) / 1000 : Number.NaN;
}

/** A wrk (4.x) report with `--latency`, summarized; throws if it is not one. */
export function parseWrkReport(text: string): Omit<LoadResult, 'generatorCpuMs'> {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)\b/.exec(text);
  const p50 = /^\s*50%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(text);
  const p99 = /^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(text);
  if (!total || !p50 || !p99) throw new TypeError('not a wrk --latency report');
  const requests = Number(total[1]);
  const seconds = toMs(Number(total[2]), total[3] as string) / 1000;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const errors = sock ? sock.slice(1).reduce((s, n) => s + Number(n), 0) : 0;
  const ok = requests - non2xx;
  return {
    ok,
    non2xx,
    errors,
    perSecond: ok / seconds,
    p50: toMs(Number(p50[1]), p50[2] as string),
    p99: toMs(Number(p99[1]), p99[2] as string),
  };
}

function toMs(value: number, unit: string): number {
  switch (unit) {
    case 'us':
      return value / 1000;
    case 'ms':
      return value;
    case 's':
      return value * 1000;
    default:
      return value * 60_000;
  }
}
