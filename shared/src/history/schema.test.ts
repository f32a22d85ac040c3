import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, createClient } from '@libsql/client';
import { generateSQLiteDrizzleJson, generateSQLiteMigration } from 'drizzle-kit/api';
import { and, asc, desc, eq, getTableColumns, inArray, type SQL, sql } from 'drizzle-orm';
import { drizzle, type LibSQLDatabase } from 'drizzle-orm/libsql';
import { migrate } from 'drizzle-orm/libsql/migrator';
import { getTableConfig, type SQLiteTable } from 'drizzle-orm/sqlite-core';
import fc from 'fast-check';
import { utf8 } from '../encoding/bytes.ts';
import { sha256Hex } from '../encoding/hash.ts';
import { packetId, parseEnvelope } from '../packets/envelope.ts';
import {
  HeartbeatBodySchema,
  OriginSchema,
  type Packet,
  REJECT_REASONS,
  REQUEST_ID_MAX_CHARS,
  VerdictSchema,
} from '../packets/schemas.ts';
import {
  type AcceptedHistory,
  acceptedHistory,
  FRAME,
  LLAMA,
  noConsensusVerdict,
  QWEN,
  requestPacket,
  seedKey,
  stored,
  T0,
} from './fixtures.test-helpers.ts';
import { REJECTION_COUNTER, reputationDeltas, reputationScore } from './reputation.ts';
import {
  attestationRow,
  commitRow,
  nodeRow,
  rawPacket,
  requestRows,
  revealRow,
  sealRows,
  verdictEntries,
  verdictRows,
} from './rows.ts';
import * as schemaModule from './schema.ts';
import {
  apiKeys,
  attestations,
  chainRequests,
  commits,
  historySchema,
  idempotency,
  intakeIdPrefix,
  NODE_ROLES,
  nodes,
  ORIGIN_KINDS,
  reputation,
  requestIntake,
  requestModels,
  requests,
  reveals,
  sealMembers,
  seals,
  usage,
  VERDICT_STATUSES,
  verdictEntriesTable,
  verdicts,
} from './schema.ts';

const MIGRATIONS = join(import.meta.dir, '../../drizzle');

type Db = LibSQLDatabase<typeof historySchema>;

interface Opened {
  client: Client;
  db: Db;
}

async function open(url: string): Promise<Opened> {
  const client = createClient({ url });
  const db = drizzle(client, { schema: historySchema });
  await migrate(db, { migrationsFolder: MIGRATIONS });
  return { client, db };
}

/** The message of a failed statement, with its causes (drizzle wraps the libSQL error). */
async function failure(statement: PromiseLike<unknown>): Promise<string> {
  try {
    await statement;
  } catch (e) {
    const messages: string[] = [];
    for (let x: unknown = e; x instanceof Error; x = x.cause) messages.push(x.message);
    return messages.join(' | ');
  }
  throw new Error('expected the statement to fail, and it succeeded');
}

/** Stores a whole accepted history the way the edge would: one transaction, parents first. */
async function storeHistory(db: Db, h: AcceptedHistory, now: number): Promise<void> {
  await db.transaction(async (tx) => {
    const { request, models } = requestRows(h.request, now);
    await tx.insert(requests).values(request);
    await tx.insert(requestModels).values(models);
    await tx.insert(commits).values(h.commits.map(commitRow));
    const { seal, members } = sealRows(h.seal);
    await tx.insert(seals).values(seal);
    await tx.insert(sealMembers).values(members);
    await tx.insert(reveals).values(h.reveals.map(revealRow));
    const { verdict, entries } = verdictRows(h.verdict);
    await tx.insert(verdicts).values(verdict);
    await tx.insert(verdictEntriesTable).values(entries);
    await tx.insert(attestations).values(h.attestations.map(attestationRow));
    await tx
      .update(requests)
      .set({ status: 'verdict', updatedAt: now + 1 })
      .where(eq(requests.requestId, request.requestId));
  });
}

const TABLES = Object.values(historySchema) as SQLiteTable[];

function journal(): { entries: { idx: number; tag: string; breakpoints: boolean }[] } {
  return JSON.parse(readFileSync(join(MIGRATIONS, 'meta/_journal.json'), 'utf8'));
}

