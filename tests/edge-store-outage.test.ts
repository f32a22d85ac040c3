/**
 * The relay when its libSQL server goes away and comes back (a real sqld, ended and started again over
 * the same files): a request it cannot store gets 503 STORE_UNAVAILABLE and is not acknowledged, /healthz
 * says the database is down, and once the server is back the same request, retried with its
 * Idempotency-Key, is stored exactly once and answered.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { startTestNetwork, type TestNetwork } from '../edge/src/test-helpers.ts';
import { type RunningSqld, startSqld, stopProcess, waitUntil } from '../edge/src/test-servers.ts';

let sqld: RunningSqld;
let t: TestNetwork;

beforeAll(async () => {
  sqld = await startSqld();
  t = await startTestNetwork({ nodes: 1, dbUrl: sqld.url });
}, 120_000);

afterAll(async () => {
  await t?.close();
  await sqld?.stop();
});

const submit = (idempotencyKey: string) =>
  fetch(`${t.relay.url}/v1/inference`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${t.apiKey}`,
      'idempotency-key': idempotencyKey,
    },
    body: JSON.stringify({ prompt: 'Once upon a time', params: { maxTokens: 8 }, frame: { quorum: 1 } }),
  });

describe('the relay through a libSQL server outage', () => {
  test('503 STORE_UNAVAILABLE while the server is down, nothing acknowledged; stored once after', async () => {
    expect((await submit('before-the-outage')).status).toBe(202);

    await stopProcess(sqld.proc);
    const down = await submit('during-the-outage');
    expect(down.status).toBe(503);
    const body = (await down.json()) as { error: { code: string; hint?: string } };
    expect(body.error.code).toBe('STORE_UNAVAILABLE');
    expect(body.error.hint).toContain('Idempotency-Key');
    const health = await fetch(`${t.relay.url}/healthz`);
    expect(health.status).toBe(503);
    expect(((await health.json()) as { db: boolean }).db).toBe(false);

    sqld = await startSqld({ dir: sqld.dir, port: sqld.port });
    await waitUntil(
      'the relay sees its database again',
      async () => (await fetch(`${t.relay.url}/healthz`)).ok,
    );
    // Nothing of the refused request was kept: its retry is a new request, not a replay…
    const retry = await submit('during-the-outage');
    expect(retry.status).toBe(202);
    const { requestId, replayed } = (await retry.json()) as { requestId: string; replayed: boolean };
    expect(replayed).toBe(false);
    // …and a second retry replays it instead of storing it twice.
    const again = await submit('during-the-outage');
    expect(again.status).toBe(200);
    expect(((await again.json()) as { requestId: string; replayed: boolean }).replayed).toBe(true);

    // The relay goes on: the request is coordinated and answered.
    let status = '';
    await waitUntil(
      'a verdict after the outage',
      async () => {
        status = (
          (await (await fetch(`${t.relay.url}/v1/inference/${requestId}`)).json()) as { status: string }
        ).status;
        return ['verdict', 'no-consensus', 'expired', 'failed'].includes(status);
      },
      60_000,
      100,
    );
    expect(status).toBe('verdict');
  }, 120_000);
});
