import {
  deriveRequestId,
  type EmbeddingModelRef,
  type Frame,
  type InferenceParams,
  type RequestBody,
  resolveFrame,
} from '@synod/shared';

/** What a test sets of a request; everything but the embedder has a default. */
export interface TestRequestOptions {
  /** The frame's embedding model (the serving node's embedder). */
  embedder: EmbeddingModelRef;
  /** A number is written as 32 hex digits, a string is taken as is; 0 unless given. */
  nonce?: number | string;
  /** `hi` unless given. */
  prompt?: string;
  /** `['m']` unless given. */
  acceptedModels?: string[];
  /** `{ temperature: 0, maxTokens: 8 }` unless given. */
  params?: InferenceParams;
  /**
   * Frame fields over quorum 1, maxTimeMs 10 s and revealWindowMs 1 s; maxCommits is the quorum unless
   * given, and the rest is `FRAME_DEFAULTS`.
   */
  frame?: Partial<Omit<Frame, 'embeddingModel'>>;
  /** Now unless given. */
  createdAt?: number;
}

/**
 * For tests: a request body from the HTTP API, its `requestId` derived from its content. Requests
 * made in one test need different nonces (or prompts) to be different requests.
 */
export function testRequest(o: TestRequestOptions): RequestBody {
  const content = {
    nonce: typeof o.nonce === 'string' ? o.nonce : (o.nonce ?? 0).toString(16).padStart(32, '0'),
    prompt: o.prompt ?? 'hi',
    acceptedModels: o.acceptedModels ?? ['m'],
    params: o.params ?? { temperature: 0, maxTokens: 8 },
    frame: resolveFrame({
      quorum: 1,
      maxTimeMs: 10_000,
      revealWindowMs: 1_000,
      ...o.frame,
      embeddingModel: o.embedder,
    }),
    origin: { kind: 'http' as const },
    createdAt: o.createdAt ?? Date.now(),
  };
  return { ...content, requestId: deriveRequestId(content) };
}
