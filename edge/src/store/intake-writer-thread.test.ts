import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RequestBody } from '@synod/shared';
import { IntakeStore } from './intake-store.ts';
import { IntakeWriterError, IntakeWriterThread } from './intake-writer-thread.ts';
import { openHistory } from './open-history.ts';
import { TEST_COORDINATOR, testAdmission } from './test-admissions.ts';

const COORDINATOR = TEST_COORDINATOR;
const dir = mkdtempSync(join(tmpdir(), 'synod-writer-'));
let n = 0;
const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const f of cleanup) await f();
  rmSync(dir, { recursive: true, force: true });
});

const admission = testAdmission;

/** A migrated database file, its reading client, and a writer thread on it. */
async function setup() {
  const url = `file:${join(dir, `writer-${n++}.db`)}`;
  const h = await openHistory(url);
  const writer = await IntakeWriterThread.open({ url, coordinator: COORDINATOR });
  cleanup.push(
    () => writer.close(),
    () => h.client.close(),
  );
  return { url, writer, intake: new IntakeStore(h.client), client: h.client };
}

async function rejection(p: Promise<unknown>): Promise<IntakeWriterError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(IntakeWriterError);
    return e as IntakeWriterError;
  }
  throw new Error('expected a rejection');
}

describe('IntakeWriterThread (the admission transaction on its own thread)', () => {
  test('admits into the shared file: the HTTP thread reads what the writer committed', async () => {
    const { writer, intake } = await setup();
    const batch = [admission(), admission(), admission()];
    const out = await writer.admit(batch, 7);
    expect(out).toEqual(
      batch.map((a, i) => ({ kind: 'created', requestId: a.body.requestId, usedToday: i + 1 })),
    );
    const queued = await intake.next(COORDINATOR, 10);
    expect(queued.map((q) => q.requestId)).toEqual(batch.map((a) => a.body.requestId));
    expect(queued[0]?.body).toEqual(batch[0]?.body as RequestBody);
    expect(await writer.stats()).toEqual({ batches: 1, admissions: 3, largest: 3 });
  });

  test('batches handed over together keep their order, and quota is decided across them', async () => {
    const { writer, intake } = await setup();
    const batches = Array.from({ length: 6 }, () => [
      admission({ quotaPerDay: 10 }),
      admission({ quotaPerDay: 10 }),
    ]);
    const outs = await Promise.all(batches.map((b) => writer.admit(b, 7)));
    const kinds = outs.flat().map((o) => o.kind);
    expect(kinds).toEqual([...Array(10).fill('created'), 'quota-exceeded', 'quota-exceeded']);
    const queued = await intake.next(COORDINATOR, 20);
    expect(queued.map((q) => q.requestId)).toEqual(
      batches
        .flat()
        .slice(0, 10)
        .map((a) => a.body.requestId),
    );
  });

  test('a batch larger than the HTTP side ever hands over is still one transaction, never split', async () => {
    const { writer, intake } = await setup();
    const batch = Array.from({ length: 600 }, () => admission({ quotaPerDay: 1_000 }));
    const out = await writer.admit(batch, 7);
    expect(out.every((o) => o.kind === 'created')).toBe(true);
    expect(await writer.stats()).toEqual({ batches: 1, admissions: 600, largest: 600 });
    expect(await intake.count(COORDINATOR)).toBe(600);
  });

  test('Idempotency-Key replays and conflicts are decided on the writer thread too', async () => {
    const { writer } = await setup();
    const first = admission({ idempotency: { key: 'k1', bodyDigest: 'a'.repeat(64) } });
    const [created] = await writer.admit([first], 7);
    const out = await writer.admit(
      [
        admission({ idempotency: { key: 'k1', bodyDigest: 'a'.repeat(64) } }),
        admission({ idempotency: { key: 'k1', bodyDigest: 'b'.repeat(64) } }),
      ],
      8,
    );
    expect(created).toEqual({ kind: 'created', requestId: first.body.requestId, usedToday: 1 });
    expect(out).toEqual([
      { kind: 'replayed', requestId: first.body.requestId },
      { kind: 'conflict', requestId: first.body.requestId },
    ]);
  });

  test('a batch the database refuses is rejected whole (typed, with the SQLite code); the next one is written', async () => {
    const { writer, intake } = await setup();
    const good = admission();
    const bad = admission();
    (bad.body as { requestId: string }).requestId = 'F'.repeat(64); // hex, but not the lower-case form the CHECK asks for
    const e = await rejection(writer.admit([good, bad], 7));
    expect(e.code).toBe('WRITER_FAILED');
    expect(e.sqlCode).toContain('SQLITE_CONSTRAINT');
    expect(await intake.count()).toBe(0);
    const next = admission();
    expect(await writer.admit([next], 8)).toEqual([
      { kind: 'created', requestId: next.body.requestId, usedToday: 1 },
    ]);
    expect(await intake.count()).toBe(1);
  });

  test('the writer and the HTTP thread both write to the file: the busy timeout lets them take turns', async () => {
    const { writer, client, intake } = await setup();
    const writes = Array.from({ length: 20 }, (_, i) =>
      client.execute({
        sql: 'INSERT INTO usage (key_id, day, count) VALUES (?, ?, 1)',
        args: [`k${i}`, '2026-11-22'],
      }),
    );
    const admits = Array.from({ length: 20 }, () => writer.admit([admission()], 7));
    await Promise.all([...writes, ...admits]);
    expect(await intake.count()).toBe(20);
  });

  test('a database file that cannot be opened fails the open with a typed error', async () => {
    const e = await rejection(
      IntakeWriterThread.open({ url: `file:${join(dir, 'missing-dir', 'x.db')}`, coordinator: COORDINATOR }),
    );
    expect(e.code).toBe('WRITER_FAILED');
  });

  test('only a local file can have a writer thread; a closed writer refuses new batches', async () => {
    const e = await rejection(
      IntakeWriterThread.open({ url: 'http://127.0.0.1:1', coordinator: COORDINATOR }),
    );
    expect(e.code).toBe('WRITER_FAILED');
    const { writer } = await setup();
    await writer.close();
    expect((await rejection(writer.admit([admission()], 7))).code).toBe('WRITER_CLOSED');
  });
});

