/**
 * A serving node killed (SIGKILL) after its commit reached the relay and before the seal reached it,
 * then started again on its identity and state file: its machine resumes `committed`, holding no seal.
 * Gossip sends the seal once, so it never heard it, and the relay counted it NOT_REVEALED; now the
 * relay publishes its seal again when the node joins it (re-announcing), and the node reveals. Real
 * processes: the `synod-relay` CLI over a libSQL file and three `synod node` CLIs on Waku relay
 * (tests/relay-processes.ts).
 */
import { describe, expect, test } from 'bun:test';
import type { Client } from '@libsql/client';
import { waitUntil } from '../edge/src/test-servers.ts';
import { type RelayProcesses, useRelayNetwork, yieldToIo } from './relay-processes.ts';

const FRAME = { quorum: 3, maxCommits: 3, maxTimeMs: 15_000, revealWindowMs: 15_000 };
const TERMINAL = ['verdict', 'no-consensus', 'expired', 'failed'];

let net: RelayProcesses;
let apiKey = '';
let db: Client | undefined;

useRelayNetwork('node-crash', (network) => {
  ({ net, apiKey, db } = network);
});

async function submit(i: number): Promise<string> {
  const r = await fetch(`${net.relayUrl}/v1/inference`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({
      prompt: `Once upon a time, node crash ${i}`,
      params: { maxTokens: 8, seed: i },
      frame: FRAME,
    }),
  });
  expect(r.status).toBe(202);
  return ((await r.json()) as { requestId: string }).requestId;
}

async function finalStatus(requestId: string): Promise<string> {
  let status = '';
  await waitUntil(
    'the request reaches a final status',
    async () => {
      const s = (await (await fetch(`${net.relayUrl}/v1/inference/${requestId}`)).json()) as {
        status: string;
      };
      status = s.status;
      return TERMINAL.includes(status);
    },
    FRAME.maxTimeMs + FRAME.revealWindowMs + 30_000,
    250,
  );
  return status;
}

describe('a serving node killed between its commit and the seal', () => {
  test('started again, it hears the seal the relay publishes again, and reveals', async () => {
    const victim = net.nodes[0];
    if (!victim) throw new Error('no node');
    // The moment lasts as long as the other nodes take to commit (tens of milliseconds): tried on
    // fresh requests until the node is killed holding its commit and no seal.
    for (let attempt = 0; attempt < 6; attempt++) {
      const ids = await Promise.all([submit(attempt * 2), submit(attempt * 2 + 1)]);
      let hit: string | null = null;
      const until = Date.now() + 20_000;
      while (hit === null && Date.now() < until) {
        // Polled back to back, the queries would keep this process from reading its children's output
        // (see yieldToIo).
        await yieldToIo();
        const r = await (db as Client).execute({
          sql: `SELECT c.request_id FROM commits c WHERE c.node_id = ?
                 AND NOT EXISTS (SELECT 1 FROM seals s WHERE s.request_id = c.request_id)`,
          args: [victim.nodeId],
        });
        const found = r.rows.map((row) => String(row[0])).find((id) => ids.includes(id));
        if (found !== undefined) {
          victim.child.proc.kill('SIGKILL');
          hit = found;
        }
      }
      if (hit === null) continue;
      await victim.child.proc.exited;
      // Let the seal go out to no one (the other two members reveal), then start the node again.
      await Bun.sleep(500);
      const child = await net.restartNode(0, [...net.relayAddrs]);
      const resumed = child.lines
        .map((l) => JSON.parse(l.startsWith('{') ? l : '{}') as Record<string, unknown>)
        .find((j) => j['msg'] === 'resumed request' && j['requestId'] === hit);
      const status = await finalStatus(hit);
      if (resumed?.['phase'] !== 'committed') {
        // Killed a moment too late: the seal had reached it and it had revealed. Try again.
        for (const id of ids) await finalStatus(id);
        continue;
      }
      expect(status).toBe('verdict');
      const entries = await (db as Client).execute({
        sql: 'SELECT node_id, reason FROM verdict_entries WHERE request_id = ? ORDER BY ordinal',
        args: [hit],
      });
      expect(entries.rows).toHaveLength(3);
      // The node that was away revealed, as the two that were not.
      expect(entries.rows.map((r) => String(r[1] ?? 'revealed'))).not.toContain('NOT_REVEALED');
      expect(child.lines.some((l) => l.includes('"msg":"revealed"') && l.includes(hit as string))).toBe(true);
      return;
    }
    throw new Error(`the node was never killed holding a commit and no seal\n${net.logs()}`);
  }, 300_000);
});
