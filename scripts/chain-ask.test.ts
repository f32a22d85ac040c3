/**
 * `npm run chain:ask` on bad input or without a running local chain: exit 2 with one line naming what is
 * wrong (never a stack trace), before anything is sent. The chain's happy path (callLLM answered by the
 * network) is covered by tests/local-network.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAnvil } from '@synod/contracts';

const SCRIPT = join(import.meta.dir, 'chain-ask.ts');
let dataDir: string;
let closedRpc: string;

/** A port nothing listens on: bound by the OS for an instant, then released. */
function closedPort(): number {
  const server = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const { port } = server;
  server.stop(true);
  return port;
}

function ask(args: string[]) {
  const run = Bun.spawnSync([process.execPath, SCRIPT, ...args], {
    env: { ...process.env, SYNOD_DATA_DIR: dataDir },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  return { code: run.exitCode, stdout: run.stdout.toString(), stderr: run.stderr.toString() };
}

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'synod-chain-ask-'));
  closedRpc = `http://127.0.0.1:${closedPort()}`;
  // What `npm start` leaves behind once it has been stopped: chain.json naming a chain that is gone.
  writeFileSync(
    join(dataDir, 'chain.json'),
    JSON.stringify({
      rpc: closedRpc,
      chainId: 31337,
      oracle: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
      relay: 'http://127.0.0.1:8787',
    }),
  );
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('npm run chain:ask', () => {
  test('a local chain that does not answer: one line saying so, exit 2', () => {
    const r = ask(['Once upon a time']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `chain:ask: the local chain at ${closedRpc} does not answer: is \`npm start\` running?`,
    ]);
  });

  for (const [args, flag] of [
    [['--max-tokens', 'abc'], '--max-tokens'],
    [['--max-tokens', '0'], '--max-tokens'],
    [['--max-tokens', '4097'], '--max-tokens'],
    [['--quorum', '65'], '--quorum'],
    [['--quorum', '2.5'], '--quorum'],
    [['--timeout-s', '0'], '--timeout-s'],
    [['--models', 'a,,b'], '--models'],
    [['--rpc', 'ftp://example'], '--rpc'],
    [['--chain-id', '0'], '--chain-id'],
    [['--oracle', '0x12'], '--oracle'],
    [['--relay', 'localhost:8787'], '--relay'],
  ] as const) {
    test(`${args.join(' ')} is refused before the chain is reached`, () => {
      const r = ask(['Once upon a time', ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr.split('\n')[0]).toStartWith(`chain:ask: ${flag} `);
      expect(r.stderr).not.toContain(closedRpc);
    });
  }

  test('--rpc, --chain-id and --oracle ask that chain, chain.json unread; one that does not answer is said so', () => {
    const r = ask([
      'Once upon a time',
      '--rpc',
      `${closedRpc}/other`,
      '--chain-id',
      '5',
      '--oracle',
      `0x${'ab'.repeat(20)}`,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `chain:ask: the chain at ${closedRpc}/other (--rpc) does not answer`,
    ]);
  });

  test('a flag overrides only its own field of chain.json: another --chain-id than the RPC serves is refused', async () => {
    const anvil = await startAnvil();
    try {
      const r = ask(['Once upon a time', '--rpc', anvil.url, '--chain-id', '1']);
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toBe(`chain:ask: the chain at ${anvil.url} is chain ${anvil.chainId}, not 1`);
    } finally {
      await anvil.stop();
    }
  });

  test('no chain.json and not all of --rpc, --chain-id, --oracle: says what to do, exit 2', () => {
    const empty = mkdtempSync(join(tmpdir(), 'synod-chain-ask-empty-'));
    try {
      const run = Bun.spawnSync([process.execPath, SCRIPT, 'Once upon a time', '--rpc', closedRpc], {
        env: { ...process.env, SYNOD_DATA_DIR: empty },
        stderr: 'pipe',
      });
      expect(run.exitCode).toBe(2);
      expect(run.stderr.toString()).toContain(
        'run `npm start` first, or give --rpc, --chain-id and --oracle',
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test('an unknown flag is refused with the usage', () => {
    const r = ask(['Once upon a time', '--max-token', '8']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("chain:ask: Unknown option '--max-token'");
    expect(r.stderr).toContain('usage: npm run chain:ask -- "prompt"');
  });

  test('no prompt: the usage, exit 2', () => {
    const r = ask([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage: npm run chain:ask -- "prompt"');
  });

  test('--help: the usage on stdout, exit 0, nothing reached', () => {
    const r = ask(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith('usage: npm run chain:ask -- "prompt"');
    expect(r.stderr).toBe('');
  });
});
