/**
 * The `synod-relay` CLI's flag checks: bad flags end it with exit code 2 and a message naming the
 * flag, before it opens a database or listens anywhere.
 */
import { describe, expect, test } from 'bun:test';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NodeKey, sealNodeKey } from '@synod/shared';
import { hashApiKey } from './auth/api-keys.ts';
import { openHistory } from './store/open-history.ts';
import { runCommand, startSqld } from './test-servers.ts';

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
    expect(r.out).toContain('--max-queued N');
    expect(r.out).toContain('--max-open N');
    expect(r.out).toContain('--reembed-tolerance-bits N');
    // Each flag's continuation line sits under its own flag.
    expect(r.out).toMatch(/--gateway-secret-env V .*\n {25}for edge relays on workerd/);
  });

  test.each([
    [['--replica', 'replica.db', '--replica-sync-ms', '0'], '--replica-sync-ms must be a positive number'],
    [['--replica-sync-ms', 'soon'], '--replica-sync-ms must be a positive number'],
    [['--port', '70000'], '--port must be a port number'],
    [['--max-queued', 'many'], '--max-queued must be a whole number (0: no bound)'],
    [['--max-open', '0'], '--max-open must be a whole number from 1'],
    [['--max-queued', '1e3'], '--max-queued must be a whole number (0: no bound)'],
    [
      ['--reembed-tolerance-bits', '65'],
      '--reembed-tolerance-bits must be a whole number of bits from 0 to 64',
    ],
    [
      ['--reembed-tolerance-bits', '-1'],
      '--reembed-tolerance-bits must be a whole number of bits from 0 to 64',
    ],
    [['--cors-origins', 'app.example'], '--cors-origins: not a web origin: app.example'],
    [['--no-such-flag'], "Unknown option '--no-such-flag'"],
  ])('%p is refused with exit code 2, nothing created', async (args, message) => {
    const r = await relayCli(args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(r.files).toEqual([]);
  });
});

/**
 * Run the relay with flags it must refuse, in a fresh directory, with its HTTP port (unless `args` name
 * one) a port this test holds: a relay that got as far as listening would fail on it (exit code 1)
 * rather than run on. One that runs on all the same is killed after 20 s. Variables of the relay's
 * own (SYNOD_*) come only from `env`.
 */
