import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isInferenceError } from './errors.ts';
import { EMPTY_SHA256 } from './hashing.ts';
import {
  canonicalManifest,
  clearHashCache,
  DEFAULT_MODEL_MANIFEST,
  downloadFile,
  hubFileUrl,
  ModelsDir,
  sha256File,
  sha256Folder,
  sha256Text,
} from './models-dir.ts';
import { STORIES_260K_SHA256, TEST_MODELS_DIR } from './test-models.ts';

const storiesPath = join(TEST_MODELS_DIR, 'stories260K.gguf');

async function expectCode(promise: Promise<unknown>, code: string) {
  try {
    await promise;
  } catch (error) {
    expect(isInferenceError(error)).toBe(true);
    expect((error as { code: string }).code).toBe(code);
    return error;
  }
  throw new Error(`expected ${code}, but the promise resolved`);
}

describe('hashing', () => {
  test('sha256File of the mirror GGUF matches its published hash, and is cached by path+size+mtime', async () => {
    clearHashCache();
    const progress: number[] = [];
    expect(await sha256File(storiesPath, (p) => progress.push(p.loaded))).toBe(STORIES_260K_SHA256);
    expect(progress.at(-1)).toBe(1_185_376);
    expect(await sha256File(storiesPath)).toBe(STORIES_260K_SHA256);
  });

  test('a model path that cannot be read is MODEL_UNREADABLE naming it, with the system reason', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'synod-unreadable-'));
    try {
      const error = (await expectCode(sha256File(dir), 'MODEL_UNREADABLE')) as {
        message: string;
        details: Record<string, unknown>;
        hint?: string;
      };
      expect(error.message).toContain(dir);
      expect(error.details['errno']).toBe('EISDIR');
      expect(error.hint).toContain('read');
      await expectCode(sha256File(join(dir, 'absent.gguf')), 'MODEL_NOT_FOUND');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a file changed in place (new mtime) is hashed again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'synod-hash-'));
    try {
      const f = join(dir, 'a.bin');
      await writeFile(f, 'one');
      expect(await sha256File(f)).toBe(sha256Text('one'));
      await writeFile(f, 'two');
      const later = new Date(Date.now() + 5_000);
      await utimes(f, later, later);
      expect(await sha256File(f)).toBe(sha256Text('two'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('canonical manifest: sha256sum lines sorted by path; folder hash is its sha256', async () => {
    const m = canonicalManifest([
      { path: 'b.txt', sha256: 'bb' },
      { path: 'a/z.txt', sha256: 'aa' },
    ]);
    expect(m).toBe('aa  a/z.txt\nbb  b.txt\n');
    const { fileHash, manifest } = await sha256Folder(join(TEST_MODELS_DIR, 'glove-static-100d'));
    expect(
      manifest
        .split('\n')
        .filter(Boolean)
        .map((l) => l.slice(66)),
    ).toEqual([
      'config.json',
      'onnx/model.onnx',
      'onnx/model_quantized.onnx',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    expect(fileHash).toBe(sha256Text(manifest));
    expect(fileHash).toBe(DEFAULT_MODEL_MANIFEST['glove-static-100d']?.sha256 as string);
  });

  test('a duplicate path in a manifest is refused', () => {
    expect(() =>
      canonicalManifest([
        { path: 'a', sha256: '1' },
        { path: 'a', sha256: '2' },
      ]),
    ).toThrow();
  });
});

describe('ModelsDir', () => {
  const dir = new ModelsDir({ root: TEST_MODELS_DIR });

  test('resolves a file model and a folder model with their hashes', async () => {
    const stories = await dir.resolve('stories260K');
    expect(stories).toEqual({
      id: 'stories260K',
      kind: 'file',
      format: 'gguf',
      path: storiesPath,
      fileHash: STORIES_260K_SHA256,
    });
    const glove = await dir.resolve('glove-static-100d');
    expect(glove.kind).toBe('folder');
    expect(glove.fileHash).toMatch(/^[0-9a-f]{64}$/);
  });

  test('unknown id and absent files are MODEL_NOT_FOUND', async () => {
    expect(() => dir.entry('no-such-model')).toThrow();
    await expectCode(dir.resolve('no-such-model'), 'MODEL_NOT_FOUND');
    const empty = await mkdtemp(join(tmpdir(), 'synod-models-'));
    try {
      const other = new ModelsDir({ root: empty });
      expect(await other.has('stories260K')).toBe(false);
      await expectCode(other.resolve('stories260K'), 'MODEL_NOT_FOUND');
      await expectCode(other.ensure('glove-static-100d'), 'MODEL_NOT_FOUND');
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  test('a wrong expected hash is MODEL_HASH_MISMATCH with both hashes in the details', async () => {
    const err = await expectCode(
      dir.resolve('stories260K', { expectedHash: '0'.repeat(64) }),
      'MODEL_HASH_MISMATCH',
    );
    expect((err as { details: Record<string, unknown> }).details['actual']).toBe(STORIES_260K_SHA256);
  });

  test('a missing or wrong model says where to download it: its hub URL, its path and its sha256', async () => {
    const root = await mkdtemp(join(tmpdir(), 'synod-models-'));
    const url = 'https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf';
    const path = join(root, 'stories260K.gguf');
    try {
      const models = new ModelsDir({ root });
      expect(models.sourceHint('stories260K')).toBe(
        `download ${url} to ${path} (sha256 ${STORIES_260K_SHA256}): curl -fL --create-dirs -o ${path} ${url} && sha256sum ${path}`,
      );
      const missing = await expectCode(models.resolve('stories260K'), 'MODEL_NOT_FOUND');
      expect((missing as { hint: string }).hint).toBe(models.sourceHint('stories260K'));
      await writeFile(path, 'not the model');
      const wrong = await expectCode(models.resolve('stories260K'), 'MODEL_HASH_MISMATCH');
      expect((wrong as { hint: string }).hint).toStartWith('the file is corrupt');
      expect((wrong as { hint: string }).hint).toContain(url);
      expect((wrong as { hint: string }).hint).toContain(STORIES_260K_SHA256);
      // A model with no hub source: what to copy where.
      expect(models.sourceHint('glove-static-100d')).toBe(
        `copy glove-static-100d (sha256 ${DEFAULT_MODEL_MANIFEST['glove-static-100d']?.sha256}) into ${root}`,
      );
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('an empty model file (a copy cut short) is said to be empty, with its path', async () => {
    const root = await mkdtemp(join(tmpdir(), 'synod-models-'));
    try {
      await writeFile(join(root, 'stories260K.gguf'), '');
      const err = await expectCode(new ModelsDir({ root }).resolve('stories260K'), 'MODEL_HASH_MISMATCH');
      expect(err).toMatchObject({
        message: `model stories260K is empty (0 bytes) at ${join(root, 'stories260K.gguf')}, expected sha256 ${STORIES_260K_SHA256}`,
        details: { empty: true, actual: EMPTY_SHA256 },
        hint: expect.stringContaining('cut short'),
      });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a manifest path that escapes the directory is refused', () => {
    const evil = new ModelsDir({
      root: TEST_MODELS_DIR,
      manifest: { evil: { kind: 'file', path: '../../etc/passwd', format: 'gguf' } },
    });
    expect(() => evil.pathOf('evil')).toThrow();
  });
});

describe('downloads (against a local server on 127.0.0.1, never the hub)', () => {
  let server: ReturnType<typeof Bun.serve>;
  let base: string;
  let work: string;
  const requested: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'synod-dl-'));
    server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch(req) {
        const url = new URL(req.url);
        requested.push(url.pathname);
        if (url.pathname === '/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf') {
          return new Response(Bun.file(storiesPath));
        }
        if (url.pathname === '/ggml-org/models/resolve/main/tinyllamas/corrupt.gguf') {
          return new Response(new Uint8Array(1000).fill(7));
        }
        return new Response('not found', { status: 404 });
      },
    });
    base = `http://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    server.stop(true);
    await rm(work, { recursive: true, force: true });
  });

  test('hub URL pattern', () => {
    expect(hubFileUrl({ repo: 'ggml-org/models' }, 'tinyllamas/stories260K.gguf')).toBe(
      'https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf',
    );
    expect(hubFileUrl({ repo: 'o/r', revision: 'abc' }, 'x y.bin', 'http://h/')).toBe(
      'http://h/o/r/resolve/abc/x%20y.bin',
    );
  });

  test('ensure() downloads a missing model, checks its sha256 while streaming, reports progress', async () => {
    const root = join(work, 'ok');
    const models = new ModelsDir({ root, hubBaseUrl: base });
    const progress: Array<{ loaded: number; total: number; phase: string }> = [];
    const resolved = await models.ensure('stories260K', { onProgress: (p) => progress.push(p) });
    expect(resolved.fileHash).toBe(STORIES_260K_SHA256);
    expect((await stat(resolved.path)).size).toBe(1_185_376);
    const fetches = progress.filter((p) => p.phase === 'fetch');
    expect(fetches.length).toBeGreaterThan(0);
    expect(fetches.at(-1)).toEqual({ loaded: 1_185_376, total: 1_185_376, phase: 'fetch' });
    expect(requested).toContain('/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf');
    // Present now: a second ensure() resolves from disk.
    const before = requested.length;
    await models.ensure('stories260K');
    expect(requested.length).toBe(before);
  });

  test('a download with the wrong hash is MODEL_HASH_MISMATCH and leaves nothing behind', async () => {
    const root = join(work, 'bad');
    const models = new ModelsDir({
      root,
      hubBaseUrl: base,
      manifest: {
        stories260K: {
          ...(DEFAULT_MODEL_MANIFEST['stories260K'] as NonNullable<
            (typeof DEFAULT_MODEL_MANIFEST)['stories260K']
          >),
          hub: { repo: 'ggml-org/models', files: ['tinyllamas/corrupt.gguf'] },
        },
      },
    });
    await expectCode(models.ensure('stories260K'), 'MODEL_HASH_MISMATCH');
    expect(await models.has('stories260K')).toBe(false);
    expect(await Bun.file(join(root, 'stories260K.gguf.part')).exists()).toBe(false);
  });

  test('a 404 is MODEL_FETCH_FAILED with the status in the details', async () => {
    const err = await expectCode(
      downloadFile({ url: `${base}/nope/resolve/main/missing.gguf`, dest: join(work, 'missing.gguf') }),
      'MODEL_FETCH_FAILED',
    );
    expect((err as { details: Record<string, unknown> }).details['status']).toBe(404);
  });

  test('a connection refused is MODEL_FETCH_FAILED', async () => {
    const closed = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
    const url = `http://127.0.0.1:${closed.port}/x.gguf`;
    closed.stop(true);
    await expectCode(downloadFile({ url, dest: join(work, 'x.gguf') }), 'MODEL_FETCH_FAILED');
  });
});
