/**
 * `synod-relay` stopped (SIGTERM, SIGINT) while it restores what it coordinated before a restart. Its
 * port opens before the restore, which waits for its peers, so a supervisor may well stop it then: it
 * used to die on the signal (exit 143), as its handlers were set only once the start was over. Now the
 * stop is clean (exit 0, `stopped during the start`), and a request it acknowledged meanwhile is kept.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MemoryNetwork } from '@synod/browser-node';
import { createApiKey } from './auth/api-keys.ts';
import { startRelay } from './runtime/bun.ts';
import { openHistory } from './store/open-history.ts';
import { TEST_EMBEDDER } from './store/test-admissions.ts';
import { freePort, waitUntil } from './test-servers.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');
const PASSPHRASE = 'a passphrase for the test';
const dir = mkdtempSync(join(tmpdir(), 'synod-relay-stop-restore-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A relay process's JSON log lines as they come, and a wait for one. */
function relayProcess(args: string[]) {
  const proc = Bun.spawn([process.execPath, MAIN, ...args], {
    cwd: dir,
    env: { ...process.env, SYNOD_PASSPHRASE: PASSPHRASE },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const lines: Record<string, unknown>[] = [];
  void (async () => {
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of proc.stdout) {
      buf += decoder.decode(chunk, { stream: true });
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
    }
  })();
  return {
    proc,
    lines,
    said: (msg: string) =>
      waitUntil(`the relay logs ${msg}`, async () => lines.some((l) => l['msg'] === msg), 30_000, 20),
  };
}

describe('synod-relay stopped during its restore', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal}: exit 0, 'stopped during the start', the request it acknowledged meanwhile kept`, async () => {
      const { loadOrCreateIdentity } = await import('@synod/browser-node/cli');
      const identity = join(dir, `${signal}-identity.json`);
      const dbUrl = `file:${join(dir, `${signal}.db`)}`;
      const { key } = await loadOrCreateIdentity(identity, PASSPHRASE);
      // A first run on that identity leaves a request open, its coordinator machine saved: the next
      // start restores it, and waits for a peer first (none will come).
      const peers = new MemoryNetwork();
      peers.join('node-1');
      const first = await startRelay({
        dbUrl,
        key,
        transports: [peers.join(key.nodeId)],
        embedders: [TEST_EMBEDDER],
        configuredModels: ['stories260K'],
      });
      const apiKey = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
      await first.store.createApiKey(
        { id: apiKey.id, hash: apiKey.hash, label: 'tests', quotaPerDay: 100 },
        Date.now(),
      );
      const submit = (url: string) =>
        fetch(`${url}/v1/inference`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey.key}` },
          body: JSON.stringify({ prompt: 'Once upon a time', params: { maxTokens: 4 } }),
        });
      const open = ((await (await submit(first.url)).json()) as { requestId: string }).requestId;
      await waitUntil('the request is dispatched', async () => first.node.status(open) !== null);
      await first.stop();

      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const relay = relayProcess(['--identity', identity, '--db', dbUrl, '--port', String(port)]);
      try {
        await relay.said('relay listening');
        const health = (await (await fetch(`${url}/healthz`)).json()) as {
          network: { detail?: { restoring?: boolean } };
        };
        expect(health.network.detail?.restoring).toBe(true);
        const during = await submit(url);
        expect(during.status).toBe(202);
        const acknowledged = ((await during.json()) as { requestId: string }).requestId;

        const t0 = Date.now();
        relay.proc.kill(signal);
        const code = await relay.proc.exited;
        expect({ code, signal: relay.proc.signalCode }).toEqual({ code: 0, signal: null });
        // At once, not at the end of its wait for peers (10 s).
        expect(Date.now() - t0).toBeLessThan(5_000);
        expect(relay.lines.map((l) => l['msg'])).not.toContain('relay started');
        expect(relay.lines.at(-1)).toMatchObject({
          msg: 'stopped during the start',
          code: 'START_ABORTED',
          signal,
        });
        expect((await fetch(`${url}/healthz`).catch(() => null))?.status).toBeUndefined();
        const h = await openHistory(dbUrl);
        try {
          const queued = await h.client.execute('SELECT request_id FROM request_intake');
          expect(queued.rows.map((r) => r['request_id'])).toEqual([acknowledged]);
        } finally {
          h.client.close();
        }
      } finally {
        if (relay.proc.exitCode === null) relay.proc.kill('SIGKILL');
        await relay.proc.exited;
      }
    }, 60_000);
  }
});
