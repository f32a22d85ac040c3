/**
 * For tests: real serving stacks (node-llama-cpp + stories260K, USE Lite) from the offline model mirror.
 * Nothing here is a fake; it only saves each test the setup code.
 */

import { LlamaCppEngine } from '../inference/llama-cpp.ts';
import { ModelsDir } from '../inference/models-dir.ts';
import { InferenceQueue, type InferenceQueueOptions } from '../inference/queue.ts';
import { TEST_MODELS_DIR } from '../inference/test-models.ts';
import { UseLiteEmbedder } from '../inference/use-lite.ts';
import type { ServingConfig } from './synod-node.ts';

export interface TestServing<Q extends InferenceQueue = InferenceQueue> extends ServingConfig {
  queue: Q;
  close(): Promise<void>;
}

/** A real serving stack; `makeQueue` lets a test use a queue subclass (e.g. a garbage revealer). */
export async function loadTestServing<Q extends InferenceQueue = InferenceQueue>(
  maxQueued = 4,
  makeQueue: (options: InferenceQueueOptions) => Q = (options) => new InferenceQueue(options) as Q,
): Promise<TestServing<Q>> {
  const dir = new ModelsDir({ root: TEST_MODELS_DIR });
  const model = await dir.resolve('stories260K');
  const engine = new LlamaCppEngine({ threads: 1 });
  await engine.load({ id: model.id, fileHash: model.fileHash, path: model.path });
  const embedder = new UseLiteEmbedder();
  await embedder.load();
  const queue = makeQueue({ engine, embedder, maxQueued, tokensPerSecond: 200, embeddingsPerSecond: 20 });
  return {
    queue,
    models: [{ id: model.id, fileHash: model.fileHash }],
    embedder: embedder.ref,
    async close() {
      queue.close();
      await engine.unload();
      await embedder.unload();
    },
  };
}
