import { describe, expect, test } from 'bun:test';
import { encodePacket, NodeKey } from '@synod/shared';
import { SynodNode } from '../node/synod-node.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { heartbeatPacket, testKey, waitFor } from '../p2p/test-fixtures.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { renderNodeMetrics } from './metrics-text.ts';
import { countersGoneDown, readExposition } from './test-exposition.ts';

/** What breaks the text format's rules in an exposition (none: an empty list). */
const expositionProblems = (text: string) => readExposition(text).problems;

async function startNode(seed: number, net: MemoryNetwork): Promise<SynodNode> {
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
  const node = new SynodNode({ key, role: 'follower', transports: [net.join(key.nodeId)] });
  await node.start();
  return node;
}

describe('/metrics of a headless node (Prometheus text)', () => {
  test('every known reason, packet type and lifecycle code is a series from the start, at 0', async () => {
    // A series born at its first increment hides that increment from increase() and rate(), so an alert
    // on the first burst of stale packets would never fire.
    const net = new MemoryNetwork();
    const node = await startNode(180, net);
    const peer = net.join('peer');
    try {
      const fresh = renderNodeMetrics(node.metrics());
      expect(expositionProblems(fresh)).toEqual([]);
      expect(fresh).toMatch(/^synod_packets_rejected_total\{reason="PACKET_STALE"\} 0$/m);
      expect(fresh).toMatch(/^synod_packets_rejected_total\{reason="TOPIC_MISMATCH"\} 0$/m);
      // No series for what no packet can be rejected with (opening a sealed key file).
      expect(fresh).not.toContain('reason="KEY_WRONG_PASSPHRASE"');
      expect(fresh).not.toContain('reason="KEYSTORE_MALFORMED"');
      expect(fresh).toMatch(/^synod_packets_published_total\{type="commit"\} 0$/m);
      expect(fresh).toMatch(/^synod_lifecycle_rejected_total\{code="NOT_ELIGIBLE"\} 0$/m);
      expect(fresh).toMatch(/^synod_lifecycle_rejected_total\{code="REEMBED_CLAIM_FALSE"\} 0$/m);
      expect(fresh).toMatch(/^synod_reembed_claim_checks_total\{outcome="false"\} 0$/m);
      // A heartbeat ten minutes old is refused as stale: its series counts it, once.
      const stale = await heartbeatPacket(await testKey(9_200), 0, Date.now() - 10 * 60_000);
      await peer.publish(topicOfPacketType('heartbeat'), encodePacket(stale));
      await waitFor(() => node.metrics().intake.rejectedTotal === 1);
      const after = renderNodeMetrics(node.metrics());
      expect(expositionProblems(after)).toEqual([]);
      expect(after).toMatch(/^synod_packets_rejected_total\{reason="PACKET_STALE"\} 1$/m);
      expect(countersGoneDown(readExposition(fresh), readExposition(after))).toEqual([]);
    } finally {
      await node.close();
      await peer.close();
    }
  });

  test('requests expired and skipped, failed publications, re-announced packets, the queue bound and the peers behind the clock offset are exported', async () => {
    const net = new MemoryNetwork();
    const node = await startNode(181, net);
    try {
      const m = node.metrics();
      const text = renderNodeMetrics({
        ...m,
        expired: 4,
        skipped: { 'no-capacity': 7 },
        publishErrors: 2,
        reannounced: { byType: { reveal: 3 }, byReason: { 'peer-joined': 3 } },
        queue: { queued: 3, maxQueue: 8, running: true },
        clock: { offsetMs: 12, peers: 5 },
      });
      expect(expositionProblems(text)).toEqual([]);
      expect(text).toMatch(/^synod_requests_expired_total 4$/m);
      expect(text).toMatch(/^synod_requests_skipped_total\{reason="no-capacity"\} 7$/m);
      expect(text).toMatch(/^synod_requests_skipped_total\{reason="cannot-meet-deadline"\} 0$/m);
      expect(text).toMatch(/^synod_publish_errors_total 2$/m);
      expect(text).toMatch(/^synod_packets_reannounced_total\{type="reveal"\} 3$/m);
      expect(text).toMatch(/^synod_packets_reannounced_total\{type="seal"\} 0$/m);
      expect(text).toMatch(/^synod_queue_depth 3$/m);
      expect(text).toMatch(/^synod_queue_capacity 8$/m);
      expect(text).toMatch(/^synod_clock_peers 5$/m);
      // A follower has no inference queue: its bound is 0, as its depth.
      expect(renderNodeMetrics(m)).toMatch(/^synod_queue_capacity 0$/m);
    } finally {
      await node.close();
    }
  });
});
