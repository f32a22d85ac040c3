import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { type GenerateRequest, renderMessagesAsText } from './engine.ts';
import { isInferenceError } from './errors.ts';
import { LlamaCppEngine } from './llama-cpp.ts';
import { STORIES_260K_SHA256, TEST_MODELS_DIR } from './test-models.ts';

const source = {
  id: 'stories260K',
  fileHash: STORIES_260K_SHA256,
  path: join(TEST_MODELS_DIR, 'stories260K.gguf'),
};
const greedy: GenerateRequest = { prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 64 } };
const seeded = (seed: number): GenerateRequest => ({
  prompt: 'Once upon a time',
  params: { temperature: 0.9, maxTokens: 48, seed, topK: 40, topP: 0.95 },
});

describe('LlamaCppEngine (node-llama-cpp, prebuilt CPU binary)', () => {
  const engine = new LlamaCppEngine({ threads: 1 });

  beforeAll(async () => {
    const phases = new Set<string>();
    await engine.load(source, (p) => phases.add(p.phase));
    expect(phases.has('hash')).toBe(true);
    expect(phases.has('ready')).toBe(true);
  });

  afterAll(async () => {
    await engine.unload();
  });

  test('reports the loaded model as a protocol ModelRef', () => {
    expect(engine.model).toEqual({ id: 'stories260K', fileHash: STORIES_260K_SHA256 });
    expect(engine.kind).toBe('llama-cpp');
    expect(engine.id.length).toBeLessThanOrEqual(32);
  });

  test('greedy output from "Once upon a time" is non-empty and identical across runs', async () => {
    const a = await engine.generate(greedy);
    const b = await engine.generate(greedy);
    expect(a.text.trim().length).toBeGreaterThan(0);
    expect(b.text).toBe(a.text);
    // The published llama2.c sample for stories260K starts this way.
    expect(a.text.startsWith(', there was a little girl named Lily.')).toBe(true);
    expect(a.tokens).toBeGreaterThan(0);
    expect(Number.isFinite(a.tokensPerSecond) && a.tokensPerSecond > 0).toBe(true);
  });

  test('seeded sampling is reproducible, and another seed gives another story', async () => {
    const a = await engine.generate(seeded(42));
    const b = await engine.generate(seeded(42));
    const c = await engine.generate(seeded(7));
    expect(a.text.length).toBeGreaterThan(0);
    expect(b.text).toBe(a.text);
    expect(c.text).not.toBe(a.text);
  });

  test('maxTokens is respected', async () => {
    const r = await engine.generate({ prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 5 } });
    expect(r.tokens).toBe(5);
    expect(r.finishReason).toBe('length');
  });

  test('chat messages (no template in this GGUF) generate deterministically', async () => {
    const req: GenerateRequest = {
      messages: [{ role: 'user', content: 'Tell me a story about a cat.' }],
      params: { temperature: 0, maxTokens: 24 },
    };
    const a = await engine.generate(req);
    const b = await engine.generate(req);
    expect(a.tokens).toBeGreaterThan(0);
    expect(b.text).toBe(a.text);
  });

  test('prompt token ids are llama_tokenize(add_special, parse_special): BOS, dummy-prefix space, specials', () => {
    // "Hello" is ▁He ll o (the SentencePiece dummy prefix is kept, as llama.cpp and wllama keep it);
    // " Hello" adds the text's own space as ▁ (410); "<s>" and "</s>" are parsed into BOS and EOS.
    expect(engine.promptTokens('Hello')).toEqual([1, 346, 306, 414]);
    expect(engine.promptTokens(' Hello')).toEqual([1, 410, 346, 306, 414]);
    expect(engine.promptTokens('Hello ')).toEqual([1, 346, 306, 414, 410]);
    expect(engine.promptTokens('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
    expect(engine.promptTokens('<s>Hi</s>')).toEqual([1, 1, 320, 417, 2]);
    expect(engine.promptTokens('')).toEqual([1]);
  });

  test("the output keeps its first token's leading space, so prompt + output is one text", async () => {
    const hello = await engine.generate({ prompt: 'Hello', params: { temperature: 0, maxTokens: 4 } });
    expect(hello.text).toBe(' was a big,');
    const one = await engine.generate({ prompt: 'Hello', params: { temperature: 0, maxTokens: 1 } });
    expect(one).toMatchObject({ text: ' was', tokens: 1, finishReason: 'length' });
  });

  test('messages are completed as their plain rendering (no chat template)', async () => {
    const messages = [
      { role: 'system' as const, content: 'You tell stories.' },
      { role: 'user' as const, content: 'Tell me about a dog.' },
    ];
    const params = { temperature: 0, maxTokens: 16 };
    const chat = await engine.generate({ messages, params });
    const raw = await engine.generate({ prompt: renderMessagesAsText(messages), params });
    expect(chat).toMatchObject({ text: raw.text, tokens: raw.tokens, finishReason: raw.finishReason });
  });

  test('an aborted signal is INFERENCE_ABORTED; bad input is INFERENCE_INVALID_INPUT', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(engine.generate({ ...greedy, signal: ac.signal })).rejects.toMatchObject({
      code: 'INFERENCE_ABORTED',
    });
    await expect(
      engine.generate({ prompt: 'x', messages: [{ role: 'user', content: 'y' }], params: greedy.params }),
    ).rejects.toMatchObject({ code: 'INFERENCE_INVALID_INPUT' });
  });

  test('aborting mid-generation stops it with INFERENCE_ABORTED', async () => {
    const ac = new AbortController();
    const p = engine.generate({
      prompt: 'Once upon a time',
      params: { temperature: 0, maxTokens: 1500 },
      signal: ac.signal,
    });
    setTimeout(() => ac.abort(), 5);
    await expect(p).rejects.toMatchObject({ code: 'INFERENCE_ABORTED' });
    // The engine is usable again afterwards.
    const r = await engine.generate({ prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 4 } });
    expect(r.tokens).toBe(4);
  });
});

