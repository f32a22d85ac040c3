/**
 * Each heartbeat a relay's node heard was a database write, every 10 s a node. A node's heartbeat is
 * written at most once per `HEARTBEAT_WRITE_INTERVAL_MS` unless what it advertises changed, and a relay
 * remembers what it wrote for a bounded number of nodes.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type HeartbeatBody, NodeKey } from '@synod/shared';
import { HEARTBEAT_WRITE_INTERVAL_MS, HeartbeatWrites } from '../store/heartbeat-writes.ts';
import { type HistoryStore, MAX_IDLE_NODES } from '../store/history-store.ts';
import { openHistory } from '../store/open-history.ts';
import { storedHeartbeat, testHeartbeat, throwawayHeartbeat } from '../store/test-heartbeats.ts';
import { recordPacket } from './history-sink.ts';
import { ONLINE_WITHIN_MS } from './proven-nodes.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-sink-heartbeats-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A node's heartbeat heard by the relay's node at `at`, through the sink. */
async function hear(
  store: HistoryStore,
  key: NodeKey,
  at: number,
  body: Partial<Omit<HeartbeatBody, 'createdAt'>> = {},
) {
  const s = storedHeartbeat(await testHeartbeat(key, at, body));
  // Whether it was written (true) or skipped, not due yet (false, the database untouched).
  return recordPacket(store, s.packet, s.id, at);
}

async function stored(store: HistoryStore, nodeId: string) {
  const [n] = (await store.listNodes({ limit: 1, node: nodeId })).nodes;
  const [h] = await store.recentHeartbeats([nodeId], 0);
  return { lastSeen: n?.lastSeen, models: n?.models, capacity: h?.body.capacity };
}

const T0 = 1_700_000_000_000;
const model = {
  id: 'm',
  fileHash: 'a'.repeat(64),
  engine: 'e',
  tokensPerSecond: 10,
};

describe('heartbeat writes', () => {
  test('at most one per interval while what the node advertises stays the same; at once when it changes', async () => {
    const h = await openHistory(`file:${join(dir, 'interval.db')}`);
    try {
      const key = await NodeKey.fromSeed(new Uint8Array(32).fill(41));
      expect(await hear(h.store, key, T0)).toBe(true);
      expect((await stored(h.store, key.nodeId)).lastSeen).toBe(T0);
      // Every 10 s, as nodes send them: not written until the interval is over.
      for (let t = 10_000; t < HEARTBEAT_WRITE_INTERVAL_MS; t += 10_000) {
        expect(await hear(h.store, key, T0 + t)).toBe(false);
        expect((await stored(h.store, key.nodeId)).lastSeen).toBe(T0);
      }
      await hear(h.store, key, T0 + HEARTBEAT_WRITE_INTERVAL_MS);
      let at = T0 + HEARTBEAT_WRITE_INTERVAL_MS;
      expect((await stored(h.store, key.nodeId)).lastSeen).toBe(at);
      // A model more: written at once.
      at += 1_000;
      await hear(h.store, key, at, { models: [model] });
      expect(await stored(h.store, key.nodeId)).toMatchObject({ lastSeen: at, models: [model] });
      // Another job queued, with room left: not written.
      await hear(h.store, key, at + 1_000, { models: [model], capacity: { queued: 2, maxQueue: 4 } });
      expect(await stored(h.store, key.nodeId)).toMatchObject({
        lastSeen: at,
        capacity: { queued: 0, maxQueue: 4 },
      });
      // Its queue full (the seat policy counts only nodes with room): written at once.
      at += 2_000;
      await hear(h.store, key, at, { models: [model], capacity: { queued: 4, maxQueue: 4 } });
      expect(await stored(h.store, key.nodeId)).toMatchObject({
        lastSeen: at,
        capacity: { queued: 4, maxQueue: 4 },
      });
      // Other software, other addresses: written at once.
      at += 1_000;
      await hear(h.store, key, at, { models: [model], capacity: { queued: 4, maxQueue: 4 }, software: 'v2' });
      expect((await stored(h.store, key.nodeId)).lastSeen).toBe(at);
      at += 1_000;
      const addresses = ['/ip4/127.0.0.1/tcp/1'];
      await hear(h.store, key, at, {
        models: [model],
        capacity: { queued: 4, maxQueue: 4 },
        software: 'v2',
        addresses,
      });
      expect((await stored(h.store, key.nodeId)).lastSeen).toBe(at);
      // A relay that starts again (a new store over the database) writes the next one.
      const again = await openHistory(`file:${join(dir, 'interval.db')}`);
      try {
        await hear(again.store, key, at + 1_000, {
          models: [model],
          capacity: { queued: 4, maxQueue: 4 },
          software: 'v2',
          addresses,
        });
        expect((await stored(again.store, key.nodeId)).lastSeen).toBe(at + 1_000);
      } finally {
        again.client.close();
      }
    } finally {
      h.client.close();
    }
  });

  test('a node heard every 10 s stays online for a relay reading the database (proven nodes after a restart)', async () => {
    expect(HEARTBEAT_WRITE_INTERVAL_MS + 10_000).toBeLessThan(ONLINE_WITHIN_MS);
    const h = await openHistory(`file:${join(dir, 'online.db')}`);
    try {
      const key = await NodeKey.fromSeed(new Uint8Array(32).fill(42));
      for (let t = 0; t <= 3 * 60_000; t += 10_000) {
        await hear(h.store, key, T0 + t);
        // Any moment until the next heartbeat, a relay reading the history finds it online.
        const now = T0 + t + 9_999;
        const recent = await h.store.recentHeartbeats([key.nodeId], now - ONLINE_WITHIN_MS);
        expect(recent.map((r) => r.nodeId)).toEqual([key.nodeId]);
      }
    } finally {
      h.client.close();
    }
  });

  test('a node pushed out by a flood of throwaway keys is written again at its next heartbeat', async () => {
    const h = await openHistory(`file:${join(dir, 'flood.db')}`);
    try {
      const key = await NodeKey.fromSeed(new Uint8Array(32).fill(43));
      await hear(h.store, key, T0);
      for (let i = 0; i < MAX_IDLE_NODES; i++) {
        const s = await throwawayHeartbeat(i, T0 + 1 + i);
        await recordPacket(h.store, s.packet, s.id, T0 + 1 + i);
      }
      expect((await stored(h.store, key.nodeId)).lastSeen).toBeUndefined();
      await hear(h.store, key, T0 + 10_000);
      expect((await stored(h.store, key.nodeId)).lastSeen).toBe(T0 + 10_000);
    } finally {
      h.client.close();
    }
  }, 60_000);

  test('what a relay remembers is bounded, the least recently heard forgotten first', () => {
    const w = new HeartbeatWrites(3, 1_000);
    for (const id of ['a', 'b', 'c']) w.wrote(id, 'x', 0);
    expect(w.due('a', 'x', 500)).toBe(false);
    w.wrote('d', 'x', 0);
    expect(w.size).toBe(3);
    // b was the least recently heard (a was heard again): forgotten, so its next heartbeat is written.
    expect(w.due('b', 'x', 500)).toBe(true);
    expect(w.due('a', 'x', 500)).toBe(false);
    expect(w.due('a', 'y', 500)).toBe(true);
    expect(w.due('a', 'x', 1_000)).toBe(true);
    w.forget('a');
    expect(w.size).toBe(2);
  });
});
