/**
 * `synod node --waku-cluster N` and `$SYNOD_WAKU_CLUSTER`: checked with the other flags (exit 2 on a
 * bad one, WAKU_CLUSTER_INVALID), the flag before the variable before Synod's own cluster, 42; and the
 * node really joins the cluster it is given.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { waitFor } from '../p2p/test-fixtures.ts';
import { contentTopic } from '../p2p/topics.ts';
import { DEFAULT_CLUSTER_ID, WakuClusterIdError, type WakuRelayTransport } from '../p2p/waku-relay.ts';
import { createHeadlessWakuRelay } from '../p2p/waku-relay-headless.ts';
import { parseNodeArgs, runNode } from './node-main.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-cli-cluster-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PW = { SYNOD_PASSPHRASE: 'a passphrase for the test' };
const clusterOf = (argv: string[], env: Record<string, string | undefined> = {}) => {
  const o = parseNodeArgs(argv, { ...PW, ...env });
  if (o === 'help') throw new Error('help');
  return o.wakuCluster;
};
const refusal = (argv: string[], env: Record<string, string | undefined> = {}) => {
  try {
    parseNodeArgs(argv, { ...PW, ...env });
  } catch (e) {
    return e;
  }
  return undefined;
};

describe('synod node --waku-cluster', () => {
  test('the flag, else $SYNOD_WAKU_CLUSTER, else 42', () => {
    expect(clusterOf([])).toBe(DEFAULT_CLUSTER_ID);
    expect(clusterOf(['--waku-cluster', '1'])).toBe(1);
    expect(clusterOf(['--waku-cluster', '0'])).toBe(0);
    expect(clusterOf(['--waku-cluster', '65535'])).toBe(65_535);
    expect(clusterOf([], { SYNOD_WAKU_CLUSTER: '7' })).toBe(7);
    expect(clusterOf(['--waku-cluster', '9'], { SYNOD_WAKU_CLUSTER: '7' })).toBe(9);
    // An empty variable is unset, as the shell's `SYNOD_WAKU_CLUSTER= synod node` means.
    expect(clusterOf([], { SYNOD_WAKU_CLUSTER: '' })).toBe(DEFAULT_CLUSTER_ID);
  });

  test('a bad value is WAKU_CLUSTER_INVALID naming the flag or the variable', () => {
    for (const bad of ['65536', '-1', '1e3', 'x', '']) {
      const e = refusal([`--waku-cluster=${bad}`]);
      expect(e).toBeInstanceOf(WakuClusterIdError);
      expect(e).toMatchObject({ code: 'WAKU_CLUSTER_INVALID', details: { source: '--waku-cluster' } });
    }
    const fromEnv = refusal([], { SYNOD_WAKU_CLUSTER: '70000' });
    expect(fromEnv).toMatchObject({
      code: 'WAKU_CLUSTER_INVALID',
      details: { source: '$SYNOD_WAKU_CLUSTER' },
    });
    expect(String((fromEnv as Error).message)).toContain('$SYNOD_WAKU_CLUSTER must be a Waku cluster id');
    // The flag wins: a bad variable under a good flag is not looked at.
    expect(clusterOf(['--waku-cluster', '3'], { SYNOD_WAKU_CLUSTER: 'bad' })).toBe(3);
  });

  test('--help shows it, and a bad one exits 2 naming it', async () => {
    const main = resolve(import.meta.dir, 'main.ts');
    const help = Bun.spawnSync([process.execPath, main, 'node', '--help'], {
      stdout: 'pipe',
      stderr: 'pipe',
    });
    expect(help.exitCode).toBe(0);
    expect(help.stdout.toString()).toMatch(/--waku-cluster N .*\n.*\[\$SYNOD_WAKU_CLUSTER or 42\]/);
    const bad = Bun.spawnSync([process.execPath, main, 'node', '--waku-cluster', '65536'], {
      stdout: 'pipe',
      stderr: 'pipe',
      env: { ...process.env, ...PW },
      cwd: dir,
    });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.toString()).toContain('--waku-cluster must be a Waku cluster id');
    // One line naming what is wrong, not the whole help under it.
    expect(bad.stderr.toString().trim().split('\n')).toHaveLength(1);
    expect(bad.stderr.toString()).toContain('(synod node --help lists every flag)');
  });

  test('a node started with --waku-cluster 7 meshes with a peer of cluster 7, not with one of cluster 42', async () => {
    const o = parseNodeArgs(
      [
        '--role',
        'follower',
        '--identity',
        join(dir, 'identity.json'),
        '--db',
        join(dir, 'state.db'),
        '--waku-cluster',
        '7',
      ],
      PW,
    );
    if (o === 'help') throw new Error('help');
    const running = await runNode(o, () => undefined);
    const peers: WakuRelayTransport[] = [];
    try {
      const tcp = running.multiaddrs.find((a) => !a.includes('/ws/'));
      expect(tcp).toBeDefined();
      const nodePeer = String(tcp?.split('/p2p/')[1]);
      const heartbeats = contentTopic('heartbeats');
      const same = await createHeadlessWakuRelay({ clusterId: 7, bootstrap: [String(tcp)] });
      peers.push(same);
      const other = await createHeadlessWakuRelay({
        clusterId: DEFAULT_CLUSTER_ID,
        bootstrap: [String(tcp)],
      });
      peers.push(other);
      for (const p of peers) p.subscribe(heartbeats, () => undefined);
      await waitFor(() => same.meshPeers(heartbeats).includes(nodePeer), 60_000, 'the cluster-7 mesh');
      expect(other.peers()).toContain(nodePeer);
      expect(other.meshPeers(heartbeats)).toEqual([]);
      // The node counts the cluster-42 peer as a peer, but not as one on its topics.
      expect(running.node.peers()).toBe(2);
      expect(running.node.topicPeers()).toBe(1);
      expect(other.topicPeers()).toEqual([]);
      expect(same.topicPeers()).toContain(nodePeer);
    } finally {
      await Promise.all(peers.map((p) => p.close()));
      await running.stop();
    }
  }, 90_000);

  test('a node whose only peer is on another cluster: /healthz 503 NO_TOPIC_PEERS naming its cluster, 200 once one of its own comes', async () => {
    const o = parseNodeArgs(
      [
        '--role',
        'follower',
        '--identity',
        join(dir, 'lonely-identity.json'),
        '--db',
        join(dir, 'lonely-state.db'),
        '--waku-cluster',
        '7',
      ],
      PW,
    );
    if (o === 'help') throw new Error('help');
    const running = await runNode(o, () => undefined);
    const peers: WakuRelayTransport[] = [];
    const health = async () => {
      const r = await fetch(`${running.httpUrl}/healthz`);
      return { status: r.status, body: (await r.json()) as { reason?: string; hint?: string } };
    };
    const healthBecomes = async (status: number, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      while ((await health()).status !== status) {
        if (Date.now() > deadline) throw new Error(`/healthz did not become ${status} in ${timeoutMs} ms`);
        await Bun.sleep(50);
      }
    };
    try {
      const tcp = String(running.multiaddrs.find((a) => !a.includes('/ws/')));
      const nodePeer = String(tcp.split('/p2p/')[1]);
      const other = await createHeadlessWakuRelay({ clusterId: DEFAULT_CLUSTER_ID, bootstrap: [tcp] });
      peers.push(other);
      await waitFor(() => other.peers().includes(nodePeer), 60_000, 'the connection');
      await healthBecomes(503, 10_000);
      const off = await health();
      expect(off.body.reason).toBe('NO_TOPIC_PEERS');
      expect(off.body.hint).toContain("(this node's is 7)");
      const same = await createHeadlessWakuRelay({ clusterId: 7, bootstrap: [tcp] });
      peers.push(same);
      same.subscribe(contentTopic('heartbeats'), () => undefined);
      await healthBecomes(200, 60_000);
    } finally {
      await Promise.all(peers.map((p) => p.close()));
      await running.stop();
    }
  }, 90_000);
});
