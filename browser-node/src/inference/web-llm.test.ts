import { describe, expect, test } from 'bun:test';
import {
  checkWebGpu,
  type GpuLike,
  needsShaderF16,
  sriFromHex,
  WebLlmEngine,
  type WebLlmModelSpec,
  webLlmAppConfig,
  webLlmFileHash,
  webLlmSampling,
} from './web-llm.ts';

const sha = (c: string) => c.repeat(64);

const spec: WebLlmModelSpec = {
  mlcModelId: 'Llama-3.2-1B-Instruct-q4f32_1-MLC',
  modelLibUrl: 'https://node.example/libs/Llama-3.2-1B-Instruct-q4f32_1-ctx4k_cs1k-webgpu.wasm',
  artifacts: [
    { path: 'mlc-chat-config.json', sha256: sha('a') },
    { path: 'tokenizer.json', sha256: sha('b') },
    { path: 'ndarray-cache.json', sha256: sha('c') },
    { path: 'Llama-3.2-1B-Instruct-q4f32_1-ctx4k_cs1k-webgpu.wasm', sha256: sha('d') },
  ],
  contextWindowSize: 4096,
};

/** Test double for navigator.gpu: an adapter advertising the given features. */
function fakeGpuTestDouble(features: string[] | null): GpuLike {
  return {
    requestAdapter: async () =>
      features === null ? null : { features: { has: (f: string) => features.includes(f) } },
  };
}

describe('web-llm pure parts', () => {
  test('f16 builds need shader-f16; f32 builds do not', () => {
    expect(needsShaderF16({ mlcModelId: 'Llama-3.2-1B-Instruct-q4f16_1-MLC' })).toBe(true);
    expect(needsShaderF16({ mlcModelId: 'SmolLM2-135M-Instruct-q0f16-MLC' })).toBe(true);
    expect(needsShaderF16({ mlcModelId: 'Llama-3.2-1B-Instruct-q4f32_1-MLC' })).toBe(false);
    expect(needsShaderF16({ mlcModelId: 'x-q4f32_1-MLC', requiredFeatures: ['shader-f16'] })).toBe(true);
  });

  test('sha256 hex to SRI', () => {
    // sha256("") in hex and in the SRI form browsers print.
    expect(sriFromHex('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')).toBe(
      'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
    );
    expect(() => sriFromHex('xyz')).toThrow();
  });

  test('appConfig: one local model record with integrity pins, no hub list', () => {
    const config = webLlmAppConfig(spec, 'https://node.example/models/Llama-3.2-1B-Instruct-q4f32_1-MLC/');
    expect(config.model_list).toHaveLength(1);
    const [record] = config.model_list;
    expect(record).toEqual({
      model: 'https://node.example/models/Llama-3.2-1B-Instruct-q4f32_1-MLC/',
      model_id: 'Llama-3.2-1B-Instruct-q4f32_1-MLC',
      model_lib: spec.modelLibUrl,
      overrides: { context_window_size: 4096 },
      integrity: {
        config: sriFromHex(sha('a')),
        model_lib: sriFromHex(sha('d')),
        tokenizer: { 'tokenizer.json': sriFromHex(sha('b')) },
        onFailure: 'error',
      },
    });
    const f16 = webLlmAppConfig({ ...spec, mlcModelId: 'Llama-3.2-1B-Instruct-q4f16_1-MLC' }, 'u');
    expect(f16.model_list[0]?.required_features).toEqual(['shader-f16']);
  });

  test('file hash is the manifest hash of the pinned artifacts, independent of their order', async () => {
    const h = await webLlmFileHash(spec);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(await webLlmFileHash({ artifacts: [...spec.artifacts].reverse() })).toBe(h);
  });

  test('sampling: greedy is temperature 0 with top_p 1; seed passes through', () => {
    expect(webLlmSampling({ temperature: 0, maxTokens: 8, topP: 0.5 })).toEqual({
      max_tokens: 8,
      temperature: 0,
      top_p: 1,
    });
    expect(webLlmSampling({ temperature: 0.7, maxTokens: 8, topP: 0.9, seed: 3 })).toEqual({
      max_tokens: 8,
      temperature: 0.7,
      top_p: 0.9,
      seed: 3,
    });
  });

  test('WebGPU checks with a test-double adapter: missing GPU, no adapter, no shader-f16', async () => {
    await expect(checkWebGpu(undefined, false)).rejects.toMatchObject({ code: 'WEBGPU_UNAVAILABLE' });
    await expect(checkWebGpu(fakeGpuTestDouble(null), false)).rejects.toMatchObject({
      code: 'WEBGPU_UNAVAILABLE',
    });
    await expect(checkWebGpu(fakeGpuTestDouble([]), true)).rejects.toMatchObject({
      code: 'SHADER_F16_UNSUPPORTED',
    });
    const ok = await checkWebGpu(fakeGpuTestDouble([]), false);
    expect(ok.features.has('shader-f16')).toBe(false);
    expect((await checkWebGpu(fakeGpuTestDouble(['shader-f16']), true)).features.has('shader-f16')).toBe(
      true,
    );
  });
});

describe('WebLlmEngine.load refuses before downloading anything', () => {
  const url = 'http://127.0.0.1:9/models/x/';

  test('an f16 model on an adapter without shader-f16 is SHADER_F16_UNSUPPORTED', async () => {
    const f16 = { ...spec, mlcModelId: 'Llama-3.2-1B-Instruct-q4f16_1-MLC' };
    const engine = new WebLlmEngine({ spec: f16, gpu: fakeGpuTestDouble([]) });
    await expect(
      engine.load({ id: 'llama-1b', fileHash: await webLlmFileHash(f16), url }),
    ).rejects.toMatchObject({
      code: 'SHADER_F16_UNSUPPORTED',
    });
    expect(engine.model).toBeNull();
  });

  test('no WebGPU is WEBGPU_UNAVAILABLE; a hash that does not match the pins is MODEL_HASH_MISMATCH', async () => {
    const noGpu = new WebLlmEngine({ spec, gpu: fakeGpuTestDouble(null) });
    await expect(
      noGpu.load({ id: 'llama-1b', fileHash: await webLlmFileHash(spec), url }),
    ).rejects.toMatchObject({
      code: 'WEBGPU_UNAVAILABLE',
    });
    await expect(noGpu.load({ id: 'llama-1b', fileHash: sha('0'), url })).rejects.toMatchObject({
      code: 'MODEL_HASH_MISMATCH',
    });
    await expect(
      noGpu.generate({ prompt: 'x', params: { temperature: 0, maxTokens: 1 } }),
    ).rejects.toMatchObject({
      code: 'ENGINE_NOT_LOADED',
    });
  });
});
