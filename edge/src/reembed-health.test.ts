/**
 * A relay whose embedder could not be loaded still serves (its verdicts take reveals with the bits they
 * claim, as before re-embedding existed), and says so where an operator looks: /healthz stays 200 with a
 * warning REEMBED_UNAVAILABLE, which its OpenAPI document declares. One whose embedder's worker died has
 * it started again, counted on /metrics.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNetwork } from '@synod/browser-node';
import { RestartingEmbedder, WorkerEmbedder } from '@synod/browser-node/inference';
import { openApiDocument } from './openapi.ts';
import type { RunningRelay } from './runtime/bun.ts';
import { type Doc, mismatches } from './test-openapi-check.ts';
import { loneRelay } from './test-relay.ts';
import { waitUntil } from './test-servers.ts';

/** The real inference worker, but an embedding of `crash:exit` ends its thread (browser-node's double). */
const CRASHING_WORKER = new URL(
  './crashing-inference-worker-double.ts',
  import.meta.resolve('@synod/browser-node/inference'),
);

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

  test('an embedder whose worker is down: 200, with the warning REEMBED_DOWN (since, tries), none once it is back', async () => {
    const net = new MemoryNetwork();
    net.join('a-node');
    let down: { since: number; error: string; attempts: number } | null = {
      since: Date.UTC(2026, 10, 25, 3, 0, 0),
      error: 'the inference worker exited (code 134)',
      attempts: 2,
    };
    const relay = await loneRelay(`file:${join(dir, 'down.db')}`, 97, { reembedDown: () => down }, net);
    try {
      const h = await health(relay);
      expect(h.status).toBe(200);
      expect(h.body['warnings']).toEqual([
        expect.objectContaining({
          code: 'REEMBED_DOWN',
          message: expect.stringContaining('code 134'),
          since: '2026-11-25T03:00:00.000Z',
        }),
      ]);
      down = null;
      expect((await health(relay)).body['warnings']).toBeUndefined();
    } finally {
      await relay.stop();
    }
  });

  test("an embedder whose worker died: started again, /metrics counts it, the relay's stop leaves none", async () => {
    const lines: Record<string, unknown>[] = [];
    const embedder = new RestartingEmbedder({
      create: (died) =>
        new WorkerEmbedder({ kind: 'use-lite' }, { workerUrl: CRASHING_WORKER, onWorkerFailed: died }),
      firstDelayMs: 20,
      log: (line) => lines.push(line),
    });
    await embedder.load();
    const net = new MemoryNetwork();
    net.join('a-node');
    const relay = await loneRelay(
      `file:${join(dir, 'restarting.db')}`,
      96,
      {
        reembed: { embedder: embedder.ref, embed: (text) => embedder.embedBits(text) },
        reembedRestarts: () => ({ restarted: embedder.restarts, failed: embedder.failedRestarts }),
      },
      net,
    );
    const scrape = async () => (await relay.app.request('/metrics')).text();
    try {
      const before = await embedder.embedBits('a reveal');
      expect(await scrape()).toMatch(/^synod_reembed_restarts_total\{outcome="restarted"\} 0$/m);
      await expect(embedder.embedBits('crash:exit')).rejects.toMatchObject({ code: 'WORKER_FAILED' });
      await waitUntil('the embedder to be started again', async () =>
        /^synod_reembed_restarts_total\{outcome="restarted"\} 1$/m.test(await scrape()),
      );
      expect(await scrape()).toMatch(/^synod_reembed_restarts_total\{outcome="failed"\} 0$/m);
      expect(await embedder.embedBits('a reveal')).toEqual(before);
      expect(lines.map((l) => l['code'])).toEqual(['EMBEDDER_WORKER_DIED', 'EMBEDDER_RESTORED']);
      expect((await health(relay)).status).toBe(200);
    } finally {
      await relay.stop();
      await embedder.unload();
    }
    expect(embedder.loaded).toBe(false);
    expect(embedder.down).toBeNull();
  }, 60_000);
});
