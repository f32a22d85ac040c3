/**
 * Layer 2 of the node: inference. Engines generate, embedders embed one text at a time, the queue
 * orders jobs by deadline with backpressure, workers keep inference off the intake thread, and the
 * capability self-assessment feeds heartbeats.
 *
 * Runtime notes: `models-dir.ts`, `llama-cpp.ts` and the worker classes need Bun or Node (filesystem,
 * native binary, Worker); `wllama.ts` and `web-llm.ts` are for browsers; the rest runs anywhere. Heavy
 * libraries (node-llama-cpp, tfjs, transformers.js, wllama, web-llm) are imported lazily inside
 * `load()`, so importing this module loads none of them.
 */

export type { EmbedderCapability, EngineBenchOptions, ModelCapability } from './capability.ts';
export {
  assessCapabilities,
  BENCH_PROMPT,
  BENCH_TEXTS,
  measureEmbedder,
  measureEngine,
} from './capability.ts';
export type { Embedder } from './embedder.ts';
export { checkBits, defaultBits, packBits } from './embedder.ts';
export type {
  Engine,
  EngineKind,
  FinishReason,
  GenerateRequest,
  GenerateResult,
  LoadPhase,
  LoadProgress,
  ModelSource,
  OnLoadProgress,
} from './engine.ts';
export { checkGenerateRequest, renderMessagesAsText } from './engine.ts';
export type { InferenceErrorCode, InferenceErrorJSON } from './errors.ts';
export { INFERENCE_ERROR_CODES, InferenceError, isInferenceError } from './errors.ts';
export type { EmbedderSpec, EngineSpec } from './factory.ts';
export { createEmbedder, createEngine } from './factory.ts';
export type { ManifestEntry } from './hashing.ts';
export { canonicalManifest, fetchBytes, manifestHash, sha256Hex, verifyHash } from './hashing.ts';
export type { LlamaCppOptions } from './llama-cpp.ts';
export { LLAMA_CPP_ENGINE_ID, LlamaCppEngine } from './llama-cpp.ts';
export type {
  DownloadOptions,
  HubSource,
  ModelFormat,
  ModelManifest,
  ModelManifestEntry,
  ModelsDirOptions,
  ResolvedModel,
} from './models-dir.ts';
export {
  clearHashCache,
  DEFAULT_HUB_BASE_URL,
  DEFAULT_MODEL_MANIFEST,
  downloadFile,
  hubFileUrl,
  listFiles,
  ModelsDir,
  modelsRootFromEnv,
  sha256File,
  sha256Folder,
} from './models-dir.ts';
export type { InferenceQueueOptions, QueueJob, QueueResult, Throughput } from './queue.ts';
export { InferenceQueue } from './queue.ts';
export type {
  EmbedderDown,
  RestartingEmbedderOptions,
  RestartTimers,
} from './restarting-embedder.ts';
export { EMBEDDER_WAIT_WHILE_DOWN_MS, RestartingEmbedder } from './restarting-embedder.ts';
export type {
  TransformersDevice,
  TransformersDtype,
  TransformersEmbedderOptions,
  TransformersEngineOptions,
  TransformersModelLocation,
  TransformersOptions,
} from './transformers.ts';
export { checkLayout, resolveDevice, TransformersEmbedder, TransformersEngine } from './transformers.ts';
export type { UseLiteOptions } from './use-lite.ts';
export {
  defaultUseLiteDir,
  USE_LITE_DIMS,
  USE_LITE_FILE_HASH,
  USE_LITE_ID,
  UseLiteEmbedder,
} from './use-lite.ts';
export type { GpuAdapterLike, GpuLike, WebLlmModelSpec, WebLlmOptions } from './web-llm.ts';
export {
  checkWebGpu,
  needsShaderF16,
  sriFromHex,
  WEB_LLM_ENGINE_ID,
  WebLlmEngine,
  webLlmAppConfig,
  webLlmFileHash,
  webLlmSampling,
} from './web-llm.ts';
export type { WllamaOptions } from './wllama.ts';
export {
  hasJspi,
  WLLAMA_ENGINE_ID,
  WllamaEngine,
  wllamaAssetPaths,
  wllamaCompletionParams,
  wllamaLoadParams,
} from './wllama.ts';
export type { InferenceWorkerOptions, WorkerEmbedderOptions } from './worker-client.ts';
export { InferenceWorker, WorkerEmbedder, WorkerEngine } from './worker-client.ts';
export type { WorkerRequest, WorkerResponse, WorkerResults } from './worker-protocol.ts';
