import {
  type CoordinatorState,
  type EmbeddingModelRef,
  outputDigest,
  type Packet,
  packetId,
  rejectedBeforeBits,
} from '@synod/shared';
import { NodeError } from './node-errors.ts';

/** Texts whose re-embedding a coordinator keeps (`ReembedQueue`): a few requests' worth of reveals. */
export const REEMBED_CACHE = 1_024;

/**
 * The text of `reveal` a coordinator re-embeds (`ReembedConfig`), or null when its machine would not use
 * the bits, so the reveal is stepped in without them at once: the frame pins another embedder (another id
 * or file hash, or more bits than `embedder` gives), the request is not collecting reveals (not sealed
 * yet, or its verdict is out), the reveal is held with bits already, or the verdict rejects it before it
 * looks at bits (`rejectedBeforeBits`: not a sealed member's, not opening its commitment, past the reveal
 * window, ...). A reveal that opens its member's commitment has the one output that member committed to,
 * so a seated key gets at most one text embedded a request whatever it sends.
 */
export function textToReembed(
  s: CoordinatorState,
  reveal: Packet<'reveal'>,
  embedder: EmbeddingModelRef,
): string | null {
  if (s.phase !== 'sealed' || s.seal === null || reveal.body.requestId !== s.requestId) return null;
  const pinned = s.request.body.frame.embeddingModel;
  if (pinned.id !== embedder.id || pinned.fileHash !== embedder.fileHash || pinned.bits > embedder.bits) {
    return null;
  }
  if (s.reembedded?.[packetId(reveal)] !== undefined) return null;
  if (rejectedBeforeBits(s.request.body, s.seal.body, reveal) !== null) return null;
  return reveal.body.output;
}

/** One text to embed, and everyone waiting for its bits. */
interface Job {
  digest: string;
  text: string;
  /** Arrival order: among texts of one length, the first queued goes first. */
  seq: number;
  /** The request of the first reveal that asked (for the embedder's log lines). */
  requestId: string;
  waiters: { resolve: (bits: string) => void; reject: (e: unknown) => void }[];
}

export interface ReembedQueueOptions {
  /**
   * The embedding of one text: its full bits, lowercase hex; throws when it fails (every reveal waiting
   * for that text then counts unchecked; a failure is not kept, the next reveal of it tries again).
   * Never called while another call runs.
   */
  embed(text: string, requestId: string): Promise<string>;
  /** Texts whose bits are kept (default `REEMBED_CACHE`), the oldest dropped first. */
  cacheSize?: number;
}

/**
 * A coordinator's re-embeddings, one at a time, the shortest text first across every request (ties in
 * arrival order): an honest answer of a few hundred characters (about 20 ms) waits at most for the one
 * embedding running, never behind the long texts queued before it, and long texts wait for the short
 * ones (seated keys revealing long texts under many requests delay only each other's verdicts). One
 * embedding a distinct text: a text embedded lately is answered from the cache (by its output digest),
 * and reveals of a text queued or running wait for that one embedding.
 */
export class ReembedQueue {
  readonly #o: ReembedQueueOptions;
  readonly #cacheSize: number;
  /** Bits (hex) by output digest, oldest first. */
  readonly #cache = new Map<string, string>();
  /** Jobs queued or running, by output digest. */
  readonly #jobs = new Map<string, Job>();
  /** Jobs not started: a binary heap, the shortest text (then the first queued) at the top. */
  readonly #heap: Job[] = [];
  #running: Job | null = null;
  #seq = 0;
  #chars = 0;
  #closed = false;

  constructor(options: ReembedQueueOptions) {
    this.#o = options;
    this.#cacheSize = options.cacheSize ?? REEMBED_CACHE;
  }

  /**
   * The bits of `text` (full, hex): from the cache, or once its embedding ran. Rejects with the embedder's
   * error, or `NODE_CLOSED` once `close` was called before its embedding ran.
   */
  bits(text: string, requestId: string): Promise<string> {
    if (this.#closed) return Promise.reject(closedError());
    const digest = outputDigest(text);
    const cached = this.#cache.get(digest);
    if (cached !== undefined) return Promise.resolve(cached);
    return new Promise<string>((resolve, reject) => {
      const queued = this.#jobs.get(digest);
      if (queued !== undefined) {
        queued.waiters.push({ resolve, reject });
        return;
      }
      const job: Job = { digest, text, seq: this.#seq++, requestId, waiters: [{ resolve, reject }] };
      this.#jobs.set(digest, job);
      this.#chars += text.length;
      this.#push(job);
      this.#next();
    });
  }

  /** Texts waiting for their embedding, the one being embedded included, and their characters. */
  depth(): { texts: number; chars: number } {
    return { texts: this.#jobs.size, chars: this.#chars };
  }

  /** Refuse new texts and reject every reveal waiting for one not started; the one running ends as it ends. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const job of this.#heap.splice(0)) {
      this.#done(job);
      for (const w of job.waiters) w.reject(closedError());
    }
  }

  #next(): void {
    if (this.#running !== null || this.#closed) return;
    const job = this.#pop();
    if (job === undefined) return;
    this.#running = job;
    Promise.resolve()
      .then(() => this.#o.embed(job.text, job.requestId))
      .then(
        (bits) => {
          this.#keep(job.digest, bits);
          this.#done(job);
          for (const w of job.waiters) w.resolve(bits);
        },
        (e: unknown) => {
          this.#done(job);
          for (const w of job.waiters) w.reject(e);
        },
      )
      .finally(() => {
        this.#running = null;
        this.#next();
      });
  }

  #done(job: Job): void {
    this.#jobs.delete(job.digest);
    this.#chars -= job.text.length;
  }

  #keep(digest: string, bits: string): void {
    this.#cache.set(digest, bits);
    if (this.#cache.size > this.#cacheSize) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
  }

  #push(job: Job): void {
    const heap = this.#heap;
    heap.push(job);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(job, heap[parent] as Job)) break;
      heap[i] = heap[parent] as Job;
      i = parent;
    }
    heap[i] = job;
  }

  #pop(): Job | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right] as Job, heap[left] as Job) ? right : left;
      if (!before(heap[child] as Job, last)) break;
      heap[i] = heap[child] as Job;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

/** Whether `a` is embedded before `b`: the shorter text, then the first queued. */
function before(a: Job, b: Job): boolean {
  return a.text.length !== b.text.length ? a.text.length < b.text.length : a.seq < b.seq;
}

function closedError(): NodeError {
  return new NodeError('NODE_CLOSED', 'the node was closed before this text was embedded');
}
