/**
 * A page script that asks whether wllama (llama.cpp in WASM) offloads layers to this browser's WebGPU,
 * for tests/browser-wllama-gpu.test.ts. It runs once on load and publishes its findings on
 * `window.synodWllamaGpuProbe` (`state` goes `running` → `done`, or `failed` with `error`).
 *
 * Query parameters (all on the page's own origin: `/wllama.wasm`, `/model.gguf`):
 *   hash      the GGUF's sha256 (WllamaEngine checks it)
 *   requests  JSON array of greedy GenerateRequests
 *
 *   adapter    what `navigator.gpu.requestAdapter()` gives the page (features, shader-f16)
 *   backends   llama.cpp's own report, from its native log, of a raw wllama load with 99 GPU layers
 *              and with 0: the backends the context enumerated and the device each layer went to
 *   f16Spoofed the same 99-layer load with the worker's adapter claiming `shader-f16` (a wrapped
 *              `Worker` whose module first patches `GPU.prototype.requestAdapter`): shows what
 *              llama.cpp's WebGPU backend does once past its shader-f16 check, on this adapter
 *   runs       every request through OUR WllamaEngine with `gpuLayers: 0` and `gpuLayers: 99`: text,
 *              token count, finish reason and time, after one warm-up request each
 */
import type { Wllama } from '@wllama/wllama/esm/index.js';
import type { GenerateRequest, GenerateResult } from '../inference/engine.ts';
import { WllamaEngine, wllamaAssetPaths } from '../inference/wllama.ts';
import {
  describeProbeError,
  type GpuAdapterSummary,
  gpuAdapterSummary,
  type ProbeError,
  type ProbeState,
  publishProbe,
} from './probe.ts';

/** What llama.cpp logged about devices during one raw wllama load. */
export interface BackendReport {
  gpuLayers: number;
  ok: boolean;
  error?: string;
  /** `llama_context: backend_ptrs.size() = N` (the CPU backend counts as one). */
  backendCount: number | null;
  /** `load_tensors: layer N assigned to device X`, in layer order. */
  layerDevices: string[];
  /** Native log lines that mention WebGPU (`ggml_webgpu: …`, devices named WebGPU). */
  webgpuLines: string[];
}

export interface EngineRun {
  gpuLayers: number;
  loadMs: number;
  results: (Pick<GenerateResult, 'text' | 'tokens' | 'finishReason'> & { ms: number })[];
  error?: ProbeError;
}

export interface WllamaGpuProbeResults {
  adapter: GpuAdapterSummary;
  jspi: boolean;
  backends: { gpu99: BackendReport; gpu0: BackendReport };
  f16Spoofed: BackendReport;
  runs: { cpu: EngineRun; gpu: EngineRun };
}

export type WllamaGpuProbeState = ProbeState<WllamaGpuProbeResults>;

declare global {
  interface Window {
    synodWllamaGpuProbe?: WllamaGpuProbeState;
  }
}

const WASM_URL = '/wllama.wasm';
const MODEL_URL = '/model.gguf';

/**
 * Run `during` with every module Worker created through a wrapper module that first makes the
 * worker's WebGPU adapters report `shader-f16` (the real adapter is returned; only `features.has`
 * lies). wllama builds its worker from a blob as a module Worker, so a static import of this patch
 * runs before its code.
 */
async function withSpoofedShaderF16<T>(during: () => Promise<T>): Promise<T> {
  const patch = `
    const request = GPU.prototype.requestAdapter;
    GPU.prototype.requestAdapter = async function (options) {
      const adapter = await request.call(this, options);
      if (adapter === null) return adapter;
      const real = adapter.features;
      Object.defineProperty(adapter, 'features', {
        get: () => ({
          has: (f) => f === 'shader-f16' || real.has(f),
          forEach: (...a) => real.forEach(...a),
          size: real.size,
          [Symbol.iterator]: () => real[Symbol.iterator](),
        }),
      });
      return adapter;
    };`;
  const patchUrl = URL.createObjectURL(new Blob([patch], { type: 'text/javascript' }));
  const RealWorker = window.Worker;
  const Wrapped = function (this: unknown, url: string | URL, options?: WorkerOptions) {
    if (options?.type !== 'module') return new RealWorker(url, options);
    const entry = `import ${JSON.stringify(patchUrl)}; import ${JSON.stringify(String(url))};`;
    return new RealWorker(URL.createObjectURL(new Blob([entry], { type: 'text/javascript' })), options);
  } as unknown as typeof Worker;
  window.Worker = Wrapped;
  try {
    return await during();
  } finally {
    window.Worker = RealWorker;
  }
}

