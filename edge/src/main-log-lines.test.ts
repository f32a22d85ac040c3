/**
 * The relay's standard output is one JSON object a line, from its first line to its last, so `jq` and
 * log shippers read all of it: Gun's welcome banner, printed as Gun loads, is kept out of it, and so are
 * libSQL's native log lines about an embedded replica's syncs, unless the operator asks for them
 * (`RUST_LOG`).
 */
import { expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnRelay, startSqld, stopProcess } from './test-servers.ts';

function notJsonLines(out: string): string[] {
  return out
    .trimEnd()
    .split('\n')
    .filter((line) => {
      try {
        return typeof JSON.parse(line) !== 'object';
      } catch {
        return true;
      }
    });
}

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
    const out = await relay.output();
    const lines = out.trimEnd().split('\n');
    expect(notJsonLines(out)).toEqual([]);
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toContain('relay started');
    expect(JSON.parse(lines.at(-1) ?? '{}')).toMatchObject({ msg: 'stopped' });
    expect(await new Response(relay.proc.stderr as ReadableStream).text()).toBe('');
  } finally {
    await stopProcess(relay.proc);
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

/**
 * A relay on an embedded replica whose server goes away, its syncs failing for a while, then stopped;
 * what it printed. `rustLog`: the operator's `RUST_LOG`, if any.
 */
async function replicaRelayOutput(rustLog?: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'synod-relay-lines-'));
  const sqld = await startSqld();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'RUST_LOG' && v !== undefined) env[k] = v;
  if (rustLog !== undefined) env['RUST_LOG'] = rustLog;
  try {
    const relay = await spawnRelay(
      ['--port', '0', '--db', sqld.url, '--replica', join(dir, 'replica.db'), '--replica-sync-ms', '100'],
      { cwd: dir, env },
    );
    try {
      await stopProcess(sqld.proc);
      // A dozen syncs fail meanwhile.
      await Bun.sleep(1_500);
      relay.proc.kill('SIGTERM');
      await relay.proc.exited;
      return await relay.output();
    } finally {
      await stopProcess(relay.proc);
    }
  } finally {
    await sqld.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test("libSQL's own lines about a replica's failed syncs stay out of the output, unless RUST_LOG asks for them", async () => {
  const quiet = await replicaRelayOutput();
  expect(notJsonLines(quiet)).toEqual([]);
  expect(quiet).toContain('"relay started"');
  // The same run with the operator's RUST_LOG: libSQL's lines are there (so the first run's silence is
  // the relay's doing, not a server that failed quietly).
  const asked = await replicaRelayOutput('error');
  expect(notJsonLines(asked).some((l) => l.includes('ERROR'))).toBe(true);
}, 90_000);
