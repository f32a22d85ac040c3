/**
 * The `synod-relay` CLI's flag checks: bad flags end it with exit code 2 and a message naming the
 * flag, before it opens a database or listens anywhere.
 */
import { describe, expect, test } from 'bun:test';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const MAIN = resolve(import.meta.dir, 'main.ts');

async function relayCli(
  args: string[],
): Promise<{ code: number; out: string; err: string; files: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'synod-cli-'));
  try {
    const p = Bun.spawn([process.execPath, MAIN, ...args], {
      cwd: dir,
      env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase for the test' },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const [out, err, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    return { code, out, err, files: readdirSync(dir) };
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
    [['--no-such-flag'], "Unknown option '--no-such-flag'"],
  ])('%p is refused with exit code 2, nothing created', async (args, message) => {
    const r = await relayCli(args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(r.files).toEqual([]);
  });
});
