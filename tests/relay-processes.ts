/**
 * A local network of real processes for tests that kill the relay: three headless nodes (the `synod
 * node` CLI) meshed over Waku, and the `synod-relay` CLI (bun edge/src/main.ts) over a libSQL file in
 * `dir`, started again on the same database and identity after a kill. Used by edge-durability.test.ts
 * and relay-crash-stages.test.ts.
 */

import { afterAll, beforeAll } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Client, createClient } from '@libsql/client';
import type { Subprocess } from 'bun';
import { freePort, stopProcess, waitUntil } from '../edge/src/test-servers.ts';

const REPO = resolve(import.meta.dir, '..');
export const MODELS = resolve(process.env['SYNOD_MODELS_DIR'] ?? join(REPO, '../shared/models'));

export interface Child {
  proc: Subprocess;
  /** Its last 500 output lines. */
  lines: string[];
}

export class RelayProcesses {
  readonly children: Child[] = [];
  relayUrl = '';
  /** The relay's TCP multiaddrs, as its last start printed them. */
  relayAddrs: string[] = [];
  /** The nodes' ids and processes, by index (0: the node the others bootstrap to). */
  readonly nodes: { nodeId: string; child: Child }[] = [];
  #relayArgs: string[] = [];
  #nodeFlags: (i: number) => string[] = () => [];

  constructor(
    readonly dir: string,
    private readonly passphrase: string,
    /** More environment for every child. */
    private readonly env: Record<string, string> = {},
  ) {}

  /** Spawn a Bun child; resolve with the first JSON log line `match` accepts. */
  spawnBun(args: string[], match: (j: Record<string, unknown>) => boolean, timeoutMs = 120_000) {
    const proc = Bun.spawn([process.execPath, ...args], {
      cwd: REPO,
      env: { ...process.env, ...this.env, SYNOD_PASSPHRASE: this.passphrase, SYNOD_MODELS_DIR: MODELS },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const child: Child = { proc, lines: [] };
    this.children.push(child);
    return new Promise<{ child: Child; line: Record<string, unknown> }>((res, rej) => {
      const timer = setTimeout(() => {
        rej(new Error(`${args[0]} did not start in ${timeoutMs} ms:\n${child.lines.slice(-20).join('\n')}`));
      }, timeoutMs);
      void proc.exited.then((code) => {
        clearTimeout(timer);
        rej(new Error(`${args[0]} exited with ${code}:\n${child.lines.slice(-20).join('\n')}`));
      });
      const pump = async (stream: ReadableStream<Uint8Array>) => {
        const dec = new TextDecoder();
        let buf = '';
        for await (const chunk of stream) {
          buf += dec.decode(chunk, { stream: true });
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            child.lines.push(line);
            if (child.lines.length > 500) child.lines.shift();
            try {
              const j = JSON.parse(line) as Record<string, unknown>;
              if (match(j)) {
                clearTimeout(timer);
                res({ child, line: j });
              }
            } catch {
              // not a JSON log line
            }
          }
        }
      };
      void pump(proc.stdout as ReadableStream<Uint8Array>);
      void pump(proc.stderr as ReadableStream<Uint8Array>);
    });
  }

  /** The `synod node` command line of node `i` (1-3: its identity and state file in `dir`). */
  #nodeArgs(i: number, bootstrap: string[]): string[] {
    return [
      'browser-node/src/cli/main.ts',
      'node',
      '--identity',
      join(this.dir, `node-${i}`, 'identity.json'),
      '--db',
      join(this.dir, `node-${i}`, 'state.db'),
      '--models-dir',
      MODELS,
      ...this.#nodeFlags(i),
      ...(bootstrap.length > 0 ? ['--bootstrap', bootstrap.join(',')] : []),
    ];
  }

