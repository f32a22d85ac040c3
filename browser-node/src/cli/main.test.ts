import { expect, test } from 'bun:test';
import { resolve } from 'node:path';
import { runCommand } from '../../../edge/src/test-servers.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');
const synod = (...args: string[]) => runCommand([process.execPath, MAIN, ...args]);

test('synod: no command or an unknown one is a usage error (exit 2); --help and -h print the usage (exit 0)', async () => {
  const none = await synod();
  expect(none.code).toBe(2);
  expect(none.err).toContain('usage: synod node [options]');
  const unknown = await synod('relay');
  expect(unknown.code).toBe(2);
  expect(unknown.err).toContain('synod: unknown command relay');
  for (const flag of ['--help', '-h']) {
    const r = await synod(flag);
    expect(r.code).toBe(0);
    expect(r.out).toContain('usage: synod node [options]');
  }
});

test('synod node -h prints its help, as --help does', async () => {
  const short = await synod('node', '-h');
  const long = await synod('node', '--help');
  expect(short.code).toBe(0);
  expect(short.out).toContain('--identity');
  expect(short.out).toBe(long.out);
});
