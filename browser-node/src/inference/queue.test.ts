import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import type { ModelRef } from '@synod/shared';
import type { Embedder } from './embedder.ts';
import type { Engine, GenerateRequest, GenerateResult, PromptMeasure } from './engine.ts';
import { InferenceQueue, type QueueJob } from './queue.ts';
import { STORIES_260K_SHA256, TEST_MODELS_DIR } from './test-models.ts';
import { WorkerEmbedder, WorkerEngine } from './worker-client.ts';

/**
 * Test double: an Engine whose generations finish only when the test releases them, recording the
 * order in which they started. It runs no model.
 */
class ControlledEngineTestDouble implements Engine {
  readonly id = 'test-double';
  readonly kind = 'llama-cpp' as const;
  readonly model: ModelRef = { id: 'double', fileHash: '0'.repeat(64) };
  readonly started: string[] = [];
  #release: Array<() => void> = [];
  async load(): Promise<void> {}
  async unload(): Promise<void> {}
  generate(request: GenerateRequest): Promise<GenerateResult> {
    this.started.push(request.prompt ?? '');
    return new Promise((resolve) => {
      this.#release.push(() =>
        resolve({ text: `out:${request.prompt}`, tokens: 1, tokensPerSecond: 1, finishReason: 'stop' }),
      );
    });
  }
  /** Finish the running generation. */
  async finishOne(): Promise<void> {
    this.#release.shift()?.();
    await new Promise((r) => setTimeout(r, 0));
  }
}

/**
 * Test double: the controlled engine that also measures prompts, as node-llama-cpp does: a prompt's
 * tokens are its characters, the context 100 tokens. Measures answer when the test releases them
 * (`held`), or at once.
 */
class MeasuringEngineTestDouble extends ControlledEngineTestDouble {
  readonly measured: string[] = [];
  held = false;
  fail = false;
  #pending: Array<() => void> = [];
  measurePrompt(request: Pick<GenerateRequest, 'prompt' | 'messages'>): Promise<PromptMeasure> {
    this.measured.push(request.prompt ?? '');
    const answer = (): PromptMeasure => {
      if (this.fail) throw new Error('the tokenizer broke');
      return { promptTokens: (request.prompt ?? '').length, contextSize: 100 };
    };
    if (!this.held) return Promise.resolve().then(answer);
    return new Promise((resolve, reject) =>
      this.#pending.push(() => {
        try {
          resolve(answer());
        } catch (e) {
          reject(e);
        }
      }),
    );
  }
  /** Answer every measure waiting. */
  async release(): Promise<void> {
    for (const f of this.#pending.splice(0)) f();
    await new Promise((r) => setTimeout(r, 0));
  }
}

/** A queue over a measuring engine, running a first job (`r`), its later measures held or not. */
async function measuringQueue(maxQueued: number, held: boolean) {
  const engine = new MeasuringEngineTestDouble();
  const q = new InferenceQueue({ engine, maxQueued, tokensPerSecond: 1000, now: () => 0 });
  const running = q.submit(job('r', 1e9));
  await new Promise((r) => setTimeout(r, 0));
  engine.held = held;
  return { engine, q, running };
}

const job = (name: string, deadline: number, maxTokens = 10, embed = false): QueueJob => ({
  requestId: name,
  deadline,
  request: { prompt: name, params: { temperature: 0, maxTokens } },
  embed,
});

