import { type Admission, type AdmissionOutcome, intakeEntry } from './intake-store.ts';
import {
  encodeBatch,
  type WriterRequest,
  type WriterResponse,
  type WriterStats,
} from './intake-writer-protocol.ts';

/** Why the admission writer thread could not write a batch. The batch was not acknowledged. */
export class IntakeWriterError extends Error {
  constructor(
    readonly code: 'WRITER_FAILED' | 'WRITER_EXITED' | 'WRITER_TIMEOUT' | 'WRITER_CLOSED',
    message: string,
    readonly sqlCode?: string,
  ) {
    super(message);
    this.name = 'IntakeWriterError';
  }
}

export interface IntakeWriterThreadOptions {
  /** A local libSQL file URL (`file:…`), already migrated. */
  url: string;
  /** The coordinator every admitted request is queued for (the relay's node id). */
  coordinator: string;
  /** How long the thread's connection waits for another writer's lock. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** The worker script; default intake-writer.worker.ts next to this file. */
  workerUrl?: URL;
  /**
   * How long the thread may leave a message unanswered before it is taken for hung: every batch it holds
   * is then rejected (WRITER_TIMEOUT), the thread is ended, and the next batch starts a new one.
   * Default 30 s: well beyond `busyTimeoutMs` and any commit.
   */
  answerTimeoutMs?: number;
}

interface Pending {
  resolve: (r: WriterResponse & { ok: true }) => void;
  reject: (e: Error) => void;
  /** `performance.now()` when it was posted. */
  sentAt: number;
}

/** A request before `#post` numbers it (Omit over each member of the union, not the union at once). */
type Outgoing = WriterRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/**
 * The admission transaction on a thread of its own (a Worker with its own libSQL connection).
 *
 * The libSQL file client is synchronous: on the HTTP thread each group commit's statements and fsync
 * stopped every other request for their duration. Here the HTTP thread only posts the batch and waits;
 * it parses and validates the next requests meanwhile. The decisions are `IntakeStore.admit`'s
 * (`decideAndWrite`), so the same guarantees hold: each transaction all or nothing, an answer only
 * after its commit.
 *
 * If the thread dies, or leaves a message unanswered for `answerTimeoutMs` (alive but stuck), every
 * batch it held is rejected (none of them was acknowledged; one whose commit finished just before is
 * kept, and an Idempotency-Key retry replays it), and the next batch starts a new thread.
 */
export class IntakeWriterThread {
  readonly #o: Required<IntakeWriterThreadOptions>;
  #worker: Worker | null = null;
  #ready: Promise<void> | null = null;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;
  #restarts = 0;
  /** Checks the oldest unanswered message while any is pending. */
  #watchdog: ReturnType<typeof setInterval> | null = null;
  /** Ends the current thread as hung (set by `#start` for each thread). */
  #hang: () => void = () => undefined;

