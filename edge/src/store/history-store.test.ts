import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Client, createClient } from '@libsql/client';
import {
  type AnyPacket,
  NodeKey,
  type Packet,
  type PacketType,
  packetId,
  signPacket,
  type VerdictBody,
} from '@synod/shared';
import { historySchema } from '@synod/shared/history';
import { drizzle } from 'drizzle-orm/libsql';
import { HISTORY_WINDOW, type HistoryQuery } from './history-pages.ts';
import { ATTESTATIONS_FROM_OTHERS, HistoryStore } from './history-store.ts';
import { applyMigrations } from './migrate.ts';
import { MIGRATIONS } from './migrations.gen.ts';
import { openHistory } from './open-history.ts';
import { testHeartbeat } from './test-heartbeats.ts';
import { storeRequest } from './test-requests.ts';

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

interface Statement {
  sql: string;
  params: unknown[];
}

/** A store over `client` that keeps the statements it runs, to explain them. */
function explainedStore(client: Client) {
  const statements: Statement[] = [];
  const store = new HistoryStore(
    drizzle(client, {
      schema: historySchema,
      logger: { logQuery: (sql, params) => statements.push({ sql, params }) },
    }),
  );
  return { store, statements };
}

/** SQLite's query plan of a statement, one step a line. */
async function explain(client: Client, s: Statement): Promise<string> {
  const r = await client.execute({ sql: `EXPLAIN QUERY PLAN ${s.sql}`, args: s.params as never });
  return r.rows.map((row) => String(row['detail'])).join('\n');
}

/**
 * The steps of a plan that scan a table or an index from one end (`SCAN requests`, `SCAN k USING …`),
 * as opposed to reading a subquery's few rows (`SCAN w`, `SCAN (subquery-2)`) or seeking (`SEARCH`).
 */
function tableScans(plan: string): string[] {
  return plan.split('\n').filter((l) => /^SCAN /.test(l) && !/^SCAN (w|\(subquery-\d+\))$/.test(l));
}

