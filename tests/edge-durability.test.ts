/**
 * Durability of the relay: the real `synod-relay` CLI (bun edge/src/main.ts) as a child process over a
 * libSQL file, three headless nodes as child processes (the `synod node` CLI) on Waku relay, concurrent
 * POST /v1/inference with Idempotency-Keys, SIGKILL of the relay in the middle of the load, a restart
 * on the same database and identity, then:
 * - every request acknowledged (2xx) before the kill is in the history and reaches a terminal status
 *   (a verdict, or `expired` with a code);
 * - unacknowledged requests retried with the same Idempotency-Key are stored once: one request per key,
 *   no duplicates in the database.
 * The nodes bootstrap to node 1 and the relay to all nodes, so the restarted relay rejoins the same mesh.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { waitUntil } from '../edge/src/test-servers.ts';
import { type Child, RelayProcesses } from './relay-processes.ts';

const TOTAL = 48;
const CONCURRENCY = 8;
const KILL_AFTER_ACKS = 16;
const TERMINAL = ['verdict', 'no-consensus', 'expired', 'failed'];

let net: RelayProcesses;
let relay: Child | undefined;
let apiKey = '';
const relayUrl = () => net.relayUrl;

beforeAll(async () => {
  net = new RelayProcesses(mkdtempSync(join(tmpdir(), 'synod-durability-')), 'durability-test-passphrase');
  net.relayCommand(await net.startNodes(['--max-queue', '64']), [
    '--max-open',
    '128',
    '--max-queued',
    '4096',
  ]);
  relay = await net.startRelay();
  // The window and the queue bound given on the command line are the ones the relay runs with.
  const health = (await (await fetch(`${relayUrl()}/healthz`)).json()) as {
    network: { detail: { dispatcher: { maxOpen: number }; queue: { limit: number } } };
  };
  expect(health.network.detail.dispatcher.maxOpen).toBe(128);
  expect(health.network.detail.queue.limit).toBe(4096);
  apiKey = readFileSync(join(net.dir, 'dev-api-key'), 'utf8').trim();
  // Wait until the relay hears the nodes' heartbeats (they come every 10 s).
  await waitUntil(
    'the relay hears 3 nodes',
    async () => {
      const r = (await (await fetch(`${relayUrl()}/v1/nodes`)).json()) as { nodes: { role: string }[] };
      return r.nodes.filter((n) => n.role === 'node').length >= 3;
    },
    120_000,
    250,
  ).catch((e) => {
    throw new Error(`${String(e)}\n${net.logs()}`);
  });
}, 400_000);

afterAll(async () => {
  await net?.stopAll();
  if (net?.dir) rmSync(net.dir, { recursive: true, force: true });
}, 60_000);

interface Ack {
  key: string;
  status: number;
  requestId: string;
}

function submit(key: string, i: number): Promise<Ack> {
  return fetch(`${relayUrl()}/v1/inference`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${apiKey}`,
      'idempotency-key': key,
    },
    body: JSON.stringify({
      prompt: `Once upon a time, story ${i}`,
      params: { maxTokens: 8, seed: i },
      frame: { maxTimeMs: 15_000, revealWindowMs: 5_000 },
    }),
  }).then(async (r) => {
    const j = (await r.json()) as { requestId?: string };
    return { key, status: r.status, requestId: j.requestId ?? '' };
  });
}

describe('the relay process survives SIGKILL under load', () => {
  test('acknowledged requests are never lost; retried keys are never duplicated', async () => {
    const keys = Array.from({ length: TOTAL }, (_, i) => `durable-${i}`);
    const acked = new Map<string, Ack>();
    const failed = new Set<string>();
    let next = 0;
    let killed = false;
    let inFlightLost = 0;
    const killedAt: { acks: number } = { acks: 0 };

    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= TOTAL) return;
        const key = keys[i] as string;
        if (killed) {
          failed.add(key);
          continue;
        }
        try {
          const a = await submit(key, i);
          if (a.status >= 200 && a.status < 300) acked.set(key, a);
          else failed.add(key);
        } catch {
          // The connection died with the relay: sent, maybe stored, never acknowledged.
          inFlightLost++;
          failed.add(key);
        }
        if (!killed && acked.size >= KILL_AFTER_ACKS) {
          killed = true;
          killedAt.acks = acked.size;
          relay?.proc.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    expect(killed).toBe(true);
    await relay?.proc.exited;
    expect(relay?.proc.signalCode).toBe('SIGKILL');
    const ackedBeforeKill = new Map(acked);
    expect(ackedBeforeKill.size).toBeGreaterThanOrEqual(KILL_AFTER_ACKS);
    for (const a of ackedBeforeKill.values()) expect(a.status).toBe(202);
    // Some requests were in flight or not yet sent when the relay died.
    expect(failed.size).toBeGreaterThan(0);

    // Restart on the same database and identity.
    relay = await net.startRelay();

    // Every acknowledged request is there after the restart.
    for (const a of ackedBeforeKill.values()) {
      const r = await fetch(`${relayUrl()}/v1/inference/${a.requestId}`);
      expect(r.status).toBe(200);
    }

    // Clients retry a little later: once the restarted relay is back in the mesh (best effort; requests
    // sent before that simply expire with QUORUM_NOT_MET, which is also a terminal status).
    await waitUntil(
      'the restarted relay has peers',
      async () => {
        const h = (await (await fetch(`${relayUrl()}/healthz`)).json()) as { network: { peers: number } };
        return h.network.peers >= 3;
      },
      60_000,
      250,
    ).catch(() => undefined);

    // Retry the unacknowledged ones with the same keys: a request stored before the kill (its 2xx
    // lost) is replayed, one never stored is created; a second retry always replays.
    const retried = new Map<string, Ack>();
    for (const key of failed) {
      const i = keys.indexOf(key);
      const a = await submit(key, i);
      expect([200, 202]).toContain(a.status);
      retried.set(key, a);
      const again = await submit(key, i);
      expect(again.status).toBe(200);
      expect(again.requestId).toBe(a.requestId);
    }
    // Keys acknowledged before the kill replay their original request.
    for (const a of [...ackedBeforeKill.values()].slice(0, 5)) {
      const again = await submit(a.key, keys.indexOf(a.key));
      expect(again.status).toBe(200);
      expect(again.requestId).toBe(a.requestId);
    }

    // Every request reaches a terminal status: a verdict, or expired with a code.
    const all = [...ackedBeforeKill.values(), ...retried.values()];
    const finals = new Map<string, { status: string; error: string | null }>();
    await waitUntil(
      'every request reaches a terminal status',
      async () => {
        for (const a of all) {
          if (finals.has(a.requestId)) continue;
          const j = (await (await fetch(`${relayUrl()}/v1/inference/${a.requestId}`)).json()) as {
            status: string;
            error: string | null;
          };
          if (TERMINAL.includes(j.status)) finals.set(a.requestId, j);
        }
        return finals.size === new Set(all.map((a) => a.requestId)).size;
      },
      150_000,
      250,
    ).catch((e) => {
      throw new Error(`${String(e)}; ${finals.size} terminal\n${net.logs()}`);
    });
    for (const f of finals.values()) {
      // `no-consensus` carries its verdict (the quorum disagreed); expiries and failures carry a code.
      if (f.status === 'expired' || f.status === 'failed') expect(f.error ?? '').toMatch(/^[A-Z_]+$/);
    }
    const byStatus: Record<string, number> = {};
    for (const f of finals.values()) {
      const k = f.status === 'verdict' ? f.status : `${f.status}:${f.error}`;
      byStatus[k] = (byStatus[k] ?? 0) + 1;
    }
    console.log(
      JSON.stringify({
        acked: ackedBeforeKill.size,
        inFlightLost,
        retried: retried.size,
        retriedStoredBeforeKill: [...retried.values()].filter((a) => a.status === 200).length,
        killedAfterAcks: killedAt.acks,
        byStatus,
      }),
    );

    // No duplicates: one request per key, and the database holds exactly TOTAL requests.
    expect(new Set(all.map((a) => a.requestId)).size).toBe(TOTAL);
    const db = createClient({ url: `file:${join(net.dir, 'relay.db')}` });
    try {
      const n = await db.execute('select count(*) as n from requests');
      expect(Number(n.rows[0]?.['n'])).toBe(TOTAL);
      const idem = await db.execute('select count(*) as n, count(distinct request_id) as d from idempotency');
      expect(Number(idem.rows[0]?.['n'])).toBe(TOTAL);
      expect(Number(idem.rows[0]?.['d'])).toBe(TOTAL);
    } finally {
      db.close();
    }
  }, 400_000);
});