  private constructor(o: IntakeWriterThreadOptions) {
    this.#o = {
      url: o.url,
      coordinator: o.coordinator,
      busyTimeoutMs: o.busyTimeoutMs ?? 5000,
      workerUrl: o.workerUrl ?? new URL('./intake-writer.worker.ts', import.meta.url),
      answerTimeoutMs: o.answerTimeoutMs ?? 30_000,
    };
    if (!(this.#o.answerTimeoutMs > 0)) throw new RangeError('answerTimeoutMs must be positive');
  }

  /** Start the thread and open its connection. */
  static async open(o: IntakeWriterThreadOptions): Promise<IntakeWriterThread> {
    if (!o.url.startsWith('file:')) {
      throw new IntakeWriterError(
        'WRITER_FAILED',
        `the admission writer needs a local file URL, not ${o.url}`,
      );
    }
    const t = new IntakeWriterThread(o);
    await t.#start();
    return t;
  }

  /**
   * Admit a batch on the writer thread (see `IntakeStore.admit`): it commits together with whatever
   * else reached the thread while its previous transaction committed, and is answered after that.
   * Batches handed over one after another are written in that order.
   */
  async admit(batch: readonly Admission[], now: number): Promise<AdmissionOutcome[]> {
    if (batch.length === 0) return [];
    await this.#start();
    const r = await this.#send({ type: 'admit', batch: encodeBatch(batch.map(intakeEntry)), now });
    return JSON.parse(r.outcomes ?? '[]') as AdmissionOutcome[];
  }

  /** The transactions of the current thread (a restarted thread counts from zero). */
  async stats(): Promise<WriterStats> {
    await this.#start();
    const r = await this.#send({ type: 'stats' });
    return r.stats ?? { batches: 0, admissions: 0, largest: 0 };
  }

  /** Threads started after one died. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Close the connection and end the thread; batches still held are rejected. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const w = this.#worker;
    if (w !== null) {
      try {
        await this.#post(w, { type: 'close' });
      } catch {
        // it is going away either way
      }
      this.#worker = null;
      this.#ready = null;
      w.terminate();
    }
    this.#fail(new IntakeWriterError('WRITER_CLOSED', 'the admission writer is closed'));
  }

  #start(): Promise<void> {
    if (this.#closed)
      return Promise.reject(new IntakeWriterError('WRITER_CLOSED', 'the admission writer is closed'));
    if (this.#ready !== null) return this.#ready;
    const w = new Worker(this.#o.workerUrl.href);
    this.#worker = w;
    w.onmessage = (event: MessageEvent<WriterResponse>) => this.#answer(event.data);
    /** This thread is gone (it died, or was ended as hung): reject what it held; the next batch starts anew. */
    const end = (e: IntakeWriterError) => {
      if (this.#worker !== w) return;
      this.#worker = null;
      this.#ready = null;
      if (!this.#closed) this.#restarts++;
      w.terminate();
      this.#fail(e);
    };
    const died = (why: string) =>
      end(new IntakeWriterError('WRITER_EXITED', `the admission writer thread stopped: ${why}`));
    this.#hang = () =>
      end(
        new IntakeWriterError(
          'WRITER_TIMEOUT',
          `the admission writer thread left a message unanswered for ${this.#o.answerTimeoutMs} ms; it was restarted`,
        ),
      );
    w.addEventListener('error', (e) => died((e as ErrorEvent).message ?? 'error'));
    w.addEventListener('close', () => died('exited'));
    const ready = this.#post(w, {
      type: 'open',
      url: this.#o.url,
      busyTimeoutMs: this.#o.busyTimeoutMs,
      coordinator: this.#o.coordinator,
    }).then(() => undefined);
    this.#ready = ready;
    ready.catch(() => {
      // The database did not open there: end that thread; the next batch tries a new one.
      if (this.#ready === ready) this.#ready = null;
      if (this.#worker === w) this.#worker = null;
      w.terminate();
    });
    return ready;
  }

  #send(msg: Outgoing): Promise<WriterResponse & { ok: true }> {
    const w = this.#worker;
    if (w === null)
      return Promise.reject(new IntakeWriterError('WRITER_EXITED', 'the admission writer thread stopped'));
    return this.#post(w, msg);
  }

  #post(w: Worker, msg: Outgoing): Promise<WriterResponse & { ok: true }> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, sentAt: performance.now() });
      this.#watch();
      try {
        w.postMessage({ ...msg, id } as WriterRequest);
      } catch (e) {
        this.#pending.delete(id);
        reject(new IntakeWriterError('WRITER_FAILED', `could not reach the admission writer: ${String(e)}`));
      }
    });
  }

  #answer(r: WriterResponse): void {
    const p = this.#pending.get(r.id);
    if (!p) return;
    this.#pending.delete(r.id);
    if (r.ok) p.resolve(r);
    else p.reject(new IntakeWriterError('WRITER_FAILED', r.error.message, r.error.code));
  }

  #fail(e: Error): void {
    const held = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of held) p.reject(e);
  }

  /**
   * While messages are pending, check every quarter of the timeout whether the oldest (the first of
   * `#pending`, which keeps posting order) waited too long. One timer for all, not one per message.
   */
  #watch(): void {
    if (this.#watchdog !== null) return;
    const every = Math.max(10, Math.min(1_000, this.#o.answerTimeoutMs / 4));
    const t = setInterval(() => {
      const oldest = this.#pending.values().next().value;
      if (oldest === undefined) {
        clearInterval(t);
        this.#watchdog = null;
      } else if (performance.now() - oldest.sentAt > this.#o.answerTimeoutMs) {
        this.#hang();
      }
    }, every);
    (t as { unref?: () => void }).unref?.();
    this.#watchdog = t;
  }
}
