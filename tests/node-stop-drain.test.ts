/**
 * A serving `synod node` stopped (SIGINT, as Ctrl-C) while it computes a request: it finishes first,
 * committing and revealing, so the verdict counts its reveal (it used to stop at once: a member of the
 * seal that never revealed, `NOT_REVEALED`, against its standing). Real processes: the `synod-relay` CLI
 * and three `synod node` CLIs on Waku relay (tests/relay-processes.ts).
 */
import { describe, expect, test } from 'bun:test';
import type { Client } from '@libsql/client';
import { waitUntil } from '../edge/src/test-servers.ts';
import { type RelayProcesses, type StartedRelayNetwork, useRelayNetwork } from './relay-processes.ts';

const TERMINAL = ['verdict', 'no-consensus', 'expired', 'failed'];

let started: StartedRelayNetwork | undefined;
let net: RelayProcesses;
let apiKey = '';
let db: Client | undefined;

useRelayNetwork('node-drain', (network) => {
  started = network;
  ({ net, apiKey, db } = network);
});

async function submit(i: number): Promise<string> {
  let requestId = '';
  // A node started again (or one that stopped draining) is counted again at its next heartbeat: until
  // then a quorum of 3 is 503 QUORUM_UNAVAILABLE.
  await waitUntil(
    'the relay takes the request',
    async () => {
      const r = await fetch(`${net.relayUrl}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
        // Long enough to be computing when the signal comes (about a second on a quiet machine).
        body: JSON.stringify({
          prompt: `Once upon a time, drain ${i}`,
          params: { maxTokens: 2_000, seed: i },
        }),
      });
      if (r.status === 503) return false;
      expect(r.status).toBe(202);
      requestId = ((await r.json()) as { requestId: string }).requestId;
      return true;
    },
    60_000,
    500,
  );
  return requestId;
}

const statusOf = async (requestId: string) =>
  ((await (await fetch(`${net.relayUrl}/v1/inference/${requestId}`)).json()) as { status: string }).status;

const msgs = (lines: string[]) =>
  lines.map((l) => JSON.parse(l.startsWith('{') ? l : '{}') as Record<string, unknown>);

describe('a serving node stopped while it computes a request', () => {
  test('finishes it first (commits and reveals), then stops: exit 0, its reveal in the verdict', async () => {
    for (let attempt = 0; attempt < 4; attempt++) {
      const victim = net.nodes[0];
      if (!victim) throw new Error('no node');
      const id = await submit(attempt);
      // Dispatched to the network, then a moment for it to reach the nodes: they are computing it (2,000
      // tokens take them a few seconds).
      await waitUntil('the request is dispatched', async () => (await statusOf(id)) !== 'queued', 20_000, 20);
      await Bun.sleep(700);
      victim.child.proc.kill('SIGINT');
      expect(await victim.child.proc.exited).toBe(0);
      const said = msgs(victim.child.lines);
      const finishing = said.findIndex(
        (j) => j['msg'] === 'stopping: finishing the requests this node owes first',
      );
      await waitUntil('the request ends', async () => TERMINAL.includes(await statusOf(id)), 60_000, 250);
      if (finishing < 0) {
        // The signal came before the request reached it, or after it had revealed: try again.
        await net.restartNode(0, [...net.relayAddrs]);
        await started?.peered();
        // Time for gossip to take the node into its mesh again, or it would not hear the next request.
        await Bun.sleep(10_000);
        continue;
      }
      expect(said[finishing]).toMatchObject({ requests: 1, upToS: 60 });
      const revealed = said.findIndex((j) => j['msg'] === 'revealed' && j['requestId'] === id);
      expect(revealed).toBeGreaterThan(finishing);
      expect(said.at(-1)?.['msg']).toBe('stopped');
      expect(said.some((j) => j['code'] === 'DRAIN_TIMEOUT')).toBe(false);
      expect(await statusOf(id)).toBe('verdict');
      const entries = await (db as Client).execute({
        sql: 'SELECT node_id, reason FROM verdict_entries WHERE request_id = ? ORDER BY ordinal',
        args: [id],
      });
      expect(entries.rows).toHaveLength(3);
      expect(entries.rows.map((r) => String(r[1] ?? 'revealed'))).not.toContain('NOT_REVEALED');
      expect(entries.rows.map((r) => String(r[0]))).toContain(victim.nodeId);
      return;
    }
    throw new Error(`the node was never stopped while it owed the request\n${net.logs()}`);
  }, 300_000);
});