/** A history holding the golden request and its commits, not yet sealed. */
async function beforeTheSeal(name: string) {
  const h = await openHistory(`file:${join(dir, `${name}.db`)}`);
  const [request] = of('request');
  if (!request) throw new Error('no request');
  await storeRequest(h.store, stored(request), 1);
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
      // A node that committed but is left out of the seal (one that never committed is not taken at
      // all: history-store-hostile.test.ts).
      const stranger = await strangerReveal(1);
      const strangerKey = await NodeKey.fromSeed(new Uint8Array(32).fill(201));
      await h.store.recordCommit(
        stored(
          await signPacket(strangerKey, 'commit', {
            requestId,
            commitment: 'ee'.repeat(32),
            createdAt: reveal.body.createdAt,
          }),
        ),
      );
      await h.store.recordReveal(stored(reveal));
      await h.store.recordReveal(stored(stranger));
      expect((await h.store.getRequest(requestId))?.reveals.map((r) => r.id)).toContain(packetId(stranger));
      await h.store.recordSeal(stored(seal), 2);
      const after = (await h.store.getRequest(requestId))?.reveals ?? [];
      expect(after.map((r) => r.id)).toEqual([packetId(reveal)]);
      // After the seal, a stranger's reveal is taken within the bound a node holds them to (the
      // coordinator's verdict cites it NOT_SEALED: history-store-hostile.test.ts).
      const late = await strangerReveal(2);
      await h.store.recordReveal(stored(late));
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      const all = (await h.store.getRequest(requestId))?.reveals ?? [];
      expect(all.filter((r) => !members.has(r.packet.from)).map((r) => r.id)).toEqual([packetId(late)]);
      expect(all).toHaveLength(of('reveal').filter((r) => members.has(r.from)).length + 1);
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

describe("HistoryStore: seals and verdicts are the coordinator's alone", () => {
  const [seal] = of('seal');
  if (!seal) throw new Error('no seal');
  const requestId = seal.body.requestId;
  const stranger = () => NodeKey.fromSeed(new Uint8Array(32).fill(77));
  // The golden scenario's verdict, as its coordinator publishes it.
  const golden = (
    JSON.parse(readFileSync(VECTORS, 'utf8')) as {
      scenarios: {
        nodes: { role: string; seed: string; nodeId: string }[];
        verdict: VerdictBody['verdict'];
        verdictDigest: string;
        root: string;
      }[];
    }
  ).scenarios[0];
  if (!golden) throw new Error('no scenario');
  const verdictBody: VerdictBody = {
    requestId,
    verdict: golden.verdict,
    verdictDigest: golden.verdictDigest,
    transcriptRoot: golden.root,
    createdAt: seal.body.createdAt + 1_000,
  };
  const coordinatorSeed = golden.nodes.find((n) => n.role === 'coordinator')?.seed ?? '';
  let verdict: Packet<'verdict'>;
  beforeAll(async () => {
    const key = await NodeKey.fromSeed(Uint8Array.from(Buffer.from(coordinatorSeed, 'hex')));
    verdict = await signPacket(key, 'verdict', verdictBody);
  });

  test("a seal signed by anyone but the request's author is not stored, and does not keep the coordinator's out", async () => {
    const h = await beforeTheSeal('forged-seal');
    try {
      // Someone who saw the commits on the network seals them first, with a key of its own.
      const forged = await signPacket(await stranger(), 'seal', {
        ...seal.body,
        members: seal.body.members.slice(0, 1),
      });
      await h.store.recordSeal(stored(forged), 2);
      expect((await h.store.getRequest(requestId))?.seal).toBeNull();
      expect((await h.store.getRequest(requestId))?.status).toBe('pending');
      // The coordinator's seal, then its verdict, are the request's.
      await h.store.recordSeal(stored(seal), 3);
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      expect(await h.store.recordVerdict(stored(verdict), 4)).toBe(true);
      const d = await h.store.getRequest(requestId);
      expect(d?.seal?.id).toBe(packetId(seal));
      expect(d?.verdict?.id).toBe(packetId(verdict));
      expect(d?.status).toBe('verdict');
    } finally {
      h.client.close();
    }
  });

  test('a second seal, even signed by the coordinator, adds no members and removes no reveals', async () => {
    const h = await beforeTheSeal('second-seal');
    try {
      await h.store.recordSeal(stored(seal), 2);
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      const before = await h.store.getRequest(requestId);
      // A second seal the coordinator signed (evidence of equivocation to the nodes), naming one member
      // under another commitment, brought with the commit it names.
      const coordinator = await NodeKey.fromSeed(Uint8Array.from(Buffer.from(coordinatorSeed, 'hex')));
      const first = seal.body.members[0];
      const memberSeed = golden.nodes.find((n) => n.nodeId === first?.nodeId)?.seed;
      if (first === undefined || memberSeed === undefined) throw new Error('no member seed');
      const member = await NodeKey.fromSeed(Uint8Array.from(Buffer.from(memberSeed, 'hex')));
      const otherCommit = await signPacket(member, 'commit', {
        requestId,
        commitment: 'ab'.repeat(32),
        createdAt: seal.body.createdAt - 1,
      });
      const other = await signPacket(coordinator, 'seal', {
        ...seal.body,
        createdAt: seal.body.createdAt + 1,
        members: [{ ...first, commitment: 'ab'.repeat(32), commitId: packetId(otherCommit) }],
      });
      await h.store.recordSeal(stored(other), 3, [stored(otherCommit)]);
      const after = await h.store.getRequest(requestId);
      expect(after?.commits.map((c) => c.id)).not.toContain(packetId(otherCommit));
      expect(after?.seal?.id).toBe(packetId(seal));
      expect(after?.reveals.map((r) => r.id).sort()).toEqual(before?.reveals.map((r) => r.id).sort() ?? []);
      const members = await h.client.execute({
        sql: 'SELECT count(*) AS n FROM seal_members WHERE request_id = ?',
        args: [requestId],
      });
      expect(Number(members.rows[0]?.['n'])).toBe(seal.body.members.length);
    } finally {
      h.client.close();
    }
  });

  test('an accepted agreement is vouched for only when another accepted member is proven or trusted', async () => {
    const accepted = golden.verdict.accepted.map((a) => a.nodeId);
    expect(accepted.length).toBeGreaterThanOrEqual(3);
    const [voucher] = accepted;
    const vouchedOf = async (h: Awaited<ReturnType<typeof beforeTheSeal>>) =>
      Object.fromEntries(
        (await h.client.execute('SELECT node_id, vouched, agreements FROM reputation')).rows.map((r) => [
          String(r['node_id']),
          [Number(r['vouched']), Number(r['agreements'])],
        ]),
      );
    for (const [name, vouches] of [
      ['none-proven', () => false],
      ['one-proven', (id: string) => id === voucher],
    ] as const) {
      const h = await beforeTheSeal(`vouched-${name}`);
      try {
        await h.store.recordSeal(stored(seal), 2);
        for (const r of of('reveal')) await h.store.recordReveal(stored(r));
        expect(await h.store.recordVerdict(stored(verdict), 3, vouches)).toBe(true);
        const rows = await vouchedOf(h);
        for (const id of accepted) {
          // Agreeing with each other earns nothing; agreeing beside a proven node earns one.
          const expected = name === 'one-proven' && id !== voucher ? 1 : 0;
          expect(rows[id]).toEqual([expected, 1]);
        }
        for (const [id, [v]] of Object.entries(rows)) if (!accepted.includes(id)) expect(v).toBe(0);
        if (name === 'one-proven') {
          expect(await h.store.provenNodes(1, 0, 10)).toEqual(
            expect.arrayContaining(accepted.filter((id) => id !== voucher)),
          );
          expect(await h.store.provenNodes(1, 0, 10)).not.toContain(voucher);
          // On their way to a record: one vouched agreement each, nothing spoiled.
          expect(await h.store.nodeStandings(10)).toEqual(
            expect.arrayContaining(
              accepted.filter((id) => id !== voucher).map((nodeId) => ({ nodeId, standing: 1 })),
            ),
          );
          expect((await h.store.nodeStandings(10)).map((r) => r.nodeId)).not.toContain(voucher);
        } else {
          expect(await h.store.provenNodes(1, 0, 10)).toEqual([]);
          expect(await h.store.nodeStandings(10)).toEqual([]);
        }
      } finally {
        h.client.close();
      }
    }
  });

  test("a verdict signed by anyone but the request's author is not stored; the coordinator's still is", async () => {
    const h = await beforeTheSeal('forged-verdict');
    try {
      await h.store.recordSeal(stored(seal), 2);
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      const forged = await signPacket(await stranger(), 'verdict', verdictBody);
      expect(await h.store.recordVerdict(stored(forged), 3)).toBe(false);
      expect((await h.store.getRequest(requestId))?.verdict).toBeNull();
      expect(await h.store.recordVerdict(stored(verdict), 4)).toBe(true);
      expect((await h.store.getRequest(requestId))?.verdict?.id).toBe(packetId(verdict));
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore: reputation from a no-consensus verdict', () => {
  test('members outside any cluster under no-consensus are not counted as disagreeing; one that withheld is', async () => {
    const all = JSON.parse(readFileSync(VECTORS, 'utf8')) as {
      scenarios: {
        name: string;
        nodes: { role: string; seed: string; nodeId: string }[];
        transcript: { packets: AnyPacket[] };
        verdict: VerdictBody['verdict'];
        verdictDigest: string;
        root: string;
      }[];
    };
    const nc = all.scenarios.find((x) => x.name === 'no-consensus');
    if (!nc) throw new Error('no no-consensus scenario');
    const pk = nc.transcript.packets;
    const h = await openHistory(`file:${join(dir, 'no-consensus-reputation.db')}`);
    try {
      const request = pk.find((p) => p.type === 'request') as Packet<'request'>;
      const seal = pk.find((p) => p.type === 'seal') as Packet<'seal'>;
      await storeRequest(h.store, stored(request), 1);
      for (const c of pk.filter((p) => p.type === 'commit'))
        await h.store.recordCommit(stored(c as Packet<'commit'>));
      await h.store.recordSeal(stored(seal), 2);
      for (const r of pk.filter((p) => p.type === 'reveal'))
        await h.store.recordReveal(stored(r as Packet<'reveal'>));
      const seed = nc.nodes.find((n) => n.role === 'coordinator')?.seed ?? '';
      const coordinator = await NodeKey.fromSeed(Uint8Array.from(Buffer.from(seed, 'hex')));
      const verdict = await signPacket(coordinator, 'verdict', {
        requestId: seal.body.requestId,
        verdict: nc.verdict,
        verdictDigest: nc.verdictDigest,
        transcriptRoot: nc.root,
        createdAt: seal.body.createdAt + 1_000,
      });
      expect(await h.store.recordVerdict(stored(verdict), 3)).toBe(true);
      expect((await h.store.getRequest(seal.body.requestId))?.status).toBe('no-consensus');
      const rows = (
        await h.client.execute(
          'SELECT node_id, agreements, disagreements, withheld, invalid, commits FROM reputation',
        )
      ).rows;
      const byNode = new Map(rows.map((r) => [String(r['node_id']), r]));
      expect(byNode.size).toBe(nc.verdict.rejected.length);
      for (const e of nc.verdict.rejected) {
        const row = byNode.get(e.nodeId);
        expect({
          reason: e.reason,
          disagreements: Number(row?.['disagreements']),
          withheld: Number(row?.['withheld']),
          commits: Number(row?.['commits']),
        }).toEqual({
          reason: e.reason,
          disagreements: 0,
          withheld: e.reason === 'NOT_REVEALED' ? 1 : 0,
          commits: 1,
        });
      }
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore: attestations', () => {
  const [seal] = of('seal');
  if (!seal) throw new Error('no seal');
  const requestId = seal.body.requestId;
  const nodes = (
    JSON.parse(readFileSync(VECTORS, 'utf8')) as {
      scenarios: { nodes: { seed: string; nodeId: string }[] }[];
    }
  ).scenarios[0]?.nodes;
  const body = { requestId, verdictDigest: 'ab'.repeat(32), transcriptRoot: 'cd'.repeat(32), createdAt: 5 };

  test("past 64 from anyone, a request takes only its seal members' attestations", async () => {
    const h = await beforeTheSeal('attestations');
    try {
      await h.store.recordSeal(stored(seal), 2);
      for (let i = 0; i < ATTESTATIONS_FROM_OTHERS + 6; i++) {
        const seed = new Uint8Array(32);
        seed[0] = 1;
        seed[1] = i;
        await h.store.recordAttestation(
          stored(await signPacket(await NodeKey.fromSeed(seed), 'attestation', body)),
        );
      }
      const count = async () =>
        Number(
          (
            await h.client.execute({
              sql: 'SELECT count(*) AS n FROM attestations WHERE request_id = ?',
              args: [requestId],
            })
          ).rows[0]?.['n'],
        );
      expect(await count()).toBe(ATTESTATIONS_FROM_OTHERS);
      const member = nodes?.find((n) => n.nodeId === seal.body.members[0]?.nodeId);
      if (!member) throw new Error('no member seed');
      const key = await NodeKey.fromSeed(Uint8Array.from(Buffer.from(member.seed, 'hex')));
      await h.store.recordAttestation(stored(await signPacket(key, 'attestation', body)));
      expect(await count()).toBe(ATTESTATIONS_FROM_OTHERS + 1);
      const held = (await h.store.getRequest(requestId))?.attestations.map((a) => a.packet.from);
      expect(held).toContain(member.nodeId);
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore: the node registry', () => {
  const heartbeat = testHeartbeat;

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

  test('recentHeartbeats: the stored heartbeat of each node asked for, heard since a time', async () => {
    const h = await openHistory(`file:${join(dir, 'recent.db')}`);
    try {
      const [a, b, c] = await Promise.all([heartbeat(21, 100), heartbeat(22, 200), heartbeat(23, 300)]);
      for (const p of [a, b, c]) await h.store.recordHeartbeat(stored(p), p.body.createdAt);
      const recent = await h.store.recentHeartbeats([a.from, b.from], 150);
      expect(recent).toEqual([{ nodeId: b.from, body: b.body, lastSeen: 200 }]);
      expect(await h.store.recentHeartbeats([], 0)).toEqual([]);
      // Asked for more ids than one statement binds at a time.
      const many = [...Array.from({ length: 1_200 }, (_, i) => i.toString(16).padStart(64, '0')), c.from];
      expect((await h.store.recentHeartbeats(many, 0)).map((r) => r.nodeId)).toEqual([c.from]);
    } finally {
      h.client.close();
    }
  });

  test("a node's last_seen never goes back: two relays with clocks apart write its heartbeats", async () => {
    const h = await openHistory(`file:${join(dir, 'seen-order.db')}`);
    try {
      const first = await heartbeat(31, 1_000);
      // Relay A hears it at 1,000; relay B, its clock 5 ms behind, writes the next heartbeat at 995.
      await h.store.recordHeartbeat(stored(first), 1_000);
      await h.store.recordHeartbeat(stored(await heartbeat(31, 1_010)), 995);
      const rows = await h.client.execute('SELECT first_seen, last_seen FROM nodes');
      expect(rows.rows.map((r) => [Number(r['first_seen']), Number(r['last_seen'])])).toEqual([
        [1_000, 1_000],
      ]);
      await h.store.recordHeartbeat(stored(await heartbeat(31, 2_000)), 2_000);
      expect(Number((await h.client.execute('SELECT last_seen FROM nodes')).rows[0]?.['last_seen'])).toBe(
        2_000,
      );
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
    const { store, statements } = explainedStore(h.client);
    const plan = (s: Statement) => explain(h.client, s);
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
      // Every page read (the unknown model's too) seeks request_models' model index and scans no table.
      const pages = statements.filter((s) => /CAST\(.*AS BLOB\)/.test(s.sql));
      expect(pages.length).toBeGreaterThanOrEqual(5);
      for (const s of pages) {
        const p = await plan(s);
        // (The rare model beside a status with fewer requests still: through that status's index.)
        expect(p).toMatch(
          /SEARCH \w+ USING COVERING INDEX (request_models_model_created_idx \(model_id=\?|requests_status_created_idx \(status=\?)/,
        );
        expect(tableScans(p)).toEqual([]);
      }
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore: every history filter pages through an index', () => {
  const N = 4_400;
  const hex = (i: number) => i.toString(16).padStart(64, '0');
  const C1 = 'c1'.repeat(32);
  const C2 = 'c2'.repeat(32);
  const A = 'a1'.repeat(32);
  const B = 'b1'.repeat(32);
  const UNKNOWN = 'ee'.repeat(32);
  const ODD = ['pending', 'sealed', 'no-consensus', 'expired', 'failed'] as const;
  // Request i, by the same rules as the SQL below. Pairs of requests share a createdAt (ties go by id).
  const rows = Array.from({ length: N }, (_, i) => ({
    requestId: hex(i),
    createdAt: 10_000 + (i >> 1),
    status: i % 2 === 0 ? 'verdict' : (ODD[(i >> 1) % 5] as string),
    origin: i % 2 === 1 || i % 100 === 0 ? 'http' : i % 10 === 0 ? 'chain' : 'peer',
    coordinator: i % 2 === 0 ? C1 : C2,
    committers: [...(i % 3 === 0 ? [A] : []), ...(i % 400 === 0 ? [B] : [])],
    models: i % 250 === 0 ? ['common', 'rare'] : ['common'],
  }));
  const FILL = `
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${N - 1})
    INSERT INTO requests (request_id, packet_id, coordinator, prompt, accepted_models, params, frame, origin_kind,
      chain_id, contract, request_no, tx_hash, block_number, status, created_at, updated_at, raw)
    SELECT printf('%064x', i), printf('p%063x', i), CASE WHEN i % 2 = 0 THEN '${C1}' ELSE '${C2}' END,
      'prompt ' || i, CASE WHEN i % 250 = 0 THEN '["common","rare"]' ELSE '["common"]' END, '{}', '{}', o,
      CASE WHEN o = 'chain' THEN 1 END, CASE WHEN o = 'chain' THEN '0xab' END,
      CASE WHEN o = 'chain' THEN CAST(i AS TEXT) END, CASE WHEN o = 'chain' THEN '0x01' END,
      CASE WHEN o = 'chain' THEN i END,
      CASE WHEN i % 2 = 0 THEN 'verdict'
        ELSE json_extract('${JSON.stringify(ODD)}', '$[' || ((i >> 1) % 5) || ']') END,
      10000 + (i >> 1), 1, '{}'
    FROM (SELECT i, CASE WHEN i % 2 = 1 OR i % 100 = 0 THEN 'http' WHEN i % 10 = 0 THEN 'chain' ELSE 'peer' END AS o
          FROM n)`;
  const MODELS = `
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${N - 1})
    INSERT INTO request_models (request_id, model_id, created_at)
    SELECT printf('%064x', i), 'common', 10000 + (i >> 1) FROM n
    UNION ALL SELECT printf('%064x', i), 'rare', 10000 + (i >> 1) FROM n WHERE i % 250 = 0`;
  // Node B sends two different commitments for each of its requests (equivocation): one row per request.
  const COMMITS = `
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${N - 1})
    INSERT INTO commits (packet_id, request_id, node_id, commitment, created_at, raw)
    SELECT printf('a%063x', i), printf('%064x', i), '${A}', printf('%064x', i), 5, '{}' FROM n WHERE i % 3 = 0
    UNION ALL SELECT printf('b%063x', i), printf('%064x', i), '${B}', printf('%064x', i), 5, '{}' FROM n WHERE i % 400 = 0
    UNION ALL SELECT printf('d%063x', i), printf('%064x', i), '${B}', printf('e%063x', i), 5, '{}' FROM n WHERE i % 400 = 0`;

  const expected = (q: Omit<HistoryQuery, 'limit'>) =>
    rows
      .filter(
        (r) =>
          (q.status === undefined || r.status === q.status) &&
          (q.origin === undefined || r.origin === q.origin) &&
          (q.model === undefined || r.models.includes(q.model)) &&
          (q.node === undefined || r.coordinator === q.node || r.committers.includes(q.node)),
      )
      .sort((x, y) => y.createdAt - x.createdAt || (y.requestId < x.requestId ? -1 : 1))
      .map((r) => r.requestId);

  const QUERIES: Omit<HistoryQuery, 'limit'>[] = [
    {},
    ...(['pending', 'sealed', 'verdict', 'no-consensus', 'expired', 'failed'] as const).map((status) => ({
      status,
    })),
    ...(['http', 'peer', 'chain'] as const).map((origin) => ({ origin })),
    { model: 'common' },
    { model: 'rare' },
    { model: 'none' },
    { node: A },
    { node: B },
    { node: C1 },
    { node: UNKNOWN },
    { status: 'failed', origin: 'http' },
    { status: 'verdict', origin: 'chain' },
    // Both over 2,000 requests, 44 in common: pages end short, the cursor goes on past what was looked at.
    { status: 'verdict', origin: 'http' },
    { model: 'common', status: 'verdict', origin: 'http' },
    { model: 'rare', status: 'pending' },
    { model: 'common', origin: 'peer' },
    { node: A, origin: 'peer' },
    { node: C1, model: 'rare', status: 'verdict' },
    { node: B, status: 'verdict' },
    { node: UNKNOWN, status: 'failed' },
    { node: C2, origin: 'chain' },
  ];

  test('every filter and combination, page by page, yields exactly its requests, newest first', async () => {
    const h = await openHistory(`file:${join(dir, 'filters.db')}`);
    try {
      for (const s of [FILL, MODELS, COMMITS]) await h.client.execute(s);
      const { store, statements } = explainedStore(h.client);
      for (const q of QUERIES) {
        for (const limit of [50, 200]) {
          const walked: string[] = [];
          let cursor: string | undefined;
          let pages = 0;
          for (;;) {
            statements.length = 0;
            const page = await store.listHistory({ ...q, limit, ...(cursor ? { cursor } : {}) });
            expect(page.items.length).toBeLessThanOrEqual(limit);
            // A page reads at most: its probes, its window (or page) and the window's end.
            expect(statements.length).toBeLessThanOrEqual(6);
            walked.push(...page.items.map((r) => r.requestId));
            pages++;
            if (page.nextCursor === null) break;
            cursor = page.nextCursor;
          }
          expect({ q, limit, walked }).toEqual({ q, limit, walked: expected(q) });
          // No page is much more than the requests it holds, plus one per window of the chosen index.
          expect(pages).toBeLessThanOrEqual(
            Math.ceil(walked.length / limit) + Math.ceil(N / HISTORY_WINDOW) + 1,
          );
        }
      }
      const item = (await store.listHistory({ node: B, limit: 1 })).items[0];
      expect(item).toMatchObject({
        requestId: hex(4000),
        status: 'verdict',
        coordinator: C1,
        origin: 'http',
        acceptedModels: ['common', 'rare'],
        prompt: 'prompt 4000',
        createdAt: 12_000,
        verdictDigest: null,
      });
    } finally {
      h.client.close();
    }
  });

  test('each filter, and each with a cursor, is a range of its own index: no table scanned', async () => {
    const h = await openHistory(`file:${join(dir, 'plans.db')}`);
    try {
      for (const s of [FILL, MODELS, COMMITS]) await h.client.execute(s);
      const { store, statements } = explainedStore(h.client);
      const HISTORY_INDEX =
        /INDEX (requests_created_idx|requests_\w+_created_idx|request_models_model_created_idx|request_committers_node_created_idx)\b/;
      const INDEX = {
        status: ['requests_status_created_idx (status=?'],
        origin: ['requests_origin_created_idx (origin_kind=?'],
        model: ['request_models_model_created_idx (model_id=?'],
        node: [
          'requests_coordinator_created_idx (coordinator=?',
          'request_committers_node_created_idx (node_id=?',
        ],
      };
      const cursor = `${10_000 + 1_000}:${hex(2_000)}`;
      // What each query does wrong, if anything, collected so that one run lists every such query.
      const problems: string[] = [];
      for (const q of QUERIES) {
        for (const at of [undefined, cursor]) {
          const name = `${JSON.stringify(q)}${at ? ' after a cursor' : ''}`;
          statements.length = 0;
          await store.listHistory({ ...q, limit: 20, ...(at ? { cursor: at } : {}) });
          expect(statements.length).toBeGreaterThan(0);
          const filters = Object.keys(q) as (keyof typeof INDEX)[];
          const plans = (await Promise.all(statements.map((s) => explain(h.client, s)))).join('\n');
          for (const l of tableScans(plans)) {
            // Only the whole history, from its newest request, reads the created_at index from one end.
            const fromTheTop = filters.length === 0 && !at;
            if (!(fromTheTop && /^SCAN \w+ USING (COVERING )?INDEX requests_created_idx$/.test(l))) {
              problems.push(`${name}: ${l}`);
            }
          }
          // Each read of a history index is one of the filters' own, bounded by the cursor when there is one.
          const reads = plans.split('\n').filter((l) => HISTORY_INDEX.test(l));
          if (reads.length === 0) problems.push(`${name}: no history index read`);
          for (const l of reads) {
            if (at && !l.includes('(created_at,request_id)<(?,?))')) {
              problems.push(`${name}: not a range from the cursor: ${l}`);
            }
            const own = filters.length === 0 ? ['requests_created_idx ('] : filters.flatMap((f) => INDEX[f]);
            if (!/^SCAN/.test(l) && !own.some((ix) => l.includes(`INDEX ${ix}`))) {
              problems.push(`${name}: another filter's index: ${l}`);
            }
          }
          // A single filter reads through its own index (a node: through both of its indexes).
          if (filters.length === 1) {
            for (const ix of INDEX[filters[0] as keyof typeof INDEX]) {
              if (!plans.includes(`INDEX ${ix}`)) problems.push(`${name}: not through ${ix}`);
            }
          }
        }
      }
      expect(problems).toEqual([]);
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore: requests by status (/healthz, /metrics)', () => {
  const truth = async (client: Client) => {
    const out: Record<string, number> = {
      pending: 0,
      sealed: 0,
      verdict: 0,
      'no-consensus': 0,
      expired: 0,
      failed: 0,
    };
    const r = await client.execute('SELECT status, count(*) AS n FROM requests GROUP BY status');
    for (const row of r.rows) out[String(row['status'])] = Number(row['n']);
    return out;
  };
  const insert = (client: Client, i: number, status: string) =>
    client.execute({
      sql: `INSERT INTO requests (request_id, packet_id, coordinator, prompt, accepted_models, params, frame,
              origin_kind, status, created_at, updated_at, raw)
            VALUES (?, ?, ?, 'p', '["m"]', '{}', '{}', 'http', ?, ?, 1, '{}') ON CONFLICT DO NOTHING`,
      args: [i.toString(16).padStart(64, '0'), `p${i}`, 'c'.repeat(64), status, i],
    });

  test('expireAbandoned ends the open requests created before a time, whoever coordinates them, and nothing else', async () => {
    const h = await openHistory(`file:${join(dir, 'abandoned.db')}`);
    try {
      // created_at is the request's index here: 1-3 old (pending, sealed, verdict), 10-11 recent.
      for (const [i, status] of [
        [1, 'pending'],
        [2, 'sealed'],
        [3, 'verdict'],
        [10, 'pending'],
        [11, 'sealed'],
      ] as const) {
        await insert(h.client, i, status);
      }
      const id = (i: number) => i.toString(16).padStart(64, '0');
      expect((await h.store.expireAbandoned(5, 100)).sort()).toEqual([id(1), id(2)]);
      expect(await truth(h.client)).toMatchObject({ pending: 1, sealed: 1, verdict: 1, expired: 2 });
      const row = async (i: number) =>
        (
          await h.client.execute({
            sql: 'SELECT status, error FROM requests WHERE request_id = ?',
            args: [id(i)],
          })
        ).rows[0];
      expect(await row(1)).toMatchObject({ status: 'expired', error: 'COORDINATOR_GONE' });
      // A final status never changes, and a second sweep finds nothing.
      expect(await h.store.expireAbandoned(5, 200)).toEqual([]);
      expect(await row(3)).toMatchObject({ status: 'verdict' });
      expect(await h.store.counts()).toMatchObject({ pending: 1, sealed: 1, expired: 2 });
    } finally {
      h.client.close();
    }
  });

  test('two relays over one database count every insert, status change and delete alike, without a scan', async () => {
    const file = `file:${join(dir, 'counts.db')}`;
    (await beforeTheSeal('counts')).client.close();
    const a = await openHistory(file);
    const b = await openHistory(file);
    try {
      const [seal] = of('seal');
      if (!seal) throw new Error('no seal');
      const golden = JSON.parse(readFileSync(VECTORS, 'utf8')).scenarios[0];
      const verdict = await signPacket(await NodeKey.fromSeed(new Uint8Array(32).fill(1)), 'verdict', {
        requestId: seal.body.requestId,
        verdict: golden.verdict,
        verdictDigest: golden.verdictDigest,
        transcriptRoot: golden.root,
        createdAt: seal.body.createdAt + 20_000,
      });
      // Relay a seals and decides the golden request; both relays add requests, some twice.
      await a.store.recordSeal(stored(seal), 2);
      await a.store.recordSeal(stored(seal), 3);
      expect(await a.store.recordVerdict(stored(verdict), 4)).toBe(true);
      for (let i = 0; i < 30; i++) await insert(i % 2 === 0 ? a.client : b.client, i, 'pending');
      for (let i = 0; i < 10; i++) await insert(b.client, i, 'pending');
      await Promise.all([
        a.store.setStatus((3).toString(16).padStart(64, '0'), 'expired', 5, 'QUEUE_TIMEOUT'),
        b.store.setStatus((4).toString(16).padStart(64, '0'), 'failed', 5, 'X'),
        b.store.setStatus((4).toString(16).padStart(64, '0'), 'failed', 6, 'X'),
        a.client.execute("UPDATE requests SET status = 'sealed' WHERE created_at BETWEEN 10 AND 19"),
        b.client.execute("UPDATE requests SET updated_at = 9 WHERE status = 'sealed'"),
      ]);
      // Pruning (the rows cascade) and a status change of a whole range at once.
      await b.client.execute("DELETE FROM requests WHERE created_at >= 25 AND status = 'pending'");
      await a.client.execute(
        "UPDATE requests SET status = 'no-consensus' WHERE created_at BETWEEN 15 AND 17",
      );
      const want = await truth(a.client);
      expect(want).toMatchObject({ verdict: 1, expired: 1, failed: 1, 'no-consensus': 3, sealed: 7 });
      const seenByA = explainedStore(a.client);
      expect(await seenByA.store.counts()).toEqual(want as never);
      expect(await b.store.counts()).toEqual(want as never);
      // Six counters read, not the requests counted.
      for (const s of seenByA.statements) {
        const plan = await explain(a.client, s);
        expect(plan).not.toMatch(/requests/);
        expect(plan).toMatch(/request_counts/);
      }
    } finally {
      a.client.close();
      b.client.close();
    }
  });

  test('migration 0006 counts, and lists the committers of, a history written before it', async () => {
    const client = createClient({ url: `file:${join(dir, 'upgrade.db')}` });
    try {
      await applyMigrations(
        client,
        MIGRATIONS.filter((m) => m.tag < '0006'),
      );
      for (let i = 0; i < 12; i++) await insert(client, i, i % 3 === 0 ? 'verdict' : 'expired');
      const node = 'ab'.repeat(32);
      await client.execute({
        sql: `INSERT INTO commits (packet_id, request_id, node_id, commitment, created_at, raw)
              VALUES ('c1', ?, ?, 'x', 1, '{}'), ('c2', ?, ?, 'y', 1, '{}')`,
        args: [(5).toString(16).padStart(64, '0'), node, (5).toString(16).padStart(64, '0'), node],
      });
      expect(await applyMigrations(client, MIGRATIONS)).toEqual([
        '0006_history_read_paths',
        '0007_chain_request_counts',
        '0008_reputation_vouched',
        '0009_coordinator_leases',
        '0010_chain_cursor_log_index',
        '0011_reputation_updated_idx',
        '0012_unheard_nodes',
        '0013_declines',
        '0014_refund_reason',
        '0015_database_identity',
        '0016_chain_pruned_at',
        '0017_health_probes',
        '0018_chain_callback_ok',
      ]);
      const store = new HistoryStore(drizzle(client, { schema: historySchema }));
      expect(await store.counts()).toEqual({
        pending: 0,
        sealed: 0,
        verdict: 4,
        'no-consensus': 0,
        expired: 8,
        failed: 0,
      });
      const page = await store.listHistory({ node, limit: 10 });
      expect(page.items.map((r) => r.createdAt)).toEqual([5]);
      // And from here on, by the triggers.
      await insert(client, 12, 'pending');
      await store.setStatus((12).toString(16).padStart(64, '0'), 'sealed', 2);
      expect((await store.counts()).sealed).toBe(1);
    } finally {
      client.close();
    }
  });
});
