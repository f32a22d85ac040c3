import type { Embedder } from './embedder.ts';
import { type Engine, type GenerateRequest, type GenerateResult, tooLongFor } from './engine.ts';
import { asInferenceError, InferenceError } from './errors.ts';

/**
 * The inference queue of one engine: earliest deadline first, bounded, one job at a time.
 *
 * - **Admission.** A job is refused at once with QUEUE_FULL when `maxQueued` jobs are waiting (the
 *   node stops picking up requests: backpressure), and with DEADLINE_UNREACHABLE when its estimated
 *   finish, after the running job and every queued job due no later than it, is past its deadline.
 *   An engine that measures prompts (`Engine.measurePrompt`) has each job's prompt measured first,
 *   while the running job goes on: one that does not fit the model's context is refused with
 *   PROMPT_TOO_LONG as it arrives, not once the jobs before it are done (a job being measured holds
 *   its place in the queue's bound meanwhile).
 * - **Estimate.** `maxTokens / tokensPerSecond` plus one embedding (`1 / embeddingsPerSecond`) when the
 *   job embeds its output; both rates come from the capability self-assessment (capability.ts) and can
 *   be updated with `setThroughput`.
 * - **Dispatch.** When the engine is free, the queued job with the earliest deadline starts (ties: the
 *   earlier submission). A job whose deadline can no longer be met is refused with
 *   DEADLINE_UNREACHABLE without ever starting.
 * - **One at a time.** Engines run one generation at a time. Run the engine in a worker (WorkerEngine)
 *   so that a long generation never blocks packet intake on the calling thread.
 *
 * Deadlines are absolute times on the queue's clock (`now`, default `Date.now`).
 */
export interface QueueJob {
  /** The protocol request this job answers (for cancel and logs). */
  requestId: string;
  /** Absolute time by which the job must be done (generation and embedding). */
  deadline: number;
  request: GenerateRequest;
  /** Embed the output with the queue's embedder and return its packed bits. */
  embed?: boolean;
}

export interface QueueResult extends GenerateResult {
  /** Packed sign bits of the output (`bits / 8` bytes), when the job asked for them. */
  bEmbedding: Uint8Array | null;
  startedAt: number;
  finishedAt: number;
}

export interface Throughput {
  tokensPerSecond: number;
  /** Needed when jobs embed. */
  embeddingsPerSecond?: number;
}

export interface InferenceQueueOptions extends Throughput {
  engine: Engine;
  embedder?: Embedder;
  /** Most jobs waiting (not counting the running one). */
  maxQueued: number;
  now?: () => number;
}

interface Entry {
  job: QueueJob;
  seq: number;
  estimateMs: number;
  resolve: (r: QueueResult) => void;
  reject: (e: unknown) => void;
  onAbort: (() => void) | null;
}

export class InferenceQueue {
  readonly engine: Engine;
  readonly embedder: Embedder | undefined;
  readonly maxQueued: number;
  readonly #now: () => number;
  #tokensPerSecond: number;
  #embeddingsPerSecond: number | undefined;
  #queue: Entry[] = [];
  #running: { entry: Entry; startedAt: number } | null = null;
  #seq = 0;
  /** Jobs whose prompt is being measured: counted against `maxQueued`, as queued. */
  #measuring = 0;
  #closed = false;
  #idleWaiters: Array<() => void> = [];

  constructor(options: InferenceQueueOptions) {
    if (!Number.isInteger(options.maxQueued) || options.maxQueued < 0) {
      throw new InferenceError('INFERENCE_INVALID_INPUT', 'maxQueued must be a non-negative integer');
    }
    this.engine = options.engine;
    this.embedder = options.embedder;
    this.maxQueued = options.maxQueued;
    this.#now = options.now ?? Date.now;
    this.#tokensPerSecond = 0;
    this.setThroughput(options);
  }

  setThroughput(t: Throughput): void {
    if (!(Number.isFinite(t.tokensPerSecond) && t.tokensPerSecond > 0)) {
      throw new InferenceError('INFERENCE_INVALID_INPUT', 'tokensPerSecond must be positive and finite');
    }
    if (
      t.embeddingsPerSecond !== undefined &&
      !(Number.isFinite(t.embeddingsPerSecond) && t.embeddingsPerSecond > 0)
    ) {
      throw new InferenceError('INFERENCE_INVALID_INPUT', 'embeddingsPerSecond must be positive and finite');
    }
    this.#tokensPerSecond = t.tokensPerSecond;
    this.#embeddingsPerSecond = t.embeddingsPerSecond;
  }

  /** Jobs waiting (not counting the running one), those whose prompt is being measured included. */
  get queued(): number {
    return this.#queue.length + this.#measuring;
  }

  get running(): boolean {
    return this.#running !== null;
  }

  /** Whether a new job would be admitted on length alone. */
  get accepting(): boolean {
    return !this.#closed && this.queued < this.maxQueued;
  }

  /** For the heartbeat's `capacity`. */
  get capacity(): { queued: number; maxQueue: number } {
    return { queued: this.queued, maxQueue: this.maxQueued };
  }

