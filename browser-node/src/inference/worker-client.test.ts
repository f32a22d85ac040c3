import { describe, expect, test } from 'bun:test';
import type { InferenceError } from './errors.ts';
import { isInferenceError } from './errors.ts';
import { InferenceWorker } from './worker-client.ts';

const CRASHING = new URL('./crashing-inference-worker-double.ts', import.meta.url);

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a failure');
}

describe('InferenceWorker: a worker that dies', () => {
  for (const [text, says] of [
    ['crash:exit', 'exited (code 134)'],
    ['crash:throw', 'the embedder crashed'],
  ] as const) {
    test(`${text}: the pending call and every later one fail WORKER_FAILED; onFailed is told once`, async () => {
      const told: InferenceError[] = [];
      const worker = new InferenceWorker(CRASHING, { onFailed: (e) => told.push(e) });
      const e = await failure(worker.call({ type: 'embed-bits', text }).result);
      expect(isInferenceError(e, 'WORKER_FAILED')).toBe(true);
      expect((e as Error).message).toContain(says);
      expect(told).toEqual([e as InferenceError]);
      expect(worker.failed).toBe(e as InferenceError);
      const later = await failure(worker.call({ type: 'unload-embedder' }).result);
      expect(later).toBe(e);
      worker.terminate();
      expect(told).toHaveLength(1);
    });
  }

  test('terminate(): calls fail WORKER_FAILED, and onFailed is not told (it did not die on its own)', async () => {
    const told: InferenceError[] = [];
    const worker = new InferenceWorker(CRASHING, { onFailed: (e) => told.push(e) });
    expect(worker.failed).toBeNull();
    const pending = worker.call({ type: 'unload-embedder' }).result;
    worker.terminate();
    const e = await failure(pending);
    expect(isInferenceError(e, 'WORKER_FAILED')).toBe(true);
    expect((e as Error).message).toContain('terminated');
    expect(told).toEqual([]);
  });
});
