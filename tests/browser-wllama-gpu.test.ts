/**
 * Can the browser node's wllama (3.8.1, llama.cpp in WASM) offload layers to WebGPU in this headless
 * Chromium? No, and this suite pins down why, so that the tab's `gpuLayers: 0` stays a measured choice.
 *
 *   Bun test process                               headless Chromium --enable-unsafe-webgpu
 *   ────────────────                               ───────────────────────────────────────────
 *   Bun.serve on 127.0.0.1: the page, the bundled  wllama-gpu-probe.js: the page's adapter; raw
 *   probe, wllama.wasm, stories260K.gguf; every    wllama loads with llama.cpp's native log on;
 *   other path is 404. node-llama-cpp (CPU) here.  our WllamaEngine with gpuLayers 0 and 99
 *
 * Findings (Chromium 156, Debian; wllama 3.8.1, llama.cpp b11364, built with GGML_WEBGPU and JSPI):
 * - wllama's one WASM build has llama.cpp's WebGPU backend compiled in (JSPI and Memory64, both present
 *   here, so no compat build and no CDN). The only adapter is Dawn's SwiftShader (a fallback adapter),
 *   and it lacks `shader-f16`, which llama.cpp's WebGPU backend requires: the backend registers no
 *   device, llama.cpp enumerates one backend (CPU), and with 99 GPU layers every layer is assigned to
 *   the CPU, exactly as with 0. Nothing is logged about it: the offload silently does not happen.
 * - Made to believe the adapter has `shader-f16`, the backend asks for a device with
 *   `requiredFeatures: ['shader-f16', …]`; Chromium refuses ("Unsupported feature: shader-f16") and
 *   llama.cpp aborts the load. So shader-f16 is the one missing piece, and no flag adds it (tried:
 *   --enable-dawn-features=allow_unsafe_apis, --enable-webgpu-developer-features,
 *   --use-webgpu-adapter=swiftshader, --use-vulkan=swiftshader; there is no /dev/dri).
 * - Through our WllamaEngine, `gpuLayers: 99` and `gpuLayers: 0` give byte-identical greedy output (text,
 *   token count, finish reason) on every request below, equal to node-llama-cpp's, at the same speed:
 *   both run the same CPU code. No GPU-vs-CPU parity could be measured, since no GPU path runs here.
 *
 * If this suite starts failing on the premise (an adapter with shader-f16, or a WebGPU device in
 * llama.cpp's report), WebGPU offload has become possible: measure GPU-vs-CPU greedy parity before
 * offering it to the tab (verdicts compare outputs).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import type { WllamaGpuProbeResults } from '../browser-node/src/browser/wllama-gpu-probe.ts';
import type { GenerateRequest, GenerateResult } from '../browser-node/src/inference/engine.ts';
import { LlamaCppEngine } from '../browser-node/src/inference/llama-cpp.ts';
import { STORIES_260K_SHA256, TEST_MODELS_DIR } from '../browser-node/src/inference/test-models.ts';
import { openProbePage, type ProbePage, probeResults } from './support/probe-page.ts';

const LONG = 120_000;

const greedy = (maxTokens: number) => ({ temperature: 0, maxTokens });
/** Varied prompts and lengths: spaces, punctuation, a newline, unicode, special-token text, empty. */
const REQUESTS: GenerateRequest[] = [
  { prompt: 'Once upon a time', params: greedy(64) },
  { prompt: 'Hello', params: greedy(24) },
  { prompt: ' Hello', params: greedy(8) },
  { prompt: '  Once upon a time', params: greedy(40) },
  { prompt: 'The cat sat.', params: greedy(32) },
  { prompt: 'Lily said: "Look!" Tom was sad?!', params: greedy(48) },
  { prompt: 'Once upon a time\nthere was', params: greedy(24) },
  { prompt: 'héllo ☃ 日本 — café', params: greedy(16) },
  { prompt: '<s>Hi</s> there', params: greedy(20) },
  { prompt: '', params: greedy(16) },
  { prompt: 'Hello', params: greedy(1) },
  { prompt: 'One day, a boy named Tim', params: greedy(200) },
  {
    messages: [
      { role: 'system', content: 'You tell short stories.' },
      { role: 'user', content: 'Tell me about a dog.' },
    ],
    params: greedy(48),
  },
];

const comparable = (r: Pick<GenerateResult, 'text' | 'tokens' | 'finishReason'>) => ({
  text: r.text,
  tokens: r.tokens,
  finishReason: r.finishReason,
});

const modelPath = join(TEST_MODELS_DIR, 'stories260K.gguf');

