/**
 * A probe page (browser-node/src/browser/*-probe.ts) in headless Chromium with WebGPU, for the browser
 * suites: the probe bundled for the browser, a page that loads it, and a Bun server on 127.0.0.1 that
 * answers `/`, the script and whatever `route` serves, everything else 404. Every URL the page requests
 * and every answer the server gives are recorded, for the suites' "nothing left 127.0.0.1" checks.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, normalize } from 'node:path';
import type { Page } from 'playwright-core';
import { contentTypeOf } from '../../apps/web/serve.ts';
import { buildBrowserBundle } from '../../browser-node/src/browser/build.ts';
import type { ProbeState } from '../../browser-node/src/browser/probe.ts';
import { launchChromium, until } from './chromium.ts';

export interface ProbePageOptions {
  /** The probe's source file; its bundle is served as `/<name>.js`. */
  entry: string;
  /** More routes: a response for a path, or null (404). */
  route?: (path: string) => Response | null;
  /** The page's query string: the probe's inputs. */
  query?: string;
}

export interface ProbePage {
  origin: string;
  page: Page;
  /** Every URL the page requested (playwright's view). */
  requested: string[];
  /** Every request the server answered: path and status. */
  served: { path: string; status: number }[];
  pageErrors: string[];
  consoleErrors: string[];
  timings: Record<string, number>;
  close(): Promise<void>;
}

/** Serve the files under `root` for a URL path tail; null when the tail escapes `root` or is no file. */
export function serveDir(root: string): (tail: string) => Response | null {
  return (tail) => {
    let rel: string;
    try {
      rel = normalize(decodeURIComponent(tail));
    } catch {
      return null;
    }
    if (rel.startsWith('..') || rel.startsWith('/')) return null;
    const abs = join(root, rel);
    if (!statSync(abs, { throwIfNoEntry: false })?.isFile()) return null;
    return new Response(Bun.file(abs), { headers: { 'content-type': contentTypeOf(abs) } });
  };
}

/** Bundle the probe, serve it, and open it in a fresh headless Chromium with WebGPU. */
export async function openProbePage(options: ProbePageOptions): Promise<ProbePage> {
  const name = basename(options.entry).replace(/\.ts$/, '');
  const closers: Array<() => Promise<void> | void> = [];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await c();
  };
  try {
    const timings: Record<string, number> = {};
    let t = Date.now();
    const outdir = mkdtempSync(join(tmpdir(), `synod-${name}-`));
    closers.push(() => rmSync(outdir, { recursive: true, force: true }));
    const bundle = await buildBrowserBundle(outdir, { entries: [options.entry], sourcemap: false });
    const script = bundle.files.get(`${name}.js`);
    if (script === undefined) throw new Error(`bundle files: ${[...bundle.files.keys()]}`);
    timings['bundleMs'] = Date.now() - t;

    const served: ProbePage['served'] = [];
    const server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch(req) {
        const path = new URL(req.url).pathname;
        let res: Response | null;
        if (path === '/') {
          res = new Response(
            `<!doctype html><meta charset="utf-8"><title>${name}</title>` +
              `<script type="module" src="/${name}.js"></script>`,
            { headers: { 'content-type': 'text/html' } },
          );
        } else if (path === `/${name}.js`) {
          res = new Response(Bun.file(script), { headers: { 'content-type': 'text/javascript' } });
        } else {
          res = options.route?.(path) ?? null;
        }
        res ??= new Response('not found', { status: 404 });
        served.push({ path, status: res.status });
        return res;
      },
    });
    closers.push(() => server.stop(true));
    const origin = `http://127.0.0.1:${server.port}`;

    t = Date.now();
    const chrome = await launchChromium({ webgpu: true });
    closers.push(() => chrome.close());
    const page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
    const probe: ProbePage = {
      origin,
      page,
      requested: [],
      served,
      pageErrors: [],
      consoleErrors: [],
      timings,
      close,
    };
    page.on('request', (r) => probe.requested.push(r.url()));
    page.on('pageerror', (e) => probe.pageErrors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') probe.consoleErrors.push(m.text());
    });
    await page.goto(options.query ? `${origin}/?${options.query}` : `${origin}/`);
    timings['openMs'] = Date.now() - t;
    return probe;
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Wait for the probe the page published on `window[global]` to finish, and return its results; throw
 * with its error when it failed, or with its last phase and the page's errors when it took too long.
 */
export async function probeResults<R>(probe: ProbePage, global: string, timeoutMs: number): Promise<R> {
  const t = Date.now();
  let phase = '(no state)';
  const state = await until(
    'the probe to finish',
    async () => {
      const s = (await probe.page.evaluate(
        (key) => (window as unknown as Record<string, unknown>)[key],
        global,
      )) as ProbeState<R> | undefined;
      phase = s?.phase ?? '(no state)';
      return s !== undefined && s.state !== 'running' ? s : null;
    },
    timeoutMs,
  ).catch((e: unknown) => {
    throw new Error(`${String(e)} (last phase: ${phase}; page errors: ${probe.pageErrors.join(' | ')})`);
  });
  probe.timings['probeMs'] = Date.now() - t;
  if (state.state !== 'done' || state.results === undefined) {
    throw new Error(`the probe failed: ${state.error}`);
  }
  return state.results;
}