describe('InferenceQueue (with a test-double engine and a manual clock)', () => {
  test('earliest deadline first, one job at a time', async () => {
    let now = 0;
    const engine = new ControlledEngineTestDouble();
    // 10 tokens/s: a 10-token job is estimated at 1000 ms.
    const q = new InferenceQueue({ engine, maxQueued: 10, tokensPerSecond: 10, now: () => now });
    const done: string[] = [];
    const track = (p: Promise<{ text: string }>) => p.then((r) => done.push(r.text));
    const first = track(q.submit(job('first', 10_000)));
    const late = track(q.submit(job('late', 9_000)));
    const soon = track(q.submit(job('soon', 3_000)));
    const middle = track(q.submit(job('middle', 5_000)));
    expect(engine.started).toEqual(['first']);
    expect(q.running).toBe(true);
    expect(q.capacity).toEqual({ queued: 3, maxQueue: 10 });
    for (let i = 0; i < 4; i++) {
      now += 1000;
      await engine.finishOne();
    }
    await Promise.all([first, late, soon, middle]);
    expect(engine.started).toEqual(['first', 'soon', 'middle', 'late']);
    expect(done).toEqual(['out:first', 'out:soon', 'out:middle', 'out:late']);
    await q.idle();
    expect(q.running).toBe(false);
  });

  test('a job that cannot finish before its deadline is refused with DEADLINE_UNREACHABLE and never started', async () => {
    const now = 0;
    const engine = new ControlledEngineTestDouble();
    const q = new InferenceQueue({ engine, maxQueued: 10, tokensPerSecond: 10, now: () => now });
    // 100 tokens at 10 tokens/s is 10 s; the deadline is in 5 s.
    await expect(q.submit(job('too-long', 5_000, 100))).rejects.toMatchObject({
      code: 'DEADLINE_UNREACHABLE',
      details: { stage: 'admission', estimatedFinish: 10_000 },
    });
    expect(engine.started).toEqual([]);
    // Behind a running 1 s job and a queued job due earlier, a 1 s job due at 2.5 s cannot make it.
    const a = q.submit(job('a', 1_500));
    const b = q.submit(job('b', 2_000));
    await expect(q.submit(job('c', 2_500))).rejects.toMatchObject({ code: 'DEADLINE_UNREACHABLE' });
    // ...but one due at 3 s can.
    const c = q.submit(job('c2', 3_000));
    await engine.finishOne();
    await engine.finishOne();
    await engine.finishOne();
    await Promise.all([a, b, c]);
    expect(engine.started).toEqual(['a', 'b', 'c2']);
  });

  test('a queued job whose deadline passes while it waits is refused at dispatch, never started', async () => {
    let now = 0;
    const engine = new ControlledEngineTestDouble();
    const q = new InferenceQueue({ engine, maxQueued: 10, tokensPerSecond: 10, now: () => now });
    const a = q.submit(job('a', 10_000));
    const b = q.submit(job('b', 2_500));
    const refused = b.catch((e: unknown) => e);
    now = 2_000; // the running job overran its estimate
    await engine.finishOne();
    expect(await refused).toMatchObject({ code: 'DEADLINE_UNREACHABLE', details: { stage: 'dispatch' } });
    await a;
    expect(engine.started).toEqual(['a']);
  });

  test('bounded length: QUEUE_FULL beyond maxQueued (backpressure), capacity frees as jobs finish', async () => {
    const engine = new ControlledEngineTestDouble();
    const q = new InferenceQueue({ engine, maxQueued: 2, tokensPerSecond: 1000, now: () => 0 });
    const running = q.submit(job('r', 1e9));
    const q1 = q.submit(job('q1', 1e9));
    const q2 = q.submit(job('q2', 1e9));
    expect(q.accepting).toBe(false);
    await expect(q.submit(job('q3', 1e9))).rejects.toMatchObject({ code: 'QUEUE_FULL' });
    await engine.finishOne();
    expect(q.accepting).toBe(true);
    const q3 = q.submit(job('q3', 1e9));
    await engine.finishOne();
    await engine.finishOne();
    await engine.finishOne();
    await Promise.all([running, q1, q2, q3]);
    expect(engine.started).toEqual(['r', 'q1', 'q2', 'q3']);
  });

  test('abort while queued drops the job; close() rejects what is queued', async () => {
    const engine = new ControlledEngineTestDouble();
    const q = new InferenceQueue({ engine, maxQueued: 5, tokensPerSecond: 1000, now: () => 0 });
    const r = q.submit(job('r', 1e9));
    const ac = new AbortController();
    const aborted = q.submit({ ...job('x', 1e9), request: { ...job('x', 1e9).request, signal: ac.signal } });
    const dropped = q.submit(job('y', 1e9));
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ code: 'INFERENCE_ABORTED' });
    q.close();
    await expect(dropped).rejects.toMatchObject({ code: 'INFERENCE_ABORTED' });
    await expect(q.submit(job('z', 1e9))).rejects.toMatchObject({ code: 'INFERENCE_ABORTED' });
    await engine.finishOne();
    await r;
    expect(engine.started).toEqual(['r']);
  });

  test('an engine that measures prompts: one longer than the context is refused PROMPT_TOO_LONG as it arrives, while a job runs', async () => {
    const { engine, q, running } = await measuringQueue(4, false);
    expect(engine.started).toEqual(['r']);
    const queued = q.submit(job('q', 1e9));
    // 100 characters: as long as the context, no room for a token.
    await expect(q.submit(job('x'.repeat(100), 1e9))).rejects.toMatchObject({
      code: 'PROMPT_TOO_LONG',
      details: { promptTokens: 100, contextSize: 100 },
    });
    // Refused while the first job still runs, and never queued.
    expect(engine.started).toEqual(['r']);
    expect(q.capacity).toEqual({ queued: 1, maxQueue: 4 });
    await engine.finishOne();
    await engine.finishOne();
    await Promise.all([running, queued]);
    expect(engine.started).toEqual(['r', 'q']);
    expect(engine.measured).toEqual(['r', 'q', 'x'.repeat(100)]);
  });

  test('a job whose prompt is being measured holds its place in the bound; a measure that fails leaves it to the generation', async () => {
    const { engine, q, running } = await measuringQueue(1, true);
    const measuring = q.submit(job('m', 1e9));
    expect(q.capacity).toEqual({ queued: 1, maxQueue: 1 });
    expect(q.accepting).toBe(false);
    await expect(q.submit(job('over', 1e9))).rejects.toMatchObject({ code: 'QUEUE_FULL' });
    // Nothing runs or waits once the first job is done, but a job is measured: not idle.
    await engine.finishOne();
    await running;
    let idle = false;
    const idled = q.idle().then(() => {
      idle = true;
    });
    await new Promise((r) => setTimeout(r, 0));
    expect(idle).toBe(false);
    await engine.release();
    expect(engine.started).toEqual(['r', 'm']);
    await engine.finishOne();
    await measuring;
    await idled;
    expect(idle).toBe(true);
    // The tokenizer fails: the job is queued and run, the generation checking its prompt itself.
    engine.held = false;
    engine.fail = true;
    const unmeasured = q.submit(job('u', 1e9));
    await new Promise((r) => setTimeout(r, 0));
    await engine.finishOne();
    expect((await unmeasured).text).toBe('out:u');
  });

  test('a job aborted, or a queue closed, while its prompt is measured: refused, never queued', async () => {
    const { engine, q, running } = await measuringQueue(4, true);
    const ac = new AbortController();
    const aborted = q
      .submit({ ...job('a', 1e9), request: { ...job('a', 1e9).request, signal: ac.signal } })
      .catch((e: unknown) => e);
    ac.abort();
    await engine.release();
    expect(await aborted).toMatchObject({ code: 'INFERENCE_ABORTED' });
    const closing = q.submit(job('c', 1e9)).catch((e: unknown) => e);
    q.close();
    await engine.release();
    expect(await closing).toMatchObject({ code: 'INFERENCE_ABORTED' });
    await engine.finishOne();
    await running;
    expect(engine.started).toEqual(['r']);
    expect(q.capacity).toEqual({ queued: 0, maxQueue: 4 });
  });

  test('the estimate includes one embedding for jobs that embed', () => {
    const engine = new ControlledEngineTestDouble();
    const embedder = {} as Embedder; // never called: only estimates are computed here
    const q = new InferenceQueue({
      engine,
      embedder,
      maxQueued: 1,
      tokensPerSecond: 100,
      embeddingsPerSecond: 4,
    });
    expect(q.estimateMs(job('e', 0, 50, true))).toBe(500 + 250);
    expect(q.estimateMs(job('e', 0, 50, false))).toBe(500);
  });
});

