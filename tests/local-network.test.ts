/**
 * The README's first command, `npm start` (scripts/start.ts), as a user runs it: the whole local network
 * (relay with its libSQL file, 3 headless nodes with the offline models, the web app, anvil with a fresh
 * SynodOracle) comes up on 127.0.0.1, the printed curl and `openai`-client examples work as printed, and
 * Ctrl-C (SIGINT) stops every process it started. Ports and the data directory are moved out of the way
 * through the documented environment variables.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Subprocess } from 'bun';
import OpenAI from 'openai';
import { freePorts, runCommand, waitUntil } from '../edge/src/test-servers.ts';

const ROOT = resolve(import.meta.dir, '..');
const data = mkdtempSync(join(tmpdir(), 'synod-npm-start-'));
let proc: Subprocess<'ignore', 'pipe', 'pipe'>;
let out = '';
const ports = { relay: 0, web: 0, chain: 0, ws: 0, tcp: 0, gun: 0 };
/**
 * The nodes' first port (SYNOD_NODE_BASE_PORT): 9 from it, below Linux's ephemeral range (32768-60999),
 * so that no port the system hands out (a free port another test asked for, a connection's own end) can
 * be one of them.
 */
const NODE_BASE_PORT = 31_620;

/** The value printed after `label` in the start-up banner. */
function printed(label: string): string {
  const line = out.split('\n').find((l) => l.trimStart().startsWith(label));
  const value = line
    ?.slice(line.indexOf(label) + label.length)
    .trim()
    .split(/\s+/)[0];
  if (!value) throw new Error(`npm start printed no "${label}"`);
  return value;
}

/** Every process below `root` (children, their children, …), as pid → command line. */
function descendants(root: number): Map<number, string> {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const found = new Map<number, string>();
  const walk = (p: number) => {
    for (const [pid, pp] of parent) {
      if (pp === p && !found.has(pid)) {
        found.set(pid, cmdline(pid));
        walk(pid);
      }
    }
  };
  walk(root);
  return found;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').slice(0, 160);
  } catch {
    return '';
  }
}

/** Those of `pids` still running (not gone, not a zombie). */
function alive(pids: Iterable<number>): string[] {
  const left: string[] = [];
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z') left.push(`${pid}: ${cmdline(pid)}`);
    } catch {
      // gone
    }
  }
  return left;
}

let started = new Map<number, string>();

async function closed(port: number): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2_000) });
    return false;
  } catch {
    return true;
  }
}

