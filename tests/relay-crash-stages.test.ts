/**
 * The relay killed at the worst moments of a request's life: the real `synod-relay` CLI (bun
 * edge/src/main.ts) over a libSQL file and three headless nodes (the `synod node` CLI) on Waku relay, as
 * in edge-durability.test.ts, which kills the relay in the middle of admissions. Here the moment is read
 * from the relay's own database, polled from this process, and the relay is sent SIGKILL at once:
 * - its coordinator machine saved with the verdict computed (the write-ahead barrier before the verdict
 *   is published) while the history still holds the request open: after the restart the verdict
 *   recorded is the one computed before the kill (the same packet id, published again from the saved
 *   machine, not computed again);
 * - every commit of a request in the history, its machine not sealed yet: after the restart the machine
 *   seals at once on the history's commits, and its nodes must hear that seal (a relay just started has
 *   no peer yet) and reveal.
 * - its seal in the history and no reveal yet: the members reveal while the relay is down, to no one;
 *   after the restart they publish their reveals again (re-announcing, `SynodNode`'s `reannounce`) as
 *   the relay joins them, and none is counted NOT_REVEALED.
 * In all, every admitted request reaches a final status that stays, and the key's quota counts each
 * admitted request once. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Client } from '@libsql/client';
import { waitUntil } from '../edge/src/test-servers.ts';
import {
  type Child,
  type RelayProcesses,
  type StartedRelayNetwork,
  startRelayNetwork,
  yieldToIo,
} from './relay-processes.ts';

const TERMINAL = ['verdict', 'no-consensus', 'expired', 'failed'];
const FRAME = { maxTimeMs: 10_000, revealWindowMs: 5_000 };

let started: StartedRelayNetwork | undefined;
let net: RelayProcesses;
let relay: Child | undefined;
let apiKey = '';
let db: Client | undefined;
const relayUrl = () => net.relayUrl;
const peered = () => (started as StartedRelayNetwork).peered();

beforeAll(async () => {
  started = await startRelayNetwork('crash-stages');
  ({ net, relay, apiKey, db } = started);
}, 300_000);

afterAll(async () => {
  await started?.stop();
}, 60_000);

async function submit(key: string, i: number): Promise<{ status: number; requestId: string }> {
  const r = await fetch(`${relayUrl()}/v1/inference`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${apiKey}`,
      'idempotency-key': key,
    },
    body: JSON.stringify({
      prompt: `Once upon a time, crash ${i}`,
      params: { maxTokens: 8, seed: i },
      frame: FRAME,
    }),
  });
  const j = (await r.json()) as { requestId?: string };
  return { status: r.status, requestId: j.requestId ?? '' };
}

async function statusOf(requestId: string): Promise<{ status: string; error: string | null }> {
  return (await (await fetch(`${relayUrl()}/v1/inference/${requestId}`)).json()) as {
    status: string;
    error: string | null;
  };
}

/**
 * Poll the relay's database until `sql` finds one of `ids` (its first column a request id, its second
 * what the test compares afterwards), then SIGKILL the relay at once. Null when the moment never came.
 */
async function killWhen(
  sql: string,
  ids: ReadonlySet<string>,
  timeoutMs: number,
): Promise<{ requestId: string; seen: string } | null> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    // A query on a local file resolves without ever letting this process read its children's output:
    // polled back to back, their stdout pipes filled up and the relay and nodes blocked on their next
    // log line. Each poll waits for this process's I/O first.
    await yieldToIo();
    const r = await (db as Client).execute(sql);
    for (const row of r.rows) {
      const id = String(row[0]);
      if (!ids.has(id)) continue;
      relay?.proc.kill('SIGKILL');
      return { requestId: id, seen: String(row[1]) };
    }
  }
  return null;
}

/**
 * Send requests two at a time (keys `prefix-attempt-k`) until `sql` sees the moment in one of them and the
 * relay is killed; the moment lasts a few milliseconds, so a request that went past it before a poll saw
 * it is just another admitted request, and the next pair is tried. Returns every request admitted.
 */
