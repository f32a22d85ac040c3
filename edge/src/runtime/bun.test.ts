/** `startRelay` housekeeping: expired Idempotency-Keys are forgotten at start, and the retention is checked. */
import { afterAll, describe, expect, test } from 'bun:test';
import { closeSync, existsSync, mkdtempSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeKey, packetId, signPacket } from '@synod/shared';
import { createApiKey } from '../auth/api-keys.ts';
import { ADMISSION_FAILURE_HOLD_MS } from '../http/admission-health.ts';
import { ABANDONED_AFTER_MS } from '../store/history-store.ts';
import { IntakeStore } from '../store/intake-store.ts';
import { openHistory } from '../store/open-history.ts';
import { TEST_COORDINATOR, testAdmission, testBody } from '../store/test-admissions.ts';
import { storeRequest } from '../store/test-requests.ts';
import { loneRelay } from '../test-relay.ts';
import { smallDisk, waitUntil } from '../test-servers.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-relay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const DAY = 24 * 60 * 60 * 1000;

async function relayOn(
  dbUrl: string,
  config: { idempotencyRetentionMs?: number } = {},
  o: { maxQueuedRequests?: number; admissionThread?: boolean } = {},
) {
  return loneRelay(dbUrl, 3, { config, ...o });
}

describe('startRelay and Idempotency-Key retention', () => {
  test('keys older than the retention are forgotten at start; younger ones stay', async () => {
    const dbUrl = `file:${join(dir, 'retention.db')}`;
    const h = await openHistory(dbUrl);
    const intake = new IntakeStore(h.client);
    const keyed = (key: string) =>
      testAdmission({ idempotency: { key, bodyDigest: 'd'.repeat(64) }, quotaPerDay: 10 });
    await intake.admit([keyed('two-days-old')], TEST_COORDINATOR, Date.now() - 2 * DAY);
    await intake.admit([keyed('an-hour-old')], TEST_COORDINATOR, Date.now() - 60 * 60 * 1000);
    h.client.close();

    const relay = await relayOn(dbUrl);
    try {
      const keys = async () =>
        (await relay.client.execute('SELECT idempotency_key AS k FROM idempotency')).rows.map((r) => r['k']);
      await waitUntil('the expired key is forgotten', async () => (await keys()).length === 1, 10_000, 20);
      expect(await keys()).toEqual(['an-hour-old']);
    } finally {
      await relay.stop();
    }
  });

  test('requests another relay left open or queued long past any deadline are expired at start (COORDINATOR_GONE)', async () => {
    const dbUrl = `file:${join(dir, 'abandoned.db')}`;
    const h = await openHistory(dbUrl);
    // A request another coordinator took and never finished, an hour ago, and one it took just now.
    const other = await NodeKey.fromSeed(new Uint8Array(32).fill(4));
    const insert = async (body: ReturnType<typeof testBody>) => {
      const packet = await signPacket(other, 'request', body);
      await storeRequest(h.store, { id: packetId(packet), packet }, 1);
    };
    const old = testBody({ createdAt: Date.now() - ABANDONED_AFTER_MS - 60_000 });
    const recent = testBody({ createdAt: Date.now() });
    await insert(old);
    await insert(recent);
    // And one it admitted an hour ago and never dispatched (still in the admission log).
    const queued = testBody({ createdAt: Date.now() - ABANDONED_AFTER_MS - 60_000 });
    await new IntakeStore(h.client).admit([testAdmission({ body: queued })], other.nodeId, Date.now());
    h.client.close();

    const relay = await relayOn(dbUrl);
    try {
      const status = async (id: string) => (await relay.store.getRequest(id))?.status;
      await waitUntil(
        'the abandoned request is expired',
        async () => (await status(old.requestId)) === 'expired',
      );
      expect((await relay.store.getRequest(old.requestId))?.error).toBe('COORDINATOR_GONE');
      expect(await status(recent.requestId)).toBe('pending');
      await waitUntil(
        'the abandoned queued request is expired',
        async () => (await status(queued.requestId)) === 'expired',
      );
      expect((await relay.store.getRequest(queued.requestId))?.error).toBe('COORDINATOR_GONE');
      expect(await relay.intake.count()).toBe(0);
    } finally {
      await relay.stop();
    }
  });

  test("the gateway's internal routes, mounted after the app, answer another method with 405 naming theirs", async () => {
    const relay = await loneRelay(`file:${join(dir, 'gateway.db')}`, 3, { gatewaySecret: 's'.repeat(32) });
    try {
      const r = await relay.app.request('/internal/v1/wake');
      expect(r.status).toBe(405);
      expect(r.headers.get('allow')).toBe('POST');
      expect((await relay.app.request('/internal/v1/nothing')).status).toBe(404);
    } finally {
      await relay.stop();
    }
  });

  test('a retention shorter than the signed-request skew window is refused at start', async () => {
    await expect(relayOn(`file:${join(dir, 'short.db')}`, { idempotencyRetentionMs: 1_000 })).rejects.toThrow(
      'idempotencyRetentionMs must be at least',
    );
  });

  test('a queue bound that is not positive is refused before the database is opened', async () => {
    for (const maxQueuedRequests of [0, -1, Number.NaN]) {
      await expect(relayOn(`file:${join(dir, 'bound.db')}`, {}, { maxQueuedRequests })).rejects.toThrow(
        RangeError,
      );
    }
    expect(existsSync(join(dir, 'bound.db'))).toBe(false);
  });
});

