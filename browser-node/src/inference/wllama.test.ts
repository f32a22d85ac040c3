import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { STORIES_260K_SHA256, TEST_MODELS_DIR } from './test-models.ts';
import {
  hasJspi,
  WLLAMA_ENGINE_ID,
  WllamaEngine,
  wllamaAssetPaths,
  wllamaCompletionParams,
  wllamaLoadParams,
} from './wllama.ts';

describe('wllama config mapping', () => {
  test('every build resolves to the one local WASM file (no CDN)', () => {
    expect(wllamaAssetPaths({ wasmUrl: '/assets/wllama.wasm' })).toEqual({
      default: '/assets/wllama.wasm',
      'single-thread/wllama.wasm': '/assets/wllama.wasm',
    });
  });

  test('load params: no seed (it would override per-request seeds), GPU layers 0, 1 thread by default', () => {
    const p = wllamaLoadParams({ wasmUrl: '/w.wasm' });
    expect(p).toEqual({ n_ctx: 2048, n_threads: 1, n_gpu_layers: 0 });
    expect('seed' in p).toBe(false);
    expect(wllamaLoadParams({ wasmUrl: '/w.wasm', threads: 4, contextSize: 512, gpuLayers: 99 })).toEqual({
      n_ctx: 512,
      n_threads: 4,
      n_gpu_layers: 99,
    });
    expect(() => wllamaLoadParams({ wasmUrl: '/w.wasm', threads: 0 })).toThrow();
  });

  test('greedy maps to temp 0 with top_k 1; sampling keeps seed, top_k and top_p; no prompt cache', () => {
    expect(wllamaCompletionParams('Once', { temperature: 0, maxTokens: 10, topP: 0.5, topK: 40 })).toEqual({
      prompt: 'Once',
      cache_prompt: false,
      max_tokens: 10,
      temp: 0,
      top_k: 1,
    });
    expect(
      wllamaCompletionParams('Once', { temperature: 0.8, maxTokens: 10, seed: 42, topP: 0.9, topK: 40 }),
    ).toEqual({
      prompt: 'Once',
      cache_prompt: false,
      max_tokens: 10,
      temp: 0.8,
      top_k: 40,
      top_p: 0.9,
      seed: 42,
    });
  });

  test('JSPI detection', () => {
    expect(hasJspi({ WebAssembly: { Suspending: () => {} } })).toBe(true);
    expect(hasJspi({ WebAssembly: {} })).toBe(false);
    expect(hasJspi({})).toBe(false);
  });
});

describe('WllamaEngine load checks before the WASM runtime starts', () => {
  let server: ReturnType<typeof Bun.serve>;
  let base: string;
  beforeAll(() => {
    server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: (req) =>
        new URL(req.url).pathname === '/models/stories260K.gguf'
          ? new Response(Bun.file(join(TEST_MODELS_DIR, 'stories260K.gguf')))
          : new Response('no', { status: 404 }),
    });
    base = `http://127.0.0.1:${server.port}`;
  });
  afterAll(() => {
    server.stop(true);
  });

  test('identity, and typed errors for a missing URL, a wrong hash and a 404', async () => {
    const engine = new WllamaEngine({ wasmUrl: `${base}/wllama.wasm` });
    expect(engine.id).toBe(WLLAMA_ENGINE_ID);
    expect(engine.kind).toBe('wllama');
    await expect(engine.load({ id: 'stories260K', fileHash: STORIES_260K_SHA256 })).rejects.toMatchObject({
      code: 'INFERENCE_INVALID_INPUT',
    });
    await expect(
      engine.load({ id: 'stories260K', fileHash: '0'.repeat(64), url: `${base}/models/stories260K.gguf` }),
    ).rejects.toMatchObject({ code: 'MODEL_HASH_MISMATCH', details: { actual: STORIES_260K_SHA256 } });
    await expect(
      engine.load({ id: 'stories260K', fileHash: STORIES_260K_SHA256, url: `${base}/models/missing.gguf` }),
    ).rejects.toMatchObject({ code: 'MODEL_FETCH_FAILED', details: { status: 404 } });
    expect(engine.model).toBeNull();
    await expect(
      engine.generate({ prompt: 'x', params: { temperature: 0, maxTokens: 1 } }),
    ).rejects.toMatchObject({
      code: 'ENGINE_NOT_LOADED',
    });
  });
});