async function killAtMoment(
  prefix: string,
  sql: string,
): Promise<{
  admitted: string[];
  sent: { key: string; i: number }[];
  hit: { requestId: string; seen: string };
}> {
  const admitted: string[] = [];
  const all: { key: string; i: number }[] = [];
  for (let attempt = 0; attempt < 6; attempt++) {
    const pair = [0, 1].map((k) => ({ key: `${prefix}-${attempt}-${k}`, i: seq++ }));
    const sent = await Promise.all(pair.map((p) => submit(p.key, p.i)));
    for (const s of sent) expect(s.status).toBe(202);
    admitted.push(...sent.map((s) => s.requestId));
    all.push(...pair);
    const hit = await killWhen(sql, new Set(sent.map((s) => s.requestId)), 30_000);
    if (hit !== null) {
      await relay?.proc.exited;
      expect(relay?.proc.signalCode).toBe('SIGKILL');
      return { admitted, sent: all, hit };
    }
  }
  // What the relay says of its network and queue: a relay that has no peer, or queues without dispatching.
  const health = await fetch(`${relayUrl()}/healthz`)
    .then((r) => r.text())
    .catch((e: unknown) => String(e));
  throw new Error(`the moment never came (${prefix})\nrelay /healthz: ${health}\n${net.logs()}`);
}
let seq = 0;

/** Restart the relay; wait for every request to reach a final status; return them. */
async function restartAndSettle(admitted: readonly string[]) {
  relay = await net.startRelay();
  // Its port and addresses were out before its restore: `relay listening` first (what nodes need to
  // join it), `relay started` once the requests it coordinated were restored.
  const said = relay.lines.map((l) => (l.startsWith('{') ? (JSON.parse(l) as Record<string, unknown>) : {}));
  const listening = said.findIndex((j) => j['msg'] === 'relay listening');
  const started = said.findIndex((j) => j['msg'] === 'relay started');
  const resumed = said.findIndex((j) => j['msg'] === 'resumed request');
  expect(listening).toBeGreaterThanOrEqual(0);
  expect(listening).toBeLessThan(resumed);
  expect(resumed).toBeLessThan(started);
  expect(said[listening]?.['restoring']).toBe(true);
  expect(said[listening]?.['multiaddrs']).toEqual(said[started]?.['multiaddrs']);
  expect(said[listening]?.['coordinator']).toEqual(said[started]?.['coordinator']);
  await peered().catch(() => undefined);
  const finals = new Map<string, { status: string; error: string | null }>();
  await waitUntil(
    'every admitted request reaches a final status',
    async () => {
      for (const id of admitted) {
        if (finals.has(id)) continue;
        const s = await statusOf(id);
        // The final status and its reason (attestations may still arrive after it).
        if (TERMINAL.includes(s.status)) finals.set(id, { status: s.status, error: s.error });
      }
      return finals.size === admitted.length;
    },
    FRAME.maxTimeMs + FRAME.revealWindowMs + 30_000,
    250,
  ).catch((e) => {
    throw new Error(`${String(e)}\n${net.logs()}`);
  });
  return finals;
}

/** The database's counts: requests, queued rows, quota used and Idempotency-Keys. */
async function counts() {
  const n = await (db as Client).execute(
    `SELECT (SELECT count(*) FROM requests) AS requests, (SELECT count(*) FROM request_intake) AS queued,
            (SELECT coalesce(sum(count), 0) FROM usage) AS used, (SELECT count(*) FROM idempotency) AS keys`,
  );
  const row = n.rows[0] as Record<string, unknown>;
  return {
    requests: Number(row['requests']),
    queued: Number(row['queued']),
    used: Number(row['used']),
    keys: Number(row['keys']),
  };
}

let admittedBefore = 0;

/** Every request admitted so far stored, counted once against the key and once by its Idempotency-Key. */
async function expectEachCountedOnce(): Promise<void> {
  expect(await counts()).toEqual({
    requests: admittedBefore,
    queued: 0,
    used: admittedBefore,
    keys: admittedBefore,
  });
}

/** A request's verdict entries in order: each member's outcome and rejection reason. */
async function verdictEntries(requestId: string): Promise<{ outcome: string; reason: string | null }[]> {
  const r = await (db as Client).execute({
    sql: 'SELECT outcome, reason FROM verdict_entries WHERE request_id = ? ORDER BY ordinal',
    args: [requestId],
  });
  return r.rows.map((row) => ({ outcome: String(row[0]), reason: row[1] === null ? null : String(row[1]) }));
}

