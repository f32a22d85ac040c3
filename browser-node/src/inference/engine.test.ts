import { describe, expect, test } from 'bun:test';
import { requireLocation } from './engine.ts';
import { isInferenceError } from './errors.ts';
import { LlamaCppEngine } from './llama-cpp.ts';
import { WllamaEngine } from './wllama.ts';

const source = { id: 'stories260K', fileHash: 'a'.repeat(64) };

describe('requireLocation', () => {
  test('returns the location an engine needs, or INFERENCE_INVALID_INPUT naming the engine', () => {
    expect(requireLocation({ ...source, url: 'http://127.0.0.1/m.gguf' }, 'url', 'wllama')).toBe(
      'http://127.0.0.1/m.gguf',
    );
    let err: unknown;
    try {
      requireLocation(
        { ...source, url: 'http://127.0.0.1/m.gguf' },
        'path',
        'node-llama-cpp',
        'use ModelsDir',
      );
    } catch (e) {
      err = e;
    }
    expect(isInferenceError(err, 'INFERENCE_INVALID_INPUT')).toBe(true);
    expect(err).toMatchObject({
      message: 'node-llama-cpp loads models from a local path',
      hint: 'use ModelsDir',
    });
  });

  test('engines refuse a source without their kind of location before touching anything', async () => {
    await expect(new LlamaCppEngine().load({ ...source, url: 'http://127.0.0.1/x' })).rejects.toMatchObject({
      code: 'INFERENCE_INVALID_INPUT',
    });
    const wllama = new WllamaEngine({ wasmUrl: 'http://127.0.0.1/wllama.wasm' });
    await expect(wllama.load({ ...source, path: '/tmp/x.gguf' })).rejects.toMatchObject({
      code: 'INFERENCE_INVALID_INPUT',
      message: 'wllama loads models from a URL',
    });
  });
});
