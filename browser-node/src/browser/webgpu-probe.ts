/**
 * A page script that drives OUR web-llm adapter (../inference/web-llm.ts) against the browser's real
 * WebGPU, for tests/browser-webgpu.test.ts. It runs once on load and publishes its findings on
 * `window.synodWebGpuProbe` (`state` goes `running` → `done`, or `failed` with `error`).
 *
 *   adapter     what `navigator.gpu.requestAdapter()` returned: features, adapter info, shader-f16
 *   gpuCheck    `checkWebGpu(navigator.gpu, false)`: passes when an adapter exists
 *   f16         `WebLlmEngine.load` of a q4f16_1 record: SHADER_F16_UNSUPPORTED on an adapter without
 *               shader-f16, decided before anything is imported or fetched
 *   f32Missing  `WebLlmEngine.load` of a q4f32_1 record whose model folder and library 404 on the
 *               page's own origin: MODEL_FETCH_FAILED at web-llm's first fetch (mlc-chat-config.json)
 *   f32NoLib    the same with the config served (and pinned by sha256 from `?configSha=`) but the
 *               compiled library missing: MODEL_FETCH_FAILED at web-llm's second fetch
 *
 * Every URL it builds is on `location.origin`; it never names another host.
 */
import {
  checkWebGpu,
  type GpuLike,
  WebLlmEngine,
  type WebLlmModelSpec,
  webLlmFileHash,
} from '../inference/web-llm.ts';
import {
  describeProbeError,
  type GpuAdapterSummary,
  gpuAdapterSummary,
  type ProbeError,
  type ProbeState,
  publishProbe,
} from './probe.ts';

export interface ProbeOutcome {
  ok: boolean;
  ms: number;
  /** Set when the step threw an InferenceError (or anything with a `code`). */
  error?: ProbeError;
}

export interface WebGpuProbeResults {
  adapter: GpuAdapterSummary;
  gpuCheck: ProbeOutcome & { adapterHasShaderF16?: boolean };
  f16: ProbeOutcome & { modelId: string; modelUrl: string; modelLibUrl: string };
  f32Missing: ProbeOutcome & { modelId: string; modelUrl: string; modelLibUrl: string };
  f32NoLib: ProbeOutcome & { modelId: string; modelUrl: string; modelLibUrl: string };
}

export type WebGpuProbeState = ProbeState<WebGpuProbeResults>;

declare global {
  interface Window {
    synodWebGpuProbe?: WebGpuProbeState;
  }
}

const HEX64 = (c: string) => c.repeat(64);

async function step<T extends object, R extends object = object>(
  extra: T,
  run: () => Promise<R | undefined>,
): Promise<ProbeOutcome & T & Partial<R>> {
  const t = performance.now();
  try {
    const more = await run();
    return { ...extra, ...more, ok: true, ms: performance.now() - t };
  } catch (e) {
    return { ...extra, ok: false, ms: performance.now() - t, error: describeProbeError(e) };
  }
}

/** A web-llm model record on this page's origin: `/models/<id>/` and `/libs/<id>-webgpu.wasm`. */
function localSpec(modelId: string, configSha?: string): { spec: WebLlmModelSpec; modelUrl: string } {
  const origin = location.origin;
  const lib = `${modelId}-ctx4k_cs1k-webgpu.wasm`;
  return {
    modelUrl: `${origin}/models/${modelId}/`,
    spec: {
      mlcModelId: modelId,
      modelLibUrl: `${origin}/libs/${lib}`,
      artifacts: [
        { path: 'mlc-chat-config.json', sha256: configSha ?? HEX64('a') },
        { path: 'tokenizer.json', sha256: HEX64('b') },
        { path: 'ndarray-cache.json', sha256: HEX64('c') },
        { path: lib, sha256: HEX64('d') },
      ],
      contextWindowSize: 4096,
    },
  };
}

async function loadCase(modelId: string, configSha?: string) {
  const { spec, modelUrl } = localSpec(modelId, configSha);
  return step({ modelId, modelUrl, modelLibUrl: spec.modelLibUrl }, async () => {
    // No `gpu` option: the adapter reads the real navigator.gpu.
    const engine = new WebLlmEngine({ spec });
    try {
      await engine.load({ id: modelId, fileHash: await webLlmFileHash(spec), url: modelUrl });
    } finally {
      await engine.unload().catch(() => {});
    }
    return undefined;
  });
}

export async function runWebGpuProbe(configSha?: string): Promise<WebGpuProbeResults> {
  const gpu = (navigator as unknown as { gpu?: GpuLike }).gpu;
  const adapter = await gpuAdapterSummary();
  const gpuCheck = await step({}, async () => {
    const checked = await checkWebGpu(gpu, false);
    return { adapterHasShaderF16: checked.features.has('shader-f16') };
  });
  const f16 = await loadCase('Llama-3.2-1B-Instruct-q4f16_1-MLC');
  const f32Missing = await loadCase('Llama-3.2-1B-Instruct-q4f32_1-MLC');
  const f32NoLib = await loadCase('SmolLM2-135M-Instruct-q4f32_1-MLC', configSha);
  return { adapter, gpuCheck, f16, f32Missing, f32NoLib };
}

publishProbe<WebGpuProbeResults>(
  (state) => {
    window.synodWebGpuProbe = state;
  },
  () => runWebGpuProbe(new URLSearchParams(location.search).get('configSha') ?? undefined),
);
