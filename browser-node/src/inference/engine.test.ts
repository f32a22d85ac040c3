import { describe, expect, test } from 'bun:test';
import { completionText, ggufContextSize, renderMessagesAsText, requireLocation } from './engine.ts';
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

describe("the GGUF engines' shared text rule", () => {
  test('a prompt is completed as is (spaces kept); messages as their plain rendering, system included', () => {
    expect(completionText({ prompt: ' Hello ' })).toBe(' Hello ');
    expect(completionText({ prompt: '' })).toBe('');
    const messages = [
      { role: 'system' as const, content: 'You tell stories.' },
      { role: 'user' as const, content: 'A dog?' },
    ];
    expect(completionText({ messages })).toBe('system: You tell stories.\nuser: A dog?\nassistant:');
    expect(completionText({ messages })).toBe(renderMessagesAsText(messages));
  });

  test('context size: the requested size (2048 by default) capped at the training context', () => {
    expect(ggufContextSize(undefined, 4096)).toBe(2048);
    expect(ggufContextSize(undefined, 512)).toBe(512);
    expect(ggufContextSize(256, 2048)).toBe(256);
    expect(ggufContextSize(4096, 2048)).toBe(2048);
    expect(ggufContextSize(1024, 0)).toBe(1024);
  });
});
