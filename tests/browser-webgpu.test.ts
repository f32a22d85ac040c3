/**
 * Our web-llm adapter (browser-node/src/inference/web-llm.ts) against real WebGPU in headless Chromium.
 *
 *   Bun test process                               headless Chromium --enable-unsafe-webgpu
 *   ────────────────                               ───────────────────────────────────────────
 *   Bun.serve on 127.0.0.1: the page, the bundled  webgpu-probe.js (our adapter + web-llm 0.2.86,
 *   probe script, one mlc-chat-config.json;        bundled): requestAdapter → SwiftShader;
 *   every other path is 404                        loads three model records, publishes results
 *                                                  on window.synodWebGpuProbe
 *
 * `--enable-unsafe-webgpu` alone gives this headless Chromium (Debian 156) a WebGPU adapter: Dawn's
 * SwiftShader (Vulkan on CPU), a fallback adapter. Without the flag `requestAdapter()` returns null;
 * `--use-angle=swiftshader` and `--enable-features=Vulkan` change nothing, so they are not passed.
 *
 * Checked: the adapter is found and our GPU check passes; it lacks shader-f16, so a q4f16_1 record is
 * SHADER_F16_UNSUPPORTED before anything is fetched; a q4f32_1 record whose folder and library 404 on
 * 127.0.0.1 is MODEL_FETCH_FAILED at web-llm's first fetch; with the config served (and its sha256 pin
 * verified by web-llm) and the library missing, MODEL_FETCH_FAILED at the second fetch. Every request
 * the page makes is to 127.0.0.1 (no CDN, no hub). No MLC model runs: none is available offline (see
 * the models README), and web-llm needs a compiled model library before it touches the GPU.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { WebGpuProbeResults } from '../browser-node/src/browser/webgpu-probe.ts';
import { openProbePage, type ProbePage, probeResults } from './support/probe-page.ts';

const LONG = 180_000;

const F16_ID = 'Llama-3.2-1B-Instruct-q4f16_1-MLC';
const F32_MISSING_ID = 'Llama-3.2-1B-Instruct-q4f32_1-MLC';
const F32_NOLIB_ID = 'SmolLM2-135M-Instruct-q4f32_1-MLC';

/** A stand-in mlc-chat-config.json (web-llm parses it, then fetches the library; no model follows). */
const CONFIG_BYTES = new TextEncoder().encode(
  JSON.stringify({
    model_type: 'llama',
    quantization: 'q4f32_1',
    context_window_size: 2048,
    vocab_size: 49152,
    tokenizer_files: ['tokenizer.json'],
    conv_template: { name: 'chatml', system_template: '{system_message}', roles: {}, seps: [''] },
  }),
);
const CONFIG_PATH = `/models/${F32_NOLIB_ID}/resolve/main/mlc-chat-config.json`;

describe('web-llm adapter on real WebGPU (SwiftShader) in headless Chromium', () => {
  let probe: ProbePage | undefined;
  let results: WebGpuProbeResults;
  let origin = '';
  let requested: string[] = [];
  let served: ProbePage['served'] = [];

  beforeAll(
    async () => {
      const configSha = createHash('sha256').update(CONFIG_BYTES).digest('hex');
      probe = await openProbePage({
        entry: join(import.meta.dir, '../browser-node/src/browser/webgpu-probe.ts'),
        route: (path) =>
          path === CONFIG_PATH
            ? new Response(CONFIG_BYTES, { headers: { 'content-type': 'application/json' } })
            : null,
        query: `configSha=${configSha}`,
      });
      ({ origin, requested, served } = probe);
      results = await probeResults<WebGpuProbeResults>(probe, 'synodWebGpuProbe', 120_000);
      console.log(
        '[browser-webgpu test]',
        JSON.stringify({
          timings: probe.timings,
          adapter: { ...results.adapter, features: results.adapter.features.length },
          errors: Object.fromEntries(
            (['f16', 'f32Missing', 'f32NoLib'] as const).map((k) => [
              k,
              `${results[k].error?.code}: ${results[k].error?.message} (cause: ${results[k].error?.cause})`,
            ]),
          ),
          served,
        }),
      );
    },
    { timeout: LONG },
  );

  afterAll(() => probe?.close(), { timeout: 60_000 });

  test('a WebGPU adapter is found and reported; our GPU check passes; it lacks shader-f16', () => {
    const { adapter, gpuCheck } = results;
    expect(adapter.hasNavigatorGpu).toBe(true);
    expect(adapter.found).toBe(true);
    expect(adapter.features.length).toBeGreaterThan(0);
    expect(adapter.info?.vendor.length ?? 0).toBeGreaterThan(0);
    // The premise of the f16 case: SwiftShader does not offer shader-f16.
    expect(adapter.hasShaderF16).toBe(false);
    expect(adapter.features).not.toContain('shader-f16');
    expect(gpuCheck.error).toBeUndefined();
    expect(gpuCheck.ok).toBe(true);
    expect(gpuCheck.adapterHasShaderF16).toBe(false);
  });

  test('a q4f16_1 record is SHADER_F16_UNSUPPORTED, decided before any model file is fetched', () => {
    const { f16 } = results;
    expect(f16.ok).toBe(false);
    expect(f16.error?.name).toBe('InferenceError');
    expect(f16.error?.code).toBe('SHADER_F16_UNSUPPORTED');
    expect(f16.error?.hint).toContain('q4f32');
    expect(requested.filter((u) => u.includes(F16_ID))).toEqual([]);
    expect(served.filter((s) => s.path.includes(F16_ID))).toEqual([]);
  });

  test('a q4f32_1 record whose model folder 404s on 127.0.0.1 is MODEL_FETCH_FAILED at the first fetch', () => {
    const { f32Missing } = results;
    expect(f32Missing.ok).toBe(false);
    expect(f32Missing.error?.name).toBe('InferenceError');
    expect(f32Missing.error?.code).toBe('MODEL_FETCH_FAILED');
    expect(f32Missing.error?.details).toEqual({
      url: f32Missing.modelUrl,
      modelLibUrl: f32Missing.modelLibUrl,
    });
    expect(f32Missing.modelUrl.startsWith(`${origin}/`)).toBe(true);
    // web-llm asked our server for the config (it appends resolve/main/), got 404, and stopped there.
    expect(served).toContainEqual({
      path: `/models/${F32_MISSING_ID}/resolve/main/mlc-chat-config.json`,
      status: 404,
    });
    expect(served.filter((s) => s.path.startsWith('/libs/') && s.path.includes(F32_MISSING_ID))).toEqual([]);
  });

  test('with the config served (sha256 pin verified) and the library 404ing: MODEL_FETCH_FAILED', () => {
    const { f32NoLib } = results;
    expect(f32NoLib.ok).toBe(false);
    expect(f32NoLib.error?.name).toBe('InferenceError');
    expect(f32NoLib.error?.code).toBe('MODEL_FETCH_FAILED');
    expect(served).toContainEqual({ path: CONFIG_PATH, status: 200 });
    expect(served).toContainEqual({
      path: new URL(f32NoLib.modelLibUrl).pathname,
      status: 404,
    });
  });

  test('every request the page made went to 127.0.0.1 (no CDN, no hub); no page errors', () => {
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.filter((u) => !u.startsWith(`${origin}/`))).toEqual([]);
    expect(requested).toContain(`${origin}/webgpu-probe.js`);
    expect(probe?.pageErrors).toEqual([]);
  });
});