describe('migrations folder', () => {
  test('the journal lists every .sql file, in order, each with its snapshot', () => {
    const entries = journal().entries;
    const files = readdirSync(MIGRATIONS)
      .filter((f) => f.endsWith('.sql'))
      .sort();
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.map((e) => `${e.tag}.sql`)).toEqual(files);
    expect(entries.map((e) => e.idx)).toEqual(entries.map((_, i) => i));
    const snapshots = readdirSync(join(MIGRATIONS, 'meta')).filter((f) => f.endsWith('_snapshot.json'));
    expect(snapshots.sort()).toEqual(entries.map((e) => `${String(e.idx).padStart(4, '0')}_snapshot.json`));
    for (const e of entries) expect(e.breakpoints).toBe(true);
  });

  test('the migrations are up to date with schema.ts (drizzle-kit finds nothing to generate)', async () => {
    const entries = journal().entries;
    const last = entries[entries.length - 1]!;
    const snapshot = JSON.parse(
      readFileSync(join(MIGRATIONS, `meta/${String(last.idx).padStart(4, '0')}_snapshot.json`), 'utf8'),
    );
    const current = await generateSQLiteDrizzleJson(schemaModule as Record<string, unknown>);
    expect(await generateSQLiteMigration(snapshot, current)).toEqual([]);
    // ...and the diff from nothing is not empty, so the check above compares real schemas.
    const fromEmpty = await generateSQLiteMigration(await generateSQLiteDrizzleJson({}), current);
    expect(fromEmpty.filter((s) => s.startsWith('CREATE TABLE')).length).toBe(TABLES.length);
  });

  test('applying them to :memory: yields every table, column, index, foreign key and check of the schema', async () => {
    const { client } = await open(':memory:');
    try {
      const master = await client.execute(
        "select type, name, tbl_name, sql from sqlite_master where name not like 'sqlite_%'",
      );
      const tableSql = new Map(
        master.rows.filter((r) => r['type'] === 'table').map((r) => [String(r['name']), String(r['sql'])]),
      );
      const indexNames = new Set(
        master.rows.filter((r) => r['type'] === 'index').map((r) => String(r['name'])),
      );
      expect([...tableSql.keys()].sort()).toEqual(
        [...TABLES.map((t) => getTableConfig(t).name), '__drizzle_migrations'].sort(),
      );
      for (const table of TABLES) {
        const cfg = getTableConfig(table);
        const info = await client.execute(`pragma table_info(${cfg.name})`);
        expect(info.rows.map((r) => [String(r['name']), Number(r['notnull']) === 1])).toEqual(
          cfg.columns.map((c) => [c.name, c.notNull]),
        );
        for (const ix of cfg.indexes) expect(indexNames.has(ix.config.name)).toBe(true);
        const fks = await client.execute(`pragma foreign_key_list(${cfg.name})`);
        const fkIds = new Set(fks.rows.map((r) => Number(r['id'])));
        expect(fkIds.size).toBe(cfg.foreignKeys.length);
        for (const ck of cfg.checks)
          expect(tableSql.get(cfg.name)).toContain(`CONSTRAINT "${ck.name}" CHECK`);
      }
      const check = await client.execute('pragma foreign_key_check');
      expect(check.rows.length).toBe(0);
    } finally {
      client.close();
    }
  });

  test('migrating again is a no-op', async () => {
    const { client, db } = await open(':memory:');
    try {
      await migrate(db, { migrationsFolder: MIGRATIONS });
      const applied = await client.execute('select count(*) as n from __drizzle_migrations');
      expect(Number(applied.rows[0]!['n'])).toBe(journal().entries.length);
    } finally {
      client.close();
    }
  });
});

describe('enums follow the packet schemas', () => {
  test('origin kinds, node roles and verdict statuses are exactly the protocol values', () => {
    expect([...ORIGIN_KINDS].sort()).toEqual(OriginSchema.options.map((o) => o.shape.kind.value).sort());
    expect([...NODE_ROLES].sort()).toEqual([...HeartbeatBodySchema.shape.role.options].sort());
    expect([...VERDICT_STATUSES].sort()).toEqual([...VerdictSchema.shape.status.options].sort());
    expect(Object.keys(REJECTION_COUNTER).sort()).toEqual([...REJECT_REASONS].sort());
  });
});

