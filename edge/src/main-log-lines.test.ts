/**
 * The relay's standard output is one JSON object a line, from its first line to its last, so `jq` and
 * log shippers read all of it: Gun's welcome banner, printed as Gun loads, is kept out of it.
 */
import { expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stopProcess, waitUntil } from './test-servers.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');

test('every line a relay with a Gun relay prints, from its start to its stop, is a JSON object', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-relay-lines-'));
  const relay = Bun.spawn(
    [process.execPath, MAIN, '--port', '0', '--gun-port', '0', '--db', `file:${join(dir, 'relay.db')}`],
    {
      cwd: dir,
      env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase for the test' },
      stdout: 'pipe',
      stderr: 'pipe',
    },
  );
  try {
    let out = '';
    const reader = relay.stdout.getReader();
    await waitUntil('the relay to start', async () => {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the relay exited: ${out}`);
      out += new TextDecoder().decode(value);
      return out.includes('"relay started"');
    });
    relay.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
    for (let r = await reader.read(); !r.done; r = await reader.read())
      out += new TextDecoder().decode(r.value);
    const lines = out.trimEnd().split('\n');
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
    expect(await new Response(relay.stderr).text()).toBe('');
  } finally {
    await stopProcess(relay);
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
