/**
 * The `synod-relay` CLI's flag checks: bad flags end it with exit code 2 and a message naming the
 * flag, before it opens a database or listens anywhere.
 */
import { describe, expect, test } from 'bun:test';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { hashApiKey } from './auth/api-keys.ts';
import { openHistory } from './store/open-history.ts';
import { runCommand } from './test-servers.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');

/** Run the CLI in a fresh directory; `after` sees the directory (and what the run printed) before it goes. */
async function relayCli(
  args: string[],
  after?: (dir: string, out: string) => Promise<void>,
): Promise<{ code: number; out: string; err: string; files: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'synod-cli-'));
  try {
    const { code, out, err } = await runCommand([process.execPath, MAIN, ...args], {
      cwd: dir,
      env: { SYNOD_PASSPHRASE: 'a passphrase for the test' },
    });
    const files = readdirSync(dir);
    await after?.(dir, out);
    return { code, out, err, files };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('synod-relay flags', () => {
  test('--help lists the flags, the replica sync interval among them', async () => {
    const r = await relayCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('--replica FILE');
    expect(r.out).toContain('--replica-sync-ms N');
  });

  test.each([
    [['--replica', 'replica.db', '--replica-sync-ms', '0'], '--replica-sync-ms must be a positive number'],
    [['--replica-sync-ms', 'soon'], '--replica-sync-ms must be a positive number'],
    [['--port', '70000'], '--port must be a port number'],
    [['--cors-origins', 'app.example'], '--cors-origins: not a web origin: app.example'],
    [['--no-such-flag'], "Unknown option '--no-such-flag'"],
  ])('%p is refused with exit code 2, nothing created', async (args, message) => {
    const r = await relayCli(args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(r.files).toEqual([]);
  });
});

describe('synod-relay keys create', () => {
  test('stores a new key, hashed, with its quota, and prints the key once', async () => {
    let stored: { id: string; quotaPerDay: number; revoked: boolean } | null = null;
    let plain = false;
    const r = await relayCli(
      ['keys', 'create', '--label', 'agent', '--quota', '25', '--db', 'file:keys/history.db'],
      async (dir, out) => {
        const h = await openHistory(`file:${join(dir, 'keys/history.db')}`);
        stored = await h.store.apiKeyByHash(hashApiKey(out.trim()));
        // At rest only the hash: the key itself is in no row.
        const rows = await h.client.execute('SELECT * FROM api_keys');
        plain = JSON.stringify(rows.rows).includes(out.trim());
        h.client.close();
      },
    );
    expect(r.code).toBe(0);
    expect(r.out.trim()).toMatch(/^synod_sk_[0-9a-f]{64}$/);
    expect(r.files).toEqual(['keys']);
    expect(stored).toMatchObject({ quotaPerDay: 25, revoked: false });
    expect(plain).toBe(false);
  });

  test.each([
    [['keys', 'create'], 'usage: synod-relay keys create'],
    [['keys', 'create', '--label', 'a', '--quota', '-1'], 'usage: synod-relay keys create'],
    [['keys', 'create', '--label', 'a', '--bogus'], "Unknown option '--bogus'"],
  ])('%p is refused with exit code 2', async (args, message) => {
    const r = await relayCli(args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(r.files).toEqual([]);
  });

  test('a database that cannot be opened is an error (exit code 1), not a key', async () => {
    const r = await relayCli(['keys', 'create', '--label', 'a', '--db', 'http://127.0.0.1:9']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('the key could not be stored in http://127.0.0.1:9');
    expect(r.out).toBe('');
  });
});
