import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type AnyPacket, NodeKey, type Packet, type PacketType, packetId, signPacket } from '@synod/shared';
import { historySchema } from '@synod/shared/history';
import { drizzle } from 'drizzle-orm/libsql';
import { HistoryStore } from './history-store.ts';
import { openHistory } from './open-history.ts';

const VECTORS = resolve(import.meta.dir, '../../../shared/test-vectors/v1.json');
const scenario = (
  JSON.parse(readFileSync(VECTORS, 'utf8')) as { scenarios: { transcript: { packets: AnyPacket[] } }[] }
).scenarios[0];
if (!scenario) throw new Error('no golden transcript');
const packets = scenario.transcript.packets;
const of = <T extends PacketType>(type: T) => packets.filter((p) => p.type === type) as Packet<T>[];
const stored = <T extends PacketType>(packet: Packet<T>) => ({ id: packetId(packet), packet });

const dir = mkdtempSync(join(tmpdir(), 'synod-history-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A history holding the golden request and its commits, not yet sealed. */
async function beforeTheSeal(name: string) {
  const h = await openHistory(`file:${join(dir, `${name}.db`)}`);
  const [request] = of('request');
  if (!request) throw new Error('no request');
  await h.store.moveFromIntake([{ seq: 0, request: stored(request), status: 'pending' }], 1);
  for (const c of of('commit')) await h.store.recordCommit(stored(c));
  return h;
}

describe('HistoryStore: reveals', () => {
  const [seal] = of('seal');
  const [reveal] = of('reveal');
  if (!seal || !reveal) throw new Error('no seal or reveal');
  const requestId = seal.body.requestId;
  const members = new Set(seal.body.members.map((m) => m.nodeId));
  const strangerReveal = async (n: number) =>
    signPacket(await NodeKey.fromSeed(new Uint8Array(32).fill(200 + n)), 'reveal', reveal.body);

  test('a reveal taken before its seal from a node the seal leaves out goes when the seal is recorded', async () => {
    const h = await beforeTheSeal('early');
    try {
      const stranger = await strangerReveal(1);
      await h.store.recordReveal(stored(reveal));
      await h.store.recordReveal(stored(stranger));
      expect((await h.store.getRequest(requestId))?.reveals.map((r) => r.id)).toContain(packetId(stranger));
      await h.store.recordSeal(stored(seal), 2);
      const after = (await h.store.getRequest(requestId))?.reveals ?? [];
      expect(after.map((r) => r.id)).toEqual([packetId(reveal)]);
      // After the seal, a stranger's reveal is not taken at all.
      await h.store.recordReveal(stored(await strangerReveal(2)));
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      const all = (await h.store.getRequest(requestId))?.reveals ?? [];
      expect(all.every((r) => members.has(r.packet.from))).toBe(true);
      expect(all).toHaveLength(of('reveal').filter((r) => members.has(r.from)).length);
    } finally {
      h.client.close();
    }
  });

  test('at most two reveals a member (the verdict ends them: see app.test.ts)', async () => {
    const h = await beforeTheSeal('cap');
    try {
      await h.store.recordSeal(stored(seal), 2);
      const nodes = (
        JSON.parse(readFileSync(VECTORS, 'utf8')) as {
          scenarios: { nodes: { seed: string; nodeId: string }[] }[];
        }
      ).scenarios[0]?.nodes;
      const seed = nodes?.find((n) => n.nodeId === reveal.from)?.seed ?? '';
      const key = await NodeKey.fromSeed(Uint8Array.from(Buffer.from(seed, 'hex')));
      const again = (ms: number) =>
        signPacket(key, 'reveal', { ...reveal.body, createdAt: reveal.body.createdAt + ms });
      for (const r of [reveal, await again(1), await again(2)]) await h.store.recordReveal(stored(r));
      const mine = (await h.store.getRequest(requestId))?.reveals.filter(
        (r) => r.packet.from === reveal.from,
      );
      expect(mine).toHaveLength(2);
    } finally {
      h.client.close();
    }
  });

  test('no reveal is taken for a request the history does not hold', async () => {
    const h = await openHistory(`file:${join(dir, 'unknown.db')}`);
    try {
      await h.store.recordReveal(stored(reveal));
      expect(await h.store.getRequest(requestId)).toBeNull();
      const n = await h.client.execute('SELECT count(*) AS n FROM reveals');
      expect(Number(n.rows[0]?.['n'])).toBe(0);
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore: the node registry', () => {
  const heartbeat = async (seed: number, createdAt: number) =>
    signPacket(await NodeKey.fromSeed(new Uint8Array(32).fill(seed)), 'heartbeat', {
      role: 'node',
      software: 'test',
      models: [],
      embedders: [],
      capacity: { queued: 0, maxQueue: 4 },
      addresses: [],
      createdAt,
    });

  test('pages last heard first, with a cursor that neither repeats nor skips a node; one node by id', async () => {
    const h = await openHistory(`file:${join(dir, 'nodes.db')}`);
    try {
      // Seven nodes, three heard at the same moment (the cursor's tie-break on the node id).
      const seen = [10, 20, 30, 30, 30, 40, 50];
      for (const [i, at] of seen.entries())
        await h.store.recordHeartbeat(stored(await heartbeat(i + 1, at)), at);
      const walked: string[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await h.store.listNodes({ limit: 2, ...(cursor ? { cursor } : {}) });
        walked.push(...page.nodes.map((n) => n.nodeId));
        if (page.nextCursor === null) break;
        cursor = page.nextCursor;
      }
      expect(walked).toHaveLength(7);
      expect(new Set(walked).size).toBe(7);
      const all = (await h.store.listNodes({ limit: 100 })).nodes;
      expect(all.map((n) => n.lastSeen)).toEqual([...seen].sort((a, b) => b - a));
      expect(walked).toEqual(all.map((n) => n.nodeId));
      const one = all[3]?.nodeId ?? '';
      expect((await h.store.listNodes({ limit: 100, node: one })).nodes.map((n) => n.nodeId)).toEqual([one]);
    } finally {
      h.client.close();
    }
  });

  test('pruneNodes forgets nodes silent since a time that never took part in a verdict, and keeps the rest', async () => {
    const h = await openHistory(`file:${join(dir, 'prune.db')}`);
    try {
      const [old, oldWithHistory, recent] = await Promise.all([
        heartbeat(11, 100),
        heartbeat(12, 100),
        heartbeat(13, 900),
      ]);
      for (const p of [old, oldWithHistory, recent])
        await h.store.recordHeartbeat(stored(p), p.body.createdAt);
      await h.client.execute({
        sql: 'INSERT INTO reputation (node_id, updated_at) VALUES (?, 1)',
        args: [oldWithHistory.from],
      });
      expect(await h.store.pruneNodes(500)).toBe(1);
      const left = (await h.store.listNodes({ limit: 100 })).nodes.map((n) => n.nodeId).sort();
      expect(left).toEqual([oldWithHistory.from, recent.from].sort());
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore: the history by model', () => {
  /** 40 requests of a common model, newest last; two of them (one expired) also of a rare one. */
  async function history(name: string) {
    const h = await openHistory(`file:${join(dir, `${name}.db`)}`);
    for (let i = 0; i < 40; i++) {
      const id = i.toString(16).padStart(64, '0');
      const models = i === 7 || i === 30 ? ['common', 'rare'] : ['common'];
      await h.client.execute({
        sql: `INSERT INTO requests (request_id, packet_id, coordinator, prompt, accepted_models, params, frame,
                origin_kind, status, created_at, updated_at, raw)
              VALUES (?, ?, ?, 'a prompt', ?, '{}', '{}', 'http', ?, ?, ?, '{}')`,
        args: [id, `p${id}`, 'c'.repeat(64), JSON.stringify(models), i === 7 ? 'expired' : 'verdict', i, i],
      });
      for (const m of models) {
        await h.client.execute({
          sql: 'INSERT INTO request_models (request_id, model_id, created_at) VALUES (?, ?, ?)',
          args: [id, m, i],
        });
      }
    }
    // The same database through a store that keeps the statements it runs, to explain them.
    const statements: { sql: string; params: unknown[] }[] = [];
    const store = new HistoryStore(
      drizzle(h.client, {
        schema: historySchema,
        logger: { logQuery: (sql, params) => statements.push({ sql, params }) },
      }),
    );
    const plan = async (s: { sql: string; params: unknown[] }) =>
      (await h.client.execute({ sql: `EXPLAIN QUERY PLAN ${s.sql}`, args: s.params as never })).rows
        .map((r) => String(r['detail']))
        .join('\n');
    return { h, store, statements, plan };
  }

  test('a model is paged through its own index, not a scan of every request, and with a cursor', async () => {
    const { h, store, statements, plan } = await history('by-model');
    try {
      const walked: string[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await store.listHistory({ model: 'rare', limit: 1, ...(cursor ? { cursor } : {}) });
        walked.push(...page.items.map((r) => r.requestId));
        if (page.nextCursor === null) break;
        cursor = page.nextCursor;
      }
      expect(walked).toEqual([30, 7].map((i) => i.toString(16).padStart(64, '0')));
      expect((await store.listHistory({ model: 'none', limit: 50 })).items).toEqual([]);
      expect((await store.listHistory({ model: 'common', limit: 50 })).items).toHaveLength(40);
      const rare = await store.listHistory({ model: 'rare', status: 'expired', limit: 50 });
      expect(rare.items.map((r) => r.createdAt)).toEqual([7]);
      // Every page read (the unknown model's too) starts at request_models' model index and scans nothing.
      const pages = statements.filter((s) => /CAST\(.*AS BLOB\)/.test(s.sql));
      expect(pages.length).toBeGreaterThanOrEqual(5);
      for (const s of pages) {
        const p = await plan(s);
        expect(p.split('\n')[0]).toContain('request_models_model_created_idx');
        expect(p).not.toMatch(/\bSCAN\b/);
      }
    } finally {
      h.client.close();
    }
  });
});
