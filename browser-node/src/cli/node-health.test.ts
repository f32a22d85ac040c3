import { describe, expect, test } from 'bun:test';
import { encodePacket, NodeKey } from '@synod/shared';
import { realScheduler } from '../node/scheduler.ts';
import { SynodNode } from '../node/synod-node.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { heartbeatPacket, testKey, waitFor } from '../p2p/test-fixtures.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { renderNodeMetrics } from './metrics-text.ts';
import { NO_PEERS_GRACE_MS, nodeHealth, PeerlessClock } from './node-health.ts';

describe('/healthz and /metrics of a headless node', () => {
  test('a store that cannot be written is a 503 STORE_FAILING, and shows in the metrics', async () => {
    const net = new MemoryNetwork();
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(170));
    const peer = net.join('peer');
    const node = new SynodNode({ key, role: 'follower', transports: [net.join(key.nodeId)] });
    await node.start();
    try {
      const healthy = node.metrics();
      const options = { bootstrap: ['/ip4/127.0.0.1/tcp/1/p2p/x'], db: '.data/node/state.db' };
      expect(nodeHealth(healthy, options)).toMatchObject({ status: 200, body: { ok: true } });
      const failing = {
        ...healthy,
        store: { errors: 3, failing: true, lastError: 'SQLITE_FULL: database or disk is full', refused: 2 },
      };
      const answer = nodeHealth(failing, options);
      expect(answer.status).toBe(503);
      expect(answer.body).toMatchObject({
        ok: false,
        reason: 'STORE_FAILING',
        store: { errors: 3, failing: true },
      });
      expect(String(answer.body['hint'])).toContain('.data/node/state.db');
      // No peers while told of some: NO_PEERS, unless the store is the more urgent matter.
      const alone = { ...healthy, peers: 0 };
      expect(nodeHealth(alone, options).body).toMatchObject({ ok: false, reason: 'NO_PEERS' });
      expect(nodeHealth({ ...failing, peers: 0 }, options).body['reason']).toBe('STORE_FAILING');
      const text = renderNodeMetrics(failing);
      expect(text).toMatch(/^synod_store_errors_total 3$/m);
      expect(text).toMatch(/^synod_store_failing 1$/m);
      expect(text).toMatch(/^synod_store_refused_total 2$/m);
      expect(renderNodeMetrics(healthy)).toMatch(/^synod_store_failing 0$/m);
    } finally {
      await node.close();
      await peer.close();
    }
  });

  test('a clock off its peers is a 503 CLOCK_SKEW: measured within the skew window, inferred past it', async () => {
    const net = new MemoryNetwork();
    const peer = net.join('peer');
    const options = { bootstrap: [], db: 'state.db' };
    const skewed = async (seed: number, skewMs: number) => {
      const key = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
      const node = new SynodNode({
        key,
        role: 'follower',
        transports: [net.join(key.nodeId)],
        scheduler: { now: () => Date.now() + skewMs, after: realScheduler.after },
      });
      await node.start();
      return node;
    };
    const ahead = await skewed(171, 30_000);
    const far = await skewed(172, -10 * 60_000);
    const onTime = await skewed(173, 0);
    try {
      // Peers' heartbeats, each signed and sent at once, as nodes do every 10 s.
      for (let i = 0; i < 6; i++) {
        const hb = await heartbeatPacket(await testKey(9_000 + i), i, Date.now());
        await peer.publish(topicOfPacketType('heartbeat'), encodePacket(hb));
      }
      await net.settled();
      // One peer whose own clock is a minute behind: it moves nothing for the nodes whose clocks are right.
      const late = await heartbeatPacket(await testKey(9_100), 0, Date.now() - 60_000);
      await peer.publish(topicOfPacketType('heartbeat'), encodePacket(late));
      await net.settled();
      await waitFor(() => onTime.metrics().clock.peers === 7 && ahead.metrics().clock.peers === 7);
      await waitFor(() => far.metrics().intake.rejectedTotal === 7);
      const a = nodeHealth(ahead.metrics(), options);
      expect(a.status).toBe(503);
      expect(a.body).toMatchObject({ ok: false, reason: 'CLOCK_SKEW' });
      expect(String(a.body['hint'])).toContain('ahead');
      expect(Number(a.body['clockOffsetMs'])).toBeGreaterThan(29_000);
      expect(renderNodeMetrics(ahead.metrics())).toMatch(/^synod_clock_offset_seconds (29|30)(\.\d+)?$/m);
      // Ten minutes behind: every heartbeat is refused as from the future, none measured.
      expect(far.metrics().clock.peers).toBe(0);
      expect(nodeHealth(far.metrics(), options).body).toMatchObject({ ok: false, reason: 'CLOCK_SKEW' });
      const fine = nodeHealth(onTime.metrics(), options);
      expect(fine.status).toBe(200);
      expect(Math.abs(Number(fine.body['clockOffsetMs']))).toBeLessThan(1_000);
    } finally {
      await Promise.all([ahead.close(), far.close(), onTime.close(), peer.close()]);
    }
  });

  test('with no peer, NO_PEERS at once when told of --bootstrap peers, else past a grace of 30 s from the last peer', async () => {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(175));
    const node = new SynodNode({ key, role: 'follower', transports: [new MemoryNetwork().join(key.nodeId)] });
    await node.start();
    try {
      const m = node.metrics();
      expect(m.peers).toBe(0);
      const startedAt = 1_000_000;
      const told = { bootstrap: ['/ip4/127.0.0.1/tcp/1/p2p/x'], db: 'state.db', startedAt };
      expect(nodeHealth(m, { ...told, now: startedAt }).body).toMatchObject({
        ok: false,
        reason: 'NO_PEERS',
      });
      const untold = { bootstrap: [], db: 'state.db', startedAt };
      const clock = new PeerlessClock(startedAt);
      const at = (now: number, peers: number) =>
        nodeHealth(
          { ...m, peers, topicPeers: peers },
          { ...untold, now, peerlessSince: clock.look(peers, now) },
        );
      expect(at(startedAt + NO_PEERS_GRACE_MS - 1, 0).status).toBe(200);
      const alone = at(startedAt + NO_PEERS_GRACE_MS, 0);
      expect(alone).toMatchObject({ status: 503, body: { ok: false, reason: 'NO_PEERS' } });
      expect(String(alone.body['hint'])).toContain('no --bootstrap was given: this node dials no one');
      // Dialled by a relay: healthy; left again, the grace counts from then, not from the start.
      expect(at(startedAt + 40_000, 1).body['reason']).toBeUndefined();
      expect(at(startedAt + 50_000, 0).body['reason']).toBeUndefined();
      expect(at(startedAt + 50_000 + NO_PEERS_GRACE_MS, 0).body['reason']).toBe('NO_PEERS');
    } finally {
      await node.close();
    }
  });

  test('connected and hearing nothing for a minute is a 503 NETWORK_SILENT; a message heard ends it', async () => {
    const net = new MemoryNetwork();
    const peer = net.join('peer');
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(174));
    const node = new SynodNode({ key, role: 'follower', transports: [net.join(key.nodeId)] });
    await node.start();
    try {
      const startedAt = Date.now();
      const options = { bootstrap: [], db: 'state.db', startedAt };
      expect(node.metrics().peers).toBe(1);
      // Nothing heard since the start: silent after NETWORK_SILENT_MS, not before.
      expect(nodeHealth(node.metrics(), { ...options, now: startedAt + 59_000 }).status).toBe(200);
      const silent = nodeHealth(node.metrics(), { ...options, now: startedAt + 61_000 });
      expect(silent.status).toBe(503);
      expect(silent.body).toMatchObject({ ok: false, reason: 'NETWORK_SILENT' });
      expect(String(silent.body['hint'])).toContain('61 s');
      // A heartbeat heard: the minute counts from it.
      const hb = await heartbeatPacket(await testKey(9_300), 0, Date.now());
      await peer.publish(topicOfPacketType('heartbeat'), encodePacket(hb));
      await waitFor(() => node.metrics().intake.lastOfferedAt !== null);
      const heardAt = node.metrics().intake.lastOfferedAt as number;
      expect(nodeHealth(node.metrics(), { ...options, now: heardAt + 30_000 }).status).toBe(200);
      // Alone (no peer), a node is NO_PEERS past the grace (--bootstrap or not), never NETWORK_SILENT.
      await peer.close();
      await waitFor(() => node.metrics().peers === 0);
      const alone = nodeHealth(node.metrics(), {
        ...options,
        now: heardAt + 120_000,
        peerlessSince: heardAt,
      });
      expect(alone.body).toMatchObject({ ok: false, reason: 'NO_PEERS' });
    } finally {
      await node.close();
    }
  });
});
