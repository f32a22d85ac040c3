/**
 * Heartbeats from keys made for the purpose (they cost nothing) each made a `nodes` row kept for a day: an
 * audit's 40 s of them over one peer grew relay.db from 0.6 MB to 10.5 MB. The rows of nodes that never
 * took part in a request are bounded (`MAX_IDLE_NODES`), in the transaction of each insert, whichever
 * relay over the database writes it; nodes that took part are never pushed out by it.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from '@libsql/client';
import { type AnyPacket, type Packet, type PacketType, packetId } from '@synod/shared';
import { MAX_IDLE_NODES } from './history-store.ts';
import { openHistory } from './open-history.ts';
import { storedHeartbeat, testHeartbeat, throwawayHeartbeat } from './test-heartbeats.ts';
import { storeRequest } from './test-requests.ts';

const VECTORS = resolve(import.meta.dir, '../../../shared/test-vectors/v1.json');
const scenario = (
  JSON.parse(readFileSync(VECTORS, 'utf8')) as { scenarios: { transcript: { packets: AnyPacket[] } }[] }
).scenarios[0];
if (!scenario) throw new Error('no golden transcript');
const of = <T extends PacketType>(type: T) =>
  scenario.transcript.packets.filter((p) => p.type === type) as Packet<T>[];
const stored = <T extends PacketType>(packet: Packet<T>) => ({ id: packetId(packet), packet });

const dir = mkdtempSync(join(tmpdir(), 'synod-node-bound-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Rows of nodes that never took part in a request: no reputation row, no commit, no seal membership. */
async function idleRows(client: Client): Promise<number> {
  const r = await client.execute(`SELECT count(*) AS n FROM nodes n
    WHERE NOT EXISTS (SELECT 1 FROM reputation r WHERE r.node_id = n.node_id)
      AND NOT EXISTS (SELECT 1 FROM commits c WHERE c.node_id = n.node_id)
      AND NOT EXISTS (SELECT 1 FROM seal_members s WHERE s.node_id = n.node_id)`);
  return Number(r.rows[0]?.['n']);
}

/** The database file's size with its WAL folded in (as a checkpoint leaves it). */
async function fileSize(client: Client, path: string): Promise<number> {
  await client.execute('PRAGMA wal_checkpoint(TRUNCATE)');
  return statSync(path).size;
}

/** A heartbeat as `from` would send it (the store checks no signature: the node did before). */
async function heartbeatOf(from: string, at: number) {
  const p = { ...(await testHeartbeat(99, at)), from };
  return storedHeartbeat(p);
}

