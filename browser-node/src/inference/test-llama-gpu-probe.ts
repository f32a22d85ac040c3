/**
 * Test support, run as its own process by llama-cpp-gpu.test.ts: llama.cpp reads which Vulkan devices it
 * may use (`GGML_VK_VISIBLE_DEVICES`) from the process environment when its binary loads, which a test
 * can only set for a process it starts. Loads stories260K with `--gpu <backend>` (and CPU for comparison
 * with `--compare`), generates greedily, and prints one JSON line: the engine's id and backend and the
 * text, or the error's code, message and hint.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isInferenceError } from './errors.ts';
import { LLAMA_GPUS, LlamaCppEngine, type LlamaGpu } from './llama-cpp.ts';
import { STORIES_260K_SHA256, TEST_MODELS_DIR } from './test-models.ts';

const { values } = parseArgs({
  options: {
    gpu: { type: 'string', default: 'off' },
    'gpu-layers': { type: 'string' },
    'max-tokens': { type: 'string', default: '64' },
    compare: { type: 'boolean', default: false },
  },
});
const gpu = values.gpu as LlamaGpu;
if (!LLAMA_GPUS.includes(gpu)) throw new Error(`--gpu must be one of ${LLAMA_GPUS.join(', ')}`);
const source = {
  id: 'stories260K',
  fileHash: STORIES_260K_SHA256,
  path: join(TEST_MODELS_DIR, 'stories260K.gguf'),
};
const request = {
  prompt: 'Once upon a time',
  params: { temperature: 0, maxTokens: Number(values['max-tokens']) },
};

async function run(on: LlamaGpu) {
  const layers = values['gpu-layers'];
  const engine = new LlamaCppEngine({
    threads: 1,
    gpu: on,
    ...(layers === undefined || on === 'off' ? {} : { gpuLayers: layers === 'max' ? 'max' : Number(layers) }),
  });
  try {
    await engine.load(source);
    const out = await engine.generate(request);
    return { id: engine.id, backend: engine.backend, text: out.text, tokens: out.tokens };
  } finally {
    await engine.unload();
  }
}

try {
  const result = await run(gpu);
  const cpu = values.compare ? await run('off') : undefined;
  console.log(JSON.stringify({ ok: true, ...result, ...(cpu ? { cpuText: cpu.text, cpuId: cpu.id } : {}) }));
} catch (e) {
  if (!isInferenceError(e)) throw e;
  console.log(JSON.stringify({ ok: false, code: e.code, message: e.message, hint: e.hint }));
}
