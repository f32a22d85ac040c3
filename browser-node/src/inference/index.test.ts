import { expect, test } from 'bun:test';
import {
  assessCapabilities,
  INFERENCE_ERROR_CODES,
  InferenceError,
  InferenceQueue,
  LlamaCppEngine,
  ModelsDir,
  RestartingEmbedder,
  TransformersEmbedder,
  TransformersEngine,
  UseLiteEmbedder,
  WebLlmEngine,
  WllamaEngine,
  WorkerEmbedder,
  WorkerEngine,
} from './index.ts';

test('the public face exports the engines, embedders, queue, models directory and capability API', () => {
  const exported = [
    LlamaCppEngine,
    WllamaEngine,
    WebLlmEngine,
    TransformersEngine,
    TransformersEmbedder,
    UseLiteEmbedder,
    WorkerEngine,
    WorkerEmbedder,
    RestartingEmbedder,
    InferenceQueue,
    ModelsDir,
    assessCapabilities,
    InferenceError,
  ];
  for (const value of exported) expect(typeof value).toBe('function');
  expect(INFERENCE_ERROR_CODES).toContain('DEADLINE_UNREACHABLE');
});