describe('wllama and WebGPU in headless Chromium (SwiftShader): no offload, CPU output either way', () => {
  let probe: ProbePage | undefined;
  let results: WllamaGpuProbeResults;
  const native: ReturnType<typeof comparable>[] = [];
  let origin = '';

  beforeAll(
    async () => {
      const engine = new LlamaCppEngine({ threads: 1 });
      await engine.load({ id: 'stories260K', fileHash: STORIES_260K_SHA256, path: modelPath });
      for (const r of REQUESTS) native.push(comparable(await engine.generate(r)));
      await engine.unload();

      const files: Record<string, [string, string]> = {
        '/wllama.wasm': [
          Bun.resolveSync('@wllama/wllama/esm/wasm/wllama.wasm', import.meta.dir),
          'application/wasm',
        ],
        '/model.gguf': [modelPath, 'application/octet-stream'],
      };
      probe = await openProbePage({
        entry: join(import.meta.dir, '../browser-node/src/browser/wllama-gpu-probe.ts'),
        route: (path) => {
          const f = files[path];
          return f ? new Response(Bun.file(f[0]), { headers: { 'content-type': f[1] } }) : null;
        },
        query: new URLSearchParams({
          hash: STORIES_260K_SHA256,
          requests: JSON.stringify(REQUESTS),
        }).toString(),
      });
      origin = probe.origin;
      results = await probeResults<WllamaGpuProbeResults>(probe, 'synodWllamaGpuProbe', 90_000);
      const speed = (run: WllamaGpuProbeResults['runs']['cpu']) => {
        const tokens = run.results.reduce((n, r) => n + r.tokens, 0);
        const ms = run.results.reduce((n, r) => n + r.ms, 0);
        return {
          loadMs: Math.round(run.loadMs),
          tokens,
          ms: Math.round(ms),
          tokensPerS: Math.round((tokens / ms) * 1000),
        };
      };
      console.log(
        '[browser-wllama-gpu test]',
        JSON.stringify({
          timings: probe.timings,
          adapter: { ...results.adapter, features: results.adapter.features.length },
          backends: results.backends,
          f16Spoofed: results.f16Spoofed,
          cpu: speed(results.runs.cpu),
          gpu99: speed(results.runs.gpu),
          errors: [results.runs.cpu.error, results.runs.gpu.error].filter(Boolean),
        }),
      );
    },
    { timeout: LONG },
  );

  afterAll(() => probe?.close(), { timeout: 60_000 });

  test('premise: the page has JSPI and a WebGPU adapter, SwiftShader, without shader-f16', () => {
    expect(results.jspi).toBe(true);
    expect(results.adapter.found).toBe(true);
    expect(results.adapter.info?.architecture).toBe('swiftshader');
    // When this fails, WebGPU offload may have become possible here: see the header.
    expect(results.adapter.hasShaderF16).toBe(false);
  });

  test("llama.cpp's own report: with 99 GPU layers, one backend and every layer on the CPU, as with 0", () => {
    const { gpu99, gpu0 } = results.backends;
    for (const report of [gpu99, gpu0]) {
      expect(report.error).toBeUndefined();
      expect(report.ok).toBe(true);
      expect(report.backendCount).toBe(1);
      // stories260K: 5 blocks plus the output layer.
      expect(report.layerDevices).toEqual(Array(6).fill('CPU'));
    }
    // With 99 the backend found the adapter, saw no shader-f16 and registered no device, silently.
    expect(gpu99.webgpuLines).toEqual([]);
    // With 0, wllama hides navigator.gpu from its worker, and the backend says so.
    expect(gpu0.webgpuLines).toEqual([
      'ggml_webgpu: Failed to get an adapter: WebGPU not available on this browser (requestAdapter returned null)',
    ]);
  });

  test('with the adapter claiming shader-f16, the WebGPU device request is refused and llama.cpp aborts', () => {
    const { f16Spoofed } = results;
    expect(f16Spoofed.ok).toBe(false);
    expect(f16Spoofed.error).toContain('ABORT');
    const failed = f16Spoofed.webgpuLines.find((l) => l.includes('ggml_webgpu: Failed to get a device'));
    expect(failed).toContain('Unsupported feature: shader-f16');
    expect(f16Spoofed.webgpuLines.join('\n')).toContain(
      'GGML_ASSERT(ctx->webgpu_global_ctx->device != nullptr) failed',
    );
  });

  test('gpuLayers 99 and 0 give byte-identical greedy output, equal to node-llama-cpp, on every request', () => {
    const { cpu, gpu } = results.runs;
    expect(cpu.error).toBeUndefined();
    expect(gpu.error).toBeUndefined();
    expect(cpu.results.length).toBe(REQUESTS.length);
    expect(gpu.results.map(comparable)).toEqual(cpu.results.map(comparable));
    expect(cpu.results.map(comparable)).toEqual(native);
    // Not vacuous: real text, and the long request runs to its limit.
    expect(cpu.results.filter((r) => r.text.length > 0).length).toBeGreaterThanOrEqual(10);
    expect(cpu.results.at(-2)?.tokens).toBeGreaterThan(100);
  });

  test('every request the page made went to 127.0.0.1 (or a blob: worker); no page errors', () => {
    const requested = probe?.requested ?? [];
    expect(requested).toContain(`${origin}/wllama.wasm`);
    expect(requested).toContain(`${origin}/model.gguf`);
    expect(requested.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith('blob:'))).toEqual([]);
    expect(probe?.pageErrors).toEqual([]);
  });
});
