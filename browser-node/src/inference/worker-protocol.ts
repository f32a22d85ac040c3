import type { EmbeddingModelRef, ModelRef } from '@synod/shared';
import type { GenerateRequest, GenerateResult, LoadProgress, ModelSource, PromptMeasure } from './engine.ts';
import type { InferenceErrorJSON } from './errors.ts';
import type { EmbedderSpec, EngineSpec } from './factory.ts';

/**
 * Messages between the node's main thread and an inference worker. Every request carries a numeric
 * `id`; the worker answers each with exactly one `result` or `error` of that id, after any number of
 * `progress` messages. `abort` names the id of a running `generate`. Everything is structured-clonable:
 * errors cross as InferenceError JSON, AbortSignals as `abort` messages.
 */
export type WorkerRequest =
  | { type: 'load-engine'; id: number; spec: EngineSpec; model: ModelSource }
  | { type: 'generate'; id: number; request: Omit<GenerateRequest, 'signal'> }
  | { type: 'measure-prompt'; id: number; request: Pick<GenerateRequest, 'prompt' | 'messages'> }
  | { type: 'abort'; id: number; target: number }
  | { type: 'unload-engine'; id: number }
  | { type: 'load-embedder'; id: number; spec: EmbedderSpec }
  | { type: 'embed'; id: number; texts: string[] }
  | { type: 'embed-bits'; id: number; text: string }
  | { type: 'unload-embedder'; id: number };

export interface WorkerResults {
  'load-engine': { engineId: string; model: ModelRef };
  generate: GenerateResult;
  /** Null when the worker's engine does not measure prompts. */
  'measure-prompt': PromptMeasure | null;
  abort: null;
  'unload-engine': null;
  'load-embedder': { ref: EmbeddingModelRef; dims: number };
  embed: Float32Array[];
  'embed-bits': Uint8Array;
  'unload-embedder': null;
}

export type WorkerResponse =
  | { type: 'progress'; id: number; progress: LoadProgress }
  | { type: 'result'; id: number; value: WorkerResults[keyof WorkerResults] }
  | { type: 'error'; id: number; error: InferenceErrorJSON };