describe('startRelay when its database file goes', () => {
  for (const how of ['deleted', 'replaced'] as const) {
    test(`a file ${how} under the relay: admissions are refused, not acknowledged, and /healthz says so`, async () => {
      const path = join(dir, `gone-${how}.db`);
      // Admitted on the HTTP thread's own connection for one, on the admission writer thread (the
      // default for a file) for the other.
      const relay = await relayOn(`file:${path}`, {}, { admissionThread: how === 'replaced' });
      try {
        const admit = () =>
          relay.admissions.admit(testAdmission({ body: testBody({ createdAt: Date.now() }) }));
        expect((await admit()).kind).toBe('created');
        const health = async () => {
          const r = await relay.app.request('/healthz');
          return { status: r.status, db: ((await r.json()) as { db: boolean }).db };
        };
        expect((await health()).db).toBe(true);
        if (how === 'deleted') {
          rmSync(path);
        } else {
          // A copy put in its place (a restore): the relay's connection still writes the old file.
          await Bun.write(`${path}.restored`, Bun.file(path));
          renameSync(`${path}.restored`, path);
        }
        await expect(admit()).rejects.toMatchObject({ code: 'DATABASE_FILE_GONE' });
        expect(await health()).toEqual({ status: 503, db: false });
      } finally {
        await relay.stop();
      }
    });
  }
});

