/**
 * The Waku cluster (RFC 51): nodes relay on their own cluster's shards only, so two nodes connected to
 * each other but on different clusters hear nothing of each other; on one cluster (not only the
 * default) they do. Cluster ids are uint16s; anything else is WAKU_CLUSTER_INVALID.
 */
import { describe, expect, test } from 'bun:test';
import { commitPacket, testKey, waitFor, wire } from './test-fixtures.ts';
import { contentTopic } from './topics.ts';
import {
  createWakuRelayTransport,
  DEFAULT_CLUSTER_ID,
  MAX_CLUSTER_ID,
  parseWakuClusterId,
  WakuClusterIdError,
} from './waku-relay.ts';
import { createHeadlessWakuRelay } from './waku-relay-headless.ts';
import { addressOf, closedAfterEach } from './waku-test-transports.ts';

const commits = contentTopic('commits');
const LONG = 60_000;
const track = closedAfterEach();

/** Two nodes on 127.0.0.1, `b` dialling `a`, both subscribed to commits; what `a` received. */
async function pair(clusterA: number, clusterB: number) {
  const a = track(await createHeadlessWakuRelay({ host: '127.0.0.1', clusterId: clusterA }));
  const b = track(
    await createHeadlessWakuRelay({
      host: '127.0.0.1',
      clusterId: clusterB,
      bootstrap: [addressOf(a, false)],
    }),
  );
  const atA: Uint8Array[] = [];
  a.subscribe(commits, (bytes) => atA.push(bytes));
  b.subscribe(commits, () => undefined);
  // Connected either way: whether they share a mesh is what the cluster decides.
  await waitFor(() => a.peers().includes(b.peerId) && b.peers().includes(a.peerId), LONG, 'the connection');
  return { a, b, atA };
}

describe('Waku cluster', () => {
  test(
    'two nodes on different clusters do not exchange packets, though connected',
    async () => {
      const { a, b, atA } = await pair(7, 8);
      expect(a.pubsubTopic(commits)).toMatch(/^\/waku\/2\/rs\/7\//);
      expect(b.pubsubTopic(commits)).toMatch(/^\/waku\/2\/rs\/8\//);
      // A few gossipsub heartbeats (1 s each): time enough for a mesh to form were there one to form.
      await Bun.sleep(3_000);
      expect(a.meshPeers(commits)).toEqual([]);
      expect(b.meshPeers(commits)).toEqual([]);
      for (let n = 0; n < 3; n++) {
        const packet = await commitPacket(await testKey(), n, Date.now());
        await b.publish(commits, wire(packet).bytes);
      }
      await Bun.sleep(1_500);
      expect(atA).toHaveLength(0);
      expect(a.stats().received).toBe(0);
      expect(a.peers()).toContain(b.peerId); // still connected: nothing but the cluster keeps them apart
    },
    LONG + 30_000,
  );

  test(
    'two nodes on the same non-default cluster exchange packets',
    async () => {
      const { a, b, atA } = await pair(7, 7);
      await waitFor(() => a.meshPeers(commits).includes(b.peerId), LONG, 'the mesh');
      const packet = await commitPacket(await testKey(), 1, Date.now());
      const { bytes } = wire(packet);
      await b.publish(commits, bytes);
      await waitFor(() => atA.length === 1, LONG, 'delivery');
      expect(atA[0]).toEqual(bytes);
      expect(a.clusterId).toBe(7);
      expect(a.clusterId).not.toBe(DEFAULT_CLUSTER_ID);
    },
    LONG + 30_000,
  );

  test('a cluster id is a uint16 (RFC 51): anything else is WAKU_CLUSTER_INVALID before anything starts', async () => {
    for (const clusterId of [-1, MAX_CLUSTER_ID + 1, 1.5, Number.NaN]) {
      const refused = await createWakuRelayTransport({ clusterId }).then(
        (t) => {
          track(t);
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(WakuClusterIdError);
      expect(refused).toMatchObject({ code: 'WAKU_CLUSTER_INVALID', details: { source: 'clusterId' } });
    }
    const edge = track(await createWakuRelayTransport({ clusterId: MAX_CLUSTER_ID }));
    expect(edge.pubsubTopic(commits)).toMatch(/^\/waku\/2\/rs\/65535\//);
    const zero = track(await createWakuRelayTransport({ clusterId: 0 }));
    expect(zero.pubsubTopic(commits)).toMatch(/^\/waku\/2\/rs\/0\//);
  });

  test('a cluster id as typed: decimal digits from 0 to 65535, nothing else', () => {
    expect(parseWakuClusterId('--waku-cluster', '0')).toBe(0);
    expect(parseWakuClusterId('--waku-cluster', '1')).toBe(1);
    expect(parseWakuClusterId('--waku-cluster', '65535')).toBe(65_535);
    for (const text of ['', '65536', '-1', '1e3', '0x10', ' 7', '7 ', '1.0', 'one', '999999']) {
      let caught: unknown;
      try {
        parseWakuClusterId('$SYNOD_WAKU_CLUSTER', text);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(WakuClusterIdError);
      expect(caught).toMatchObject({
        code: 'WAKU_CLUSTER_INVALID',
        details: { source: '$SYNOD_WAKU_CLUSTER', value: text },
      });
      expect((caught as Error).message).toStartWith('$SYNOD_WAKU_CLUSTER must be a Waku cluster id');
    }
  });
});
