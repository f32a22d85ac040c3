import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  countersGoneDown,
  type Exposition,
  readExposition,
} from '../../browser-node/src/cli/test-exposition.ts';
import { createApiKey } from './auth/api-keys.ts';
import type { RunningRelay } from './runtime/bun.ts';
import { loneRelay } from './test-relay.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-metrics-'));
const dbUrl = `file:${join(dir, 'relay.db')}`;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** GET /metrics as a scraper takes it: the content type, and the exposition read strictly. */
async function scrape(relay: RunningRelay): Promise<Exposition> {
  const r = await fetch(`${relay.url}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  const e = readExposition(await r.text());
  expect(e.problems).toEqual([]);
  return e;
}

/** The samples of the gauges the relay reads from its database. */
const databaseGauges = (e: Exposition) =>
  [...e.samples].filter(([series]) =>
    /^synod_(history_requests|chain_requests|queued_requests)\b/.test(series),
  );

describe('GET /metrics as Prometheus scrapes it', () => {
  test('strict text 0.0.4 at every scrape; counters only grow; a restart keeps the gauges the database holds', async () => {
    const relay = await loneRelay(dbUrl, 91);
    let before: Exposition;
    try {
      const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
      await relay.store.createApiKey(
        { id: k.id, hash: k.hash, label: 'metrics', quotaPerDay: 10 },
        Date.now(),
      );
      const first = await scrape(relay);
      // Before anything happened: the counters an alert takes increase() of are there at 0, and the
      // admission log's bound beside its depth.
      for (const series of [
        'synod_requests_accepted_total{caller="api-key"}',
        'synod_requests_accepted_total{caller="signed"}',
        'synod_requests_shed_total{caller="api-key"}',
        'synod_requests_shed_total{caller="signed"}',
        'synod_admission_failures_total',
        'synod_verify_total{ok="true"}',
        'synod_verify_total{ok="false"}',
      ]) {
        expect([series, first.samples.get(series)]).toEqual([series, 0]);
      }
      expect(first.samples.get('synod_queued_requests_limit')).toBe(1024);
      expect(first.samples.get('synod_queued_requests_coordinated')).toBe(0);
      const submitted = await fetch(`${relay.url}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${k.key}` },
        body: JSON.stringify({ prompt: 'Once upon a time', params: { maxTokens: 4 } }),
      });
      expect(submitted.status).toBe(202);
      const { requestId } = (await submitted.json()) as { requestId: string };
      await fetch(`${relay.url}/v1/inference/${requestId}`);
      await fetch(`${relay.url}/no/such/path`);
      await fetch(`${relay.url}/v1/history`, { method: 'DELETE' });
      before = await scrape(relay);
      expect(countersGoneDown(first, before)).toEqual([]);
      expect(before.samples.get('synod_requests_accepted_total{caller="api-key"}')).toBe(1);
      expect(before.samples.get('synod_queued_requests')).toBe(1);
      expect(before.samples.get('synod_store_up')).toBe(1);
    } finally {
      await relay.stop();
    }
    const again = await loneRelay(dbUrl, 91);
    try {
      const after = await scrape(again);
      expect(databaseGauges(after)).toEqual(databaseGauges(before));
      expect(databaseGauges(after).length).toBeGreaterThan(6);
    } finally {
      await again.stop();
    }
  });
});