/** Load the GGUF in a raw wllama with its native log on, and read llama.cpp's device report. */
async function backendReport(blob: Blob, gpuLayers: number, keepAlive = false): Promise<BackendReport> {
  const { Wllama: WllamaClass, LogLevel } = await import('@wllama/wllama/esm/index.js');
  const lines: string[] = [];
  const collect = (...args: unknown[]) => {
    lines.push(args.map(String).join(' '));
  };
  const wllama: Wllama = new WllamaClass(wllamaAssetPaths({ wasmUrl: WASM_URL }), {
    logger: { debug: collect, log: collect, warn: collect, error: collect },
  });
  wllama.setCompat(null);
  const report: BackendReport = {
    gpuLayers,
    ok: false,
    backendCount: null,
    layerDevices: [],
    webgpuLines: [],
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    // llama.cpp aborts on a failed device request; bound the wait in case the worker goes silent.
    await Promise.race([
      wllama.loadModel([blob], {
        n_ctx: 512,
        n_threads: 1,
        n_gpu_layers: gpuLayers,
        log_level: LogLevel.DEBUG,
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('load timed out after 30 s')), 30_000);
      }),
    ]);
    report.ok = true;
  } catch (e) {
    report.error = String(e);
  } finally {
    clearTimeout(timer);
  }
  for (const line of lines) {
    const backends = /backend_ptrs\.size\(\) = (\d+)/.exec(line);
    if (backends) report.backendCount = Number(backends[1]);
    const layer = /layer +(\d+) assigned to device ([^,]+),/.exec(line);
    if (layer) report.layerDevices[Number(layer[1])] = (layer[2] as string).trim();
    if (/webgpu/i.test(line)) report.webgpuLines.push(line.slice(0, 400));
  }
  // After an abort the worker may never answer exit(): only a healthy load is exited.
  if (report.ok && !keepAlive) await wllama.exit();
  return report;
}

async function engineRun(
  gpuLayers: number,
  hash: string,
  requests: GenerateRequest[],
  setPhase: (p: string) => void,
): Promise<EngineRun> {
  const run: EngineRun = { gpuLayers, loadMs: 0, results: [] };
  const engine = new WllamaEngine({ wasmUrl: WASM_URL, gpuLayers });
  try {
    setPhase(`load gpuLayers=${gpuLayers}`);
    let t = performance.now();
    await engine.load({ id: 'stories260K', fileHash: hash, url: MODEL_URL });
    run.loadMs = performance.now() - t;
    await engine.generate({ prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 32 } });
    for (const [i, request] of requests.entries()) {
      setPhase(`generate gpuLayers=${gpuLayers} #${i}`);
      t = performance.now();
      const r = await engine.generate(request);
      run.results.push({
        text: r.text,
        tokens: r.tokens,
        finishReason: r.finishReason,
        ms: performance.now() - t,
      });
    }
  } catch (e) {
    run.error = describeProbeError(e);
  } finally {
    await engine.unload().catch(() => {});
  }
  return run;
}

export async function runWllamaGpuProbe(
  hash: string,
  requests: GenerateRequest[],
  setPhase: (p: string) => void,
): Promise<WllamaGpuProbeResults> {
  setPhase('adapter');
  const adapter = await gpuAdapterSummary();
  const jspi = typeof (WebAssembly as { Suspending?: unknown }).Suspending === 'function';
  setPhase('model');
  const res = await fetch(MODEL_URL);
  if (!res.ok) throw new Error(`${MODEL_URL}: HTTP ${res.status}`);
  const blob = await res.blob();
  setPhase('backends gpu99');
  const gpu99 = await backendReport(blob, 99);
  setPhase('backends gpu0');
  const gpu0 = await backendReport(blob, 0);
  setPhase('f16 spoofed');
  const f16Spoofed = await withSpoofedShaderF16(() => backendReport(blob, 99));
  const cpu = await engineRun(0, hash, requests, setPhase);
  const gpu = await engineRun(99, hash, requests, setPhase);
  return { adapter, jspi, backends: { gpu99, gpu0 }, f16Spoofed, runs: { cpu, gpu } };
}

publishProbe<WllamaGpuProbeResults>(
  (state) => {
    window.synodWllamaGpuProbe = state;
  },
  (setPhase) => {
    const q = new URLSearchParams(location.search);
    const hash = q.get('hash');
    if (hash === null) throw new Error('the page needs ?hash=');
    const requests = JSON.parse(q.get('requests') ?? '[]') as GenerateRequest[];
    return runWllamaGpuProbe(hash, requests, setPhase);
  },
);
