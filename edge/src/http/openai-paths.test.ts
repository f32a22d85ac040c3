import { describe, expect, test } from 'bun:test';
import { isOpenAiPath } from './openai-paths.ts';

describe('isOpenAiPath', () => {
  test("OpenAI's routes, served or not, are OpenAI's; Synod's own and paths outside /v1/ are not", () => {
    for (const p of [
      '/v1/chat/completions',
      '/v1/models',
      '/v1/models/x',
      '/v1/responses',
      '/v1/embeddings',
    ]) {
      expect(isOpenAiPath(p)).toBe(true);
    }
    for (const p of [
      '/v1/inference',
      '/v1/inference/ab/events',
      '/v1/verify/1:0xab:2',
      '/v1/history',
      '/v1/nodes',
    ]) {
      expect(isOpenAiPath(p)).toBe(false);
    }
    for (const p of ['/healthz', '/metrics', '/openapi.json', '/internal/v1/wake', '/v1']) {
      expect(isOpenAiPath(p)).toBe(false);
    }
    // A prefix of a Synod route is not that route.
    expect(isOpenAiPath('/v1/inferences')).toBe(true);
  });
});