describe('IntakeWriterThread when its thread dies or hangs (FailingWriterDouble)', () => {
  test('the batches it held are rejected, and the next batch starts a new thread', async () => {
    const writer = await IntakeWriterThread.open({
      url: 'file:unused.db',
      coordinator: COORDINATOR,
      workerUrl: new URL('./failing-writer-double.worker.ts', import.meta.url),
    });
    cleanup.push(() => writer.close());
    const ok = admission();
    expect(await writer.admit([ok], 1)).toEqual([
      { kind: 'created', requestId: ok.body.requestId, usedToday: 1 },
    ]);
    const doomed = admission();
    (doomed.body as { requestId: string }).requestId = 'exit';
    const e = await rejection(writer.admit([doomed], 2));
    expect(e.code).toBe('WRITER_EXITED');
    expect(writer.restarts).toBe(1);
    const after = admission();
    expect(await writer.admit([after], 3)).toEqual([
      { kind: 'created', requestId: after.body.requestId, usedToday: 1 },
    ]);
  });

  test('a thread that leaves a batch unanswered is ended; what it held is rejected, the next batch works', async () => {
    const writer = await IntakeWriterThread.open({
      url: 'file:unused.db',
      coordinator: COORDINATOR,
      workerUrl: new URL('./failing-writer-double.worker.ts', import.meta.url),
      answerTimeoutMs: 150,
    });
    cleanup.push(() => writer.close());
    const stuck = admission();
    (stuck.body as { requestId: string }).requestId = 'hang';
    const held = writer.admit([stuck], 1);
    // Later messages answered meanwhile do not hide the unanswered one.
    expect(await writer.admit([admission()], 2)).toHaveLength(1);
    const e = await rejection(held);
    expect(e.code).toBe('WRITER_TIMEOUT');
    expect(e.message).toContain('150 ms');
    expect(writer.restarts).toBe(1);
    const after = admission();
    expect(await writer.admit([after], 3)).toEqual([
      { kind: 'created', requestId: after.body.requestId, usedToday: 1 },
    ]);
    // Answered messages never trip it, however long the thread lives.
    await Bun.sleep(400);
    expect(await writer.admit([admission()], 4)).toHaveLength(1);
    expect(writer.restarts).toBe(1);
  });

  test('the answer timeout must be positive', async () => {
    const open = (answerTimeoutMs: number) =>
      IntakeWriterThread.open({ url: 'file:unused.db', coordinator: COORDINATOR, answerTimeoutMs });
    await expect(open(0)).rejects.toThrow(RangeError);
    await expect(open(Number.NaN)).rejects.toThrow(RangeError);
  });
});