describe('a complete request history in a libSQL file', () => {
  let dir: string;
  let opened: Opened;
  let db: Db;
  let relay: Awaited<ReturnType<typeof seedKey>>;
  let h1: AcceptedHistory;
  /**
   * Request ids, oldest first: h1 (llama + qwen, verdict), r2 (qwen, pending), r3 (llama, expired
   * unsealed), r4 (llama, chain origin, pending). The tests below run in order on this one database.
   */
  const id = { h1: '', r2: '', r3: '', r4: '' };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'synod-history-'));
    opened = await open(`file:${join(dir, 'history.db')}`);
    db = opened.db;
    relay = await seedKey(9);
    h1 = await acceptedHistory(relay, T0, 1);
    await storeHistory(db, h1, T0 + 10);
    id.h1 = h1.request.packet.body.requestId;

    const r2 = await requestPacket(relay, {
      createdAt: T0 + 1_000,
      models: [QWEN.id],
      nonce: 2,
      messages: [{ role: 'user', content: 'Say hi.' }],
    });
    const r3 = await requestPacket(relay, { createdAt: T0 + 2_000, models: [LLAMA.id], nonce: 3 });
    const r4 = await requestPacket(relay, {
      createdAt: T0 + 3_000,
      models: [LLAMA.id],
      nonce: 4,
      origin: {
        kind: 'chain',
        chainId: 8453,
        contract: `0x${'ab'.repeat(20)}`,
        requestNo: '18446744073709551617',
        txHash: `0x${'cd'.repeat(32)}`,
        blockNumber: 123_456,
      },
    });
    for (const r of [r2, r3, r4]) {
      const { request, models } = requestRows(r, r.packet.body.createdAt);
      await db.insert(requests).values(request);
      await db.insert(requestModels).values(models);
    }
    id.r2 = r2.packet.body.requestId;
    id.r3 = r3.packet.body.requestId;
    id.r4 = r4.packet.body.requestId;
    // Node A also committed to r3, which then expired.
    await db.insert(commits).values(
      commitRow(
        await stored(h1.keys.a, 'commit', {
          requestId: r3.packet.body.requestId,
          commitment: 'aa'.repeat(32),
          createdAt: T0 + 2_100,
        }),
      ),
    );
    await db
      .update(requests)
      .set({ status: 'expired', error: 'QUORUM_NOT_REACHED', updatedAt: T0 + 40_000 })
      .where(eq(requests.requestId, r3.packet.body.requestId));
  });

  afterAll(() => {
    opened.client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('foreign keys are enforced on the connection', async () => {
    const r = await opened.client.execute('pragma foreign_keys');
    expect(Number(r.rows[0]!['foreign_keys'])).toBe(1);
  });

  test('the request reads back with its JSON columns, and raw re-decodes to the signed packet', async () => {
    const row = (await db.select().from(requests).where(eq(requests.requestId, id.h1)))[0]!;
    expect(row.status).toBe('verdict');
    expect(row.frame).toEqual(FRAME);
    expect(row.acceptedModels).toEqual([LLAMA.id, QWEN.id]);
    expect(row.params).toEqual({ temperature: 0, maxTokens: 32, seed: 7 });
    expect(row.prompt).toBe('What is the capital of France?');
    expect(row.messages).toBeNull();
    expect(row.originKind).toBe('http');
    expect(row.coordinator).toBe(relay.nodeId);
    const packet = parseEnvelope(JSON.parse(row.raw));
    expect(packetId(packet)).toBe(row.packetId);
    expect(packet).toEqual(h1.request.packet);

    const r2 = (await db.select().from(requests).where(eq(requests.requestId, id.r2)))[0]!;
    expect(r2.prompt).toBeNull();
    expect(r2.messages).toEqual([{ role: 'user', content: 'Say hi.' }]);

    const r4 = (await db.select().from(requests).where(eq(requests.requestId, id.r4)))[0]!;
    expect(r4.requestId).toBe(`8453:0x${'ab'.repeat(20)}:18446744073709551617`);
    expect([r4.originKind, r4.chainId, r4.requestNo, r4.blockNumber]).toEqual([
      'chain',
      8453,
      '18446744073709551617',
      123_456,
    ]);
  });

  test('the whole transcript of the accepted request reads back', async () => {
    const requestId = id.h1;
    const seal = (await db.select().from(seals).where(eq(seals.requestId, requestId)))[0]!;
    expect(seal.packetId).toBe(h1.seal.id);
    expect(seal.memberCount).toBe(3);
    const members = await db
      .select()
      .from(sealMembers)
      .where(eq(sealMembers.requestId, requestId))
      .orderBy(asc(sealMembers.nodeId));
    expect(members).toEqual(
      h1.seal.packet.body.members.map((m) => ({
        requestId,
        nodeId: m.nodeId,
        commitment: m.commitment,
        commitId: m.commitId,
      })),
    );
    const storedCommits = await db.select().from(commits).where(eq(commits.requestId, requestId));
    expect(storedCommits.length).toBe(4);
    const storedReveals = await db
      .select()
      .from(reveals)
      .where(eq(reveals.requestId, requestId))
      .orderBy(asc(reveals.createdAt));
    expect(storedReveals.map((r) => r.packetId)).toEqual(h1.reveals.map((r) => r.id));
    for (const r of storedReveals) expect(packetId(parseEnvelope(JSON.parse(r.raw)))).toBe(r.packetId);

    const v = (await db.select().from(verdicts).where(eq(verdicts.requestId, requestId)))[0]!;
    expect(v.status).toBe('accepted');
    expect(v.winnerNodeId).toBe(h1.keys.a.nodeId);
    expect(v.winnerModelId).toBe(LLAMA.id);
    expect(v.verdict).toEqual(h1.verdict.packet.body.verdict);
    expect(VerdictSchema.parse(v.verdict)).toEqual(v.verdict);
    expect([v.sealSize, v.required, v.sealId]).toEqual([3, 2, h1.seal.id]);

    const entries = await db
      .select()
      .from(verdictEntriesTable)
      .where(eq(verdictEntriesTable.requestId, requestId))
      .orderBy(asc(verdictEntriesTable.ordinal));
    expect(entries.map((e) => [e.nodeId, e.outcome, e.reason, e.winner])).toEqual([
      [h1.keys.a.nodeId, 'accepted', null, true],
      [h1.keys.b.nodeId, 'accepted', null, false],
      [h1.keys.c.nodeId, 'rejected', 'OUTSIDE_CLUSTER', false],
      [h1.keys.d.nodeId, 'rejected', 'NOT_SEALED', false],
    ]);

    const att = await db.select().from(attestations).where(eq(attestations.requestId, requestId));
    expect(att.map((x) => x.verdictDigest)).toEqual([v.verdictDigest, v.verdictDigest]);
  });

  /** One page of history, newest first, keyset-paged on (created_at, request_id). */
  function page(filter: SQL | undefined, after?: { createdAt: number; requestId: string }, limit = 10) {
    const cursor = after
      ? sql`(${requests.createdAt}, ${requests.requestId}) < (${after.createdAt}, ${after.requestId})`
      : undefined;
    return db
      .select({ requestId: requests.requestId, createdAt: requests.createdAt, status: requests.status })
      .from(requests)
      .where(and(filter, cursor))
      .orderBy(desc(requests.createdAt), desc(requests.requestId))
      .limit(limit);
  }

  test('history pages are newest first and keyset-paged', async () => {
    const first = await page(undefined, undefined, 3);
    expect(first.map((r) => r.requestId)).toEqual([id.r4, id.r3, id.r2]);
    const last = first[first.length - 1]!;
    const second = await page(undefined, last, 3);
    expect(second.map((r) => r.requestId)).toEqual([id.h1]);
  });

  test('history filters by status, model, coordinator and participating node', async () => {
    expect((await page(eq(requests.status, 'pending'))).map((r) => r.requestId)).toEqual([id.r4, id.r2]);
    expect((await page(eq(requests.status, 'verdict'))).map((r) => r.requestId)).toEqual([id.h1]);

    const byModel = (model: string) =>
      db
        .select({ requestId: requests.requestId, status: requests.status })
        .from(requestModels)
        .innerJoin(requests, eq(requests.requestId, requestModels.requestId))
        .where(eq(requestModels.modelId, model))
        .orderBy(desc(requestModels.createdAt), desc(requestModels.requestId));
    expect((await byModel(LLAMA.id)).map((r) => r.requestId)).toEqual([id.r4, id.r3, id.h1]);
    expect((await byModel(QWEN.id)).map((r) => r.requestId)).toEqual([id.r2, id.h1]);
    expect(await byModel('no-such-model')).toEqual([]);

    expect((await page(eq(requests.coordinator, relay.nodeId))).length).toBe(4);
    const participated = (nodeId: string) =>
      page(
        inArray(
          requests.requestId,
          db.select({ id: commits.requestId }).from(commits).where(eq(commits.nodeId, nodeId)),
        ),
      );
    expect((await participated(h1.keys.a.nodeId)).map((r) => [r.requestId, r.status])).toEqual([
      [id.r3, 'expired'],
      [id.h1, 'verdict'],
    ]);
    expect((await participated(h1.keys.d.nodeId)).map((r) => r.requestId)).toEqual([id.h1]);
  });

  test('history and reputation queries use the indexes', async () => {
    const plan = async (q: { toSQL(): { sql: string; params: unknown[] } }) => {
      const { sql: text, params } = q.toSQL();
      const r = await opened.client.execute({ sql: `explain query plan ${text}`, args: params as never });
      return r.rows.map((row) => String(row['detail'])).join('\n');
    };
    const statusPlan = await plan(page(eq(requests.status, 'pending')));
    expect(statusPlan).toContain('requests_status_created_idx');
    expect(statusPlan).not.toContain('TEMP B-TREE');
    const modelPlan = await plan(
      db
        .select({ requestId: requests.requestId })
        .from(requestModels)
        .innerJoin(requests, eq(requests.requestId, requestModels.requestId))
        .where(eq(requestModels.modelId, LLAMA.id))
        .orderBy(desc(requestModels.createdAt), desc(requestModels.requestId))
        .limit(10),
    );
    expect(modelPlan).toContain('request_models_model_created_idx');
    expect(modelPlan).not.toContain('TEMP B-TREE');
    const reputationPlan = await plan(
      db
        .select({
          outcome: verdictEntriesTable.outcome,
          reason: verdictEntriesTable.reason,
          n: sql<number>`count(*)`,
        })
        .from(verdictEntriesTable)
        .where(eq(verdictEntriesTable.nodeId, h1.keys.c.nodeId))
        .groupBy(verdictEntriesTable.outcome, verdictEntriesTable.reason),
    );
    expect(reputationPlan).toContain('verdict_entries_node_outcome_idx');
    expect(await plan(page(eq(requests.coordinator, relay.nodeId)))).toContain(
      'requests_coordinator_created_idx',
    );
  });

  test('per-node reputation aggregates from verdict_entries and lands in the reputation table', async () => {
    const counts = await db
      .select({
        nodeId: verdictEntriesTable.nodeId,
        outcome: verdictEntriesTable.outcome,
        reason: verdictEntriesTable.reason,
      })
      .from(verdictEntriesTable)
      .orderBy(asc(verdictEntriesTable.requestId), asc(verdictEntriesTable.ordinal));
    // The history holds h1's verdict alone: accepted.
    const deltas = reputationDeltas(counts, 'accepted');
    expect(deltas.map((d) => d.nodeId)).toEqual(
      [h1.keys.a, h1.keys.b, h1.keys.c, h1.keys.d].map((k) => k.nodeId).sort(),
    );
    for (const d of deltas) {
      const { nodeId, ...counters } = d;
      await db
        .insert(reputation)
        .values({ nodeId, ...counters, score: reputationScore(counters), updatedAt: T0 + 600 })
        .onConflictDoUpdate({
          target: reputation.nodeId,
          set: {
            agreements: sql`${reputation.agreements} + ${counters.agreements}`,
            updatedAt: T0 + 600,
          },
        });
    }
    const rows = await db.select().from(reputation).orderBy(desc(reputation.score), asc(reputation.nodeId));
    expect(rows.length).toBe(4);
    const byNode = new Map(rows.map((r) => [r.nodeId, r]));
    expect(byNode.get(h1.keys.a.nodeId)).toMatchObject({
      agreements: 1,
      disagreements: 0,
      withheld: 0,
      invalid: 0,
    });
    expect(byNode.get(h1.keys.c.nodeId)).toMatchObject({ agreements: 0, disagreements: 1, score: 0 });
    expect(byNode.get(h1.keys.d.nodeId)).toMatchObject({ agreements: 0, invalid: 1, score: 0 });
    expect(rows[0]!.score).toBeGreaterThan(0);
    expect(rows[0]!.meanLatencyMs).toBeNull();
  });

  test('a duplicate attestation from one node is refused; the same packet again is ignored', async () => {
    const again = await stored(h1.keys.b, 'attestation', {
      requestId: id.h1,
      verdictDigest: 'ee'.repeat(32),
      transcriptRoot: 'ee'.repeat(32),
      createdAt: T0 + 900,
    });
    expect(await failure(db.insert(attestations).values(attestationRow(again)))).toContain(
      'UNIQUE constraint failed: attestations.request_id, attestations.node_id',
    );
    const original = h1.attestations[0]!;
    const r = await db.insert(attestations).values(attestationRow(original)).onConflictDoNothing();
    expect(r.rowsAffected).toBe(0);
  });

  test('the same commitment re-sent by a node is a duplicate; a second commitment is kept as evidence', async () => {
    const requestId = id.r2;
    const a = h1.keys.a;
    const c1 = await stored(a, 'commit', { requestId, commitment: '01'.repeat(32), createdAt: T0 + 1_100 });
    const c1again = await stored(a, 'commit', {
      requestId,
      commitment: '01'.repeat(32),
      createdAt: T0 + 1_101,
    });
    const c2 = await stored(a, 'commit', { requestId, commitment: '02'.repeat(32), createdAt: T0 + 1_102 });
    await db.insert(commits).values(commitRow(c1));
    expect(await failure(db.insert(commits).values(commitRow(c1again)))).toContain(
      'UNIQUE constraint failed: commits.request_id, commits.node_id, commits.commitment',
    );
    await db.insert(commits).values(commitRow(c2));
    const mine = await db
      .select({ n: sql<number>`count(*)` })
      .from(commits)
      .where(and(eq(commits.requestId, requestId), eq(commits.nodeId, a.nodeId)));
    expect(mine[0]!.n).toBe(2);
  });

  test('rows that point at missing parents fail with foreign keys on', async () => {
    const ghost = 'ff'.repeat(32);
    const commit = await stored(h1.keys.a, 'commit', {
      requestId: ghost,
      commitment: '03'.repeat(32),
      createdAt: T0,
    });
    expect(await failure(db.insert(commits).values(commitRow(commit)))).toContain(
      'FOREIGN KEY constraint failed',
    );
    // A seal member must be exactly a stored commit of that node for that request.
    const requestId = id.h1;
    expect(
      await failure(
        db.insert(sealMembers).values({
          requestId,
          nodeId: h1.keys.d.nodeId,
          commitment: '04'.repeat(32),
          commitId: h1.commits[3]!.id,
        }),
      ),
    ).toContain('FOREIGN KEY constraint failed');
    // A seal must name the request's own packet id.
    const seal = await stored(relay, 'seal', {
      requestId: id.r2,
      requestPacketId: h1.request.id,
      members: [{ nodeId: h1.keys.a.nodeId, commitment: '01'.repeat(32), commitId: ghost }],
      createdAt: T0 + 1_500,
    });
    expect(await failure(db.insert(seals).values(sealRows(seal).seal))).toContain(
      'FOREIGN KEY constraint failed',
    );
  });

  test('check constraints refuse rows the protocol cannot produce', async () => {
    const base = requestRows(
      await requestPacket(relay, { createdAt: T0 + 5_000, models: [LLAMA.id], nonce: 5 }),
      T0,
    ).request;
    expect(
      await failure(db.insert(requests).values({ ...base, messages: [{ role: 'user', content: 'x' }] })),
    ).toContain('requests_prompt_xor_messages_ck');
    expect(await failure(db.insert(requests).values({ ...base, chainId: 1 }))).toContain(
      'requests_chain_origin_ck',
    );
    expect(
      await failure(db.insert(requests).values({ ...base, status: 'done' as unknown as 'pending' })),
    ).toContain('requests_status_ck');

    const { verdict } = verdictRows(h1.verdict);
    expect(
      await failure(
        db
          .insert(verdicts)
          .values({ ...verdict, requestId: id.r2, packetId: '05'.repeat(32), winnerNodeId: null }),
      ),
    ).toContain('verdicts_winner_ck');
    expect(
      await failure(
        db.insert(verdictEntriesTable).values({
          requestId: id.h1,
          ordinal: 99,
          nodeId: h1.keys.a.nodeId,
          commitment: null,
          revealId: null,
          outcome: 'rejected',
          reason: null,
          winner: false,
        }),
      ),
    ).toContain('verdict_entries_reason_ck');
    expect(
      await failure(db.insert(reputation).values({ nodeId: '06'.repeat(32), score: 1.5, updatedAt: T0 })),
    ).toContain('reputation_score_ck');
  });

  test('api keys store only a sha256; usage meters per day with an upsert', async () => {
    const hash = new Bun.CryptoHasher('sha256').update('sk-synod-test-secret').digest('hex');
    expect(
      await failure(
        db
          .insert(apiKeys)
          .values({ id: 'k0', hash: 'sk-synod-test-secret', label: 'plain', quotaPerDay: 1, createdAt: T0 }),
      ),
    ).toContain('api_keys_hash_ck');
    await db.insert(apiKeys).values({ id: 'k1', hash, label: 'tests', quotaPerDay: 100, createdAt: T0 });
    expect(
      await failure(
        db.insert(apiKeys).values({ id: 'k2', hash, label: 'copy', quotaPerDay: 1, createdAt: T0 }),
      ),
    ).toContain('UNIQUE constraint failed: api_keys.hash');
    const meter = () =>
      db
        .insert(usage)
        .values({ keyId: 'k1', day: '2027-01-15', count: 1 })
        .onConflictDoUpdate({ target: [usage.keyId, usage.day], set: { count: sql`${usage.count} + 1` } })
        .returning({ count: usage.count });
    expect(await meter()).toEqual([{ count: 1 }]);
    expect(await meter()).toEqual([{ count: 2 }]);
    expect(await failure(db.insert(usage).values({ keyId: 'k1', day: '15/01/2027', count: 1 }))).toContain(
      'usage_day_ck',
    );
    // Keyless signed-request callers are metered too: usage has no foreign key to api_keys.
    await db.insert(usage).values({ keyId: `node:${'ab'.repeat(32)}`, day: '2027-01-15', count: 1 });
    expect(
      await db.select({ count: usage.count }).from(usage).where(sql`${usage.keyId} like 'node:%'`),
    ).toEqual([{ count: 1 }]);
  });

  test('an idempotency key maps to one request; reusing it fails', async () => {
    const row = {
      keyId: 'k1',
      idempotencyKey: 'retry-1',
      requestId: id.r2,
      bodyDigest: '07'.repeat(32),
      createdAt: T0,
    };
    await db.insert(idempotency).values(row);
    expect(await failure(db.insert(idempotency).values({ ...row, requestId: id.r3 }))).toContain(
      'UNIQUE constraint failed: idempotency.key_id, idempotency.idempotency_key',
    );
    const found = await db
      .select({ requestId: idempotency.requestId, bodyDigest: idempotency.bodyDigest })
      .from(idempotency)
      .where(and(eq(idempotency.keyId, 'k1'), eq(idempotency.idempotencyKey, 'retry-1')));
    expect(found).toEqual([{ requestId: id.r2, bodyDigest: '07'.repeat(32) }]);
    // No foreign key: the row is written with the request's admission-log row, before `requests` has it.
    await db.insert(idempotency).values({ ...row, idempotencyKey: 'retry-2', requestId: 'ab'.repeat(32) });
  });

  test('the admission log takes 64-hex and chain request ids only, and is ordered by seq', async () => {
    const base = {
      coordinator: 'cd'.repeat(32),
      callerId: 'k1',
      body: '{}',
      createdAt: T0,
      deadline: T0 + 30_000,
    };
    await db.insert(requestIntake).values([
      { ...base, requestId: 'ab'.repeat(32), idPrefix: intakeIdPrefix('ab'.repeat(32)) },
      { ...base, requestId: '01'.repeat(32), idPrefix: intakeIdPrefix('01'.repeat(32)) },
    ]);
    const rows = await db.select().from(requestIntake).orderBy(requestIntake.seq);
    expect(rows.map((r) => r.requestId)).toEqual(['ab'.repeat(32), '01'.repeat(32)]);
    expect(rows[0]?.idPrefix).toBe(Number.parseInt('ab'.repeat(7).slice(0, 13), 16));
    expect(
      await failure(db.insert(requestIntake).values({ ...base, requestId: 'XY'.repeat(32), idPrefix: 1 })),
    ).toContain('request_intake_request_id_ck');
    // A chain request's id `<chainId>:<contract>:<requestNo>`; its prefix is taken from its sha256.
    const chainId = `31337:0x${'ab'.repeat(20)}:12`;
    await db.insert(requestIntake).values({ ...base, requestId: chainId, idPrefix: intakeIdPrefix(chainId) });
    const [chainRow] = await db.select().from(requestIntake).where(eq(requestIntake.requestId, chainId));
    expect(chainRow?.idPrefix).toBe(Number.parseInt(sha256Hex(utf8(chainId)).slice(0, 13), 16));
    expect(
      await failure(
        db.insert(requestIntake).values({
          ...base,
          requestId: `1:0x${'ab'.repeat(20)}:${'9'.repeat(REQUEST_ID_MAX_CHARS)}`,
          idPrefix: 1,
        }),
      ),
    ).toContain('request_intake_request_id_ck');
    // The longest id the protocol allows (REQUEST_ID_MAX_CHARS) fits.
    const longest = `${'9'.repeat(20)}:0x${'ab'.repeat(20)}:${'9'.repeat(78)}`;
    expect(longest.length).toBe(REQUEST_ID_MAX_CHARS);
    await db.insert(requestIntake).values({ ...base, requestId: longest, idPrefix: intakeIdPrefix(longest) });
  });

  test('a chain request settles exactly once, and survives a reorg', async () => {
    const contract = `0x${'ab'.repeat(20)}`;
    const key = { chainId: 8453, contract, requestNo: '18446744073709551617' };
    const row = {
      ...key,
      requestId: `8453:${contract}:18446744073709551617`,
      txHash: `0x${'cd'.repeat(32)}`,
      logIndex: 3,
      blockNumber: 123_456,
      blockHash: `0x${'0e'.repeat(32)}`,
      createdAt: T0,
      updatedAt: T0,
    };
    expect(
      await failure(
        db.insert(chainRequests).values({ ...row, requestId: `1:${contract}:18446744073709551617` }),
      ),
    ).toContain('chain_requests_request_id_ck');
    // The watcher sees the event twice (restart): one row.
    await db.insert(chainRequests).values(row).onConflictDoNothing();
    await db.insert(chainRequests).values(row).onConflictDoNothing();
    const whereKey = and(
      eq(chainRequests.chainId, key.chainId),
      eq(chainRequests.contract, key.contract),
      eq(chainRequests.requestNo, key.requestNo),
    );
    // Reorg: the block is gone; the event reappears in another block.
    await db
      .update(chainRequests)
      .set({ status: 'reorged', updatedAt: T0 + 1 })
      .where(whereKey);
    await db
      .update(chainRequests)
      .set({ status: 'pending', blockNumber: 123_457, blockHash: `0x${'0f'.repeat(32)}`, updatedAt: T0 + 2 })
      .where(and(whereKey, eq(chainRequests.status, 'reorged')));
    expect(await failure(db.update(chainRequests).set({ status: 'fulfilled' }).where(whereKey))).toContain(
      'chain_requests_settled_ck',
    );
    const settle = (tx: string) =>
      db
        .update(chainRequests)
        .set({ status: 'fulfilled', fulfilledTx: tx, updatedAt: T0 + 3 })
        .where(and(whereKey, eq(chainRequests.status, 'pending')));
    expect((await settle(`0x${'11'.repeat(32)}`)).rowsAffected).toBe(1);
    expect((await settle(`0x${'22'.repeat(32)}`)).rowsAffected).toBe(0);
    const [final] = await db.select().from(chainRequests).where(whereKey);
    expect([final!.status, final!.fulfilledTx, final!.blockNumber]).toEqual([
      'fulfilled',
      `0x${'11'.repeat(32)}`,
      123_457,
    ]);
  });

  test('a heartbeat upserts the node and keeps first_seen', async () => {
    const heartbeat = (createdAt: number, tps: number) =>
      stored(h1.keys.a, 'heartbeat', {
        role: 'node',
        software: 'synod-node/0.1.0',
        models: [{ id: LLAMA.id, fileHash: LLAMA.fileHash, engine: 'webgpu', tokensPerSecond: tps }],
        embedders: [{ ...FRAME.embeddingModel, embeddingsPerSecond: 40 }],
        capacity: { queued: 0, maxQueue: 4 },
        addresses: [],
        createdAt,
      });
    const upsert = (row: ReturnType<typeof nodeRow>) => {
      const { nodeId: _id, firstSeen: _first, ...rest } = row;
      return db.insert(nodes).values(row).onConflictDoUpdate({ target: nodes.nodeId, set: rest });
    };
    const hb1 = await heartbeat(T0, 12.5);
    const hb2 = await heartbeat(T0 + 30_000, 20);
    await upsert(nodeRow(hb1, T0 + 5));
    await upsert(nodeRow(hb2, T0 + 30_005));
    const [n] = await db.select().from(nodes).where(eq(nodes.nodeId, h1.keys.a.nodeId));
    expect(n).toMatchObject({
      role: 'node',
      firstSeen: T0 + 5,
      lastSeen: T0 + 30_005,
      tokensPerSecond: 20,
      embeddingsPerSecond: 40,
      lastHeartbeatId: hb2.id,
    });
    expect(n!.lastHeartbeat as Packet<'heartbeat'>).toEqual(hb2.packet);
    expect(packetId(parseEnvelope(n!.lastHeartbeat))).toBe(hb2.id);
  });

  test('deleting a request prunes its whole history and nothing else', async () => {
    const count = async (table: SQLiteTable) =>
      Number(
        (await opened.client.execute(`select count(*) as n from ${getTableConfig(table).name}`)).rows[0]![
          'n'
        ],
      );
    const before = await count(commits);
    await db.delete(requests).where(eq(requests.requestId, id.h1));
    for (const table of [seals, sealMembers, reveals, verdicts, verdictEntriesTable, attestations]) {
      expect(await count(table)).toBe(0);
    }
    expect(await count(commits)).toBe(before - 4);
    expect(await count(requests)).toBe(3);
    expect(await count(reputation)).toBe(4);
    expect((await opened.client.execute('pragma foreign_key_check')).rows.length).toBe(0);
  });
});