describe('the rows of nodes that never took part are bounded', () => {
  test('a flood of throwaway keys leaves them at the bound, keeps the nodes that took part, and the file stops growing', async () => {
    const path = join(dir, 'flood.db');
    const h = await openHistory(`file:${path}`);
    try {
      // Nodes that took part, heard long before the flood: committed to a request (the golden one), or
      // with a reputation row.
      const [request] = of('request');
      if (!request) throw new Error('no request');
      await storeRequest(h.store, stored(request), 1);
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      const committed = [...new Set(of('commit').map((c) => c.from))];
      expect(committed.length).toBeGreaterThan(0);
      for (const id of committed) await h.store.recordHeartbeat(await heartbeatOf(id, 100), 100);
      const recorded = await testHeartbeat(31, 100);
      await h.store.recordHeartbeat(storedHeartbeat(recorded), 100);
      await h.client.execute({
        sql: 'INSERT INTO reputation (node_id, updated_at) VALUES (?, 1)',
        args: [recorded.from],
      });
      const before = await fileSize(h.client, path);

      // The flood: twice the bound of fresh keys, one heartbeat each, a millisecond apart.
      let at = 10_000;
      for (let i = 0; i < 2 * MAX_IDLE_NODES; i++, at++) {
        await h.store.recordHeartbeat(await throwawayHeartbeat(i, at), at);
      }
      expect(await idleRows(h.client)).toBe(MAX_IDLE_NODES);
      const total = Number((await h.client.execute('SELECT count(*) AS n FROM nodes')).rows[0]?.['n']);
      expect(total).toBe(MAX_IDLE_NODES + committed.length + 1);
      // Those that took part are still listed, though heard before every key of the flood.
      for (const id of [...committed, recorded.from]) {
        expect((await h.store.listNodes({ limit: 1, node: id })).nodes.map((n) => n.nodeId)).toEqual([id]);
      }
      // The least recently seen idle nodes went: the first half of the flood.
      const first = await throwawayHeartbeat(0, 0);
      const last = await throwawayHeartbeat(2 * MAX_IDLE_NODES - 1, 0);
      expect((await h.store.listNodes({ limit: 1, node: first.packet.from })).nodes).toEqual([]);
      expect((await h.store.listNodes({ limit: 1, node: last.packet.from })).nodes).toHaveLength(1);
      const afterOne = await fileSize(h.client, path);

      // As much again: the file grows no more (freed pages are used again).
      for (let i = 0; i < 2 * MAX_IDLE_NODES; i++, at++) {
        await h.store.recordHeartbeat(await throwawayHeartbeat(i, at, 1), at);
      }
      expect(await idleRows(h.client)).toBe(MAX_IDLE_NODES);
      const afterTwo = await fileSize(h.client, path);
      console.log(
        `relay.db: ${before} bytes before, ${afterOne} after ${2 * MAX_IDLE_NODES} fresh keys, ${afterTwo} after ${4 * MAX_IDLE_NODES}`,
      );
      expect(afterTwo).toBeLessThanOrEqual(afterOne * 1.02);

      // An honest newcomer after the flood is listed at once.
      const newcomer = await testHeartbeat(32, at);
      await h.store.recordHeartbeat(storedHeartbeat(newcomer), at);
      const listed = await h.store.listNodes({ limit: 1, node: newcomer.from });
      expect(listed.nodes.map((n) => [n.nodeId, n.lastSeen])).toEqual([[newcomer.from, at]]);
      expect((await h.store.listNodes({ limit: 1 })).nodes[0]?.nodeId).toBe(newcomer.from);
    } finally {
      h.client.close();
    }
  }, 60_000);

  test('two relays over one database keep the bound together', async () => {
    const path = join(dir, 'two.db');
    const a = await openHistory(`file:${path}`);
    const b = await openHistory(`file:${path}`);
    try {
      const each = MAX_IDLE_NODES / 2 + 400;
      const flood = async (h: typeof a, salt: number) => {
        for (let i = 0; i < each; i++) {
          const at = 10_000 + 2 * i + salt;
          await h.store.recordHeartbeat(await throwawayHeartbeat(i, at, salt), at);
        }
      };
      await Promise.all([flood(a, 0), flood(b, 1)]);
      expect(await idleRows(a.client)).toBe(MAX_IDLE_NODES);
    } finally {
      a.client.close();
      b.client.close();
    }
  }, 60_000);

  test('an update of a node already stored pushes no one out, and a node heard again moves to the front', async () => {
    const h = await openHistory(`file:${join(dir, 'again.db')}`);
    try {
      for (let i = 0; i < MAX_IDLE_NODES; i++) {
        await h.store.recordHeartbeat(await throwawayHeartbeat(i, 1_000 + i), 1_000 + i);
      }
      // The oldest is heard again: now the newest, so the next new node pushes out the second oldest.
      const oldest = await throwawayHeartbeat(0, 50_000);
      expect(await h.store.recordHeartbeat(oldest, 50_000)).toEqual([]);
      expect(await idleRows(h.client)).toBe(MAX_IDLE_NODES);
      const second = (await throwawayHeartbeat(1, 0)).packet.from;
      expect(await h.store.recordHeartbeat(await throwawayHeartbeat(0, 50_001, 2), 50_001)).toEqual([second]);
      expect(await idleRows(h.client)).toBe(MAX_IDLE_NODES);
      expect((await h.store.listNodes({ limit: 1, node: oldest.packet.from })).nodes).toHaveLength(1);
      // Over the bound (rows a relay without it left, say): an update still pushes no one out, and the
      // next new node brings the idle rows back to the bound, the least recently seen out.
      await h.client.execute(`INSERT INTO nodes (node_id, role, software, last_heartbeat, last_heartbeat_id,
          models, embedders, tokens_per_second, embeddings_per_second, first_seen, last_seen)
        SELECT 'old-' || node_id, role, software, last_heartbeat, last_heartbeat_id, models, embedders,
          tokens_per_second, embeddings_per_second, 1, 1 FROM nodes LIMIT 50`);
      expect(await idleRows(h.client)).toBe(MAX_IDLE_NODES + 50);
      expect(await h.store.recordHeartbeat(await throwawayHeartbeat(5, 60_000), 60_000)).toEqual([]);
      const gone = await h.store.recordHeartbeat(await throwawayHeartbeat(1, 60_001, 2), 60_001);
      expect(gone).toHaveLength(51);
      expect(gone.filter((id) => id.startsWith('old-'))).toHaveLength(50);
      expect(await idleRows(h.client)).toBe(MAX_IDLE_NODES);
    } finally {
      h.client.close();
    }
  }, 60_000);
});