  /** Three nodes (`nodeFlags` added to each, or to node i, 1-3, as it says), meshed; their TCP multiaddrs. */
  async startNodes(nodeFlags: string[] | ((i: number) => string[]) = []): Promise<string[]> {
    this.#nodeFlags = typeof nodeFlags === 'function' ? nodeFlags : () => nodeFlags;
    const started = (j: Record<string, unknown>) => j['msg'] === 'node started';
    const first = await this.spawnBun(this.#nodeArgs(1, []), started);
    const rest = await Promise.all(
      [2, 3].map((i) => this.spawnBun(this.#nodeArgs(i, tcpOf(first.line)), started)),
    );
    for (const n of [first, ...rest]) this.nodes.push({ nodeId: String(n.line['nodeId']), child: n.child });
    return [first, ...rest].flatMap((n) => tcpOf(n.line));
  }

  /**
   * Start node `index` (0-2) again on its identity and state file, bootstrapped to `bootstrap`; resolves
   * once it has started (its `resumed request` lines, if any, come before).
   */
  async restartNode(index: number, bootstrap: string[]): Promise<Child> {
    const { child } = await this.spawnBun(
      this.#nodeArgs(index + 1, bootstrap),
      (j) => j['msg'] === 'node started',
    );
    const node = this.nodes[index];
    if (node) node.child = child;
    return child;
  }

  /**
   * The relay's command line (its database `relay.db`, identity and dev key file in `dir`, bootstrapped
   * to `nodes`, with `relayFlags`), for `startRelay`.
   */
  relayCommand(nodes: string[], relayFlags: string[] = []): void {
    this.#relayArgs = [
      'edge/src/main.ts',
      '--db',
      `file:${join(this.dir, 'relay.db')}`,
      '--identity',
      join(this.dir, 'relay-identity.json'),
      '--bootstrap',
      nodes.join(','),
      '--dev-key-file',
      join(this.dir, 'dev-api-key'),
      ...relayFlags,
    ];
  }

  /**
   * Start (or restart) the relay on the same database and identity. The HTTP port is picked free just
   * before; if another process grabs it first (a busy shared box), try again on a new one.
   */
  async startRelay(): Promise<Child> {
    let last: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      this.relayUrl = `http://127.0.0.1:${port}`;
      try {
        const { child, line } = await this.spawnBun(
          [...this.#relayArgs, '--port', String(port)],
          (j) => j['msg'] === 'relay started',
          90_000,
        );
        this.relayAddrs = tcpOf(line);
        return child;
      } catch (e) {
        last = e;
        const dead = this.children.at(-1);
        if (dead) await stopProcess(dead.proc).catch(() => undefined);
      }
    }
    throw last;
  }

  /** The last log lines of every child, for failure messages. */
  logs(): string {
    return this.children.map((c, i) => `--- child ${i}\n${c.lines.slice(-15).join('\n')}`).join('\n');
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.children.map((c) => stopProcess(c.proc).catch(() => undefined)));
  }
}

/** The TCP multiaddrs a `node started` or `relay started` line lists. */
function tcpOf(line: Record<string, unknown>): string[] {
  return ((line['multiaddrs'] as string[] | undefined) ?? []).filter((a) => !a.includes('/ws'));
}

/** A started network of three nodes and a relay bootstrapped to them, as the kill tests use it. */
export interface StartedRelayNetwork {
  net: RelayProcesses;
  relay: Child;
  /** The relay's dev API key. */
  apiKey: string;
  /** A client of the relay's own database file, to read the moment to kill at and what was stored. */
  db: Client;
  /** Wait until the relay has its three nodes as peers (a restarted one dials them again). */
  peered(): Promise<void>;
  /** Close the client, stop every process, remove the folder. */
  stop(): Promise<void>;
}

/**
 * Start the nodes (with `nodeFlags`, as `startNodes` takes them) and the relay in a fresh folder named
 * after `name`, every process with `env` added; once the relay has its peers.
 */
export async function startRelayNetwork(
  name: string,
  o: { env?: Record<string, string>; nodeFlags?: Parameters<RelayProcesses['startNodes']>[0] } = {},
): Promise<StartedRelayNetwork> {
  const net = new RelayProcesses(
    mkdtempSync(join(tmpdir(), `synod-${name}-`)),
    `${name}-passphrase`,
    o.env ?? {},
  );
  net.relayCommand(await net.startNodes(o.nodeFlags));
  const relay = await net.startRelay();
  const peered = () =>
    waitUntil(
      'the relay has its nodes as peers',
      async () => {
        const h = (await (await fetch(`${net.relayUrl}/healthz`)).json()) as { network: { peers: number } };
        return h.network.peers >= 3;
      },
      60_000,
      100,
    );
  await peered().catch(async (e) => {
    // Nothing of a start that failed is left running (a failed start used to leave four processes).
    const logs = net.logs();
    await net.stopAll();
    rmSync(net.dir, { recursive: true, force: true });
    throw new Error(`${String(e)}\n${logs}`);
  });
  const db = createClient({ url: `file:${join(net.dir, 'relay.db')}` });
  return {
    net,
    relay,
    apiKey: readFileSync(join(net.dir, 'dev-api-key'), 'utf8').trim(),
    db,
    peered,
    async stop() {
      db.close();
      await net.stopAll();
      rmSync(net.dir, { recursive: true, force: true });
    },
  };
}

/**
 * For a test file: the network `startRelayNetwork(name)` starts before its tests (handed to `started`)
 * and stops after them.
 */
export function useRelayNetwork(name: string, started: (network: StartedRelayNetwork) => void): void {
  let network: StartedRelayNetwork | undefined;
  beforeAll(async () => {
    network = await startRelayNetwork(name);
    started(network);
  }, 300_000);
  afterAll(async () => {
    await network?.stop();
  }, 60_000);
}

/**
 * Let this process run its pending I/O (its children's output among it) before going on. A test that
 * polls a local libSQL file back to back never does otherwise: those queries resolve without a turn of
 * the event loop, the children's stdout pipes fill up, and the relay and nodes block on their next log
 * line, frozen while the test waits for them to move.
 */
export function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
