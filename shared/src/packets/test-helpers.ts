/**
 * Test helpers (not a test double: real keys, real signatures) for building valid packet bodies.
 * Used by tests across shared/; never imported by production code.
 */
import { resolveFrame } from '../frame/frame.ts';
import { NodeKey } from '../identity/node-key.ts';
import { deriveRequestId } from './request-id.ts';
import type { RequestBody } from './schemas.ts';

export const TEST_EMBEDDER = {
  id: 'use-lite-512',
  fileHash: '11'.repeat(32),
  bits: 512,
} as const;

export function seedKey(i: number): Promise<NodeKey> {
  return NodeKey.fromSeed(new Uint8Array(32).fill(i));
}

export function requestBody(overrides: Partial<RequestBody> = {}): RequestBody {
  const body = {
    nonce: '00'.repeat(16),
    prompt: 'Once upon a time',
    acceptedModels: ['stories260K'],
    params: { temperature: 0, maxTokens: 32 },
    frame: resolveFrame({ embeddingModel: { ...TEST_EMBEDDER } }),
    origin: { kind: 'http' as const },
    createdAt: 1_700_000_000_000,
    ...overrides,
  };
  const { requestId: _drop, ...rest } = body as RequestBody;
  return { ...rest, requestId: overrides.requestId ?? deriveRequestId(rest) } as RequestBody;
}
