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
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TransformersProbeResults } from '../browser-node/src/browser/transformers-probe.ts';
import { DEFAULT_MODEL_MANIFEST, listFiles } from '../browser-node/src/inference/models-dir.ts';
import { TEST_MODELS_DIR } from '../browser-node/src/inference/test-models.ts';
import { openProbePage, type ProbePage, probeResults, serveDir } from './support/probe-page.ts';

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

describe('TransformersEmbedder (glove-static-100d) in headless Chromium: WebGPU (SwiftShader) and WASM', () => {
  let probe: ProbePage | undefined;
  let results: TransformersProbeResults;
  let origin = '';
  let requested: string[] = [];
  let served: ProbePage['served'] = [];

  beforeAll(
    async () => {
      if (!existsSync(join(MODEL_DIR, 'config.json'))) throw new Error(`no model folder at ${MODEL_DIR}`);
      if (!existsSync(ORT_DIST)) throw new Error(`no onnxruntime-web dist at ${ORT_DIST}`);
      const files = await listFiles(MODEL_DIR);
      const modelFiles = serveDir(MODEL_DIR);
      const ortFiles = serveDir(ORT_DIST);
      probe = await openProbePage({
        entry: join(import.meta.dir, '../browser-node/src/browser/transformers-probe.ts'),
        route: (path) => {
          if (path.startsWith(`/models/${MODEL_ID}/`))
            return modelFiles(path.slice(`/models/${MODEL_ID}/`.length));
          if (path.startsWith('/ort/')) return ortFiles(path.slice('/ort/'.length));
          return null;
        },
        query: new URLSearchParams({
          model: MODEL_ID,
          files: files.join(','),
          hash: MODEL_HASH,
          sentences: JSON.stringify(SENTENCES),
        }).toString(),
      });
      ({ origin, requested, served } = probe);
      results = await probeResults<TransformersProbeResults>(probe, 'synodTransformersProbe', 180_000);
      const { webgpu, wasm } = results.runs;
      console.log(
        '[browser-transformers test]',
        JSON.stringify({
          timings: probe.timings,
          adapter: { ...results.adapter, features: results.adapter.features.length },
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
          consoleErrors: probe.consoleErrors,
          served: served.map((s) => `${s.status} ${s.path}`),
        }),
      );
    },
    { timeout: LONG },
  );

  afterAll(() => probe?.close(), { timeout: 60_000 });

  test('a WebGPU adapter is present (SwiftShader)', () => {
    expect(results.adapter.hasNavigatorGpu).toBe(true);
    expect(results.adapter.found).toBe(true);
    const info = results.adapter.info;
    expect(`${info?.vendor} ${info?.architecture} ${info?.description}`).toMatch(/swiftshader/i);
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
    expect(probe?.pageErrors).toEqual([]);
  });
});
