/**
 * A relay whose embedder could not be loaded still serves (its verdicts take reveals with the bits they
 * claim, as before re-embedding existed), and says so where an operator looks: /healthz stays 200 with a
 * warning REEMBED_UNAVAILABLE, which its OpenAPI document declares.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNetwork } from '@synod/browser-node';
import { openApiDocument } from './openapi.ts';
import type { RunningRelay } from './runtime/bun.ts';
import { type Doc, mismatches } from './test-openapi-check.ts';
import { loneRelay } from './test-relay.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-reembed-health-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function health(relay: RunningRelay) {
  const r = await relay.app.request('/healthz');
  const text = await r.text();
  const doc = openApiDocument('test') as unknown as Doc;
  expect(mismatches(doc, 'GET', '/healthz', { status: r.status, headers: r.headers, text })).toEqual([]);
  return { status: r.status, body: JSON.parse(text) as Record<string, unknown> };
}

describe("/healthz and the relay's embedder", () => {
  test('an embedder that could not be loaded: 200, with the warning REEMBED_UNAVAILABLE and why', async () => {
    const net = new MemoryNetwork();
    net.join('a-node');
    const relay = await loneRelay(
      `file:${join(dir, 'without.db')}`,
      94,
      { reembedUnavailable: 'Cannot find module @energetic-ai/core' },
      net,
    );
    try {
      const h = await health(relay);
      expect(h.status).toBe(200);
      expect(h.body['warnings']).toEqual([
        expect.objectContaining({
          code: 'REEMBED_UNAVAILABLE',
          message: expect.stringContaining('Cannot find module @energetic-ai/core'),
          hint: expect.stringContaining('npm install'),
        }),
      ]);
    } finally {
      await relay.stop();
    }
  });

  test('a relay not asked to re-embed, or re-embedding: no warning', async () => {
    const net = new MemoryNetwork();
    net.join('a-node');
    const relay = await loneRelay(`file:${join(dir, 'plain.db')}`, 95, {}, net);
    try {
      const h = await health(relay);
      expect(h.status).toBe(200);
      expect(h.body['warnings']).toBeUndefined();
    } finally {
      await relay.stop();
    }
  });
});