async function refusedRun(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string; files: string[] }> {
  const held = createServer();
  await new Promise<void>((r) => held.listen(0, '127.0.0.1', r));
  const port = (held.address() as AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'synod-cli-'));
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SYNOD_')));
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const withPort = args[0] === 'keys' || args.includes('--port') ? args : ['--port', String(port), ...args];
    const p = Bun.spawn([process.execPath, MAIN, ...withPort], {
      cwd: dir,
      env: { ...base, SYNOD_PASSPHRASE: 'a passphrase for the test', ...env },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    });
    timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    const [out, err, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    return { code, out, err, files: readdirSync(dir) };
  } finally {
    clearTimeout(timer);
    await new Promise((r) => held.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('synod-relay refuses every bad flag before it opens, writes or starts anything', () => {
  // Each: exit code 2, one line on stderr naming the flag and what it takes, nothing on stdout (no
  // log line: nothing started), no file in the directory (no identity, no database).
  const cases: [string, string[], string, Record<string, string>?][] = [
    // ports: 0-65535, digits only
    ['ports', ['--gun-port', 'abc'], '--gun-port must be a port number (0-65535, digits only), got "abc"'],
    [
      'ports',
      ['--gun-port', '65536'],
      '--gun-port must be a port number (0-65535, digits only), got "65536"',
    ],
    ['ports', ['--port', ''], '--port must be a port number (0-65535, digits only), got ""'],
    ['ports', ['--port', '0x0'], '--port must be a port number (0-65535, digits only), got "0x0"'],
    ['ports', ['--tcp-port', '1e3'], '--tcp-port must be a port number (0-65535, digits only), got "1e3"'],
    ['ports', ['--ws-port', ' 80'], '--ws-port must be a port number (0-65535, digits only), got " 80"'],
    [
      'ports',
      ['--port', '0', '--tcp-port', '45678', '--ws-port', '45678'],
      '--ws-port must differ from --tcp-port',
    ],
    // counts and durations: whole numbers in range, digits only
    ['counts', ['--replica-sync-ms', '1.5'], '--replica-sync-ms must be a positive number of milliseconds'],
    ['counts', ['--replica-sync-ms', '0x10'], '--replica-sync-ms must be a positive number of milliseconds'],
    ['counts', ['--replica-sync-ms', '1e3'], '--replica-sync-ms must be a positive number of milliseconds'],
    // the database: file:PATH, or a libSQL server
    ['db', ['--db', 'relay.db'], '--db must be file:PATH, http(s)://HOST or libsql://HOST, got "relay.db"'],
    ['db', ['--db', 'postgres://127.0.0.1/relay'], '--db must be file:PATH, http(s)://HOST or libsql://HOST'],
    ['db', ['--db', 'file:'], '--db must be file:PATH, http(s)://HOST or libsql://HOST, got "file:"'],
    ['db', ['--db', 'file::memory:'], '--db must be file:PATH'],
    ['db', ['--db', 'file:.'], '--db must be a file path, not a folder, got "."'],
    [
      'db',
      ['--db', 'http://127.0.0.1:9?mode=ro'],
      'got "http://127.0.0.1:9?mode=ro" (unknown query parameter mode)',
    ],
    [
      'db',
      ['--db', 'https://user:secret@127.0.0.1:9/x'],
      'got "https://127.0.0.1:9/x" (a libSQL server URL has no path)',
    ],
    // lists: not empty, no empty entry, each entry valid
    [
      'lists',
      ['--models', ','],
      '--models must be a comma-separated list of model ids without empty entries, got ","',
    ],
    [
      'lists',
      ['--models', 'a,,b'],
      '--models must be a comma-separated list of model ids without empty entries',
    ],
    ['lists', ['--models', ''], '--models must be a comma-separated list of model ids without empty entries'],
    ['lists', ['--models', 'stories260K,no spaces'], '--models: not a model id'],
    ['lists', ['--trusted-nodes', `${'ab'.repeat(32)},`], '--trusted-nodes must be a comma-separated list'],
    [
      'lists',
      ['--trusted-nodes', 'AB'.repeat(32)],
      '--trusted-nodes: not a node id (64 lowercase hex digits)',
    ],
    [
      'lists',
      ['--bootstrap', ''],
      '--bootstrap must be a comma-separated list of multiaddrs without empty entries',
    ],
    ['lists', ['--bootstrap', '/ip4/127.0.0.1/tcp/9'], '--bootstrap: not a multiaddr with /p2p/<peer id>'],
    // a peer on another machine is dialled only with --dial any (else it would wait for it forever)
    [
      'dial',
      ['--bootstrap', '/ip4/192.0.2.7/tcp/9/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'],
      '--bootstrap: not a loopback IP address (127.0.0.0/8, ::1), and the relay dials no other unless --dial any is given',
    ],
    [
      'dial',
      ['--bootstrap', '/dns4/relay.example/tcp/9/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'],
      'and the relay dials no other unless --dial any is given',
    ],
    ['dial', ['--dial', 'all'], '--dial must be loopback or any, got "all"'],
    ['lists', ['--cors-origins', ''], '--cors-origins must be a comma-separated list of web origins'],
    [
      'lists',
      ['--cors-origins', 'https://app.example,'],
      '--cors-origins must be a comma-separated list of web origins',
    ],
    [
      'lists',
      ['--cors-origins', 'https://app.example,,*'],
      'without empty entries, got "https://app.example,,*"',
    ],
    // chain flags without the chain bridge
    ['chain', ['--confirmations', 'x'], '--confirmations is for the chain bridge: give it with --chain-rpc'],
    ['chain', ['--confirmations', '5'], '--confirmations is for the chain bridge'],
    ['chain', ['--from-block', '100'], '--from-block is for the chain bridge'],
    ['chain', ['--replace-after-s', '0'], '--replace-after-s is for the chain bridge'],
    ['chain', ['--min-bridge-balance', '1'], '--min-bridge-balance is for the chain bridge'],
    ['chain', ['--chain-daily-quota', '10'], '--chain-daily-quota is for the chain bridge'],
    ['negative', ['--signed-quota', '-1'], '--signed-quota must be a whole number of requests a day'],
    ['lists', ['--signed-quota', 'lots'], '--signed-quota must be a whole number of requests a day'],
    ['chain', ['--bridge-key-env', 'MY_KEY'], '--bridge-key-env is for the chain bridge'],
    // flags that need another
    ['pairs', ['--replica', 'replica.db'], '--replica needs --db to be a libSQL server'],
    ['pairs', ['--replica', ''], '--replica must be a file path, got ""'],
    [
      'pairs',
      ['--replica-sync-ms', '500'],
      '--replica-sync-ms is for an embedded replica: give it with --replica',
    ],
    ['pairs', ['--db-auth-token-env', 'TOKEN'], '--db-auth-token-env is for a libSQL server', { TOKEN: 't' }],
    ['pairs', ['--gateway-secret-env', 'NOT_SET'], '--gateway-secret-env: $NOT_SET is not set'],
    // listen address, files, environment
    ['host', ['--host', 'localhost'], '--host must be an IP address to listen on'],
    ['files', ['--identity', ''], '--identity must be a file path, got ""'],
    ['files', ['--identity', '.'], '--identity must be a file path, not a folder, got "."'],
    [
      'files',
      ['--identity', '/etc/passwd/identity.json'],
      '--identity must be a file path the relay can reach (a part of it is a file, not a folder), got "/etc/passwd/identity.json"',
    ],
    ['files', ['--dev-key-file', ''], '--dev-key-file must be a file path, got ""'],
    ['env', ['--passphrase-env', 'not a name'], '--passphrase-env must name an environment variable'],
    [
      'env',
      [],
      '$SYNOD_GATEWAY_SECRET must hold the gateway secret: at least 16',
      { SYNOD_GATEWAY_SECRET: 'short' },
    ],
    // a flag given twice
    ['twice', ['--models', 'a', '--models', 'b'], '--models is given twice'],
    // a negative number: the flag's own check, not parseArgs' three lines ("argument is ambiguous…")
    ['negative', ['--tcp-port', '-1'], '--tcp-port must be a port number (0-65535, digits only), got "-1"'],
    ['negative', ['--max-open', '-5'], '--max-open must be a whole number from 1 to 999999, got "-5"'],
    // a flag followed by another (its value forgotten)
    [
      'dash',
      ['--identity', '--models', 'a'],
      '--identity needs a value, got "--models" (a value starting with a dash is written --identity=-…)',
    ],
    // a text flag before a negative number: its value forgotten, not a file named "-1"
    [
      'dash',
      ['--identity', '-1'],
      '--identity needs a value, got "-1" (a value starting with a dash is written --identity=-…)',
    ],
  ];
  test.each(cases)(
    '%s: %p is refused',
    async (_, args, message, env = {}) => {
      const r = await refusedRun(args, env);
      expect({ code: r.code, err: r.err }).toEqual({ code: 2, err: expect.stringContaining(message) });
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toStartWith('synod-relay: ');
      expect(r.out).toBe('');
      expect(r.files).toEqual([]);
    },
    30_000,
  );

  test('without a passphrase, a wrong flag is still said first; with none wrong, the passphrase is asked for', async () => {
    const flag = await refusedRun(['--max-open', '-5'], { SYNOD_PASSPHRASE: '' });
    expect({ code: flag.code, err: flag.err.trim() }).toEqual({
      code: 2,
      err: expect.stringContaining('--max-open must be a whole number from 1 to 999999, got "-5"'),
    });
    const none = await refusedRun([], { SYNOD_PASSPHRASE: '' });
    expect(none.code).toBe(2);
    expect(none.err).toContain("set the relay key's passphrase in $SYNOD_PASSPHRASE");
  });

  test("a new key's passphrase under 8 characters ($SYNOD_PASSPHRASE or --passphrase-env) exits 2 as the node's, one line naming the path, nothing made; an existing key opens with its short one", async () => {
    for (const [args, env] of [
      [[], { SYNOD_PASSPHRASE: 'short' }],
      [['--passphrase-env', 'MY_RELAY_PASS'], { MY_RELAY_PASS: 'short' }],
    ] as const) {
      const r = await refusedRun([...args], env);
      expect(r.code).toBe(2);
      const lines = r.err.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^synod-relay: no identity file at \/.+\/\.data\/relay\/identity\.json: a new relay key made there needs a passphrase of at least 8 characters \(this one has 5\) \(PASSPHRASE_TOO_SHORT\): /,
      );
      expect(r.out).toBe('');
      expect(r.files).toEqual([]);
    }
    // A key sealed before with a short passphrase still opens: the start goes on, here to its held port.
    const dir = mkdtempSync(join(tmpdir(), 'synod-cli-old-key-'));
    try {
      const identity = join(dir, 'id.json');
      writeFileSync(
        identity,
        JSON.stringify(await sealNodeKey(await NodeKey.generate(), 'old', { N: 2 ** 10 })),
      );
      const r = await refusedRun(['--identity', identity], { SYNOD_PASSPHRASE: 'old' });
      expect(r.code).toBe(1);
      expect(r.out).toContain('EADDRINUSE');
      expect(r.err).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a secret given in place of a variable name is not printed', async () => {
    const r = await refusedRun(['--passphrase-env', 'my very secret passphrase']);
    expect(r.code).toBe(2);
    expect(r.err).not.toContain('secret passphrase');
  });

  test.each([
    [
      ['keys', 'create', '--label', 'a', '--db', 'relay.db'],
      '--db must be file:PATH, http(s)://HOST or libsql://HOST',
    ],
    [['keys', 'list', '--db', 'postgres://127.0.0.1/x'], '--db must be file:PATH'],
    [['keys', 'create', '--label', 'a', '--db', 'file:.'], '--db must be a file path, not a folder'],
    [['keys', 'create', '--label', 'a', '--json'], 'keys create takes no --json'],
    [['keys', 'list', '--quota', '5'], 'keys list takes no --quota'],
    [['keys', 'revoke', 'key_0123456789abcdef', '--label', 'x'], 'keys revoke takes no --label'],
    [['keys', 'create', '--label', 'a', '--label', 'b'], '--label is given twice'],
    [
      ['keys', 'create', '--label', 'a', '--db-auth-token-env', 'TOKEN'],
      '--db-auth-token-env is for a libSQL server',
    ],
    [['keys', 'list', '--db', 'http://127.0.0.1:9', '--db-auth-token-env', 'NOT_SET'], '$NOT_SET is not set'],
    [['keys', 'list', '--db-auth-token-env', '1X'], '--db-auth-token-env must name an environment variable'],
  ])('%p is refused with exit code 2 and the usage, nothing created', async (args, message) => {
    const r = await refusedRun(args, { TOKEN: 't' });
    expect({ code: r.code, err: r.err }).toEqual({ code: 2, err: expect.stringContaining(message) });
    expect(r.err).toContain('usage: synod-relay keys create');
    expect(r.out).toBe('');
    expect(r.files).toEqual([]);
  });
});

describe('synod-relay keys create', () => {
  test('stores a new key, hashed, with its quota, and prints the key once', async () => {
    let stored: { id: string; quotaPerDay: number; revoked: boolean } | null = null;
    let plain = false;
    const r = await relayCli(
      ['keys', 'create', '--label', 'agent', '--quota', '25', '--new-db', '--db', 'file:keys/history.db'],
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
    [['keys', 'create'], 'keys create needs --label'],
    [['keys', 'create', '--label', 'a', '--quota=-1'], '--quota must be a whole number >= 0'],
    [['keys', 'create', '--label', 'a', '--quota', '-5'], '--quota must be a whole number >= 0'],
    [['keys', 'create', '--label', 'a', '--quota', '2.5'], '--quota must be a whole number >= 0'],
    [['keys', 'create', '--label', 'a', '--quota='], '--quota must be a whole number >= 0'],
    [['keys', 'create', '--label', 'a', '--quota', '0x10'], '--quota must be a whole number >= 0'],
    [['keys', 'create', '--label', 'a', '--quota', '1e3'], '--quota must be a whole number >= 0'],
    [['keys', 'create', '--label', 'a', '--bogus'], "Unknown option '--bogus'"],
    // A forgotten value: one line naming the flag (parseArgs' own is three), a text flag's "-1" included.
    [['keys', 'create', '--label', '--quota', '5'], '--label needs a value, got "--quota"'],
    [['keys', 'create', '--label', '-1'], '--label needs a value, got "-1"'],
    [['keys', 'create', '--label', 'a', 'extra'], 'unexpected extra'],
    [['keys', 'create', '--label', 'two\nlines'], '--label must be one line of at most 100 characters'],
    [['keys', 'create', '--label', 'x'.repeat(101)], '--label must be one line of at most 100 characters'],
    [['keys'], 'keys needs a command'],
    [['keys', 'rotate'], 'unknown keys command rotate'],
    [['keys', 'revoke'], 'keys revoke needs a KEY_ID'],
    [['keys', 'revoke', 'agent'], 'agent is not a key id'],
    [['keys', 'list', 'all'], 'unexpected all'],
    [['keys', 'set-quota', 'key_0123456789abcdef'], 'keys set-quota needs --quota N'],
    [['keys', 'set-quota', '--quota', '5'], 'keys set-quota needs a KEY_ID'],
    [['keys', 'set-quota', 'key_0123456789abcdef', '--quota', 'lots'], '--quota must be a whole number >= 0'],
    [['keys', 'set-quota', 'key_0123456789abcdef', '--quota='], '--quota must be a whole number >= 0'],
  ])('%p is refused with exit code 2 and the usage', async (args, message) => {
    const r = await relayCli(args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(r.err).toContain('usage: synod-relay keys create');
    expect(r.files).toEqual([]);
  });

  test('a database that cannot be opened is an error (exit code 1), not a key', async () => {
    const r = await relayCli(['keys', 'create', '--label', 'a', '--db', 'http://127.0.0.1:9']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('the database http://127.0.0.1:9 could not be opened');
    expect(r.out).toBe('');
  });
});

describe('synod-relay keys list and revoke', () => {
  /** Commands run one after another in one fresh directory. */
  async function inDir(
    f: (run: (args: string[]) => ReturnType<typeof runCommand>, dir: string) => Promise<void>,
  ) {
    const dir = mkdtempSync(join(tmpdir(), 'synod-cli-'));
    try {
      await f(
        (args) => runCommand([process.execPath, MAIN, ...args], { cwd: dir, env: { SYNOD_PASSPHRASE: 'x' } }),
        dir,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const db = ['--db', 'file:relay.db'];

  test('lists keys with quota, use and status; revokes by id, once; the relay then reads it revoked', async () => {
    await inDir(async (run, dir) => {
      const agent = await run(['keys', 'create', '--label', 'agent', '--quota', '25', '--new-db', ...db]);
      // Said where it went: a key in another database than the relay's is unknown to the relay.
      expect(agent.err).toMatch(
        /^created key_[0-9a-f]{16} "agent", 25 requests a day, in a new database, file:relay.db;/,
      );
      const laptop = await run(['keys', 'create', '--label', 'old laptop', ...db]);
      const listed = await run(['keys', 'list', '--json', ...db]);
      expect(listed.code).toBe(0);
      const keys = JSON.parse(listed.out) as { id: string; label: string; quotaPerDay: number }[];
      expect(keys.map((k) => [k.label, k.quotaPerDay])).toEqual([
        ['agent', 25],
        ['old laptop', 1000],
      ]);
      // Neither the keys nor their hashes are shown.
      for (const key of [agent.out.trim(), laptop.out.trim()]) {
        expect(listed.out).not.toContain(key);
        expect(listed.out).not.toContain(hashApiKey(key));
      }
      const id = keys[1]?.id as string;

      const revoke = await run(['keys', 'revoke', id, ...db]);
      expect(revoke.code).toBe(0);
      expect(revoke.out).toContain(`revoked ${id} "old laptop"`);
      const again = await run(['keys', 'revoke', id, ...db]);
      expect(again.code).toBe(0);
      expect(again.out).toContain(`${id} "old laptop" was already revoked at`);
      const raised = await run(['keys', 'set-quota', keys[0]?.id as string, '--quota', '50', ...db]);
      expect(raised.code).toBe(0);
      expect(raised.out).toContain(`${keys[0]?.id} "agent": 25 -> 50 requests a day (0 used today)`);
      const noSuch = await run(['keys', 'set-quota', 'key_0123456789abcdef', '--quota', '1', ...db]);
      expect(noSuch.code).toBe(1);
      expect(noSuch.err).toContain('no API key key_0123456789abcdef');
      const unknown = await run(['keys', 'revoke', 'key_0123456789abcdef', ...db]);
      expect(unknown.code).toBe(1);
      expect(unknown.err).toContain('no API key key_0123456789abcdef');

      const table = await run(['keys', 'list', ...db]);
      expect(table.code).toBe(0);
      const [head, first, second] = table.out.trim().split('\n');
      expect(head).toMatch(/^id +label +quota\/day +used \d{4}-\d\d-\d\d +created \(UTC\) +status$/);
      expect(first).toMatch(new RegExp(`^${keys[0]?.id} +agent +50 +0 +[0-9-]+ [0-9:]+ +live$`));
      expect(second).toMatch(
        new RegExp(`^${id} +old laptop +1000 +0 +[0-9-]+ [0-9:]+ +revoked [0-9-]+ [0-9:]+$`),
      );

      // What a relay reads for that key now: revoked (it answers 403 FORBIDDEN, see app.test.ts).
      const h = await openHistory(`file:${join(dir, 'relay.db')}`);
      expect(await h.store.apiKeyByHash(hashApiKey(laptop.out.trim()))).toMatchObject({ revoked: true });
      expect(await h.store.apiKeyByHash(hashApiKey(agent.out.trim()))).toMatchObject({ revoked: false });
      h.client.close();
    });
  });

  test('keys on a libSQL server (sqld), where a workerd relay keeps them', async () => {
    const sqld = await startSqld();
    try {
      await inDir(async (run) => {
        const db = ['--db', sqld.url];
        const created = await run(['keys', 'create', '--label', 'edge agent', '--quota', '9', ...db]);
        expect(created.code).toBe(0);
        const listed = await run(['keys', 'list', '--json', ...db]);
        expect(JSON.parse(listed.out)).toMatchObject([
          { label: 'edge agent', quotaPerDay: 9, revokedAt: null },
        ]);
        const id = (JSON.parse(listed.out) as { id: string }[])[0]?.id as string;
        expect((await run(['keys', 'revoke', id, ...db])).code).toBe(0);
        const h = await openHistory(sqld.url);
        expect(await h.store.apiKeyByHash(hashApiKey(created.out.trim()))).toMatchObject({ revoked: true });
        h.client.close();
      });
    } finally {
      await sqld.stop();
    }
  });

  test('an empty database lists no keys and says how to make one', async () => {
    await inDir(async (run, dir) => {
      (await openHistory(`file:${join(dir, 'relay.db')}`)).client.close();
      const r = await run(['keys', 'list', ...db]);
      expect(r.code).toBe(0);
      expect(r.out).toContain('no API keys yet');
    });
  });

  test.each([
    [['keys', 'list']],
    [['keys', 'revoke', 'key_0123456789abcdef', '--db', 'file:elsewhere/relay.db']],
    // A key made in a new file at a mistyped --db (or the default) would be one no relay knows.
    [['keys', 'create', '--label', 'a']],
    [['keys', 'create', '--label', 'a', '--db', 'file:.data/typo/relay.db']],
  ])('%p on a database file that is not there: exit code 1, and no file made', async (args) => {
    const r = await relayCli(args);
    expect(r.code).toBe(1);
    expect(r.err).toContain('no database at');
    if (args[1] === 'create') expect(r.err).toContain('or --new-db to start one there');
    expect(r.out).toBe('');
    expect(r.files).toEqual([]);
  });

  test('a key with a quota of 0 is said to take no request until its quota is raised', async () => {
    await inDir(async (run) => {
      const r = await run(['keys', 'create', '--label', 'paused', '--quota', '0', '--new-db', ...db]);
      expect(r.code).toBe(0);
      expect(r.err).toContain('0 requests a day (none until keys set-quota raises it)');
    });
  });
});

/** A relay started on `identity` in `dir` that must exit 1: its last log line. */
async function failedStart(dir: string, identity: string): Promise<Record<string, unknown>> {
  const r = await runCommand(
    [process.execPath, MAIN, '--identity', identity, '--db', `file:${join(dir, 'relay.db')}`, '--port', '0'],
    { cwd: dir, env: { SYNOD_PASSPHRASE: 'a passphrase for the test' } },
  );
  expect(r.code).toBe(1);
  return JSON.parse(r.out.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
}

describe('synod-relay: one process per identity', () => {
  test('a relay on an identity another process holds exits 1 with IDENTITY_IN_USE, before it opens anything', async () => {
    const { lockIdentity } = await import('@synod/browser-node/cli');
    const dir = mkdtempSync(join(tmpdir(), 'synod-relay-identity-'));
    const identity = join(dir, 'identity.json');
    const release = lockIdentity(identity, 'relay');
    try {
      const line = await failedStart(dir, identity);
      expect(line).toMatchObject({ level: 'error', msg: 'start failed', code: 'IDENTITY_IN_USE' });
      expect(String(line['err'])).toContain('another synod relay is running with the identity');
      // Nothing opened: no identity written, no database made.
      expect(readdirSync(dir).sort()).toEqual(['identity.json.lock']);
    } finally {
      release();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a relay on a copy of a running relay’s identity file exits 1 with IDENTITY_IN_USE, naming the node id', async () => {
    const { loadOrCreateIdentity, lockNodeKey } = await import('@synod/browser-node/cli');
    const dir = mkdtempSync(join(tmpdir(), 'synod-relay-identity-'));
    const identity = join(dir, 'identity.json');
    const { key } = await loadOrCreateIdentity(identity, 'a passphrase for the test');
    // The running relay holds its key (by node id); the second is started on a copy at another path.
    const release = lockNodeKey(key.nodeId, identity, 'relay');
    const copy = join(dir, 'copy.json');
    copyFileSync(identity, copy);
    try {
      const line = await failedStart(dir, copy);
      expect(line).toMatchObject({ level: 'error', msg: 'start failed', code: 'IDENTITY_IN_USE' });
      expect(String(line['err'])).toContain(key.nodeId);
    } finally {
      release();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an identity whose lock the relay cannot make exits 1 naming the file, with its code and a hint', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'synod-relay-identity-'));
    const identity = join(dir, 'identity.json');
    // A folder where the lock file goes.
    mkdirSync(`${identity}.lock`);
    try {
      const line = await failedStart(dir, identity);
      expect(line).toMatchObject({ level: 'error', msg: 'start failed', code: 'IDENTITY_FILE_UNWRITABLE' });
      expect(String(line['err'])).toContain(`${identity}.lock`);
      expect(String(line['hint'])).toContain('--identity');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
