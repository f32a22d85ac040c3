import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeKey, packetId, signPacket } from '@synod/shared';
import type { RunningRelay } from '../runtime/bun.ts';
import { loneRelay } from '../test-relay.ts';

/**
 * Anyone may send heartbeats, from fresh keys too, and each node of `/v1/nodes` carries what its
 * heartbeat advertised (up to 32 models and 32 embedders): 500 such nodes make a page of about 8 MB for
 * one GET that needs no key. A page is charged to the client address's `read:` bucket by its size too,
 * past the one token of any read; pages below 128 Ki characters cost that token alone, as before.
 */
const dir = mkdtempSync(join(tmpdir(), 'synod-public-hostile-'));
let relay: RunningRelay;

beforeAll(async () => {
  relay = await loneRelay(`file:${join(dir, 'relay.db')}`, 13, {
    // A bucket that does not refill during the test.
    config: { rateLimit: { ratePerSecond: 0.001, burst: 100 } },
  });
  const now = Date.now();
  for (let i = 0; i < 500; i++) {
    const seed = new Uint8Array(32).fill(15);
    seed[0] = i & 0xff;
    seed[1] = i >> 8;
    const packet = await signPacket(await NodeKey.fromSeed(seed), 'heartbeat', {
      role: 'node',
      software: 's'.repeat(64),
      models: Array.from({ length: 32 }, (_, m) => ({
        id: `${'m'.repeat(120)}-${m}`,
        fileHash: 'a'.repeat(64),
        engine: 'e'.repeat(32),
        tokensPerSecond: 1,
      })),
      embedders: Array.from({ length: 32 }, (_, m) => ({
        id: `${'u'.repeat(120)}-${m}`,
        fileHash: 'b'.repeat(64),
        bits: 512,
        embeddingsPerSecond: 1,
      })),
      capacity: { queued: 0, maxQueue: 4 },
      addresses: [],
      createdAt: now,
    });
    await relay.store.recordHeartbeat({ id: packetId(packet), packet }, now);
  }
}, 60_000);

afterAll(async () => {
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const page = async (query: string, address: string) => {
  const r = await relay.app.request(`/v1/nodes?${query}`, undefined, {
    requestIP: () => ({ address, family: 'IPv4', port: 40_000 }),
  });
  return { status: r.status, chars: (await r.text()).length };
};

describe('/v1/nodes pages cost their size', () => {
  test('a page of 500 fat nodes spends most of the burst; small pages cost a token, as before', async () => {
    const first = await page('limit=500', '203.0.113.9');
    expect(first.status).toBe(200);
    expect(first.chars).toBeGreaterThan(6_000_000);
    expect((await page('limit=500', '203.0.113.9')).status).toBe(429);
    // What is left of the bucket still serves light pages, a token each.
    const light: number[] = [];
    for (let i = 0; i < 10; i++) light.push((await page('limit=1', '203.0.113.9')).status);
    expect(light.every((s) => s === 200)).toBe(true);
    // Another address has its own bucket.
    expect((await page('limit=500', '203.0.113.10')).status).toBe(200);
  });
});