/** A key of the relay's own, to submit requests with, and its /healthz as these tests read it. */
async function asOperator(relay: Awaited<ReturnType<typeof loneRelay>>) {
  const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
  await relay.store.createApiKey({ id: k.id, hash: k.hash, label: 'ops', quotaPerDay: 1000 }, Date.now());
  const submit = (prompt: string) =>
    relay.app.request('/v1/inference', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${k.key}` },
      body: JSON.stringify({ prompt, models: ['m'] }),
    });
  const health = async () => {
    const r = await relay.app.request('/healthz');
    const j = (await r.json()) as {
      db: boolean;
      admissions: { ok: boolean; reason?: string; probe?: boolean };
      error?: { code: string };
    };
    return { status: r.status, db: j.db, admissions: j.admissions, error: j.error };
  };
  return { submit, health };
}

describe('startRelay when its database refuses writes', () => {
  test('a full database: admissions get 503, /healthz says requests are not being stored, until one commits', async () => {
    const relay = await relayOn(`file:${join(dir, 'full.db')}`, {}, { admissionThread: false });
    try {
      const { submit, health } = await asOperator(relay);
      expect((await submit('first')).status).toBe(202);
      expect((await health()).admissions).toEqual({ ok: true });
      // SQLite's own "database or disk is full", as on a full disk: no page past the file's current size.
      const pages = Number((await relay.client.execute('PRAGMA page_count')).rows[0]?.[0]);
      await relay.client.execute(`PRAGMA max_page_count = ${pages}`);
      let refused: Response | undefined;
      for (let i = 0; i < 200 && refused === undefined; i++) {
        const r = await submit(`${'x'.repeat(4000)} ${i}`);
        if (r.status !== 202) refused = r;
      }
      if (refused === undefined) throw new Error('the full database took every request');
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('STORE_UNAVAILABLE');
      const down = await health();
      expect(down.status).toBe(503);
      expect(down.db).toBe(true); // reads still work
      expect(down.admissions.ok).toBe(false);
      expect(down.admissions.reason).toContain('full');
      expect(down.error?.code).toBe('STORE_UNAVAILABLE');
      // Counted for an alert, which /healthz's 5 s would miss between two scrapes.
      expect(await (await relay.app.request('/metrics')).text()).toContain(
        '\nsynod_admission_failures_total 1\n',
      );
      // room again: the next admission commits, and health follows at once
      await relay.client.execute('PRAGMA max_page_count = 1073741823');
      expect((await submit('after')).status).toBe(202);
      // Healthy as far as the store goes (this relay has no peer: its network is what /healthz still faults).
      expect(await health()).toMatchObject({
        admissions: { ok: true },
        error: { code: 'NETWORK_UNAVAILABLE' },
      });
    } finally {
      await relay.stop();
    }
  });

  // A full disk for real: a small tmpfs (Linux, as root; elsewhere the test is skipped).
  const disk = join(dir, 'disk');
  const small = smallDisk(disk, '4m');
  test.skipIf(!small.available)(
    'a full disk: /healthz stays 503 past its 5 s while a write of its own fails, and is 200 once one is written, with no admission sent',
    async () => {
      expect(small.mount()).toBe(true);
      let skew = 0;
      const relay = await loneRelay(`file:${join(disk, 'relay.db')}`, 4, { now: () => Date.now() + skew });
      const filler = join(disk, 'filler');
      try {
        const { submit, health } = await asOperator(relay);
        expect((await submit('first')).status).toBe(202);
        // Every block of the disk taken.
        const fd = openSync(filler, 'w');
        try {
          const chunk = Buffer.alloc(64 * 1024, 1);
          for (;;) writeSync(fd, chunk);
        } catch (e) {
          expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
        } finally {
          closeSync(fd);
        }
        let refused: Response | undefined;
        for (let i = 0; i < 200 && refused === undefined; i++) {
          const r = await submit(`${'x'.repeat(4000)} ${i}`);
          if (r.status !== 202) refused = r;
        }
        expect(refused?.status).toBe(503);
        expect((await health()).admissions).toMatchObject({ ok: false });
        // Past the hold, with no admission sent since (a load balancer took the relay out): its own
        // write fails as the admissions did, and /healthz stays 503, said as the probe's.
        skew += ADMISSION_FAILURE_HOLD_MS;
        const still = await health();
        expect(still.status).toBe(503);
        expect(still.admissions).toMatchObject({ ok: false, probe: true });
        expect(still.admissions.reason).toMatch(/full|SQLITE_FULL|SQLITE_IOERR/i);
        // Room again: the next /healthz past the hold writes, and says so, before any admission.
        rmSync(filler);
        skew += ADMISSION_FAILURE_HOLD_MS;
        expect((await health()).admissions).toEqual({ ok: true });
        expect((await submit('after')).status).toBe(202);
      } finally {
        await relay.stop();
        small.unmount();
      }
    },
    30_000,
  );
});
