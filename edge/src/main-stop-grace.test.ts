/**
 * `synod-relay` stopped (SIGTERM) while a client waits on it: the requests under way are answered
 * before the port closes (a chat completion waiting for its verdict got an empty reply, its request
 * stored and charged, its id never told), new connections are refused at once, and the process ends
 * within its grace (`STOP_GRACE_MS`).
 */
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { STOP_GRACE_MS } from './relay-cli.ts';
import { freePort, waitUntil } from './test-servers.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');
const dir = mkdtempSync(join(tmpdir(), 'synod-relay-stop-grace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('SIGTERM with a chat completion waiting: it is answered, then the relay exits 0 within its grace', async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const keyFile = join(dir, 'dev-key');
  const proc = Bun.spawn(
    [
      process.execPath,
      MAIN,
      '--identity',
      join(dir, 'identity.json'),
      '--db',
      `file:${join(dir, 'relay.db')}`,
      '--port',
      String(port),
      '--dev-key-file',
      keyFile,
    ],
    {
      cwd: dir,
      env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase for the test' },
      stdout: 'pipe',
      stderr: 'pipe',
    },
  );
  const out = new Response(proc.stdout).text();
  try {
    await waitUntil(
      'the relay answers',
      async () => (await fetch(`${url}/healthz`).catch(() => null)) !== null,
      30_000,
    );
    const key = (await Bun.file(keyFile).text()).trim();
    // No node serves it: it waits in the log until its deadline (1.25 s and the route's slack), then is
    // answered 504, well within the grace.
    const waiting = fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({
        model: 'stories260K',
        messages: [{ role: 'user', content: 'Once upon a time' }],
        max_tokens: 4,
        synod: { frame: { maxTimeMs: 1_000, revealWindowMs: 250 } },
      }),
    });
    await Bun.sleep(300);
    const t0 = Date.now();
    proc.kill('SIGTERM');
    const answered = await waiting;
    expect(answered.status).toBe(504);
    // Expired in the log (no node took it): the answer its caller waited for, not a connection cut.
    expect(['EXPIRED', 'TIMEOUT']).toContain(
      ((await answered.json()) as { error: { code: string } }).error.code,
    );
    // New connections were refused meanwhile.
    expect(await fetch(`${url}/healthz`).catch(() => 'refused')).toBe('refused');
    expect(await proc.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(STOP_GRACE_MS + 5_000);
    const lines = (await out)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l['msg'] === 'stopping')).toMatchObject({
      signal: 'SIGTERM',
      graceS: STOP_GRACE_MS / 1000,
    });
    expect(lines.at(-1)?.['msg']).toBe('stopped');
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    await proc.exited;
  }
}, 60_000);
