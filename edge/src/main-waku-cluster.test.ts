/**
 * `synod-relay --waku-cluster N` and `$SYNOD_WAKU_CLUSTER`: a bad value exits 2 naming it before
 * anything is created; a relay started on a cluster meshes with that cluster's nodes only.
 */
import { describe, expect, test } from 'bun:test';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { contentTopic, type WakuRelayTransport } from '@synod/browser-node';
import { createHeadlessWakuRelay } from '@synod/browser-node/headless';
import { MAX_CLUSTER_ID } from '@synod/browser-node/waku-cluster-id';
import { parseWakuCluster, WakuClusterFlagError } from './config.ts';
import { runCommand, spawnRelay, stopProcess, waitUntil } from './test-servers.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');
const PASSPHRASE = { SYNOD_PASSPHRASE: 'a passphrase for the test' };

async function relayCli(args: string[], env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'synod-cli-cluster-'));
  try {
    const r = await runCommand([process.execPath, MAIN, ...args], {
      cwd: dir,
      env: { ...PASSPHRASE, ...env },
    });
    return { ...r, files: readdirSync(dir) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('synod-relay --waku-cluster', () => {
  test('--help shows it', async () => {
    const r = await relayCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/--waku-cluster N .*\n.*\[\$SYNOD_WAKU_CLUSTER or 42\]/);
  });

  test.each([
    [['--waku-cluster', '65536'], {}, '--waku-cluster must be a Waku cluster id'],
    [['--waku-cluster=-1'], {}, '--waku-cluster must be a Waku cluster id'],
    [['--waku-cluster', '1e3'], {}, '--waku-cluster must be a Waku cluster id'],
    [[], { SYNOD_WAKU_CLUSTER: 'forty-two' }, '$SYNOD_WAKU_CLUSTER must be a Waku cluster id'],
    [[], { SYNOD_WAKU_CLUSTER: '70000' }, '$SYNOD_WAKU_CLUSTER must be a Waku cluster id'],
  ])('%p %p is refused with exit code 2, nothing created', async (args, env, message) => {
    const r = await relayCli(args, env);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(r.files).toEqual([]);
  });

  test('a cluster id is 0-65535 in digits; anything else is WAKU_CLUSTER_INVALID', () => {
    expect(parseWakuCluster('--waku-cluster', '0')).toBe(0);
    expect(parseWakuCluster('--waku-cluster', '65535')).toBe(MAX_CLUSTER_ID);
    for (const bad of ['', '65536', ' 1', '0x1', '1.0']) {
      expect(() => parseWakuCluster('--waku-cluster', bad)).toThrow(WakuClusterFlagError);
    }
    let caught: unknown;
    try {
      parseWakuCluster('$SYNOD_WAKU_CLUSTER', '-3');
    } catch (e) {
      caught = e;
    }
    expect(caught).toMatchObject({ code: 'WAKU_CLUSTER_INVALID', name: 'FlagError' });
    expect(String((caught as Error).message)).toStartWith('$SYNOD_WAKU_CLUSTER must be a Waku cluster id');
  });

  test('a relay given $SYNOD_WAKU_CLUSTER=7 meshes with a cluster-7 peer, not with a cluster-42 one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'synod-relay-cluster-'));
    // The relay's 'relay started' line gives its multiaddrs.
    const relay = await spawnRelay(['--port', '0', '--db', `file:${join(dir, 'relay.db')}`], {
      cwd: dir,
      env: { SYNOD_WAKU_CLUSTER: '7' },
    });
    const { started } = relay;
    const peers: WakuRelayTransport[] = [];
    try {
      expect(started.wakuCluster).toBe(7);
      const tcp = String(started.multiaddrs.find((a) => !a.includes('/ws/')));
      const relayPeer = String(tcp.split('/p2p/')[1]);
      const heartbeats = contentTopic('heartbeats');
      const same = await createHeadlessWakuRelay({ clusterId: 7, bootstrap: [tcp] });
      peers.push(same);
      const other = await createHeadlessWakuRelay({ clusterId: 42, bootstrap: [tcp] });
      peers.push(other);
      for (const p of peers) p.subscribe(heartbeats, () => undefined);
      await waitUntil('the cluster-7 mesh', async () => same.meshPeers(heartbeats).includes(relayPeer));
      expect(other.peers()).toContain(relayPeer);
      expect(other.meshPeers(heartbeats)).toEqual([]);
      // SIGTERM (as a supervisor stops it): exit 0, and the last log line says it stopped.
      relay.proc.kill('SIGTERM');
      expect(await relay.proc.exited).toBe(0);
      const rest = (await relay.output()).trim().split('\n');
      expect(JSON.parse(rest.at(-1) ?? '{}')).toMatchObject({ level: 'info', msg: 'stopped' });
    } finally {
      await Promise.all(peers.map((p) => p.close()));
      await stopProcess(relay.proc);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