describe('InferenceQueue over workers (node-llama-cpp + USE Lite off the main thread)', () => {
  const engine = new WorkerEngine({ kind: 'llama-cpp', options: { threads: 1 } });
  const embedder = new WorkerEmbedder({ kind: 'use-lite' });

  beforeAll(async () => {
    await engine.load({
      id: 'stories260K',
      fileHash: STORIES_260K_SHA256,
      path: join(TEST_MODELS_DIR, 'stories260K.gguf'),
    });
    await embedder.load();
  });

  afterAll(async () => {
    await engine.unload();
    await embedder.unload();
  });

  test('the worker engine reports its model and engine id; greedy output matches across runs', async () => {
    expect(engine.model).toEqual({ id: 'stories260K', fileHash: STORIES_260K_SHA256 });
    expect(engine.id).toBe('node-llama-cpp@3.22.1');
    const req: GenerateRequest = { prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 32 } };
    const a = await engine.generate(req);
    const b = await engine.generate(req);
    expect(a.text.length).toBeGreaterThan(0);
    expect(b.text).toBe(a.text);
    expect(embedder.ref.bits).toBe(512);
  });

  test("the main thread's timers keep firing while a long generation and embedding run", async () => {
    const q = new InferenceQueue({
      engine,
      embedder,
      maxQueued: 4,
      tokensPerSecond: 50,
      embeddingsPerSecond: 5,
    });
    let ticks = 0;
    let ticksWhileRunning = 0;
    let inFlight = true;
    const interval = setInterval(() => {
      ticks++;
      if (inFlight) ticksWhileRunning++;
    }, 1);
    try {
      const result = await q.submit({
        requestId: 'long',
        deadline: Date.now() + 600_000,
        request: { prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 1500 } },
        embed: true,
      });
      inFlight = false;
      expect(result.tokens).toBeGreaterThan(100);
      expect(result.bEmbedding?.length).toBe(64);
      expect(result.bEmbedding).toEqual(await embedder.embedBits(result.text));
    } finally {
      clearInterval(interval);
    }
    expect(ticksWhileRunning).toBeGreaterThan(0);
    expect(ticks).toBeGreaterThanOrEqual(ticksWhileRunning);
  });

  test('aborting a running worker generation rejects with INFERENCE_ABORTED', async () => {
    const ac = new AbortController();
    const p = engine.generate({
      prompt: 'Once upon a time',
      params: { temperature: 0, maxTokens: 1500 },
      signal: ac.signal,
    });
    setTimeout(() => ac.abort(), 5);
    await expect(p).rejects.toMatchObject({ code: 'INFERENCE_ABORTED' });
  });

  test('a prompt is measured in the worker as the generation counts it, while a generation runs; a busy queue refuses one longer than the context at once', async () => {
    const prompt = 'Once upon a time, there was a little girl who liked to play. ';
    const counted = await engine.generate({ prompt, params: { temperature: 0, maxTokens: 1 } });
    expect(await engine.measurePrompt({ prompt })).toEqual({
      promptTokens: counted.promptTokens ?? -1,
      contextSize: 2048,
    });
    const messages = [{ role: 'user' as const, content: prompt }];
    const fromMessages = await engine.generate({ messages, params: { temperature: 0, maxTokens: 1 } });
    expect((await engine.measurePrompt({ messages }))?.promptTokens).toBe(fromMessages.promptTokens ?? -1);
    await expect(engine.measurePrompt({})).rejects.toMatchObject({ code: 'INFERENCE_INVALID_INPUT' });

    const q = new InferenceQueue({ engine, maxQueued: 4, tokensPerSecond: 50 });
    const long = q.submit({
      requestId: 'long',
      deadline: Date.now() + 600_000,
      request: { prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 2000 } },
    });
    let longDone = false;
    void long.then(() => {
      longDone = true;
    });
    const tooLong = await q
      .submit({
        requestId: 'too-long',
        deadline: Date.now() + 600_000,
        request: { prompt: prompt.repeat(200), params: { temperature: 0, maxTokens: 8 } },
      })
      .catch((e: unknown) => e);
    // Refused while the long generation still runs (about 2,000 tokens), not once it is done.
    expect(longDone).toBe(false);
    expect(tooLong).toMatchObject({ code: 'PROMPT_TOO_LONG', details: { contextSize: 2048 } });
    expect((tooLong as { details: { promptTokens: number } }).details.promptTokens).toBeGreaterThan(2048);
    await long;
  });

  test('errors cross the worker boundary typed', async () => {
    const bad = new WorkerEngine({ kind: 'llama-cpp' });
    await expect(
      bad.load({
        id: 'stories260K',
        fileHash: 'a'.repeat(64),
        path: join(TEST_MODELS_DIR, 'stories260K.gguf'),
      }),
    ).rejects.toMatchObject({ code: 'MODEL_HASH_MISMATCH', name: 'InferenceError' });
    expect(bad.model).toBeNull();
    await expect(
      bad.generate({ prompt: 'x', params: { temperature: 0, maxTokens: 1 } }),
    ).rejects.toMatchObject({ code: 'ENGINE_NOT_LOADED' });
  });
});
