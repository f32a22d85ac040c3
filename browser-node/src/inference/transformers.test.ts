import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hamming } from '@synod/shared';
import { DEFAULT_MODEL_MANIFEST } from './models-dir.ts';
import { TEST_MODELS_DIR } from './test-models.ts';
import { resolveDevice, TransformersEmbedder, TransformersEngine } from './transformers.ts';

const glovePath = join(TEST_MODELS_DIR, 'glove-static-100d');
const gloveHash = DEFAULT_MODEL_MANIFEST['glove-static-100d']?.sha256 as string;

describe('resolveDevice', () => {
  test('maps requested devices onto what each runtime has', () => {
    expect(resolveDevice('auto', { node: true, webgpu: false })).toBe('cpu');
    expect(resolveDevice('wasm', { node: true, webgpu: false })).toBe('cpu');
    expect(resolveDevice('auto', { node: false, webgpu: true })).toBe('webgpu');
    expect(resolveDevice('auto', { node: false, webgpu: false })).toBe('wasm');
    expect(resolveDevice('cpu', { node: false, webgpu: false })).toBe('wasm');
    expect(resolveDevice('webgpu', { node: true, webgpu: false })).toBe('webgpu');
  });
});

describe('TransformersEmbedder (glove-static-100d, onnxruntime-node CPU under Bun)', () => {
  const embedder = new TransformersEmbedder({
    model: { id: 'glove-static-100d', path: glovePath, fileHash: gloveHash },
    device: 'cpu',
  });

  beforeAll(async () => {
    await embedder.load();
  });
  afterAll(async () => {
    await embedder.unload();
  });

  test('ref carries the folder manifest hash and the default 96 bits of 100 dimensions', () => {
    expect(embedder.ref).toEqual({ id: 'glove-static-100d', fileHash: gloveHash, bits: 96 });
    expect(embedder.dims).toBe(100);
    expect(embedder.device).toBe('cpu');
  });

  test('vectors are mean-pooled and L2-normalized; embedding is repeatable', async () => {
    const [a, b] = await embedder.embed(['the cat sat on the mat', 'the cat sat on the mat']);
    expect(a?.length).toBe(100);
    const norm = Math.sqrt((a as Float32Array).reduce((s, x) => s + x * x, 0));
    expect(Math.abs(norm - 1)).toBeLessThan(1e-5);
    expect(Array.from(b as Float32Array)).toEqual(Array.from(a as Float32Array));
    const bits = await embedder.embedBits('the cat sat on the mat');
    expect(bits.length).toBe(12);
  });

  test('related word lists are closer in Hamming distance than unrelated ones', async () => {
    const cats = await embedder.embedBits('cat kitten dog puppy pet');
    const pets = await embedder.embedBits('dog puppy cat kitten animal');
    const money = await embedder.embedBits('stock market bank interest inflation');
    expect(hamming(cats, pets)).toBeLessThan(hamming(cats, money));
  });

  test('the quantized (uint8) weights load too and agree on most sign bits', async () => {
    const q = new TransformersEmbedder({
      model: { id: 'glove-static-100d', path: glovePath },
      device: 'cpu',
      dtype: 'q8',
      bits: 96,
    });
    await q.load();
    try {
      const text = 'a quiet evening by the river with friends';
      const d = hamming(await q.embedBits(text), await embedder.embedBits(text));
      expect(d).toBeLessThan(20);
    } finally {
      await q.unload();
    }
  });
});

describe('TransformersEmbedder errors', () => {
  test('a wrong expected hash is MODEL_HASH_MISMATCH', async () => {
    const e = new TransformersEmbedder({
      model: { id: 'glove-static-100d', path: glovePath, fileHash: '1'.repeat(64) },
      device: 'cpu',
    });
    await expect(e.load()).rejects.toMatchObject({ code: 'MODEL_HASH_MISMATCH' });
    expect(e.loaded).toBe(false);
  });

  test('a missing folder is MODEL_NOT_FOUND; bits beyond the dimensions are refused', async () => {
    const e = new TransformersEmbedder({ model: { id: 'absent', path: join(TEST_MODELS_DIR, 'absent') } });
    await expect(e.load()).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
    const wide = new TransformersEmbedder({ model: { id: 'glove-static-100d', path: glovePath }, bits: 128 });
    await expect(wide.load()).rejects.toMatchObject({ code: 'INFERENCE_INVALID_INPUT' });
    expect(wide.loaded).toBe(false);
  });
});

describe('TransformersEngine (text generation)', () => {
  test('the models directory has no text-generation model: loading one is MODEL_NOT_FOUND', async () => {
    const engine = new TransformersEngine({ device: 'cpu' });
    await expect(
      engine.load({ id: 'tiny-gpt', fileHash: '0'.repeat(64), path: join(TEST_MODELS_DIR, 'tiny-gpt') }),
    ).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
    expect(engine.model).toBeNull();
  });

  test('a folder without config, tokenizer and ONNX graph is MODEL_NOT_FOUND, listing what is missing', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'synod-tg-'));
    try {
      const engine = new TransformersEngine({ device: 'cpu' });
      // An empty folder: no config.json, no tokenizer, no ONNX graph.
      const { mkdir, writeFile } = await import('node:fs/promises');
      await mkdir(join(empty, 'tiny-gpt'));
      await writeFile(join(empty, 'tiny-gpt', 'README.md'), 'placeholder folder without model files\n');
      const { sha256Folder } = await import('./models-dir.ts');
      const { fileHash } = await sha256Folder(join(empty, 'tiny-gpt'));
      const err = await engine
        .load({ id: 'tiny-gpt', fileHash, path: join(empty, 'tiny-gpt') })
        .catch((e) => e);
      expect(err).toMatchObject({ code: 'MODEL_NOT_FOUND' });
      expect(err.details.missing).toEqual(['config.json', 'tokenizer.json', 'onnx/*.onnx']);
      expect(engine.model).toBeNull();
      await expect(
        engine.generate({ prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 4 } }),
      ).rejects.toMatchObject({ code: 'ENGINE_NOT_LOADED' });
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  test('a feature-extraction model is not a causal LM: ENGINE_UNAVAILABLE', async () => {
    const engine = new TransformersEngine({ device: 'cpu' });
    await expect(
      engine.load({ id: 'glove-static-100d', fileHash: gloveHash, path: glovePath }),
    ).rejects.toMatchObject({
      code: 'ENGINE_UNAVAILABLE',
      hint: expect.stringContaining('--engine llama-cpp'),
    });
    expect(engine.model).toBeNull();
  });
});
