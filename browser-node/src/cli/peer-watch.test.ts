import { expect, test } from 'bun:test';
import { NodeKey } from '@synod/shared';
import { SynodNode } from '../node/synod-node.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { NO_PEERS_GRACE_MS, nodeHealth, PeerlessClock } from './node-health.ts';
import { watchPeers } from './peer-watch.ts';

/** The lines logged while `peers` answers each of `counts` in turn, one look each. */
async function logged(
  counts: number[],
  bootstrap: string[],
  who?: 'node' | 'relay',
): Promise<Array<[string, string?]>> {
  const lines: Array<Record<string, unknown>> = [];
  let i = 0;
  const stop = watchPeers({
    peers: () => counts[Math.min(i++, counts.length - 1)] ?? 0,
    bootstrap,
    log: (e) => lines.push(e),
    intervalMs: 5,
    ...(who ? { who } : {}),
  });
  while (i < counts.length) await Bun.sleep(5);
  stop();
  return lines.map((l) =>
    l['code'] === undefined ? [String(l['msg'])] : [String(l['msg']), String(l['code'])],
  );
}

test('an outage is logged once when it starts and once when it ends', async () => {
  expect(await logged([1, 1, 0, 0, 0, 2, 2, 0, 1], ['/ip4/127.0.0.1/tcp/1/p2p/x'])).toEqual([
    ['no peers: this node hears no request', 'NO_PEERS'],
    ['peers reached again'],
    ['no peers: this node hears no request', 'NO_PEERS'],
    ['peers reached again'],
  ]);
});

test('bootstrap peers never reached are warned about at the first look; a node without any is not', async () => {
  expect(await logged([0, 0, 0], ['/ip4/127.0.0.1/tcp/1/p2p/x'])).toEqual([
    ['no peers: this node hears no request', 'NO_PEERS'],
  ]);
  expect(await logged([0, 0, 0], [])).toEqual([]);
  // Dialled by someone, then left: that is an outage too.
  expect((await logged([0, 1, 0], [])).map(([msg]) => msg)).toEqual(['no peers: this node hears no request']);
});

test('a node without --bootstrap that no one dials within the grace is warned about once', async () => {
  const lines: Array<Record<string, unknown>> = [];
  let t = 0;
  const stop = watchPeers({
    peers: () => 0,
    bootstrap: [],
    log: (e) => lines.push(e),
    intervalMs: 5,
    aloneGraceMs: 30_000,
    now: () => t,
  });
  await Bun.sleep(30);
  expect(lines).toEqual([]);
  t = 30_000;
  await Bun.sleep(30);
  stop();
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({ level: 'warn', code: 'NO_PEERS' });
  expect(String(lines[0]?.['hint'])).toContain('this node dials no one');
});

test('a node without --bootstrap dialled and then left: the warning and /healthz 503 NO_PEERS come together, 30 s after its last peer', async () => {
  const lines: Array<Record<string, unknown>> = [];
  let t = 1_000;
  let peers = 0;
  // A node's metrics as /healthz gets them, with the peers of the moment.
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(171));
  const node = new SynodNode({ key, role: 'follower', transports: [new MemoryNetwork().join(key.nodeId)] });
  const metrics = node.metrics();
  // One clock, as node-main gives both: /healthz reads it at each call, the watch at each look.
  const peerless = new PeerlessClock(t);
  const health = () =>
    nodeHealth(
      { ...metrics, peers, topicPeers: peers },
      { bootstrap: [], db: 'state.db', now: t, peerlessSince: peerless.look(peers, t) },
    ).status;
  const stop = watchPeers({
    peers: () => peers,
    bootstrap: [],
    log: (e) => lines.push(e),
    intervalMs: 5,
    aloneGraceMs: NO_PEERS_GRACE_MS,
    peerless,
    now: () => t,
  });
  const look = () => Bun.sleep(30);
  try {
    // A relay dials it, then goes (restarted, say).
    peers = 1;
    await look();
    expect([health(), lines]).toEqual([200, []]);
    t = 50_000;
    peers = 0;
    await look();
    expect([health(), lines]).toEqual([200, []]);
    t = 50_000 + NO_PEERS_GRACE_MS - 1;
    await look();
    expect([health(), lines]).toEqual([200, []]);
    t = 50_000 + NO_PEERS_GRACE_MS;
    await look();
    expect(health()).toBe(503);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', code: 'NO_PEERS', noPeerForS: NO_PEERS_GRACE_MS / 1000 });
    // Back: 200, and said once; gone again: the grace runs anew, from the last peer.
    peers = 2;
    t += 1_000;
    await look();
    expect(health()).toBe(200);
    peers = 0;
    t += 1_000;
    await look();
    expect(health()).toBe(200);
    expect(lines.map((l) => l['msg'])).toEqual([
      'no peers: this node hears no request',
      'peers reached again',
    ]);
  } finally {
    stop();
  }
});

test('peers none of which is on our topics (another --waku-cluster) are warned about at the second look, once, and the end said', async () => {
  const lines: Array<Record<string, unknown>> = [];
  // Looks: [peers, topic peers].
  const looks: Array<[number, number]> = [
    [1, 0], // a peer just connected: its subscriptions come a moment later
    [1, 1],
    [1, 0],
    [1, 0], // two in a row: warned
    [2, 0],
    [2, 1], // one on our topics again
    [0, 0], // an outage is NO_PEERS, not this
  ];
  let i = 0;
  let current: [number, number] = [0, 0];
  const stop = watchPeers({
    peers: () => {
      current = looks[Math.min(i++, looks.length - 1)] ?? [0, 0];
      return current[0];
    },
    topicPeers: () => current[1],
    wakuCluster: 7,
    bootstrap: ['/ip4/127.0.0.1/tcp/1/p2p/x'],
    log: (e) => lines.push(e),
    intervalMs: 5,
  });
  while (i < looks.length) await Bun.sleep(5);
  stop();
  expect(lines.map((l) => [l['msg'], l['code']])).toEqual([
    ['peers, none on our topics: this node hears no request', 'NO_TOPIC_PEERS'],
    ['peers on our topics again', undefined],
    ['no peers: this node hears no request', 'NO_PEERS'],
  ]);
  expect(String(lines[0]?.['hint'])).toContain("--waku-cluster the network's (this node's is 7)");
});

test("a relay's last node gone is said in a relay's words, and its return", async () => {
  // Nodes dial a relay: alone at the start is no outage; its nodes gone is one.
  expect(await logged([0, 0, 2, 2, 0, 0, 3], [], 'relay')).toEqual([
    ['no peers: this relay reaches no node, and starts no request', 'NO_PEERS'],
    ['peers reached again'],
  ]);
});
