/**
 * A relay started again with requests to resume restores its machines only once its peers are back (up
 * to `RESUME_PEER_WAIT_MS`), and it used to open its HTTP port after that: agents got connection errors
 * for seconds at every restart. The port now opens first; requests admitted meanwhile wait in the
 * admission log and are dispatched once the restore is done.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNetwork } from '@synod/browser-node';
import { NodeKey } from '@synod/shared';
import { createApiKey } from '../auth/api-keys.ts';
import { TEST_EMBEDDER } from '../store/test-admissions.ts';
import { freePort, waitUntil } from '../test-servers.ts';
import { type RelayOptions, startRelay } from './bun.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-restore-serving-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a relay started again serves HTTP while it restores its machines', () => {
  test('the port answers during the restore: /healthz says restoring, a request is admitted and waits', async () => {
    const dbUrl = `file:${join(dir, 'restore.db')}`;
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(91));
    const base = (net: MemoryNetwork): RelayOptions => ({
      dbUrl,
      key,
      transports: [net.join(key.nodeId)],
      embedders: [TEST_EMBEDDER],
      configuredModels: ['m'],
    });
    // The first run: a peer on the network, so the request is dispatched and its machine saved; no
    // node serves it, so it is still open when the relay stops.
    const before = new MemoryNetwork();
    before.join('node-1');
    const first = await startRelay(base(before));
    const apiKey = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
    await first.store.createApiKey(
      { id: apiKey.id, hash: apiKey.hash, label: 'tests', quotaPerDay: 100 },
      Date.now(),
    );
    const submit = async (url: string, prompt: string) => {
      const r = await fetch(`${url}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey.key}` },
        body: JSON.stringify({ prompt, params: { maxTokens: 4 } }),
      });
      expect(r.status).toBe(202);
      return ((await r.json()) as { requestId: string }).requestId;
    };
    const status = async (url: string, id: string) =>
      ((await (await fetch(`${url}/v1/inference/${id}`)).json()) as { status: string }).status;
    const open = await submit(first.url, 'Once upon a time');
    await waitUntil('the request is dispatched', async () => (await status(first.url, open)) === 'pending');
    await first.stop();

    // The second run: no peer yet, so its restored machine waits up to `peerWaitMs` for one.
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const logs: Record<string, unknown>[] = [];
    let startedAt: number | null = null;
    const starting = startRelay({
      ...base(new MemoryNetwork()),
      port,
      waits: { peerWaitMs: 4_000 },
      log: (e) => logs.push(e),
    }).then((r) => {
      startedAt = Date.now();
      return r;
    });
    try {
      await waitUntil(
        'the port answers',
        async () => (await fetch(`${url}/healthz`).catch(() => null))?.status === 200,
        10_000,
        25,
      );
      const during = Date.now();
      const health = (await (await fetch(`${url}/healthz`)).json()) as {
        ok: boolean;
        network: { detail?: { restoring?: boolean } };
      };
      expect(health.ok).toBe(true);
      expect(health.network.detail?.restoring).toBe(true);
      // Taken, durable in the admission log, and left there until the restore is over.
      const queued = await submit(url, 'Lily went to the park');
      expect(await status(url, queued)).toBe('queued');
      // The stored history reads as before.
      expect(await status(url, open)).toBe('pending');
      expect(startedAt).toBeNull();

      const second = await starting;
      expect(startedAt ?? 0).toBeGreaterThan(during);
      expect(logs.map((l) => l['msg'])).toContain('resumed request');
      expect(logs.findIndex((l) => l['msg'] === 'relay listening')).toBeLessThan(
        logs.findIndex((l) => l['msg'] === 'resumed request'),
      );
      const after = (await (await fetch(`${url}/healthz`)).json()) as {
        network: { detail?: { restoring?: boolean } };
      };
      expect(after.network.detail?.restoring).toBeUndefined();
      // Still queued: this relay has no peer to start it for, as any relay without one.
      expect(await status(url, queued)).toBe('queued');
      expect(second.dispatcher.queue()?.queued).toBe(1);
    } finally {
      await starting.then(
        (r) => r.stop().catch(() => undefined),
        () => undefined,
      );
    }
  }, 30_000);
});
