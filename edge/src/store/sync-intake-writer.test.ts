import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Admission, IntakeStore, intakeEntry } from './intake-store.ts';
import { openHistory } from './open-history.ts';
import { SyncIntakeWriter } from './sync-intake-writer.ts';
import { TEST_COORDINATOR, testAdmission } from './test-admissions.ts';

const COORDINATOR = TEST_COORDINATOR;
const dir = mkdtempSync(join(tmpdir(), 'synod-sync-writer-'));
const cleanup: (() => unknown)[] = [];
afterAll(() => {
  for (const f of cleanup) f();
  rmSync(dir, { recursive: true, force: true });
});

const admission = (o: Partial<Admission> = {}) => intakeEntry(testAdmission(o));

let n = 0;
async function setup() {
  const url = `file:${join(dir, `sync-${n++}.db`)}`;
  const h = await openHistory(url);
  const writer = new SyncIntakeWriter(url, 1000);
  cleanup.push(
    () => writer.close(),
    () => h.client.close(),
  );
  return { writer, intake: new IntakeStore(h.client) };
}

describe('SyncIntakeWriter (IntakeStore.admit on a synchronous connection)', () => {
  test('decides like IntakeStore.admit: created, quota, replay, in arrival order', async () => {
    const { writer, intake } = await setup();
    const idem = { key: 'k', bodyDigest: 'd'.repeat(64) };
    const a = testAdmission({ quotaPerDay: 2, idempotency: idem });
    const out = await writer.admit(
      [
        intakeEntry(a),
        admission({ quotaPerDay: 2, idempotency: idem }),
        admission({ quotaPerDay: 2 }),
        admission({ quotaPerDay: 2 }),
      ],
      COORDINATOR,
      5,
    );
    expect(out.map((o) => o.kind)).toEqual(['created', 'replayed', 'created', 'quota-exceeded']);
    expect(await intake.count(COORDINATOR)).toBe(2);
    expect((await intake.queued(a.body.requestId))?.body).toEqual(a.body);
    // The same statement shapes again, from its prepared statements.
    expect((await writer.admit([admission({ quotaPerDay: 3 })], COORDINATOR, 6)).map((o) => o.kind)).toEqual([
      'created',
    ]);
  });

  test('a failed batch is rolled back whole and the connection goes on', async () => {
    const { writer, intake } = await setup();
    const bad = admission();
    bad.requestId = 'F'.repeat(64);
    await expect(writer.admit([admission(), bad], COORDINATOR, 5)).rejects.toThrow('CHECK constraint');
    expect(await intake.count()).toBe(0);
    expect((await writer.admit([admission()], COORDINATOR, 6))[0]?.kind).toBe('created');
  });

  test('only a local database file', () => {
    expect(() => new SyncIntakeWriter('http://127.0.0.1:1', 10)).toThrow('local database file');
    expect(() => new SyncIntakeWriter(':memory:', 10)).toThrow('local database file');
  });
});
