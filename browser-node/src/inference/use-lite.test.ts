import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { hamming, truncateBits } from '@synod/shared';
import { sha256Folder } from './models-dir.ts';
import { defaultUseLiteDir, USE_LITE_FILE_HASH, USE_LITE_ID, UseLiteEmbedder } from './use-lite.ts';

const catA = 'The cat sat on the mat and purred quietly.';
const catB = 'A cat was sitting on the rug, purring softly.';
const stocks = 'Interest rates rose sharply, and the stock market fell by three percent.';

async function tensorCount(): Promise<number> {
  const core = (await import('@energetic-ai/core')) as unknown as { memory(): { numTensors: number } };
  return core.memory().numTensors;
}

describe('UseLiteEmbedder (USE Lite, tfjs WASM)', () => {
  const embedder = new UseLiteEmbedder();

  beforeAll(async () => {
    await embedder.load();
  });

  afterAll(async () => {
    await embedder.unload();
  });

  test('ref names the model, its manifest hash and 512 bits; the hash is recomputable from disk', async () => {
    expect(embedder.ref).toEqual({ id: USE_LITE_ID, fileHash: USE_LITE_FILE_HASH, bits: 512 });
    expect(embedder.dims).toBe(512);
    const dir = await defaultUseLiteDir();
    const files = [
      'model.json',
      ...Array.from({ length: 7 }, (_, i) => `group1-shard${i + 1}of7`),
      'vocab.json',
    ];
    expect((await sha256Folder(dir, files)).fileHash).toBe(USE_LITE_FILE_HASH);
  });

  test('vectors have 512 finite dimensions; packed bits are bits/8 bytes', async () => {
    const [v] = await embedder.embed([catA]);
    expect(v?.length).toBe(512);
    expect(v?.every(Number.isFinite)).toBe(true);
    const bits = await embedder.embedBits(catA);
    expect(bits.length).toBe(512 / 8);
  });

  test('similar sentences are closer in Hamming distance than unrelated ones', async () => {
    const [a, b, c] = await Promise.all([
      embedder.embedBits(catA),
      embedder.embedBits(catB),
      embedder.embedBits(stocks),
    ]);
    const near = hamming(a as Uint8Array, b as Uint8Array);
    const farA = hamming(a as Uint8Array, c as Uint8Array);
    const farB = hamming(b as Uint8Array, c as Uint8Array);
    expect(near).toBeLessThan(farA);
    expect(near).toBeLessThan(farB);
  });

  test('embedding the same text twice gives the same floats', async () => {
    const [x, y] = await embedder.embed([catA, catA]);
    expect(Array.from(y as Float32Array)).toEqual(Array.from(x as Float32Array));
  });

  test('an empty text (no token) embeds to the zero vector, all bits 0; a lone space is a text like any other', async () => {
    const [empty, space] = await embedder.embed(['', ' ']);
    expect(Array.from(empty as Float32Array)).toEqual(Array.from({ length: 512 }, () => 0));
    expect((space as Float32Array).some((x) => x !== 0)).toBe(true);
    expect(Array.from(await embedder.embedBits(''))).toEqual(Array.from({ length: 64 }, () => 0));
    // Far from any story's bits: an empty answer cannot pass for one.
    expect(hamming(await embedder.embedBits(''), await embedder.embedBits(catA))).toBeGreaterThan(100);
  });

  test('bits are identical across two loads, and a 256-bit frame is the 32-byte prefix', async () => {
    const first = await embedder.embedBits(stocks);
    const other = new UseLiteEmbedder({ bits: 256 });
    await other.load();
    try {
      const second = await other.embedBits(stocks);
      expect(other.ref.bits).toBe(256);
      expect(second.length).toBe(32);
      expect(second).toEqual(truncateBits(first, 256));
      const reloaded = new UseLiteEmbedder();
      await reloaded.load();
      expect(await reloaded.embedBits(stocks)).toEqual(first);
      await reloaded.unload();
    } finally {
      await other.unload();
    }
  });
});

describe('UseLiteEmbedder load and unload', () => {
  test('a wrong expected hash is MODEL_HASH_MISMATCH and nothing is loaded', async () => {
    const e = new UseLiteEmbedder({ expectedFileHash: '0'.repeat(64) });
    await expect(e.load()).rejects.toMatchObject({ code: 'MODEL_HASH_MISMATCH' });
    expect(e.loaded).toBe(false);
  });

  test('a folder without the model is MODEL_NOT_FOUND; embed before load is ENGINE_NOT_LOADED', async () => {
    const e = new UseLiteEmbedder({ dir: '/nonexistent/use-lite' });
    await expect(e.load()).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
    await expect(e.embed(['x'])).rejects.toMatchObject({ code: 'ENGINE_NOT_LOADED' });
    expect(() => e.ref).toThrow();
  });

  test('bits must be a multiple of 8 within 512', () => {
    expect(() => new UseLiteEmbedder({ bits: 100 })).toThrow();
    expect(() => new UseLiteEmbedder({ bits: 520 })).toThrow();
  });

  test('unload releases every tensor it loaded', async () => {
    const before = await tensorCount();
    const e = new UseLiteEmbedder();
    await e.load();
    await e.embed(['hello world']);
    expect(await tensorCount()).toBeGreaterThan(before);
    await e.unload();
    expect(await tensorCount()).toBe(before);
    expect(e.loaded).toBe(false);
  });

  test('loads from a base URL (the browser path) served on 127.0.0.1, with the same bits', async () => {
    const dir = await defaultUseLiteDir();
    const server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: async (req) => {
        const name = new URL(req.url).pathname.slice('/use/'.length);
        const f = Bun.file(`${dir}/${name}`);
        return (await f.exists()) ? new Response(f) : new Response('no', { status: 404 });
      },
    });
    const e = new UseLiteEmbedder({ baseUrl: `http://127.0.0.1:${server.port}/use/` });
    const local = new UseLiteEmbedder();
    try {
      await e.load();
      await local.load();
      expect(e.ref.fileHash).toBe(USE_LITE_FILE_HASH);
      expect(await e.embedBits(catB)).toEqual(await local.embedBits(catB));
      const missing = new UseLiteEmbedder({ baseUrl: `http://127.0.0.1:${server.port}/nothing-here/` });
      await expect(missing.load()).rejects.toMatchObject({ code: 'MODEL_FETCH_FAILED' });
    } finally {
      await e.unload();
      await local.unload();
      server.stop(true);
    }
  });
});
