import { afterAll, describe, expect, test } from 'bun:test';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isSynodError, NodeKey, sealNodeKey } from '@synod/shared';
import { type InferenceError, isInferenceError } from '../inference/errors.ts';
import { TEST_MODELS_DIR } from '../inference/test-models.ts';
import { loadOrCreateIdentity, lockIdentity } from './identity-file.ts';
import { CliUsageError, httpUrlOf, PassphraseMissing, parseNodeArgs, runNode } from './node-main.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-cli-'));
/** How often a running node looks at its peers (node-main.ts), which bounds when it logs NO_PEERS. */
const PEER_WATCH_MS = 5_000;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('synod node flags', () => {
  test('defaults', () => {
    const o = parseNodeArgs([], { SYNOD_PASSPHRASE: 'a passphrase for the test' });
    expect(o).not.toBe('help');
    if (o === 'help') return;
    expect(o).toMatchObject({
      role: 'node',
      engine: 'llama-cpp',
      model: 'stories260K',
      host: '127.0.0.1',
      threads: 1,
      gpu: 'off',
      gpuLayers: 'max',
    });
    expect(o.bootstrap).toEqual([]);
    expect(o.coordinators).toEqual([]);
  });

  test('--gpu and --gpu-layers: a backend of llama-cpp, layers with a GPU only; anything else is a usage error', () => {
    const env = { SYNOD_PASSPHRASE: 'a passphrase for the test' };
    expect(parseNodeArgs(['--gpu', 'vulkan'], env)).toMatchObject({ gpu: 'vulkan', gpuLayers: 'max' });
    expect(parseNodeArgs(['--gpu', 'auto', '--gpu-layers', '12'], env)).toMatchObject({
      gpu: 'auto',
      gpuLayers: 12,
    });
    expect(parseNodeArgs(['--gpu', 'cuda', '--gpu-layers', 'max'], env)).toMatchObject({ gpuLayers: 'max' });
    const refused: [string[], string][] = [
      [['--gpu', 'rocm'], '--gpu must be one of off, auto, cuda, vulkan, metal'],
      [['--gpu-layers', '8'], '--gpu-layers needs --gpu'],
      [['--gpu', 'vulkan', '--gpu-layers', '-1'], '--gpu-layers'],
      [['--gpu', 'vulkan', '--gpu-layers', 'all'], '--gpu-layers'],
      [
        ['--gpu', 'vulkan', '--engine', 'transformers', '--model', 'glove-static-100d'],
        '--gpu is for --engine llama-cpp',
      ],
    ];
    for (const [argv, message] of refused) {
      expect(() => parseNodeArgs(argv, env)).toThrow(CliUsageError);
      expect(() => parseNodeArgs(argv, env)).toThrow(message);
    }
  });

  test('--coordinators: relay node ids, 64 hex digits each; anything else is a usage error', () => {
    const id = 'AB'.repeat(32);
    const o = parseNodeArgs(['--coordinators', `${id},${'cd'.repeat(32)}`], {
      SYNOD_PASSPHRASE: 'a passphrase for the test',
    });
    expect(o === 'help' ? null : o.coordinators).toEqual([id.toLowerCase(), 'cd'.repeat(32)]);
    for (const bad of ['relay', `${id},`, 'ab'.repeat(33)]) {
      expect(() =>
        parseNodeArgs(['--coordinators', bad], { SYNOD_PASSPHRASE: 'a passphrase for the test' }),
      ).toThrow(/--coordinators: node ids are 64 hex digits/);
    }
  });

  test('without a passphrase, a wrong flag is said first: the passphrase is checked last', () => {
    const peer = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA';
    for (const [argv, message] of [
      [['--threads', '0x10'], '--threads must be a whole number from 1 to 64'],
      [['--role', 'miner'], '--role must be one of node, follower'],
      [['--bootstrap', `/ip4/192.0.2.1/tcp/1/p2p/${peer}`], 'is not a loopback IP address'],
      [['--max-queue', '0'], '--max-queue must be a whole number'],
    ] as const) {
      expect(() => parseNodeArgs([...argv], {})).toThrow(message);
    }
    expect(() => parseNodeArgs(['--role', 'follower'], {})).toThrow(PassphraseMissing);
  });

  test("--coordinators given a libp2p peer id says where a relay's node id is found", () => {
    expect(() =>
      parseNodeArgs(['--coordinators', '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'], {
        SYNOD_PASSPHRASE: 'a passphrase for the test',
      }),
    ).toThrow(
      'a relay\'s node id is the "coordinator" of its "relay started" log line, not the 12D3KooW… peer id of its multiaddrs',
    );
  });

  test('bad flags are usage errors, never silently ignored', () => {
    const bad: string[][] = [
      ['--threads', '0'],
      ['--tcp-port', '70000'],
      ['--role', 'miner'],
      ['--engine', 'gpt'],
      ['--max-queue', '0'],
      ['--model', 'gpt-9'],
      ['--engine', 'transformers'],
      ['--model', 'glove-static-100d'],
      ['--bootstrap', 'hello'],
      ['--bootstrap', '/ip4/127.0.0.1/tcp/1'],
      ['--gun', 'relay.example:8765'],
      ['--gun', 'http://127.0.0.1:8765/gun,ftp://127.0.0.1/gun'],
      ['--unknown-flag'],
      // libp2p takes an IP address only: refused here, not after the key is opened (exit 1, INTERNAL).
      ['--host', 'localhost'],
      ['--host', 'nonsense'],
      ['--health-host', 'localhost'],
      ['--health-host', ''],
      ['--quiet', 'yes'],
    ];
    for (const argv of bad) {
      let caught: unknown;
      try {
        parseNodeArgs(argv, { SYNOD_PASSPHRASE: 'a passphrase for the test' });
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(Error);
    }
    expect(() => parseNodeArgs([], {})).toThrow(CliUsageError);
    expect(() =>
      parseNodeArgs(['--host', 'localhost'], { SYNOD_PASSPHRASE: 'a passphrase for the test' }),
    ).toThrow('--host must be an IP address');
    expect(() =>
      parseNodeArgs(['--health-host', 'localhost'], { SYNOD_PASSPHRASE: 'a passphrase for the test' }),
    ).toThrow('--health-host must be an IP address');
    expect(parseNodeArgs(['--help'], {})).toBe('help');
    const peer = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA';
    const o = parseNodeArgs(
      ['--bootstrap', `/ip4/127.0.0.1/tcp/1/p2p/${peer}, /ip4/127.0.0.1/tcp/2/ws/p2p/${peer}`],
      { SYNOD_PASSPHRASE: 'a passphrase for the test' },
    );
    expect(o !== 'help' && o.bootstrap).toEqual([
      `/ip4/127.0.0.1/tcp/1/p2p/${peer}`,
      `/ip4/127.0.0.1/tcp/2/ws/p2p/${peer}`,
    ]);
    const g = parseNodeArgs(['--gun', 'http://127.0.0.1:8765/gun, ws://127.0.0.1:8766/gun'], {
      SYNOD_PASSPHRASE: 'a passphrase for the test',
    });
    expect(g !== 'help' && g.gun).toEqual(['http://127.0.0.1:8765/gun', 'ws://127.0.0.1:8766/gun']);
  });
});

describe("synod node flag values, as strict as the relay's", () => {
  /** The message of the error `argv` is refused with (a usage error: one line, exit 2). */
  const refusal = (argv: string[]): string => {
    try {
      parseNodeArgs(argv, { SYNOD_PASSPHRASE: 'a passphrase for the test' });
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error(`${argv.join(' ')} was taken`);
  };

  test.each([
    // numbers: decimal digits only (Number() read 0x7149 as 29001, 1e2 as 100, " 2" as 2)
    [['--http-port', '0x7149'], '--http-port must be a port number (0-65535, digits only), got "0x7149"'],
    [['--tcp-port', '1e3'], '--tcp-port must be a port number (0-65535, digits only), got "1e3"'],
    [['--ws-port', ''], '--ws-port must be a port number (0-65535, digits only), got ""'],
    [['--tcp-port', '70000'], '--tcp-port must be a port number (0-65535, digits only), got "70000"'],
    [['--max-queue', '1e2'], '--max-queue must be a whole number from 1 to 10000, got "1e2"'],
    [['--max-queue', '0'], '--max-queue must be a whole number from 1 to 10000, got "0"'],
    [['--threads', ' 2'], '--threads must be a whole number from 1 to 64, got " 2"'],
    [['--threads', '2.0'], '--threads must be a whole number from 1 to 64, got "2.0"'],
    // a negative number: the flag's own check, not parseArgs' three lines ("argument is ambiguous…")
    [['--tcp-port', '-1'], '--tcp-port must be a port number (0-65535, digits only), got "-1"'],
    [['--max-queue', '-5'], '--max-queue must be a whole number from 1 to 10000, got "-5"'],
    [['--waku-cluster', '-1'], '--waku-cluster must be a Waku cluster id, a whole number from 0 to 65535'],
    // a flag followed by another (a value forgotten)
    [
      ['--identity', '--quiet'],
      '--identity needs a value, got "--quiet" (a value starting with a dash is written --identity=-…)',
    ],
    // a text flag before a negative number: its value forgotten, not a file named "-1"
    [
      ['--model', '-1'],
      '--model needs a value, got "-1" (a value starting with a dash is written --model=-…)',
    ],
    // the last of two would win unseen
    [['--role', 'node', '--role', 'follower'], '--role is given twice'],
    [['--tcp-port', '1', '--tcp-port=2'], '--tcp-port is given twice'],
  ])('%p is refused in one line naming the flag', (argv, message) => {
    const refused = refusal(argv);
    expect(refused).toContain(message);
    expect(refused).not.toContain('\n');
  });

  test('numbers in digits are taken', () => {
    const o = parseNodeArgs(
      ['--http-port', '29001', '--tcp-port', '0', '--ws-port', '65535', '--threads', '2', '--max-queue=100'],
      { SYNOD_PASSPHRASE: 'a passphrase for the test' },
    );
    expect(o !== 'help' && [o.httpPort, o.tcpPort, o.wsPort, o.threads, o.maxQueue]).toEqual([
      29001, 0, 65535, 2, 100,
    ]);
  });
});

describe('--dial', () => {
  const peer = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA';

  test('a --bootstrap peer the node would never dial (not loopback, without --dial any) is a usage error', () => {
    for (const address of [`/ip4/192.0.2.7/tcp/60000/p2p/${peer}`, `/dns4/localhost/tcp/60000/p2p/${peer}`]) {
      expect(() =>
        parseNodeArgs(['--bootstrap', address], { SYNOD_PASSPHRASE: 'a passphrase for the test' }),
      ).toThrow(
        `--bootstrap ${address} is not a loopback IP address (127.0.0.0/8, ::1), and this node dials no other unless --dial any is given`,
      );
      const o = parseNodeArgs(['--bootstrap', address, '--dial', 'any'], {
        SYNOD_PASSPHRASE: 'a passphrase for the test',
      });
      expect(o !== 'help' && [o.dial, o.bootstrap]).toEqual(['any', [address]]);
    }
    const local = parseNodeArgs(['--bootstrap', `/ip6/::1/tcp/1/p2p/${peer}`], {
      SYNOD_PASSPHRASE: 'a passphrase for the test',
    });
    expect(local !== 'help' && local.dial).toBe('loopback');
    expect(() =>
      parseNodeArgs(['--dial', 'everything'], { SYNOD_PASSPHRASE: 'a passphrase for the test' }),
    ).toThrow('--dial must be one of loopback, any');
  });

  test('--dial any reaches a peer named by a DNS name (here localhost), which the default never dials', async () => {
    const start = async (name: string, extra: string[]) => {
      const o = parseNodeArgs(
        [
          ...[
            '--role',
            'follower',
            '--identity',
            join(dir, name, 'id.json'),
            '--db',
            join(dir, name, 'state.db'),
          ],
          ...extra,
        ],
        { SYNOD_PASSPHRASE: 'a passphrase for the test' },
      );
      if (o === 'help') throw new Error('unexpected help');
      return runNode(o, () => undefined);
    };
    const a = await start('dial-a', []);
    try {
      const tcp = a.multiaddrs.find((m) => !m.includes('/ws/')) ?? '';
      const named = tcp.replace('/ip4/127.0.0.1/', '/dns4/localhost/');
      expect(named).toStartWith('/dns4/localhost/tcp/');
      const b = await start('dial-b', ['--dial', 'any', '--bootstrap', named]);
      try {
        const deadline = Date.now() + 20_000;
        while (b.node.peers() === 0 && Date.now() < deadline) await Bun.sleep(100);
        expect(b.node.peers()).toBeGreaterThan(0);
      } finally {
        await b.stop();
      }
    } finally {
      await a.stop();
    }
  }, 60_000);
});

describe('--health-host and --quiet', () => {
  test('/healthz and /metrics listen on 127.0.0.1 by default, whatever --host the P2P ports listen on', () => {
    // Parsed only: nothing listens here.
    for (const host of ['127.0.0.1', '0.0.0.0', '::']) {
      const o = parseNodeArgs(['--host', host], { SYNOD_PASSPHRASE: 'a passphrase for the test' });
      expect(o !== 'help' && [o.host, o.healthHost]).toEqual([host, '127.0.0.1']);
    }
    const o = parseNodeArgs(['--host', '127.0.0.1', '--health-host', '127.0.0.1'], {
      SYNOD_PASSPHRASE: 'a passphrase for the test',
    });
    expect(o !== 'help' && [o.host, o.healthHost]).toEqual(['127.0.0.1', '127.0.0.1']);
  });

  test('--quiet turns the per-request log lines off', () => {
    const loud = parseNodeArgs([], { SYNOD_PASSPHRASE: 'a passphrase for the test' });
    const quiet = parseNodeArgs(['--quiet'], { SYNOD_PASSPHRASE: 'a passphrase for the test' });
    expect(loud !== 'help' && loud.quiet).toBe(false);
    expect(quiet !== 'help' && quiet.quiet).toBe(true);
  });

  // Another loopback address, where this machine lets one listen on it (Linux routes all of 127/8).
  const apart = '127.0.0.2';
  const canBindApart = (() => {
    try {
      Bun.listen({ hostname: apart, port: 0, socket: { data() {} } }).stop(true);
      return true;
    } catch {
      return false;
    }
  })();
  test.skipIf(!canBindApart)(
    '--health-host 127.0.0.2 with --host 127.0.0.1: /healthz there, P2P here, /healthz not here',
    async () => {
      const options = parseNodeArgs(
        [
          ...['--role', 'follower', '--host', '127.0.0.1', '--health-host', apart],
          ...['--identity', join(dir, 'apart', 'id.json'), '--db', join(dir, 'apart', 'state.db')],
        ],
        { SYNOD_PASSPHRASE: 'a passphrase for the test' },
      );
      if (options === 'help') throw new Error('unexpected help');
      const logs: Record<string, unknown>[] = [];
      const running = await runNode(options, (e) => logs.push(e));
      try {
        const url = new URL(running.httpUrl);
        expect(url.hostname).toBe(apart);
        expect(logs.find((l) => l['msg'] === 'node started')?.['http']).toBe(running.httpUrl);
        expect((await fetch(`${running.httpUrl}/healthz`)).status).toBe(200);
        expect(await (await fetch(`${running.httpUrl}/metrics`)).text()).toContain('synod_peers');
        expect(running.multiaddrs.length).toBeGreaterThan(0);
        for (const a of running.multiaddrs) expect(a).toStartWith('/ip4/127.0.0.1/');
        // Nothing answers on --host at that port.
        let refused: unknown;
        try {
          await fetch(`http://127.0.0.1:${url.port}/healthz`);
        } catch (e) {
          refused = e;
        }
        expect((refused as { code?: string } | undefined)?.code).toBe('ECONNREFUSED');
      } finally {
        await running.stop();
      }
    },
    60_000,
  );
});

test('the URL of /healthz logged for an IPv6 --host has it in brackets', () => {
  expect(httpUrlOf('127.0.0.1', 8080)).toBe('http://127.0.0.1:8080');
  expect(httpUrlOf('::1', 8080)).toBe('http://[::1]:8080');
  expect(new URL(httpUrlOf('::1', 8080)).port).toBe('8080');
});

describe('identity file', () => {
  test('created once, reopened with the passphrase, refused with another', async () => {
    const path = join(dir, 'id', 'identity.json');
    const a = await loadOrCreateIdentity(path, 'correct horse');
    expect(a.created).toBe(true);
    const b = await loadOrCreateIdentity(path, 'correct horse');
    expect(b.created).toBe(false);
    expect(b.key.nodeId).toBe(a.key.nodeId);
    let caught: unknown;
    try {
      await loadOrCreateIdentity(path, 'wrong');
    } catch (e) {
      caught = e;
    }
    expect(isSynodError(caught, 'KEY_WRONG_PASSPHRASE')).toBe(true);
  });
});

/** The error a `synod node` start with these flags (and a passphrase) fails with. */
async function startFailure(
  args: string[],
  log: (e: Record<string, unknown>) => void = () => undefined,
): Promise<unknown> {
  const options = parseNodeArgs(args, { SYNOD_PASSPHRASE: 'a passphrase for the test' });
  if (options === 'help') throw new Error('unexpected help');
  try {
    await runNode(options, log);
  } catch (e) {
    return e;
  }
  throw new Error('the start did not fail');
}

describe('synod node start failures', () => {
  test('a port in use is EADDRINUSE naming its flag, in one line, and the start leaves nothing open', async () => {
    const taken = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
    try {
      for (const flag of ['--tcp-port', '--ws-port', '--http-port']) {
        const caught = await startFailure([
          ...['--role', 'follower', flag, String(taken.port)],
          ...['--identity', join(dir, 'ports', 'id.json'), '--db', join(dir, 'ports', 'state.db')],
        ]);
        expect((caught as { code?: string }).code).toBe('EADDRINUSE');
        expect((caught as Error).message).toContain(`${flag} ${taken.port}`);
        expect((caught as Error).message).not.toContain('\n');
      }
      // The identity is free again: each failed start released what it had opened.
      const release = lockIdentity(join(dir, 'ports', 'id.json'));
      release();
    } finally {
      taken.stop(true);
    }
  });

  test('a port in use is found before the models load (which can take minutes), naming that one flag', async () => {
    const taken = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
    try {
      for (const flag of ['--tcp-port', '--ws-port', '--http-port']) {
        const logs: Record<string, unknown>[] = [];
        const caught = await startFailure(
          [
            ...[flag, String(taken.port), '--models-dir', TEST_MODELS_DIR],
            ...[
              '--identity',
              join(dir, 'ports-early', 'id.json'),
              '--db',
              join(dir, 'ports-early', 'state.db'),
            ],
          ],
          (e) => logs.push(e),
        );
        expect((caught as { code?: string }).code).toBe('EADDRINUSE');
        // That flag alone, not "--tcp-port N or --ws-port 0".
        expect((caught as Error).message).toStartWith(`${flag} ${taken.port}:`);
        expect(logs.map((l) => l['msg'])).not.toContain('loading models');
        expect(logs.map((l) => l['msg'])).not.toContain('publish failed');
      }
    } finally {
      taken.stop(true);
    }
  });

  test('a --models-dir that does not exist, or is a file, says so (not "copy the model into it")', async () => {
    const file = join(dir, 'models-file');
    writeFileSync(file, 'not a folder');
    for (const [modelsDir, what] of [
      [join(dir, 'no-such-models'), 'does not exist'],
      [file, 'is not a directory'],
    ] as const) {
      const caught = await startFailure([
        ...['--identity', join(dir, 'bad-models', 'id.json'), '--db', join(dir, 'bad-models', 'state.db')],
        ...['--models-dir', modelsDir],
      ]);
      expect(isInferenceError(caught, 'MODEL_NOT_FOUND')).toBe(true);
      const e = caught as InferenceError;
      expect(e.message).toBe(`the models directory ${modelsDir} ${what}`);
      expect(e.hint).toContain('--models-dir');
      expect(e.hint).toContain('stories260K.gguf');
    }
  });

  test('more --coordinators than a heartbeat names is said as it starts (other relays then count the node)', async () => {
    const ids = Array.from({ length: 17 }, (_, i) => i.toString(16).padStart(64, '0')).join(',');
    const options = parseNodeArgs(
      [
        ...['--role', 'follower', '--coordinators', ids],
        ...[
          '--identity',
          join(dir, 'many-coordinators', 'id.json'),
          '--db',
          join(dir, 'many-coordinators', 's.db'),
        ],
      ],
      { SYNOD_PASSPHRASE: 'a passphrase for the test' },
    );
    if (options === 'help') throw new Error('unexpected help');
    const logs: Record<string, unknown>[] = [];
    const running = await runNode(options, (e) => logs.push(e));
    await running.stop();
    expect(logs.find((l) => l['code'] === 'COORDINATORS_NOT_ADVERTISED')).toMatchObject({
      level: 'warn',
      coordinators: 17,
      max: 16,
    });
  });

  test("a node started on a copy of a running node's key file is IDENTITY_IN_USE, naming the node id", async () => {
    const first = join(dir, 'copied-key', 'id.json');
    const args = (identity: string, db: string) =>
      parseNodeArgs(['--role', 'follower', '--identity', identity, '--db', db], {
        SYNOD_PASSPHRASE: 'a passphrase for the test',
      });
    const options = args(first, join(dir, 'copied-key', 'a.db'));
    if (options === 'help') throw new Error('unexpected help');
    const running = await runNode(options, () => undefined);
    try {
      const copy = join(dir, 'copied-key', 'copy.json');
      copyFileSync(first, copy);
      const caught = await startFailure([
        ...['--role', 'follower', '--identity', copy, '--db', join(dir, 'copied-key', 'b.db')],
      ]);
      expect((caught as { code?: string }).code).toBe('IDENTITY_IN_USE');
      expect((caught as Error).message).toContain(`node id ${running.node.nodeId}`);
    } finally {
      await running.stop();
    }
    // Stopped, its key is free again, by either file.
    const again = args(join(dir, 'copied-key', 'copy.json'), join(dir, 'copied-key', 'b.db'));
    if (again === 'help') throw new Error('unexpected help');
    await (await runNode(again, () => undefined)).stop();
  });

  test('a state file that cannot be made is STATE_FILE_UNWRITABLE naming --db, and the start leaves nothing open', async () => {
    const blocker = join(dir, 'db-blocker');
    writeFileSync(blocker, 'not a folder');
    const db = join(blocker, 'state.db');
    const identity = join(dir, 'db-blocked', 'id.json');
    const caught = await startFailure(['--role', 'follower', '--identity', identity, '--db', db]);
    const e = caught as { code?: string; message: string; hint?: string };
    expect(e.code).toBe('STATE_FILE_UNWRITABLE');
    expect(e.message).toContain(resolve(db));
    expect(e.hint).toContain('--db');
    lockIdentity(identity)();
  });

  test('a state file that is not a database is STATE_FILE_MALFORMED naming --db', async () => {
    const db = join(dir, 'garbage-db', 'state.db');
    mkdirSync(join(dir, 'garbage-db'));
    writeFileSync(db, 'not a database, and long enough for SQLite to look at its header: '.repeat(4));
    const caught = await startFailure([
      '--role',
      'follower',
      '--identity',
      join(dir, 'garbage-db', 'id.json'),
      '--db',
      db,
    ]);
    const e = caught as { code?: string; message: string; hint?: string };
    expect(e.code).toBe('STATE_FILE_MALFORMED');
    expect(e.message).toContain(resolve(db));
    expect(e.hint).toContain('--db');
    lockIdentity(join(dir, 'garbage-db', 'id.json'))();
  });

  // A full disk for real: a 12 KiB tmpfs, filled (Linux, as root; elsewhere the test is skipped).
  const full = join(dir, 'full');
  const canMount = process.platform === 'linux' && process.getuid?.() === 0 && mountTmpfs(full);
  if (canMount) Bun.spawnSync(['umount', full]);
  test.skipIf(!canMount)('a state file on a full disk is STATE_FILE_UNWRITABLE naming --db', async () => {
    expect(mountTmpfs(full)).toBe(true);
    try {
      writeFileSync(join(full, 'filler'), new Uint8Array(12 * 1024));
      const db = join(full, 'state.db');
      const caught = await startFailure([
        '--role',
        'follower',
        '--identity',
        join(dir, 'full-db', 'id.json'),
        '--db',
        db,
      ]);
      const e = caught as { code?: string; message: string; hint?: string };
      expect(e.code).toBe('STATE_FILE_UNWRITABLE');
      expect(e.message).toContain(`${db}: no space left`);
      expect(e.hint).toContain('free disk space');
    } finally {
      // Lazily: SQLite may still hold the file it failed to write.
      Bun.spawnSync(['umount', '-l', full]);
    }
  });

  test.skipIf(!canMount)('a state file on a full disk fails the start before the models load', async () => {
    expect(mountTmpfs(full)).toBe(true);
    try {
      writeFileSync(join(full, 'filler'), new Uint8Array(12 * 1024));
      const logs: Record<string, unknown>[] = [];
      const caught = await startFailure(
        [
          ...['--identity', join(dir, 'full-db-node', 'id.json'), '--db', join(full, 'state.db')],
          ...['--models-dir', TEST_MODELS_DIR],
        ],
        (e) => logs.push(e),
      );
      expect((caught as { code?: string }).code).toBe('STATE_FILE_UNWRITABLE');
      expect(logs.map((l) => l['msg'])).not.toContain('loading models');
    } finally {
      Bun.spawnSync(['umount', '-l', full]);
    }
  });

  test('a model missing from the models directory says which file goes where, and the flag', async () => {
    mkdirSync(join(dir, 'missing', 'models'), { recursive: true });
    const caught = await startFailure([
      ...['--identity', join(dir, 'missing', 'id.json'), '--db', join(dir, 'missing', 'state.db')],
      ...['--models-dir', join(dir, 'missing', 'models')],
    ]);
    expect(isInferenceError(caught, 'MODEL_NOT_FOUND')).toBe(true);
    const e = caught as InferenceError;
    expect(e.message).toContain(join(dir, 'missing', 'models', 'stories260K.gguf'));
    expect(e.hint).toContain('--models-dir');
    expect(e.hint).toContain('270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d');
    expect(e.hint).not.toContain('ensure()');
    // Where to get it, for a box set up from scratch.
    expect(e.hint).toContain(
      'https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf',
    );
    // Found missing before a key was made: no key file is left for a node that never ran.
    expect(existsSync(join(dir, 'missing', 'id.json'))).toBe(false);
  });
});

describe('synod node --gpu auto', () => {
  test('with no GPU backend that runs here, it says it serves on the CPU (not only by the engine id)', async () => {
    const options = parseNodeArgs(
      [
        ...['--gpu', 'auto', '--models-dir', TEST_MODELS_DIR],
        ...['--identity', join(dir, 'gpu-auto', 'id.json'), '--db', join(dir, 'gpu-auto', 'state.db')],
      ],
      { SYNOD_PASSPHRASE: 'a passphrase for the test' },
    );
    if (options === 'help') throw new Error('unexpected help');
    const logs: Record<string, unknown>[] = [];
    const running = await runNode(options, (e) => logs.push(e));
    try {
      const engine = String(logs.find((l) => l['msg'] === 'models loaded')?.['engine']);
      const said = logs.find((l) => l['msg'] === 'no GPU backend runs here: serving on the CPU');
      // Here llama.cpp hides CPU Vulkan devices (lavapipe) and there is no GPU: the CPU, said. On a box
      // with a GPU, its backend in the engine id, and nothing said.
      if (engine.includes('+')) expect(said).toBeUndefined();
      else
        expect(said).toMatchObject({
          level: 'info',
          gpu: 'auto',
          hint: expect.stringContaining('--gpu cuda'),
        });
    } finally {
      await running.stop();
    }
  }, 120_000);
});

/**
 * `synod node` as a follower in a process of its own, with extra flags, until its "node started" line:/**
 * `synod node` as a follower in a process of its own, with extra flags, until its "node started" line:
 * the process, that line, and the stdout read so far (its other lines), for the test to go on with.
 */
async function startFollower(name: string, extra: string[]) {
  const child = Bun.spawn(
    [
      process.execPath,
      resolve(import.meta.dir, 'main.ts'),
      'node',
      '--role',
      'follower',
      '--identity',
      join(dir, name, 'id.json'),
      '--db',
      join(dir, name, 'state.db'),
      ...extra,
    ],
    {
      env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase for the test' },
      stdout: 'pipe',
      stderr: 'pipe',
    },
  );
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  let stdout = '';
  let started: { http: string; nodeId: string } | undefined;
  const deadline = Date.now() + 60_000;
  while (!started && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    stdout += new TextDecoder().decode(value);
    for (const line of stdout.split('\n')) {
      if (line.includes('"node started"')) started = JSON.parse(line) as { http: string; nodeId: string };
    }
  }
  reader.releaseLock();
  if (!started) {
    child.kill('SIGKILL');
    throw new Error(`the node did not start: ${stdout}`);
  }
  return { child, started, stdout };
}

describe('synod node as a process', () => {
  test('a follower serves /healthz and /metrics, and stops cleanly on SIGTERM', async () => {
    // Gun (unreachable here) loads with a welcome line of its own: not on stdout, which is JSON.
    const { child, started, stdout } = await startFollower('p', ['--gun', 'http://127.0.0.1:9/gun']);
    try {
      for (const line of stdout.split('\n').filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();
      // Without --bootstrap it dials no one: said at the start (and healthy until a grace has passed).
      expect(stdout).toContain(
        '"no --bootstrap: this node dials no one: it gets work only if a relay or node dials it"',
      );
      const health = (await (await fetch(`${started.http}/healthz`)).json()) as {
        ok: boolean;
        role: string;
        nodeId: string;
      };
      expect(health).toMatchObject({ ok: true, role: 'follower', nodeId: started.nodeId });
      const metrics = await (await fetch(`${started.http}/metrics`)).text();
      expect(metrics).toContain('# TYPE synod_packets_accepted_total counter');
      expect(metrics).toMatch(/^synod_peers \d+$/m);
      expect(metrics).toMatch(/^synod_packets_bridged_total \d+$/m);
      expect((await fetch(`${started.http}/nope`)).status).toBe(404);
      child.kill('SIGTERM');
      expect(await child.exited).toBe(0);
      // Its last words say it stopped, so a log that ends without them tells of a crash.
      const rest = await readToEnd(child.stdout as ReadableStream<Uint8Array>);
      const said = rest
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as { msg: string }).msg);
      expect(said.slice(-2)).toEqual(['stopping', 'stopped']);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('SIGHUP (its terminal closed) stops it cleanly too: exit 0, its last line "stopped"', async () => {
    const { child } = await startFollower('hup', []);
    try {
      child.kill('SIGHUP');
      expect(await child.exited).toBe(0);
      const said = (await readToEnd(child.stdout as ReadableStream<Uint8Array>))
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as { msg: string }).msg);
      expect(said.at(-1)).toBe('stopped');
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('a node whose --bootstrap peers cannot be reached answers /healthz 503 NO_PEERS', async () => {
    const { child, started } = await startFollower('q', [
      '--bootstrap',
      // A loopback port nothing listens on, with a well-formed peer id.
      '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA',
    ]);
    try {
      const health = await fetch(`${started.http}/healthz`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ ok: false, reason: 'NO_PEERS', peers: 0 });
      // The log says so too, with what to do, within the watch's period.
      const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
      let out = '';
      const deadline = Date.now() + PEER_WATCH_MS + 5_000;
      while (!out.includes('"NO_PEERS"') && Date.now() < deadline) {
        const { value, done } = await Promise.race([
          reader.read(),
          Bun.sleep(deadline - Date.now()).then(() => ({ value: undefined, done: true })),
        ]);
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      reader.releaseLock();
      const warning = out
        .split('\n')
        .filter((line) => line.includes('"NO_PEERS"'))
        .map((line) => JSON.parse(line) as { level: string; hint?: string })[0];
      expect(warning?.level).toBe('warn');
      expect(warning?.hint).toContain('--bootstrap');
      child.kill('SIGTERM');
      expect(await child.exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('a second node on the same identity is refused (IDENTITY_IN_USE, exit 1); the first runs on', async () => {
    const { child, started } = await startFollower('twice', []);
    try {
      const second = Bun.spawn(
        [
          process.execPath,
          resolve(import.meta.dir, 'main.ts'),
          'node',
          ...['--role', 'follower', '--identity', join(dir, 'twice', 'id.json')],
          // Another state file too: the key is what two nodes must not share.
          ...['--db', join(dir, 'twice', 'other-state.db')],
        ],
        {
          env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase for the test' },
          stdout: 'pipe',
          stderr: 'pipe',
        },
      );
      expect(await second.exited).toBe(1);
      const lines = (await new Response(second.stdout as ReadableStream).text())
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { msg: string; code?: string });
      expect(lines.map((l) => [l.msg, l.code])).toEqual([['start failed', 'IDENTITY_IN_USE']]);
      expect((await fetch(`${started.http}/healthz`)).status).toBe(200);
      child.kill('SIGTERM');
      expect(await child.exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('in a terminal without $SYNOD_PASSPHRASE it asks for it, unechoed, twice for a new key', async () => {
    const identity = join(dir, 'asked', 'id.json');
    const session = inTerminal([
      ...['--role', 'follower', '--identity', identity, '--db', join(dir, 'asked', 'state.db')],
    ]);
    try {
      await session.until('Passphrase');
      session.type('s3cret passphrase\r');
      await session.until('again');
      session.type('s3cret passphrase\r');
      await session.until('"node started"');
      session.child.kill('SIGTERM');
      expect(await session.child.exited).toBe(0);
      expect(session.output()).not.toContain('s3cret passphrase');
    } finally {
      session.child.kill('SIGKILL');
    }
    expect((await loadOrCreateIdentity(identity, 's3cret passphrase')).created).toBe(false);
    // Two that differ create nothing: exit 2.
    const other = join(dir, 'asked', 'other.json');
    const mismatch = inTerminal(['--role', 'follower', '--identity', other]);
    try {
      await mismatch.until('Passphrase');
      mismatch.type('first passphrase\r');
      await mismatch.until('again');
      mismatch.type('second passphrase\r');
      expect(await mismatch.child.exited).toBe(2);
      expect(mismatch.output()).toContain('PASSPHRASE_MISMATCH');
      expect(existsSync(other)).toBe(false);
    } finally {
      mismatch.child.kill('SIGKILL');
    }
  });

  test('in a terminal, a new key refuses a passphrase under 8 characters before asking again (exit 2, no file)', async () => {
    const identity = join(dir, 'asked-short', 'id.json');
    const session = inTerminal(['--role', 'follower', '--identity', identity]);
    try {
      await session.until('at least 8 characters');
      session.type('short\r');
      expect(await session.child.exited).toBe(2);
      expect(session.output()).toContain('PASSPHRASE_TOO_SHORT');
      expect(session.output()).not.toContain('again');
      expect(existsSync(identity)).toBe(false);
    } finally {
      session.child.kill('SIGKILL');
    }
  });

  test('from the variable too ($SYNOD_PASSPHRASE or --passphrase-env), a new key refuses a passphrase under 8 characters: exit 2, one line naming the path, no file', async () => {
    const main = resolve(import.meta.dir, 'main.ts');
    const { SYNOD_PASSPHRASE: _, ...env } = process.env;
    const run = async (args: string[], vars: Record<string, string>) => {
      const child = Bun.spawn([process.execPath, main, 'node', '--role', 'follower', ...args], {
        env: { ...env, ...vars },
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      });
      const [code, out, err] = await Promise.all([
        child.exited,
        new Response(child.stdout as ReadableStream).text(),
        new Response(child.stderr as ReadableStream).text(),
      ]);
      return { code, out, err };
    };
    for (const [name, args, vars] of [
      ['default', [], { SYNOD_PASSPHRASE: 'short' }],
      ['named', ['--passphrase-env', 'MY_NODE_PASS'], { MY_NODE_PASS: 'short' }],
    ] as const) {
      const identity = join(dir, `env-short-${name}`, 'id.json');
      const r = await run(['--identity', identity, ...args], vars);
      expect(r.code).toBe(2);
      // As a bad flag is said: one line on stderr, nothing started (no log line).
      const lines = r.err.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toStartWith(
        `synod node: no identity file at ${resolve(identity)}: a new node key made there needs a passphrase of at least 8 characters (this one has 5) (PASSPHRASE_TOO_SHORT): `,
      );
      expect(lines[0]).toContain('To open an existing key instead, pass its file with --identity');
      expect(r.out).toBe('');
      expect(existsSync(identity)).toBe(false);
    }
    // An existing key sealed with a short one is not refused: the start goes on, here to a port held.
    const identity = join(dir, 'env-short-old', 'id.json');
    mkdirSync(join(dir, 'env-short-old'));
    writeFileSync(
      identity,
      JSON.stringify(await sealNodeKey(await NodeKey.generate(), 'old', { N: 2 ** 10 })),
      {
        mode: 0o600,
      },
    );
    const held = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
    try {
      const r = await run(['--identity', identity, '--http-port', String(held.port)], {
        SYNOD_PASSPHRASE: 'old',
      });
      expect(r.code).toBe(1);
      expect(r.out).toContain('EADDRINUSE');
      expect(r.err).not.toContain('PASSPHRASE_TOO_SHORT');
    } finally {
      held.stop(true);
    }
  });

  test('in a terminal, an existing key opens with the short passphrase it was sealed with', async () => {
    const identity = join(dir, 'asked-old', 'id.json');
    mkdirSync(join(dir, 'asked-old'));
    const key = await NodeKey.generate();
    writeFileSync(identity, JSON.stringify(await sealNodeKey(key, 'old', { N: 2 ** 10 })), { mode: 0o600 });
    const session = inTerminal([
      ...['--role', 'follower', '--identity', identity, '--db', join(dir, 'asked-old', 'state.db')],
    ]);
    try {
      await session.until('Passphrase of the node key');
      session.type('old\r');
      await session.until('"node started"');
      session.child.kill('SIGTERM');
      expect(await session.child.exited).toBe(0);
    } finally {
      session.child.kill('SIGKILL');
    }
  });

  test('in a terminal, an empty passphrase is said as such; Ctrl-C at the prompt stops before the start (exit 0)', async () => {
    const identity = join(dir, 'asked-empty', 'id.json');
    const empty = inTerminal(['--role', 'follower', '--identity', identity]);
    try {
      await empty.until('Passphrase');
      empty.type('\r');
      expect(await empty.child.exited).toBe(2);
      expect(empty.output()).toContain('the passphrase must not be empty');
      expect(empty.output()).not.toContain('in a terminal to type it');
    } finally {
      empty.child.kill('SIGKILL');
    }
    const interrupted = inTerminal(['--role', 'follower', '--identity', identity]);
    try {
      await interrupted.until('Passphrase');
      interrupted.type('\u0003');
      expect(await interrupted.child.exited).toBe(0);
      expect(interrupted.output()).toContain('"stopped before the start"');
      expect(interrupted.output()).not.toContain('PASSPHRASE_NOT_GIVEN');
      expect(existsSync(identity)).toBe(false);
    } finally {
      interrupted.child.kill('SIGKILL');
    }
  });

  test('without a passphrase or a terminal, a bad flag is said, not the passphrase (exit 2)', async () => {
    const { SYNOD_PASSPHRASE: _, ...env } = process.env;
    const child = Bun.spawn(
      [process.execPath, resolve(import.meta.dir, 'main.ts'), 'node', '--threads', '0x10'],
      {
        env,
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      },
    );
    expect(await child.exited).toBe(2);
    const said = await new Response(child.stderr as ReadableStream).text();
    expect(said).toContain('--threads must be a whole number from 1 to 64, got "0x10"');
    expect(said).not.toContain('passphrase');
  });

  test('a bad flag exits 2 with the usage text', async () => {
    const main = resolve(import.meta.dir, 'main.ts');
    const child = Bun.spawn([process.execPath, main, 'node', '--threads', 'many'], {
      env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase for the test' },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    expect(await child.exited).toBe(2);
    expect(await new Response(child.stderr as ReadableStream).text()).toContain(
      '--threads must be a whole number from 1 to 64, got "many"',
    );
    // A negative number: one line (not parseArgs' three), naming the flag and what it takes.
    const negative = Bun.spawn([process.execPath, main, 'node', '--tcp-port', '-1'], {
      env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase for the test' },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    expect(await negative.exited).toBe(2);
    expect(await new Response(negative.stderr as ReadableStream).text()).toBe(
      'synod node: --tcp-port must be a port number (0-65535, digits only), got "-1" (synod node --help lists every flag)\n',
    );
    const badHealth = Bun.spawn([process.execPath, main, 'node', '--health-host', 'localhost'], {
      env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase for the test' },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    expect(await badHealth.exited).toBe(2);
    expect(await new Response(badHealth.stderr as ReadableStream).text()).toContain(
      '--health-host must be an IP address (e.g. 127.0.0.1); got localhost',
    );
  });

  test('SIGINT while the models load stops the start at once: exit 0, nothing left listening', async () => {
    // A 4 GiB model file (sparse: no disk used) takes seconds to hash, as a real multi-GB GGUF does;
    // it is no real model, so a start that waited for the hash would end in MODEL_HASH_MISMATCH, exit 1.
    const modelsDir = join(dir, 'big-model');
    mkdirSync(modelsDir, { recursive: true });
    const modelFile = join(modelsDir, 'stories260K.gguf');
    closeSync(openSync(modelFile, 'w'));
    truncateSync(modelFile, 4 * 1024 ** 3);
    const ports = freePorts(3);
    const [http, tcp, ws] = ports.map(String) as [string, string, string];
    const child = Bun.spawn(
      [
        process.execPath,
        resolve(import.meta.dir, 'main.ts'),
        'node',
        ...['--identity', join(dir, 'r', 'id.json'), '--db', join(dir, 'r', 'state.db')],
        ...['--models-dir', modelsDir, '--http-port', http, '--tcp-port', tcp, '--ws-port', ws],
      ],
      {
        env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase for the test' },
        stdout: 'pipe',
        stderr: 'pipe',
      },
    );
    try {
      const stdout = (child.stdout as ReadableStream<Uint8Array>).getReader();
      let out = '';
      while (!out.includes('"loading models"')) {
        const { value, done } = await stdout.read();
        if (done) throw new Error(`the node exited before loading models: ${out}`);
        out += new TextDecoder().decode(value);
      }
      const signalled = performance.now();
      child.kill('SIGINT');
      expect(await child.exited).toBe(0);
      expect(child.signalCode).toBeNull();
      const stoppedMs = performance.now() - signalled;
      for (;;) {
        const { value, done } = await stdout.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      const said = out
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as { msg: string }).msg);
      expect(said).toEqual([
        'created a new node identity: a new node id, with no standing',
        'loading models',
        'stopped during the start',
      ]);
      const created = JSON.parse(out.split('\n')[0] ?? '') as Record<string, unknown>;
      expect(created).toMatchObject({
        level: 'warn',
        code: 'IDENTITY_CREATED',
        path: join(dir, 'r', 'id.json'),
      });
      expect(String(created['hint'])).toContain('--identity');
      // Promptly, not once the hash (over ten seconds of it on a 2-core machine) was done.
      expect(stoppedMs).toBeLessThan(3_000);
      for (const port of ports) expect(canListen(port)).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});

/** What is left to read of a stream another reader already started on, to its end. */
async function readToEnd(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return text;
    text += new TextDecoder().decode(value);
  }
}

/** `synod node` in a pseudo-terminal, without $SYNOD_PASSPHRASE: what it wrote, and typing into it. */
function inTerminal(args: string[]) {
  const { SYNOD_PASSPHRASE: _, ...env } = process.env;
  let text = '';
  const child = Bun.spawn([process.execPath, resolve(import.meta.dir, 'main.ts'), 'node', ...args], {
    env,
    terminal: {
      data: (_terminal, data) => {
        text += new TextDecoder().decode(data);
      },
    },
  });
  return {
    child,
    output: () => text,
    type: (keys: string) => child.terminal?.write(keys),
    async until(needle: string): Promise<void> {
      const deadline = Date.now() + 30_000;
      while (!text.includes(needle)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${needle} in: ${text}`);
        await Bun.sleep(20);
      }
    },
  };
}

/** Mount a 12 KiB tmpfs at `at` (made if missing); false when this system does not let us. */
function mountTmpfs(at: string): boolean {
  mkdirSync(at, { recursive: true });
  return Bun.spawnSync(['mount', '-t', 'tmpfs', '-o', 'size=12k', 'tmpfs', at]).exitCode === 0;
}

/** `n` TCP ports on 127.0.0.1 that were free a moment ago. */
function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () =>
    Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } }),
  );
  const ports = listeners.map((l) => l.port);
  for (const l of listeners) l.stop(true);
  return ports;
}

/** Whether nothing listens on a 127.0.0.1 port: this process can listen there itself. */
function canListen(port: number): boolean {
  try {
    Bun.listen({ hostname: '127.0.0.1', port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}
