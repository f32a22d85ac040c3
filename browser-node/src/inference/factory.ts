import type { Embedder } from './embedder.ts';
import type { Engine } from './engine.ts';
import { LlamaCppEngine, type LlamaCppOptions } from './llama-cpp.ts';
import {
  TransformersEmbedder,
  type TransformersEmbedderOptions,
  TransformersEngine,
  type TransformersEngineOptions,
} from './transformers.ts';
import { UseLiteEmbedder, type UseLiteOptions } from './use-lite.ts';

/**
 * Engines and embedders described as plain data, so a Worker can build them from a message
 * (functions such as a custom `fetch` cannot cross a worker boundary and are left out).
 */
export type EngineSpec =
  | { kind: 'llama-cpp'; options?: LlamaCppOptions }
  | { kind: 'transformers'; options?: TransformersEngineOptions };

export type EmbedderSpec =
  | { kind: 'use-lite'; options?: Omit<UseLiteOptions, 'fetch'> }
  | { kind: 'transformers'; options: TransformersEmbedderOptions };

export function createEngine(spec: EngineSpec): Engine {
  switch (spec.kind) {
    case 'llama-cpp':
      return new LlamaCppEngine(spec.options);
    case 'transformers':
      return new TransformersEngine(spec.options);
  }
}

export function createEmbedder(spec: EmbedderSpec): Embedder {
  switch (spec.kind) {
    case 'use-lite':
      return new UseLiteEmbedder(spec.options);
    case 'transformers':
      return new TransformersEmbedder(spec.options);
  }
}