beforeAll(async () => {
  [ports.relay, ports.web, ports.chain, ports.ws, ports.tcp, ports.gun] = (await freePorts(6)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  proc = Bun.spawn([process.execPath, 'scripts/start.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      SYNOD_DATA_DIR: data,
      SYNOD_RELAY_PORT: String(ports.relay),
      SYNOD_WEB_PORT: String(ports.web),
      SYNOD_CHAIN_PORT: String(ports.chain),
      SYNOD_RELAY_WS_PORT: String(ports.ws),
      SYNOD_RELAY_TCP_PORT: String(ports.tcp),
      SYNOD_GUN_PORT: String(ports.gun),
      // The nodes' ports fixed from a base: node i at base + 3(i - 1) (its /healthz), + 1, + 2.
      SYNOD_NODE_BASE_PORT: String(NODE_BASE_PORT),
    },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const decoder = new TextDecoder();
  void (async () => {
    for await (const chunk of proc.stdout) out += decoder.decode(chunk, { stream: true });
  })();
  void (async () => {
    for await (const chunk of proc.stderr) out += decoder.decode(chunk, { stream: true });
  })();
  await waitUntil(
    'npm start',
    async () => {
      if (proc.exitCode !== null) throw new Error(`npm start exited with ${proc.exitCode}:\n${out}`);
      return out.includes('Press Ctrl-C to stop.');
    },
    240_000,
    250,
  );
}, 300_000);

afterAll(async () => {
  // Whatever a failed run left behind is ended here, so no test run leaks processes.
  for (const pid of [...started.keys(), ...descendants(proc?.pid ?? -1).keys()]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  if (proc && proc.exitCode === null) {
    proc.kill('SIGKILL');
    await proc.exited;
  }
  rmSync(data, { recursive: true, force: true });
});

describe('npm start (the local network)', () => {
  test('prints the URLs, and the printed curl and openai-client examples work', async () => {
    const relay = printed('relay (HTTP API, OpenAI-compatible, verifier)');
    expect(relay).toBe(`http://127.0.0.1:${ports.relay}`);
    const apiKey = printed('development API key');
    expect(apiKey).toMatch(/^synod_sk_[0-9a-f]{64}$/);
    expect(printed('libSQL history')).toBe(join(data, 'relay.db'));
    expect(existsSync(join(data, 'relay.db'))).toBe(true);
    expect(out).toContain(`curl -s ${relay}/v1/inference`);
    for (const i of [1, 2, 3]) expect(out).toMatch(new RegExp(`node ${i} {2}[0-9a-f]{16}… {2}health http`));

    // The curl example.
    const post = await fetch(`${relay}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ prompt: 'Once upon a time', params: { maxTokens: 48 } }),
    });
    expect(post.status).toBe(202);
    const { requestId } = (await post.json()) as { requestId: string };
    let status = '';
    await waitUntil(
      'a verdict',
      async () => {
        status = ((await (await fetch(`${relay}/v1/inference/${requestId}`)).json()) as { status: string })
          .status;
        return ['verdict', 'no-consensus', 'expired', 'failed'].includes(status);
      },
      120_000,
      250,
    );
    expect(status).toBe('verdict');

    // The openai-client example, as printed.
    const client = new OpenAI({ baseURL: `${relay}/v1`, apiKey, maxRetries: 0, timeout: 120_000 });
    const r = await client.chat.completions.create({
      model: 'stories260K',
      messages: [{ role: 'user', content: 'Once upon a time' }],
    });
    expect(r.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect((r as unknown as { synod: { verdictDigest: string } }).synod.verdictDigest).toMatch(
      /^[0-9a-f]{64}$/,
    );

    // The printed audit command, run as printed: both verdicts above re-derive.
    const audit = /npm run verify -- (--relay \S+)/.exec(out)?.[1]?.split(' ') ?? [];
    expect(audit).toEqual(['--relay', relay]);
    const audited = await runCommand([process.execPath, 'apps/verify/src/main.ts', ...audit], { cwd: ROOT });
    expect(audited.code).toBe(0);
    expect(audited.out).toMatch(/^audited \d+ requests of http:\/\/127\.0\.0\.1:\d+: \d+ hold, 0 do not/);
  }, 300_000);

  test('the web app, the nodes and the chain bridge are up', async () => {
    const web = printed('contributor web app (browser node)');
    expect(web.startsWith(`http://127.0.0.1:${ports.web}`)).toBe(true);
    expect((await fetch(web)).status).toBe(200);
    // Tabs dial the relay at its fixed WebSocket port (a tab left open finds it again after a restart).
    const config = (await (await fetch(new URL('/synod-config.json', web))).json()) as {
      bootstrap: string[];
    };
    expect(config.bootstrap).toEqual([expect.stringContaining(`/tcp/${ports.ws}/ws/p2p/`)]);
    const nodes = [...out.matchAll(/health (http:\/\/127\.0\.0\.1:\d+)\/healthz/g)].map((m) => m[1]);
    expect(nodes).toEqual([0, 3, 6].map((k) => `http://127.0.0.1:${NODE_BASE_PORT + k}`));
    for (const n of nodes) expect((await fetch(`${n}/healthz`)).status).toBe(200);
    const chain = JSON.parse(readFileSync(join(data, 'chain.json'), 'utf8')) as {
      oracle: string;
      rpc: string;
    };
    expect(printed('SynodOracle (callLLM), bridged by the relay')).toBe(chain.oracle);
    expect(chain.rpc).toBe(`http://127.0.0.1:${ports.chain}`);
    const code = (await (
      await fetch(chain.rpc, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'eth_getCode',
          params: [chain.oracle, 'latest'],
        }),
      })
    ).json()) as { result: string };
    expect(code.result.length).toBeGreaterThan(2);
  }, 60_000);

  test('npm run chain:ask: callLLM on the local chain is answered on chain, and the answer re-verifies', async () => {
    // Two at once, as two contract authors would: each is told its own request and answer (the number
    // a simulation predicts is the same for both; each takes its own from its transaction's receipt).
    const asks = ['Once upon a time', 'Lily found a ball'];
    const runs = await Promise.all(
      asks.map((prompt) =>
        runCommand([process.execPath, 'scripts/chain-ask.ts', prompt, '--max-tokens', '16'], {
          cwd: ROOT,
          env: { SYNOD_DATA_DIR: data },
        }),
      ),
    );
    const ids = runs.map((r) => /network request (\S+)/.exec(r.out)?.[1] ?? '');
    expect(new Set(ids).size).toBe(2);
    for (const [i, id] of ids.entries()) {
      const view = (await (await fetch(`http://127.0.0.1:${ports.relay}/v1/inference/${id}`)).json()) as {
        request?: { prompt?: string };
      };
      expect(view.request?.prompt).toBe(asks[i] as string);
    }
    const [first] = runs;
    if (!first) throw new Error('no run');
    const { code, out: said, err } = first;
    expect({ code, err: code === 0 ? '' : err }).toEqual({ code: 0, err: '' });
    expect(runs[1]?.code).toBe(0);
    expect(said).toMatch(/answer \(block \d+, tx 0x[0-9a-f]{64}\):/);
    const digest = /verdict digest {3}(0x[0-9a-f]{64})/.exec(said)?.[1];
    const verify = /re-verify {8}(\S+)/.exec(said)?.[1] ?? '';
    expect(verify.startsWith(`http://127.0.0.1:${ports.relay}/v1/verify/`)).toBe(true);
    const check = (await (await fetch(verify)).json()) as { ok: boolean; verdictDigest: string };
    expect(check.ok).toBe(true);
    expect(`0x${check.verdictDigest}`).toBe(digest ?? '');
    // The auditor's command it prints, run as printed: re-derived here, matching the chain's digest.
    const printedCmd = /on your side: {3}npm run verify -- (\S+) --expect-digest (0x[0-9a-f]{64})/.exec(said);
    expect(printedCmd?.[1]).toBe(verify);
    const { code: auditCode, out: auditOut } = await runCommand(
      [
        process.execPath,
        'apps/verify/src/main.ts',
        printedCmd?.[1] ?? '',
        '--expect-digest',
        printedCmd?.[2] ?? '',
      ],
      { cwd: ROOT },
    );
    expect(auditCode).toBe(0);
    expect(auditOut).toContain('--expect-digest matches');

    // The chain audit the banner prints, run as printed: every answer on chain re-derives.
    const chainAudit =
      /npm run verify -- (--chain \S+ --oracle \S+ --relay \S+)/.exec(out)?.[1]?.split(' ') ?? [];
    expect(chainAudit).toHaveLength(6);
    const audited = await runCommand([process.execPath, 'apps/verify/src/main.ts', ...chainAudit], {
      cwd: ROOT,
    });
    expect(audited.code).toBe(0);
    expect(audited.out).toMatch(
      /^audited \d+ requests? of .* for oracle 0x[0-9a-f]{40} on chain \d+: (\d+) hold, 0 do not/,
    );
  }, 180_000);

  test('the printed API key commands work on the running relay, and a revoked key is refused', async () => {
    const relay = printed('relay (HTTP API, OpenAI-compatible, verifier)');
    // `npm run relay -- ARGS` as printed, run as the script runs it (bun edge/src/main.ts ARGS).
    const printedArgs = (sub: string) => {
      const m = new RegExp(`npm run relay -- (keys ${sub} .*)$`, 'm').exec(out);
      if (!m?.[1]) throw new Error(`npm start printed no keys ${sub} command`);
      return m[1].trim().split(/\s+/);
    };
    const relayCli = (args: string[]) =>
      runCommand([process.execPath, 'edge/src/main.ts', ...args], { cwd: ROOT });
    const created = await relayCli(printedArgs('create'));
    expect(created.code).toBe(0);
    const key = created.out.trim();
    const id = /created (key_[0-9a-f]{16})/.exec(created.err)?.[1] ?? '';
    const ask = () =>
      fetch(`${relay}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ prompt: 'Once upon a time', params: { maxTokens: 8 } }),
      });
    expect((await ask()).status).toBe(202);

    const listed = await relayCli([...printedArgs('list'), '--json']);
    expect(listed.code).toBe(0);
    const keys = JSON.parse(listed.out) as { id: string; label: string; usedToday: number }[];
    expect(keys.find((k) => k.id === id)).toMatchObject({ label: 'my-agent', usedToday: 1 });
    expect(keys.length).toBeGreaterThanOrEqual(2); // the development key too

    const db = printedArgs('list').slice(2);
    const revoked = await relayCli(['keys', 'revoke', id, ...db]);
    expect(revoked.code).toBe(0);
    // The relay caches keys for apiKeyCacheMs (5 s): within that, it refuses the key.
    await waitUntil('the revoked key refused', async () => (await ask()).status === 403, 15_000, 250);
  }, 60_000);

  test('the printed command for a box of yours joins the network: the relay lists its node', async () => {
    const relay = printed('relay (HTTP API, OpenAI-compatible, verifier)');
    const m = /SYNOD_PASSPHRASE=<a passphrase> npm run node -- (.*)$/m.exec(out);
    if (!m?.[1]) throw new Error('npm start printed no command for a box of yours');
    const args = m[1].trim().split(/\s+/);
    expect(args).toContain('--bootstrap');
    // `npm run node -- ARGS` as printed, run as the script runs it (bun browser-node/src/cli/main.ts node ARGS).
    const box = Bun.spawn([process.execPath, 'browser-node/src/cli/main.ts', 'node', ...args], {
      cwd: ROOT,
      env: { ...process.env, SYNOD_PASSPHRASE: 'a passphrase of my box' },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    try {
      const nodeIds = async () =>
        (
          (await (await fetch(`${relay}/v1/nodes`)).json()) as { nodes: { nodeId: string; role: string }[] }
        ).nodes
          .filter((n) => n.role === 'node')
          .map((n) => n.nodeId);
      await waitUntil('the relay hears the box', async () => (await nodeIds()).length === 4, 90_000, 500);
      expect(existsSync(join(data, 'my-box', 'identity.json'))).toBe(true);
    } finally {
      box.kill('SIGINT');
      await box.exited;
    }
  }, 120_000);

  test('a port or node count that is not a number stops it at once, exit 2, naming the variable', async () => {
    for (const [name, value] of [
      ['SYNOD_RELAY_WS_PORT', 'abc'],
      ['SYNOD_RELAY_PORT', '70000'],
      ['SYNOD_NODES', '-1'],
      ['SYNOD_NODE_BASE_PORT', '0x10'],
    ] as const) {
      const ran = await runCommand([process.execPath, 'scripts/start.ts'], {
        cwd: ROOT,
        env: { SYNOD_DATA_DIR: join(data, 'refused'), [name]: value },
      });
      expect({ code: ran.code, err: ran.err.trim() }).toEqual({
        code: 2,
        err: expect.stringContaining(`npm start: ${name} must be a whole number`),
      });
      expect(ran.out).not.toContain('local network is up');
    }
    // A base with no room for every node's three ports.
    const tooHigh = await runCommand([process.execPath, 'scripts/start.ts'], {
      cwd: ROOT,
      env: { SYNOD_DATA_DIR: join(data, 'refused'), SYNOD_NODE_BASE_PORT: '65534' },
    });
    expect({ code: tooHigh.code, err: tooHigh.err.trim() }).toEqual({
      code: 2,
      err: expect.stringContaining(
        'npm start: SYNOD_NODE_BASE_PORT must leave room for 3 nodes of 3 ports each',
      ),
    });
    // A base whose ports hold another fixed port (node 1's TCP and WebSocket: the relay's and the web app's).
    const clash = await runCommand([process.execPath, 'scripts/start.ts'], {
      cwd: ROOT,
      env: {
        SYNOD_DATA_DIR: join(data, 'refused'),
        SYNOD_NODE_BASE_PORT: '18786',
        SYNOD_RELAY_PORT: '18787',
        SYNOD_WEB_PORT: '18788',
      },
    });
    expect({ code: clash.code, err: clash.err.trim() }).toEqual({
      code: 2,
      err: 'npm start: SYNOD_NODE_BASE_PORT 18786 gives the nodes ports 18786-18794, which hold SYNOD_RELAY_PORT (18787): move one of them',
    });
    expect(clash.out).not.toContain('local network is up');
  });

  test('Ctrl-C stops every process it started', async () => {
    // The relay, 3 nodes, the web app and anvil at least (Bun may add helpers of its own).
    started = descendants(proc.pid);
    expect(started.size).toBeGreaterThanOrEqual(6);
    proc.kill('SIGINT');
    const code = await Promise.race([proc.exited, Bun.sleep(30_000).then(() => 'still running')]);
    expect(code).toBe(0);
    expect(out).toContain('stopping the local network');
    expect(alive(started.keys())).toEqual([]);
    for (const port of [ports.relay, ports.web, ports.chain]) expect(await closed(port)).toBe(true);
  }, 60_000);
});