describe('an in-memory database', () => {
  test('takes a whole history in one transaction, and rolls all of it back on a failure', async () => {
    const { client, db } = await open(':memory:');
    try {
      const relay = await seedKey(9);
      const h = await acceptedHistory(relay, T0, 11);
      const broken = { ...h, attestations: [h.attestations[0]!, h.attestations[0]!] };
      expect(await failure(storeHistory(db, broken, T0))).toContain('UNIQUE constraint failed');
      expect(await db.select().from(requests)).toEqual([]);
      await storeHistory(db, h, T0);
      const rows = await db.select({ id: requests.requestId, status: requests.status }).from(requests);
      expect(rows).toEqual([{ id: h.request.packet.body.requestId, status: 'verdict' }]);
      expect((await db.select().from(verdictEntriesTable)).length).toBe(4);
    } finally {
      client.close();
    }
  });
});

describe('verdictEntries', () => {
  test('an accepted verdict: accepted entries first with the winner marked, then rejected ones', async () => {
    const h = await acceptedHistory(await seedKey(9), T0, 21);
    const verdict = h.verdict.packet.body.verdict;
    const rows = verdictEntries(verdict);
    expect(rows).toEqual([
      {
        requestId: verdict.requestId,
        ordinal: 0,
        nodeId: h.keys.a.nodeId,
        commitment: verdict.accepted[0]!.commitment,
        revealId: null,
        outcome: 'accepted',
        reason: null,
        winner: true,
      },
      {
        requestId: verdict.requestId,
        ordinal: 1,
        nodeId: h.keys.b.nodeId,
        commitment: verdict.accepted[1]!.commitment,
        revealId: null,
        outcome: 'accepted',
        reason: null,
        winner: false,
      },
      {
        requestId: verdict.requestId,
        ordinal: 2,
        nodeId: h.keys.c.nodeId,
        commitment: verdict.rejected[0]!.commitment,
        revealId: h.reveals[2]!.id,
        outcome: 'rejected',
        reason: 'OUTSIDE_CLUSTER',
        winner: false,
      },
      {
        requestId: verdict.requestId,
        ordinal: 3,
        nodeId: h.keys.d.nodeId,
        commitment: null,
        revealId: h.reveals[3]!.id,
        outcome: 'rejected',
        reason: 'NOT_SEALED',
        winner: false,
      },
    ]);
    // Pure: the same verdict gives the same rows, and the input is untouched.
    const copy = structuredClone(verdict);
    expect(verdictEntries(verdict)).toEqual(rows);
    expect(verdict).toEqual(copy);
  });

  test('a no-consensus verdict: no winner, every member rejected with its reason', () => {
    const members = ['01', '02', '03'].map((x) => ({
      nodeId: x.repeat(32),
      commitment: x.repeat(32).replace(/^../, 'cc'),
    }));
    const verdict = noConsensusVerdict('9a'.repeat(32), members);
    const rows = verdictEntries(verdict);
    expect(rows.map((r) => [r.ordinal, r.nodeId, r.outcome, r.reason, r.winner])).toEqual([
      [0, members[0]!.nodeId, 'rejected', 'OUTSIDE_CLUSTER', false],
      [1, members[1]!.nodeId, 'rejected', 'COMMITMENT_MISMATCH', false],
      [2, members[2]!.nodeId, 'rejected', 'NOT_REVEALED', false],
    ]);
    expect(rows[2]!.revealId).toBeNull();
    // OUTSIDE_CLUSTER under no-consensus is no disagreement: no cluster was accepted to disagree with.
    expect(reputationDeltas(rows, 'no-consensus')).toEqual([
      { nodeId: members[0]!.nodeId, agreements: 0, disagreements: 0, withheld: 0, invalid: 0 },
      { nodeId: members[1]!.nodeId, agreements: 0, disagreements: 0, withheld: 0, invalid: 1 },
      { nodeId: members[2]!.nodeId, agreements: 0, disagreements: 0, withheld: 1, invalid: 0 },
    ]);
  });

  test('verdictRows projects the winner and matches the columns of verdicts', async () => {
    const h = await acceptedHistory(await seedKey(9), T0, 22);
    const { verdict } = verdictRows(h.verdict);
    const winner = h.verdict.packet.body.verdict.winner!;
    expect(verdict).toMatchObject({
      requestId: h.request.packet.body.requestId,
      packetId: h.verdict.id,
      coordinator: h.verdict.packet.from,
      status: 'accepted',
      winnerNodeId: winner.nodeId,
      winnerCommitment: winner.commitment,
      winnerOutputDigest: winner.outputDigest,
      winnerModelFileHash: LLAMA.fileHash,
    });
    expect(Object.keys(verdict).sort()).toEqual(Object.keys(getTableColumns(verdicts)).sort());
    expect(verdict.raw).toBe(rawPacket(h.verdict.packet));
  });
});

