/**
 * The relay's standard output is one JSON object a line, from its first line to its last, so `jq` and
 * log shippers read all of it: Gun's welcome banner, printed as Gun loads, is kept out of it.
 */
import { expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnRelay, stopProcess } from './test-servers.ts';

test('every line a relay with a Gun relay prints, from its start to its stop, is a JSON object', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-relay-lines-'));
  const relay = await spawnRelay(
    ['--port', '0', '--gun-port', '0', '--db', `file:${join(dir, 'relay.db')}`],
    {
      cwd: dir,
      stderr: 'pipe',
    },
  );
  try {
    relay.proc.kill('SIGTERM');
    expect(await relay.proc.exited).toBe(0);
    const lines = (await relay.output()).trimEnd().split('\n');
    const notJson = lines.filter((line) => {
      try {
        return typeof JSON.parse(line) !== 'object';
      } catch {
        return true;
      }
    });
    expect(notJson).toEqual([]);
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toContain('relay started');
    expect(JSON.parse(lines.at(-1) ?? '{}')).toMatchObject({ msg: 'stopped' });
    expect(await new Response(relay.proc.stderr as ReadableStream).text()).toBe('');
  } finally {
    await stopProcess(relay.proc);
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
