/**
 * Real request bodies and admissions for the store and relay tests (built by `buildRequest`, the
 * accept path's own builder, with a fixed embedder and model).
 */
import type { RequestBody } from '@synod/shared';
import { buildRequest } from '../inference-input.ts';
import type { Admission } from './intake-store.ts';

export const TEST_EMBEDDER = { id: 'use-lite-512', fileHash: 'a'.repeat(64), bits: 512 };
export const TEST_COORDINATOR = 'c'.repeat(64);

export function testBody(o: { prompt?: string; createdAt?: number; maxTimeMs?: number } = {}): RequestBody {
  return buildRequest(
    { prompt: o.prompt ?? 'Once upon a time', frame: { maxTimeMs: o.maxTimeMs ?? 30_000 } },
    { knownModels: new Set(['m']), defaultModels: ['m'], embedders: [TEST_EMBEDDER] },
    o.createdAt ?? 1_000_000,
    (len) => crypto.getRandomValues(new Uint8Array(len)),
  ).body;
}

/** A new request by `key_a` with a daily quota of 100, unless `o` says otherwise. */
export function testAdmission(o: Partial<Admission> = {}): Admission {
  return { body: testBody(), callerId: 'key_a', quotaPerDay: 100, day: '2026-11-22', ...o };
}