describe('reputationScore', () => {
  const zero = { agreements: 0, disagreements: 0, withheld: 0, invalid: 0 };

  test('is the Wilson lower bound of agreements over all outcomes', () => {
    expect(reputationScore(zero)).toBe(0);
    expect(reputationScore({ ...zero, agreements: 1 })).toBeCloseTo(0.2065, 4);
    expect(reputationScore({ ...zero, agreements: 100 })).toBeCloseTo(0.963, 3);
    expect(reputationScore({ agreements: 8, disagreements: 1, withheld: 1, invalid: 0 })).toBeCloseTo(
      0.4902,
      4,
    );
    expect(reputationScore({ ...zero, disagreements: 5, withheld: 5 })).toBe(0);
    // Every kind of failure weighs the same.
    const s = reputationScore({ agreements: 8, disagreements: 2, withheld: 0, invalid: 0 });
    expect(reputationScore({ agreements: 8, disagreements: 0, withheld: 1, invalid: 1 })).toBe(s);
  });

  test('refuses counters that are not non-negative integers', () => {
    expect(() => reputationScore({ ...zero, agreements: -1 })).toThrow(RangeError);
    expect(() => reputationScore({ ...zero, invalid: 1.5 })).toThrow(RangeError);
    expect(() => reputationScore({ ...zero, withheld: Number.NaN })).toThrow(RangeError);
    expect(() => reputationScore({ ...zero, agreements: 1 }, 0)).toThrow(RangeError);
  });

  test('stays in [0, 1), rises with agreements and falls with failures', () => {
    const count = fc.nat({ max: 2_000 });
    fc.assert(
      fc.property(count, count, count, count, (agreements, disagreements, withheld, invalid) => {
        const r = { agreements, disagreements, withheld, invalid };
        const s = reputationScore(r);
        expect(s).toBeGreaterThanOrEqual(0);
        expect(s).toBeLessThan(1);
        expect(reputationScore({ ...r, agreements: agreements + 1 })).toBeGreaterThan(s);
        expect(reputationScore({ ...r, disagreements: disagreements + 1 })).toBeLessThanOrEqual(s);
        expect(reputationScore({ ...r, invalid: invalid + 1 })).toBeLessThanOrEqual(s);
      }),
    );
  });
});
