import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { HeartbeatBodySchema } from '@synod/shared';
import { assessCapabilities, measureEngine } from './capability.ts';
import { LlamaCppEngine } from './llama-cpp.ts';
import { STORIES_260K_SHA256, TEST_MODELS_DIR } from './test-models.ts';
import { USE_LITE_FILE_HASH, UseLiteEmbedder } from './use-lite.ts';

describe('capability self-assessment', () => {
  const engine = new LlamaCppEngine();
  const embedder = new UseLiteEmbedder({ bits: 256 });

  beforeAll(async () => {
    await engine.load({
      id: 'stories260K',
      fileHash: STORIES_260K_SHA256,
      path: join(TEST_MODELS_DIR, 'stories260K.gguf'),
    });
    await embedder.load();
  });
  afterAll(async () => {
    await engine.unload();
    await embedder.unload();
  });

  test('returns positive finite rates in the heartbeat shape', async () => {
    const caps = await assessCapabilities([engine], [embedder], { maxTokens: 32 });
    expect(caps.models).toHaveLength(1);
    expect(caps.embedders).toHaveLength(1);
    const [m] = caps.models;
    const [e] = caps.embedders;
    expect(m).toMatchObject({
      id: 'stories260K',
      fileHash: STORIES_260K_SHA256,
      engine: 'node-llama-cpp@3.22.1',
    });
    expect(e).toMatchObject({ id: 'use-lite-512', fileHash: USE_LITE_FILE_HASH, bits: 256 });
    for (const rate of [m?.tokensPerSecond, e?.embeddingsPerSecond]) {
      expect(typeof rate).toBe('number');
      expect(Number.isFinite(rate)).toBe(true);
      expect(rate as number).toBeGreaterThan(0);
    }
    const body = {
      role: 'node',
      software: 'synod-browser-node/0.1.0',
      ...caps,
      capacity: { queued: 0, maxQueue: 8 },
      addresses: [],
      createdAt: 1_700_000_000_000,
    };
    expect(HeartbeatBodySchema.safeParse(body).success).toBe(true);
    console.log(
      `measured: ${m?.tokensPerSecond.toFixed(0)} tokens/s, ${e?.embeddingsPerSecond.toFixed(1)} embeddings/s`,
    );
  });

  test('an engine without a model cannot be measured', async () => {
    await expect(measureEngine(new LlamaCppEngine())).rejects.toMatchObject({ code: 'ENGINE_NOT_LOADED' });
  });
});
