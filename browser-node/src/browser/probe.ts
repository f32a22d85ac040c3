/**
 * What the in-browser probe pages (webgpu-probe.ts, transformers-probe.ts) share: the state they
 * publish on `window`, how a thrown error is reported, and what the page's WebGPU adapter is.
 * tests/support/probe-page.ts serves and reads them.
 */
import { asInferenceError, type InferenceErrorJSON } from '../inference/errors.ts';

/** A thrown error as a probe reports it: typed errors keep their code; anything else is marked. */
export type ProbeError = InferenceErrorJSON & { name: string; cause?: string };

export interface ProbeState<R> {
  state: 'running' | 'done' | 'failed';
  /** What the probe is doing now (for timeouts that need explaining). */
  phase?: string;
  results?: R;
  error?: string;
}

export function describeProbeError(e: unknown): ProbeError {
  const name = e instanceof Error ? e.name : typeof e;
  if (e !== null && typeof e === 'object' && 'code' in e) {
    const err = e as Error & {
      code: InferenceErrorJSON['code'];
      details?: Record<string, unknown>;
      hint?: string;
      cause?: unknown;
    };
    return {
      name,
      code: err.code,
      message: err.message,
      details: err.details ?? {},
      ...(err.hint === undefined ? {} : { hint: err.hint }),
      ...(err.cause === undefined ? {} : { cause: String(err.cause) }),
    };
  }
  return { name, ...asInferenceError(e, 'INFERENCE_FAILED', 'not a typed error').toJSON(), cause: String(e) };
}

/**
 * Publish `state` (via `publish`, e.g. on a `window` property) and run the probe: `running` with its
 * phase, then `done` with the results, or `failed` with the error. Whatever `run` throws, including
 * while reading its inputs, ends as `failed`: the page never stays `running` forever.
 */
export function publishProbe<R>(
  publish: (state: ProbeState<R>) => void,
  run: (setPhase: (phase: string) => void) => Promise<R>,
): void {
  const state: ProbeState<R> = { state: 'running', phase: 'start' };
  publish(state);
  Promise.resolve()
    .then(() =>
      run((phase) => {
        state.phase = phase;
      }),
    )
    .then(
      (results) => {
        state.results = results;
        state.state = 'done';
      },
      (e: unknown) => {
        state.error = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
        state.state = 'failed';
      },
    );
}

export interface GpuAdapterSummary {
  hasNavigatorGpu: boolean;
  found: boolean;
  features: string[];
  hasShaderF16: boolean;
  info: { vendor: string; architecture: string; device: string; description: string } | null;
  isFallbackAdapter: boolean | null;
}

interface GpuAdapterView {
  features: Iterable<string> & { has(f: string): boolean };
  info?: {
    vendor?: string;
    architecture?: string;
    device?: string;
    description?: string;
    isFallbackAdapter?: boolean;
  };
}

/** What `navigator.gpu.requestAdapter({ powerPreference: 'high-performance' })` gives on this page. */
export async function gpuAdapterSummary(): Promise<GpuAdapterSummary> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(o?: object): Promise<unknown> } }).gpu;
  const out: GpuAdapterSummary = {
    hasNavigatorGpu: gpu !== undefined,
    found: false,
    features: [],
    hasShaderF16: false,
    info: null,
    isFallbackAdapter: null,
  };
  if (gpu === undefined) return out;
  const a = (await gpu.requestAdapter({ powerPreference: 'high-performance' })) as GpuAdapterView | null;
  if (a === null) return out;
  const info = a.info ?? {};
  out.found = true;
  out.features = [...a.features].sort();
  out.hasShaderF16 = a.features.has('shader-f16');
  out.info = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
  };
  out.isFallbackAdapter = info.isFallbackAdapter ?? null;
  return out;
}
