/**
 * `synod-relay` start failures an operator meets (a port in use, a database path that is not one): exit
 * 1, the last line `start failed` with a stable code and a hint, nothing written. They were all
 * `INTERNAL`, with the port one found only after the identity and the database were made.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deployOracle, fundedAccount, rpcChain, startAnvil } from '@synod/contracts';
import { createPublicClient, createWalletClient, http, type PublicClient } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { databaseServerFailure } from './relay-cli.ts';
import { runCommand } from './test-servers.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');
const root = mkdtempSync(join(tmpdir(), 'synod-relay-start-failures-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** The relay started with `args` in a fresh folder: its exit code, last log line and the folder's files. */
async function start(args: (dir: string) => string[], env: Record<string, string> = {}) {
  const dir = join(root, String(n++));
  mkdirSync(dir);
  const r = await runCommand([process.execPath, MAIN, '--identity', join(dir, 'id.json'), ...args(dir)], {
    cwd: dir,
    env: { SYNOD_PASSPHRASE: 'a passphrase for the test', ...env },
  });
  const last = JSON.parse(r.out.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
  return { code: r.code, last, files: readdirSync(dir).sort(), err: r.err };
}

function listening(): Promise<{ server: Server; port: number }> {
  return new Promise((done) => {
    const server = createServer();
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const a = server.address();
      done({ server, port: typeof a === 'object' && a ? a.port : 0 });
    });
  });
}

describe('synod-relay start failures', () => {
  test("a bridge key that is not the oracle's bridge(): BRIDGE_MISMATCH naming both accounts, with a hint", async () => {
    const anvil = await startAnvil();
    try {
      const chain = rpcChain(anvil.chainId, anvil.url);
      const client = createPublicClient({ chain, transport: http(anvil.url) }) as PublicClient;
      const deployer = await fundedAccount(anvil.url);
      const bridge = await fundedAccount(anvil.url);
      const wallet = createWalletClient({ chain, transport: http(anvil.url), account: deployer.account });
      const oracle = await deployOracle(wallet, client, { bridge: bridge.account.address, minFee: 1n });
      const other = generatePrivateKey();
      const r = await start(
        (dir) => [
          '--db',
          `file:${join(dir, 'relay.db')}`,
          '--chain-rpc',
          anvil.url,
          '--chain-id',
          String(anvil.chainId),
          '--oracle',
          oracle,
        ],
        { SYNOD_BRIDGE_KEY: other },
      );
      expect(r.code).toBe(1);
      expect(r.last).toMatchObject({ level: 'error', msg: 'start failed', code: 'BRIDGE_MISMATCH' });
      expect(String(r.last['err'])).toContain(bridge.account.address);
      expect(String(r.last['err'])).toContain(privateKeyToAccount(other).address);
      expect(String(r.last['hint'])).toContain(`setBridge(${privateKeyToAccount(other).address})`);
    } finally {
      await anvil.stop();
    }
  });

  for (const flag of ['--port', '--tcp-port', '--ws-port', '--gun-port']) {
    test(`${flag} in use: EADDRINUSE naming it, with a hint, before an identity or a database is made`, async () => {
      const taken = await listening();
      try {
        const r = await start((dir) => ['--db', `file:${join(dir, 'relay.db')}`, flag, String(taken.port)]);
        expect(r.code).toBe(1);
        expect(r.last).toMatchObject({ level: 'error', msg: 'start failed', code: 'EADDRINUSE' });
        expect(String(r.last['err'])).toStartWith(`${flag} ${taken.port}: a port on 127.0.0.1 is in use`);
        expect(String(r.last['hint'])).toContain('pick another port');
        expect(r.files).toEqual([]);
      } finally {
        taken.server.close();
      }
    });
  }

  test('a --db file that is not a database: DB_FILE_MALFORMED naming it, with a hint', async () => {
    const r = await start((dir) => {
      writeFileSync(join(dir, 'notes.db'), 'these are my notes, not a database\n'.repeat(200));
      return ['--db', `file:${join(dir, 'notes.db')}`];
    });
    expect(r.code).toBe(1);
    expect(r.last).toMatchObject({ msg: 'start failed', code: 'DB_FILE_MALFORMED' });
    expect(String(r.last['err'])).toContain('notes.db is not a SQLite database');
    expect(String(r.last['hint'])).toContain('--db');
  });

  test('a libSQL server that cannot be reached: DB_UNREACHABLE with a hint; one refusing the token: DB_AUTH_FAILED', async () => {
    const closed = await listening();
    const port = closed.port;
    closed.server.close();
    const r = await start(() => ['--db', `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.last).toMatchObject({ msg: 'start failed', code: 'DB_UNREACHABLE' });
    expect(String(r.last['hint'])).toContain('could not be reached');
    // libSQL's own words for a server refusing the token (as an operator met it, against sqld with auth).
    const refused = Object.assign(new Error('SERVER_ERROR: Server returned HTTP status 401'), {
      openingDatabase: true,
    });
    expect(databaseServerFailure(refused)).toMatchObject({
      code: 'DB_AUTH_FAILED',
      hint: expect.stringContaining('SYNOD_DB_AUTH_TOKEN'),
    });
    expect(databaseServerFailure(new Error('SQLITE_CONSTRAINT: something else'))).toBeNull();
  });

  test('a --db file that cannot be made: DB_FILE_UNWRITABLE naming it, with a hint', async () => {
    const r = await start(() => ['--db', 'file:/proc/no-such-folder/relay.db']);
    expect(r.code).toBe(1);
    expect(r.last).toMatchObject({ msg: 'start failed', code: 'DB_FILE_UNWRITABLE' });
    expect(String(r.last['err'])).toContain('/proc/no-such-folder/relay.db');
    expect(String(r.last['hint'])).toContain('folder this user may write');
  });

  test('a wrong passphrase: KEY_WRONG_PASSPHRASE with the hint the node gives too', async () => {
    const { loadOrCreateIdentity } = await import('@synod/browser-node/cli');
    const identity = join(root, 'sealed.json');
    await loadOrCreateIdentity(identity, 'the right passphrase');
    const r = await runCommand(
      [process.execPath, MAIN, '--identity', identity, '--db', `file:${join(root, 'pw.db')}`],
      { cwd: root, env: { SYNOD_PASSPHRASE: 'a wrong passphrase' } },
    );
    const last = JSON.parse(r.out.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    expect(r.code).toBe(1);
    expect(last).toMatchObject({ msg: 'start failed', code: 'KEY_WRONG_PASSPHRASE' });
    expect(String(last['hint'])).toContain('give the passphrase this key was sealed with');
    // The relay's own words: a relay key, a new relay (it said "node").
    expect(String(last['hint'])).toContain('to start as a new relay (a new coordinator id');
  });

  test('an identity file that is no sealed key: KEYSTORE_MALFORMED, said of a relay key', async () => {
    const r = await start((dir) => {
      writeFileSync(join(dir, 'id.json'), '{"not": "a key"}\n');
      return ['--db', `file:${join(dir, 'relay.db')}`];
    });
    expect(r.code).toBe(1);
    expect(r.last).toMatchObject({ msg: 'start failed', code: 'KEYSTORE_MALFORMED' });
    expect(String(r.last['err'])).toContain('is not a sealed relay key');
    expect(String(r.last['hint'])).toContain('to start as a new relay');
    expect(String(r.last['hint'])).not.toContain('node');
  });
});
