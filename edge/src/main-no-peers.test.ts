/**
 * A relay with no node: its own Gun client, connected to its own Gun relay, is no peer that can answer a
 * request. Before, it counted as one: /healthz said 200 and requests were sent out to no one, charged, and
 * expired QUORUM_NOT_MET. Now /healthz is 503 NETWORK_UNAVAILABLE (NO_PEERS), and requests wait queued.
 */
import { expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnRelay, stopProcess, waitUntil } from './test-servers.ts';

test('a relay with a Gun relay and no node: /healthz 503 NO_PEERS, and a request waits queued', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-relay-no-peers-'));
  const keyFile = join(dir, 'dev-key');
  const relay = await spawnRelay(
    ['--port', '0', '--gun-port', '0', '--db', `file:${join(dir, 'relay.db')}`, '--dev-key-file', keyFile],
    { cwd: dir, stderr: 'inherit' },
  );
  const { url } = relay.started;
  try {
    // Its Gun client is connected to its Gun relay (a connection), yet it has no peer.
    let health: Response | undefined;
    let body: {
      error?: { code: string };
      network: { ok: boolean; peers: number; detail: { reason?: string; connections: number } };
    } = { network: { ok: true, peers: -1, detail: { connections: 0 } } };
    await waitUntil('its Gun client to connect', async () => {
      health = await fetch(`${url}/healthz`);
      body = (await health.json()) as typeof body;
      return body.network.detail.connections >= 1;
    });
    expect(health?.status).toBe(503);
    expect(body.error?.code).toBe('NETWORK_UNAVAILABLE');
    expect(body.network).toMatchObject({ ok: false, peers: 0, detail: { reason: 'NO_PEERS' } });

    // A request is taken, and waits: nothing is sent out to no one.
    const key = readFileSync(keyFile, 'utf8').trim();
    const r = await fetch(`${url}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ prompt: 'Once upon a time' }),
    });
    expect(r.status).toBe(202);
    const { requestId } = (await r.json()) as { requestId: string };
    await Bun.sleep(2_500);
    const view = (await (await fetch(`${url}/v1/inference/${requestId}`)).json()) as { status: string };
    expect(view.status).toBe('queued');
  } finally {
    await stopProcess(relay.proc);
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
