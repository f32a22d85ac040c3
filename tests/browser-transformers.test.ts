/**
 * Our transformers.js embedder (browser-node/src/inference/transformers.ts) in headless Chromium, on
 * real WebGPU (SwiftShader) and on onnxruntime-web's WASM, with the offline glove-static-100d model.
 *
 *   Bun test process                               headless Chromium --enable-unsafe-webgpu
 *   ────────────────                               ───────────────────────────────────────────
 *   Bun.serve on 127.0.0.1: the page, the bundled  transformers-probe.js (our embedder +
 *   probe script, /models/glove-static-100d/*      transformers.js 4.x web build, bundled): loads
 *   (the model folder), /ort/* (onnxruntime-web's  the model by URL with device 'webgpu', then
 *   dist from node_modules); everything else 404   'wasm', embeds the test sentences, publishes the
 *                                                  floats and sign bits on window.synodTransformersProbe
 *
 * Checked: a WebGPU adapter exists; both loads succeed (the folder's manifest hash verified in the
 * page), report the device asked for, and give 100-dimensional unit vectors (96 sign bits); similar
 * sentences are closer (cosine) than unrelated ones on both devices; WebGPU and WASM agree on the sign
 * bits (the measured Hamming distances are logged, and must be small); every request the page made went
 * to 127.0.0.1 (no CDN for the WASM files, no hub for the model). The webgpu run opens a GPU device
 * (counted in the page), the wasm run none.
 *
 * Measured (Chromium 156, SwiftShader): 0 of 96 sign bits differ, and the floats are identical. That
 * is expected of this model and proves little about GPU arithmetic: its ONNX graph is a single Gather
 * (an exact copy of table rows), and the mean pooling and normalization run in transformers.js on the
 * CPU. A model with matmuls on the GPU may differ in the last float bits.
 *
 * Two things the browser path needed (fixed in transformers.ts): the Node-only models-dir.ts import
 * broke the browser bundle, and a full-URL `localModelPath` makes transformers.js 4.x think no tokenizer
 * exists (`this.tokenizer is not a function`), so a same-origin model URL is given as a path.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import type { Server } from 'bun';
import type { Page } from 'playwright-core';
import { buildBrowserBundle } from '../browser-node/src/browser/build.ts';
import type {
  TransformersProbeResults,
  TransformersProbeState,
} from '../browser-node/src/browser/transformers-probe.ts';
import { DEFAULT_MODEL_MANIFEST, listFiles } from '../browser-node/src/inference/models-dir.ts';
import { TEST_MODELS_DIR } from '../browser-node/src/inference/test-models.ts';
import { type Chrome, launchChromium, until } from './support/chromium.ts';

const LONG = 240_000;
const MODEL_ID = 'glove-static-100d';
const MODEL_DIR = join(TEST_MODELS_DIR, MODEL_ID);
const MODEL_HASH = DEFAULT_MODEL_MANIFEST[MODEL_ID]?.sha256 as string;
const ORT_DIST = join(import.meta.dir, '../node_modules/onnxruntime-web/dist');

/** Two pairs of near-paraphrases and one unrelated sentence. */
const SENTENCES = [
  'the cat sat on the mat',
  'a cat was sitting on the rug',
  'stock markets fell sharply after the bank raised interest rates',
  'share prices dropped when the central bank increased rates',
  'she plays the violin in an orchestra',
] as const;
/** [similar a, similar b, unrelated] triples, as indexes into SENTENCES. */
const TRIPLES: Array<[number, number, number]> = [
  [0, 1, 2],
  [0, 1, 4],
  [2, 3, 0],
  [2, 3, 4],
];

function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return dot / Math.sqrt(na * nb);
}

function hammingBytes(a: readonly number[], b: readonly number[]): number {
  let d = 0;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    let x = ((a[i] ?? 0) ^ (b[i] ?? 0)) & 0xff;
    while (x !== 0) {
      d += x & 1;
      x >>= 1;
    }
  }
  return d;
}

/** A file under `root` for a URL path tail, or null when it escapes `root` or is absent. */
function fileUnder(root: string, tail: string): string | null {
  const rel = normalize(decodeURIComponent(tail));
  if (rel.startsWith('..') || rel.startsWith('/')) return null;
  const abs = join(root, rel);
  return existsSync(abs) ? abs : null;
}