describe("LlamaCppEngine context limits (as llama.cpp's server: no context shift)", () => {
  test('a full context ends the output (length); a prompt as long as the context is PROMPT_TOO_LONG', async () => {
    const engine = new LlamaCppEngine({ threads: 1, contextSize: 256 });
    await engine.load(source);
    try {
      // 5 prompt tokens + 251 generated fill the 256-token context.
      const full = await engine.generate({
        prompt: 'Once upon a time',
        params: { temperature: 0, maxTokens: 400 },
      });
      expect(full).toMatchObject({ tokens: 251, promptTokens: 5, finishReason: 'length' });
      const room = await engine.generate({
        prompt: Array(254).fill('a').join(' '),
        params: { temperature: 0, maxTokens: 10 },
      });
      expect(room).toMatchObject({ tokens: 1, finishReason: 'length' });
      await expect(
        engine.generate({
          prompt: Array(255).fill('a').join(' '),
          params: { temperature: 0, maxTokens: 10 },
        }),
      ).rejects.toMatchObject({
        code: 'PROMPT_TOO_LONG',
        details: { promptTokens: 256, contextSize: 256 },
      });
    } finally {
      await engine.unload();
    }
  });
});

describe('LlamaCppEngine load and unload', () => {
  test('a wrong file hash is MODEL_HASH_MISMATCH and nothing is loaded', async () => {
    const engine = new LlamaCppEngine();
    const err = await engine.load({ ...source, fileHash: 'f'.repeat(64) }).catch((e) => e);
    expect(isInferenceError(err, 'MODEL_HASH_MISMATCH')).toBe(true);
    expect(engine.model).toBeNull();
    expect(engine.holdsResources).toBe(false);
  });

  test('a missing file is MODEL_NOT_FOUND; generate before load is ENGINE_NOT_LOADED', async () => {
    const engine = new LlamaCppEngine();
    await expect(
      engine.load({ ...source, path: join(TEST_MODELS_DIR, 'absent.gguf') }),
    ).rejects.toMatchObject({
      code: 'MODEL_NOT_FOUND',
    });
    await expect(engine.generate(greedy)).rejects.toMatchObject({ code: 'ENGINE_NOT_LOADED' });
  });

  test('unload frees the model, context and binding; the engine can load again', async () => {
    const engine = new LlamaCppEngine();
    await engine.load(source);
    expect(engine.holdsResources).toBe(true);
    await engine.unload();
    expect(engine.holdsResources).toBe(false);
    expect(engine.model).toBeNull();
    await expect(engine.generate(greedy)).rejects.toMatchObject({ code: 'ENGINE_NOT_LOADED' });
    await engine.unload();
    await engine.load(source);
    const r = await engine.generate({ prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 3 } });
    expect(r.tokens).toBe(3);
    await engine.unload();
  });

  test('unload during a generation aborts it (INFERENCE_ABORTED) and waits for it before freeing', async () => {
    const engine = new LlamaCppEngine();
    await engine.load(source);
    const running = engine.generate({
      prompt: 'Once upon a time',
      params: { temperature: 0, maxTokens: 256 },
    });
    const settled = running.then(
      () => 'resolved',
      (e) => e,
    );
    // Unloaded while the generation is under way (started, not finished): no timing to win or lose.
    await engine.unload();
    // It stopped with a typed abort (never a crash, never a late result from a freed context).
    expect(isInferenceError(await settled, 'INFERENCE_ABORTED')).toBe(true);
    expect(engine.holdsResources).toBe(false);
    await engine.load(source);
    const r = await engine.generate({ prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 3 } });
    expect(r.tokens).toBe(3);
    await engine.unload();
  });
});