  /** Estimated run time of a job, in ms. */
  estimateMs(job: Pick<QueueJob, 'request' | 'embed'>): number {
    let ms = (job.request.params.maxTokens / this.#tokensPerSecond) * 1000;
    if (job.embed) {
      if (this.#embeddingsPerSecond === undefined) {
        throw new InferenceError('INFERENCE_INVALID_INPUT', 'jobs that embed need embeddingsPerSecond');
      }
      ms += 1000 / this.#embeddingsPerSecond;
    }
    return ms;
  }

  /** When a job submitted now would finish, by the estimates (queue clock). */
  estimatedFinish(job: Pick<QueueJob, 'request' | 'embed' | 'deadline'>): number {
    const now = this.#now();
    let t = now;
    if (this.#running !== null) {
      t += Math.max(0, this.#running.startedAt + this.#running.entry.estimateMs - now);
    }
    for (const e of this.#queue) if (e.job.deadline <= job.deadline) t += e.estimateMs;
    return t + this.estimateMs(job);
  }

  submit(job: QueueJob): Promise<QueueResult> {
    try {
      this.#admit(job);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.engine.measurePrompt === undefined) return this.#enqueue(job);
    this.#measuring++;
    return (
      this.engine
        .measurePrompt(job.request)
        // An engine that cannot say (or fails to) leaves the prompt to the generation, which checks it too.
        .catch(() => null)
        .then((measure) => {
          this.#measuring--;
          try {
            const tooLong = measure === null ? null : tooLongFor(measure);
            if (tooLong !== null) throw tooLong;
            this.#admit(job);
          } catch (error) {
            this.#checkIdle();
            throw error;
          }
          return this.#enqueue(job);
        })
    );
  }

  /** Refuse a job the queue cannot take now (closed, aborted, full, its deadline out of reach). */
  #admit(job: QueueJob): void {
    if (this.#closed) throw new InferenceError('INFERENCE_ABORTED', 'the inference queue is closed');
    if (job.embed && this.embedder === undefined) {
      throw new InferenceError('INFERENCE_INVALID_INPUT', 'this queue has no embedder');
    }
    if (job.request.signal?.aborted) {
      throw new InferenceError('INFERENCE_ABORTED', `job ${job.requestId} was aborted before it was queued`);
    }
    if (this.queued >= this.maxQueued) {
      throw new InferenceError('QUEUE_FULL', `the inference queue holds ${this.maxQueued} jobs`, {
        details: { requestId: job.requestId, maxQueued: this.maxQueued },
        hint: 'stop picking up requests until capacity frees up',
      });
    }
    const finish = this.estimatedFinish(job);
    if (finish > job.deadline) throw this.#unreachable(job, finish, 'admission');
  }

  #enqueue(job: QueueJob): Promise<QueueResult> {
    return new Promise<QueueResult>((resolve, reject) => {
      const entry: Entry = {
        job,
        seq: this.#seq++,
        estimateMs: this.estimateMs(job),
        resolve,
        reject,
        onAbort: null,
      };
      const signal = job.request.signal;
      if (signal !== undefined) {
        entry.onAbort = () => {
          const i = this.#queue.indexOf(entry);
          if (i >= 0) {
            this.#queue.splice(i, 1);
            reject(new InferenceError('INFERENCE_ABORTED', `job ${job.requestId} was aborted while queued`));
          }
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.#insert(entry);
      this.#pump();
    });
  }

  /** Resolves when nothing is queued, being measured or running. */
  idle(): Promise<void> {
    if (this.#running === null && this.queued === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Refuse new jobs and reject every queued one (INFERENCE_ABORTED); the running job finishes. */
  close(): void {
    this.#closed = true;
    const queued = this.#queue;
    this.#queue = [];
    for (const e of queued) {
      this.#detach(e);
      e.reject(new InferenceError('INFERENCE_ABORTED', `job ${e.job.requestId} dropped: the queue closed`));
    }
    this.#checkIdle();
  }

  #insert(entry: Entry): void {
    // Sorted by (deadline, seq): earliest deadline first, ties in submission order.
    let i = this.#queue.length;
    while (i > 0) {
      const prev = this.#queue[i - 1] as Entry;
      if (
        prev.job.deadline < entry.job.deadline ||
        (prev.job.deadline === entry.job.deadline && prev.seq < entry.seq)
      )
        break;
      i--;
    }
    this.#queue.splice(i, 0, entry);
  }

  #unreachable(job: QueueJob, finish: number, stage: 'admission' | 'dispatch'): InferenceError {
    return new InferenceError(
      'DEADLINE_UNREACHABLE',
      `job ${job.requestId} would finish ${Math.ceil(finish - job.deadline)} ms after its deadline`,
      {
        details: { requestId: job.requestId, deadline: job.deadline, estimatedFinish: finish, stage },
        hint: 'the request needs fewer tokens, a later deadline or a faster node',
      },
    );
  }

  #detach(entry: Entry): void {
    if (entry.onAbort !== null) entry.job.request.signal?.removeEventListener('abort', entry.onAbort);
  }

  #pump(): void {
    while (this.#running === null && this.#queue.length > 0) {
      const entry = this.#queue.shift() as Entry;
      const now = this.#now();
      if (now + entry.estimateMs > entry.job.deadline) {
        this.#detach(entry);
        entry.reject(this.#unreachable(entry.job, now + entry.estimateMs, 'dispatch'));
        continue;
      }
      this.#running = { entry, startedAt: now };
      this.#run(entry, now).then(
        (result) => entry.resolve(result),
        (error) => entry.reject(error),
      );
    }
    this.#checkIdle();
  }

  async #run(entry: Entry, startedAt: number): Promise<QueueResult> {
    try {
      const result = await this.engine.generate(entry.job.request);
      let bEmbedding: Uint8Array | null = null;
      if (entry.job.embed && this.embedder !== undefined) {
        try {
          bEmbedding = await this.embedder.embedBits(result.text);
        } catch (cause) {
          throw asInferenceError(cause, 'INFERENCE_FAILED', 'embedding the output failed');
        }
      }
      return { ...result, bEmbedding, startedAt, finishedAt: this.#now() };
    } finally {
      this.#detach(entry);
      this.#running = null;
      queueMicrotask(() => this.#pump());
    }
  }

  #checkIdle(): void {
    if (this.#running !== null || this.queued > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
