/**
 * A page script that drives OUR transformers.js embedder (../inference/transformers.ts) in a real
 * browser, for tests/browser-transformers.test.ts. It runs once on load and publishes its findings on
 * `window.synodTransformersProbe` (`state` goes `running` → `done`, or `failed` with `error`).
 *
 * Query parameters (all on the page's own origin):
 *   model     model id, also the folder name under `/models/`
 *   files     the folder's file listing, comma-separated (hashed by the embedder before loading)
 *   hash      the folder's expected manifest hash (MODEL_HASH_MISMATCH otherwise)
 *   sentences JSON array of the texts to embed
 *
 * For each device, `webgpu` then `wasm`, it loads a fresh TransformersEmbedder from
 * `${origin}/models/<model>` with onnxruntime-web's files from `${origin}/ort/`, embeds every sentence
 * (floats and packed sign bits), and unloads. Every URL it builds is on `location.origin`.
 */
import { TransformersEmbedder } from '../inference/transformers.ts';
import {
  describeProbeError,
  type GpuAdapterSummary,
  gpuAdapterSummary,
  type ProbeError,
  type ProbeState,
  publishProbe,
} from './probe.ts';

export type TransformersProbeDevice = 'webgpu' | 'wasm';

export interface TransformersProbeRun {
  requested: TransformersProbeDevice;
  ok: boolean;
  /** The device the embedder reports after load (null when the load failed). */
  device: string | null;
  loadMs: number;
  embedMs: number;
  dims: number;
  ref: { id: string; fileHash: string; bits: number } | null;
  /** One vector per sentence, as plain numbers. */
  vectors: number[][];
  /** One packed sign-bit string per sentence (embedBits), as byte arrays. */
  bits: number[][];
  error?: ProbeError;
}

export interface TransformersProbeResults {
  adapter: GpuAdapterSummary;
  crossOriginIsolated: boolean;
  /** `GPUAdapter.requestDevice` calls seen during each run (onnxruntime-web's WebGPU EP makes one). */
  gpuDeviceRequests: Record<TransformersProbeDevice, number>;
  runs: Record<TransformersProbeDevice, TransformersProbeRun>;
}

export type TransformersProbeState = ProbeState<TransformersProbeResults>;

declare global {
  interface Window {
    synodTransformersProbe?: TransformersProbeState;
  }
}

async function runDevice(
  requested: TransformersProbeDevice,
  model: { id: string; files: string[]; fileHash: string },
  sentences: string[],
  setPhase: (p: string) => void,
): Promise<TransformersProbeRun> {
  const origin = location.origin;
  const run: TransformersProbeRun = {
    requested,
    ok: false,
    device: null,
    loadMs: 0,
    embedMs: 0,
    dims: 0,
    ref: null,
    vectors: [],
    bits: [],
  };
  const embedder = new TransformersEmbedder({
    model: {
      id: model.id,
      url: `${origin}/models/${model.id}`,
      files: model.files,
      fileHash: model.fileHash,
    },
    device: requested,
    dtype: 'fp32',
    wasmPaths: `${origin}/ort/`,
  });
  try {
    setPhase(`${requested}: load`);
    let t = performance.now();
    await embedder.load();
    run.loadMs = performance.now() - t;
    run.device = embedder.device;
    run.dims = embedder.dims;
    run.ref = { ...embedder.ref };
    setPhase(`${requested}: embed`);
    t = performance.now();
    const vectors = await embedder.embed(sentences);
    for (const s of sentences) run.bits.push([...(await embedder.embedBits(s))]);
    run.embedMs = performance.now() - t;
    run.vectors = vectors.map((v) => [...v]);
    run.ok = true;
  } catch (e) {
    run.error = describeProbeError(e);
  } finally {
    await embedder.unload().catch(() => {});
  }
  return run;
}

export async function runTransformersProbe(
  model: { id: string; files: string[]; fileHash: string },
  sentences: string[],
  setPhase: (p: string) => void = () => {},
): Promise<TransformersProbeResults> {
  setPhase('adapter');
  const adapter = await gpuAdapterSummary();
  // Count GPU device requests, as evidence of which run actually opened the GPU.
  let deviceRequests = 0;
  const proto = (globalThis as { GPUAdapter?: { prototype: { requestDevice(...a: unknown[]): unknown } } })
    .GPUAdapter?.prototype;
  if (proto !== undefined) {
    const original = proto.requestDevice;
    proto.requestDevice = function (this: unknown, ...args: unknown[]) {
      deviceRequests++;
      return original.apply(this, args);
    };
  }
  const webgpu = await runDevice('webgpu', model, sentences, setPhase);
  const afterWebGpu = deviceRequests;
  const wasm = await runDevice('wasm', model, sentences, setPhase);
  return {
    adapter,
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    gpuDeviceRequests: { webgpu: afterWebGpu, wasm: deviceRequests - afterWebGpu },
    runs: { webgpu, wasm },
  };
}

/** The page's query, read inside the probe: a malformed parameter fails it rather than hanging it. */
function sentencesParam(raw: string | null): string[] {
  const parsed: unknown = JSON.parse(raw ?? '[]');
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) {
    throw new TypeError('?sentences= must be a JSON array of strings');
  }
  return parsed;
}

publishProbe<TransformersProbeResults>(
  (state) => {
    window.synodTransformersProbe = state;
  },
  (setPhase) => {
    const params = new URLSearchParams(location.search);
    return runTransformersProbe(
      {
        id: params.get('model') ?? '',
        files: (params.get('files') ?? '').split(',').filter(Boolean),
        fileHash: params.get('hash') ?? '',
      },
      sentencesParam(params.get('sentences')),
      setPhase,
    );
  },
);