describe('the relay process killed at chosen stages of a request', () => {
  test('killed between saving a computed verdict and writing it to the history: the same verdict is recorded after the restart, once', async () => {
    // The coordinator machine holds the verdict (phase `verdict`, the packet's id in its state), the
    // history still holds the request open.
    const { admitted, sent, hit } = await killAtMoment(
      'verdict',
      `SELECT m.request_id, json_extract(m.state, '$.verdict.id') FROM synod_machines m
        JOIN requests r ON r.request_id = m.request_id
        WHERE json_extract(m.state, '$.phase') = 'verdict' AND r.status IN ('pending', 'sealed')`,
    );
    const finals = await restartAndSettle(admitted);
    // Counted at once: a failure below leaves the next test's totals right.
    admittedBefore += admitted.length;
    // The request killed mid-way ends with the verdict its machine computed before the kill.
    const v = await (db as Client).execute({
      sql: 'SELECT packet_id FROM verdicts WHERE request_id = ?',
      args: [hit.requestId],
    });
    expect(v.rows.map((r) => String(r[0]))).toEqual([hit.seen]);
    expect(['verdict', 'no-consensus']).toContain(finals.get(hit.requestId)?.status ?? 'none');
    // Final statuses never change: read again after a while.
    await Bun.sleep(2_000);
    for (const [id, f] of finals) {
      const now = await statusOf(id);
      expect({ status: now.status, error: now.error }).toEqual(f);
    }
    // Retries replay; the quota counts each admitted request once; nothing left half-moved.
    const first = sent[0] as { key: string; i: number };
    const again = await submit(first.key, first.i);
    expect(again).toEqual({ status: 200, requestId: admitted[0] as string });
    await expectEachCountedOnce();
  }, 150_000);

  test('killed with every commit in the history and no seal yet: the restarted relay seals once its nodes are back, and they reveal', async () => {
    // A restored machine given the history's commits seals at once. It used to, before the relay had a
    // peer again: the seal went to no one, no node revealed, and the request ended no-consensus with
    // its three honest members NOT_REVEALED.
    const { admitted, hit } = await killAtMoment(
      'seal',
      `SELECT m.request_id, (SELECT count(*) FROM commits c WHERE c.request_id = m.request_id) AS n
        FROM synod_machines m
        WHERE json_extract(m.state, '$.phase') = 'collecting'
          AND (SELECT count(*) FROM commits c WHERE c.request_id = m.request_id) >= 3
          AND NOT EXISTS (SELECT 1 FROM seals s WHERE s.request_id = m.request_id)`,
    );
    const finals = await restartAndSettle(admitted);
    // Counted at once: a failure below leaves the next test's totals right.
    admittedBefore += admitted.length;
    const entries = await verdictEntries(hit.requestId);
    // Sealed after the restart, heard by its members: each revealed.
    expect(entries.map((r) => r.reason ?? 'revealed')).not.toContain('NOT_REVEALED');
    expect(entries.length).toBe(3);
    expect(finals.get(hit.requestId)?.status).toBe('verdict');
    await expectEachCountedOnce();
  }, 150_000);

  test('killed with its seal in the history and no reveal yet: the members publish their reveals again to the restarted relay', async () => {
    // The members reveal as the seal reaches them, while the relay is dead: gossip sends each reveal
    // once, so the restarted relay counted all three NOT_REVEALED until the nodes re-announced.
    const { admitted, hit } = await killAtMoment(
      'reveal',
      `SELECT s.request_id, s.member_count FROM seals s
        WHERE NOT EXISTS (SELECT 1 FROM reveals r WHERE r.request_id = s.request_id)`,
    );
    const finals = await restartAndSettle(admitted);
    admittedBefore += admitted.length;
    const entries = await verdictEntries(hit.requestId);
    expect(entries.map((r) => r.reason ?? 'revealed')).not.toContain('NOT_REVEALED');
    expect(entries.length).toBe(Number(hit.seen));
    expect(finals.get(hit.requestId)?.status).toBe('verdict');
    await expectEachCountedOnce();
  }, 150_000);
});