function contentType(path: string): string {
  if (path.endsWith('.wasm')) return 'application/wasm';
  if (path.endsWith('.mjs') || path.endsWith('.js')) return 'text/javascript';
  if (path.endsWith('.json')) return 'application/json';
  return 'application/octet-stream';
}

describe('TransformersEmbedder (glove-static-100d) in headless Chromium: WebGPU (SwiftShader) and WASM', () => {
  let outdir = '';
  let chrome: Chrome | undefined;
  let server: Server<undefined> | undefined;
  let page: Page;
  let origin = '';
  let results: TransformersProbeResults;
  /** Every URL the page requested (playwright's view). */
  const requested: string[] = [];
  /** Every request our server answered: path and status. */
  const served: { path: string; status: number }[] = [];
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];
  const timings: Record<string, number> = {};

  beforeAll(
    async () => {
      let t = Date.now();
      if (!existsSync(join(MODEL_DIR, 'config.json'))) throw new Error(`no model folder at ${MODEL_DIR}`);
      if (!existsSync(ORT_DIST)) throw new Error(`no onnxruntime-web dist at ${ORT_DIST}`);
      const files = await listFiles(MODEL_DIR);
      outdir = mkdtempSync(join(tmpdir(), 'synod-transformers-'));
      const bundle = await buildBrowserBundle(outdir, {
        entries: [join(import.meta.dir, '../browser-node/src/browser/transformers-probe.ts')],
        sourcemap: false,
      });
      const script = bundle.files.get('transformers-probe.js');
      if (script === undefined) throw new Error(`bundle files: ${[...bundle.files.keys()]}`);
      timings['bundleMs'] = Date.now() - t;

      server = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch(req) {
          const path = new URL(req.url).pathname;
          let res: Response;
          let file: string | null = null;
          if (path === '/') {
            res = new Response(
              '<!doctype html><meta charset="utf-8"><title>transformers probe</title>' +
                '<script type="module" src="/transformers-probe.js"></script>',
              { headers: { 'content-type': 'text/html' } },
            );
          } else if (path === '/transformers-probe.js') {
            file = script;
          } else if (path.startsWith(`/models/${MODEL_ID}/`)) {
            file = fileUnder(MODEL_DIR, path.slice(`/models/${MODEL_ID}/`.length));
          } else if (path.startsWith('/ort/')) {
            file = fileUnder(ORT_DIST, path.slice('/ort/'.length));
          }
          if (file !== null) {
            res = new Response(Bun.file(file), { headers: { 'content-type': contentType(file) } });
          } else {
            res ??= new Response('not found', { status: 404 });
          }
          served.push({ path, status: res.status });
          return res;
        },
      });
      origin = `http://127.0.0.1:${server.port}`;

      t = Date.now();
      chrome = await launchChromium({ webgpu: true });
      const ctx = chrome.context;
      page = ctx.pages()[0] ?? (await ctx.newPage());
      page.on('request', (r) => requested.push(r.url()));
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() === 'error') consoleErrors.push(m.text());
      });
      const query = new URLSearchParams({
        model: MODEL_ID,
        files: files.join(','),
        hash: MODEL_HASH,
        sentences: JSON.stringify(SENTENCES),
      });
      await page.goto(`${origin}/?${query}`);
      let last = '';
      const state = await until(
        'the probe to finish',
        async () => {
          const s = (await page.evaluate(() => window.synodTransformersProbe)) as
            | TransformersProbeState
            | undefined;
          last = s?.phase ?? '(no state)';
          return s !== undefined && s.state !== 'running' ? s : null;
        },
        180_000,
      ).catch((e: unknown) => {
        throw new Error(`${String(e)} (last phase: ${last}; page errors: ${pageErrors.join(' | ')})`);
      });
      timings['probeMs'] = Date.now() - t;
      if (state.state !== 'done' || state.results === undefined)
        throw new Error(`the probe failed: ${state.error}`);
      results = state.results;
      const { webgpu, wasm } = results.runs;
      console.log(
        '[browser-transformers test]',
        JSON.stringify({
          timings,
          adapter: results.adapter,
          crossOriginIsolated: results.crossOriginIsolated,
          gpuDeviceRequests: results.gpuDeviceRequests,
          runs: [webgpu, wasm].map((r) => ({
            requested: r.requested,
            ok: r.ok,
            device: r.device,
            loadMs: Math.round(r.loadMs),
            embedMs: Math.round(r.embedMs),
            dims: r.dims,
            ref: r.ref,
            error: r.error,
          })),
          signBitsDiffering: SENTENCES.map((_, i) => hammingBytes(webgpu.bits[i] ?? [], wasm.bits[i] ?? [])),
          maxAbsFloatDiff: Math.max(
            ...SENTENCES.map((_, i) =>
              Math.max(
                ...(webgpu.vectors[i] ?? []).map((x, j) =>
                  Math.abs(x - (wasm.vectors[i]?.[j] ?? Number.NaN)),
                ),
              ),
            ),
          ),
          consoleErrors,
          served: served.map((s) => `${s.status} ${s.path}`),
        }),
      );
    },
    { timeout: LONG },
  );

  afterAll(
    async () => {
      await chrome?.close();
      server?.stop(true);
      if (outdir) rmSync(outdir, { recursive: true, force: true });
    },
    { timeout: 60_000 },
  );

  test('a WebGPU adapter is present (SwiftShader)', () => {
    expect(results.adapter.hasNavigatorGpu).toBe(true);
    expect(results.adapter.found).toBe(true);
    expect(
      `${results.adapter.vendor} ${results.adapter.architecture} ${results.adapter.description}`,
    ).toMatch(/swiftshader/i);
  });

  test('both loads succeed, on the device asked for, with the verified folder hash and 100 dims', () => {
    for (const device of ['webgpu', 'wasm'] as const) {
      const run = results.runs[device];
      expect(run.error).toBeUndefined();
      expect(run.ok).toBe(true);
      expect(run.device).toBe(device);
      expect(run.dims).toBe(100);
      expect(run.ref).toEqual({ id: MODEL_ID, fileHash: MODEL_HASH, bits: 96 });
      expect(run.vectors).toHaveLength(SENTENCES.length);
      expect(run.bits).toHaveLength(SENTENCES.length);
      for (const v of run.vectors) {
        expect(v).toHaveLength(100);
        expect(v.every(Number.isFinite)).toBe(true);
        expect(Math.hypot(...v)).toBeCloseTo(1, 4);
      }
      for (const b of run.bits) expect(b).toHaveLength(12);
    }
    // onnxruntime-web's WebGPU EP opened a GPU device for the webgpu run; the wasm run opened none.
    expect(results.gpuDeviceRequests).toEqual({ webgpu: 1, wasm: 0 });
  });

  test('similar sentences are closer (cosine) than unrelated ones, on both devices', () => {
    for (const device of ['webgpu', 'wasm'] as const) {
      const v = results.runs[device].vectors;
      for (const [a, b, c] of TRIPLES) {
        const similar = cosine(v[a] as number[], v[b] as number[]);
        const unrelated = cosine(v[a] as number[], v[c] as number[]);
        expect(similar).toBeGreaterThan(unrelated);
      }
    }
  });

  test('WebGPU and WASM agree: floats within 1e-4, sign bits identical', () => {
    const { webgpu, wasm } = results.runs;
    for (let i = 0; i < SENTENCES.length; i++) {
      const g = webgpu.vectors[i] as number[];
      const w = wasm.vectors[i] as number[];
      for (let j = 0; j < g.length; j++)
        expect(Math.abs((g[j] as number) - (w[j] as number))).toBeLessThan(1e-4);
      expect(hammingBytes(webgpu.bits[i] as number[], wasm.bits[i] as number[])).toBe(0);
    }
  });

  test('every request the page made went to 127.0.0.1 (no CDN, no hub); no page errors', () => {
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.filter((u) => !u.startsWith(`${origin}/`))).toEqual([]);
    expect(requested).toContain(`${origin}/transformers-probe.js`);
    // The model and onnxruntime-web's WASM were fetched from our server.
    expect(served).toContainEqual({ path: `/models/${MODEL_ID}/onnx/model.onnx`, status: 200 });
    expect(
      served.some((s) => s.path.startsWith('/ort/') && s.path.endsWith('.wasm') && s.status === 200),
    ).toBe(true);
    expect(pageErrors).toEqual([]);
  });
});
