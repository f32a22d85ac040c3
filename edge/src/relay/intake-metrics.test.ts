/**
 * What the relay tells its operator of attacks on its P2P intake: its /metrics carries its node's intake
 * counters (the node's own series names), and its `peer banned` line a stable code and the reasons.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNetwork, topicOfPacketType } from '@synod/browser-node';
import { NodeKey } from '@synod/shared';
import { type Exposition, readExposition } from '../../../browser-node/src/cli/test-exposition.ts';
import { Metrics } from '../metrics.ts';
import type { RunningRelay } from '../runtime/bun.ts';
import { loneRelay } from '../test-relay.ts';
import { waitUntil } from '../test-servers.ts';
import { exportIntakeMetrics } from './intake-metrics.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-intake-metrics-'));
let relay: RunningRelay;
let attacker: NodeKey;
const logs: Record<string, unknown>[] = [];
/** The intake's default ban threshold: invalid messages from one peer before it is banned. */
const BAN_THRESHOLD = 64;
const SENT = BAN_THRESHOLD + 6;

async function scrape(): Promise<Exposition> {
  const r = await relay.app.request('/metrics');
  expect(r.status).toBe(200);
  const e = readExposition(await r.text());
  expect(e.problems).toEqual([]);
  return e;
}

let fresh: Exposition;

beforeAll(async () => {
  const net = new MemoryNetwork();
  attacker = await NodeKey.fromSeed(new Uint8Array(32).fill(81));
  relay = await loneRelay(
    `file:${join(dir, 'relay.db')}`,
    80,
    { waits: { peerWaitMs: 0 }, log: (entry) => logs.push(entry) },
    net,
  );
  fresh = await scrape();
  const peer = net.join(attacker.nodeId);
  for (let i = 0; i < SENT; i++) {
    await peer.publish(topicOfPacketType('heartbeat'), new TextEncoder().encode(`not a packet ${i}`));
  }
  await waitUntil(
    'every message judged',
    async () => {
      const m = relay.node.metrics().intake;
      return m.queueDepth === 0 && m.inFlight === 0 && m.offered === SENT;
    },
    10_000,
    20,
  );
}, 60_000);

afterAll(async () => {
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the relay's P2P intake, seen by its operator", () => {
  test('/metrics has the intake counters from the start at 0, every rejection reason among them', () => {
    for (const series of [
      'synod_packets_offered_total',
      'synod_packets_accepted_total',
      'synod_packets_duplicate_total',
      'synod_packets_dropped_total',
      'synod_packets_from_banned_total',
      'synod_peer_bans_total',
      'synod_packets_rejected_total{reason="PACKET_MALFORMED"}',
      'synod_packets_rejected_total{reason="PACKET_BAD_SIGNATURE"}',
      'synod_packets_rejected_total{reason="TOPIC_MISMATCH"}',
      'synod_packets_rejected_total{reason="INTERNAL"}',
      'synod_late_answers_total{outcome="sent"}',
      'synod_late_answers_total{outcome="dropped"}',
      'synod_late_answers_total{outcome="sent-to-non-member"}',
      'synod_late_answers_total{outcome="dropped-to-non-member"}',
    ]) {
      expect({ series, value: fresh.samples.get(series) }).toEqual({ series, value: 0 });
    }
    expect(fresh.types.get('synod_packets_rejected_total')).toBe('counter');
  });

  test('a flood of junk from one peer: offered, rejected by reason, the ban and what came after it', async () => {
    const e = await scrape();
    const m = relay.node.metrics().intake;
    expect(e.samples.get('synod_packets_offered_total')).toBe(SENT);
    expect(e.samples.get('synod_peer_bans_total')).toBe(1);
    expect(e.samples.get('synod_packets_accepted_total')).toBe(0);
    // What came after the ban is ignored, unread; nothing was shed (the queue held the flood).
    expect(e.samples.get('synod_packets_from_banned_total')).toBe(SENT - BAN_THRESHOLD);
    expect(m.fromBanned).toBe(SENT - BAN_THRESHOLD);
    expect(e.samples.get('synod_packets_dropped_total')).toBe(0);
    const rejected = [...e.samples]
      .filter(([s]) => s.startsWith('synod_packets_rejected_total{'))
      .reduce((n, [, v]) => n + v, 0);
    expect(rejected).toBe(m.rejectedTotal);
    expect(rejected).toBeGreaterThanOrEqual(BAN_THRESHOLD);
    for (const [reason, n] of Object.entries(m.rejected)) {
      expect(e.samples.get(`synod_packets_rejected_total{reason="${reason}"}`)).toBe(n as number);
    }
  });

  test("the `peer banned` line has the code PEER_BANNED and the peer's rejections by reason", () => {
    const banned = logs.filter((l) => l['msg'] === 'peer banned');
    expect(banned).toHaveLength(1);
    const line = banned[0] as Record<string, unknown>;
    expect(line).toMatchObject({
      level: 'warn',
      code: 'PEER_BANNED',
      transport: 'memory',
      peer: attacker.nodeId,
      invalid: BAN_THRESHOLD,
    });
    const reasons = line['rejected'] as Record<string, number>;
    expect(Object.values(reasons).reduce((a, b) => a + b, 0)).toBe(BAN_THRESHOLD);
  });
});

describe('exportIntakeMetrics', () => {
  test("a transport's invalid envelopes, by transport; one without that count adds no series", () => {
    const m = new Metrics();
    const intake = relay.node.metrics().intake;
    const waku = {
      name: 'waku-relay',
      stats: () => ({ invalidEnvelopes: 3, received: 9, gossipRecords: { seen: 7, deliveryRecords: 5 } }),
    };
    const gun = { name: 'gun' };
    exportIntakeMetrics(m, intake, [waku, gun] as never);
    const e = readExposition(m.render());
    expect(e.problems).toEqual([]);
    expect(e.samples.get('synod_invalid_envelopes_total{transport="waku-relay"}')).toBe(3);
    expect([...e.samples.keys()].filter((s) => s.includes('transport="gun"'))).toEqual([]);
    expect(e.types.get('synod_invalid_envelopes_total')).toBe('counter');
    // Its gossip records, as gauges.
    expect(e.samples.get('synod_gossip_records{kind="seen",transport="waku-relay"}')).toBe(7);
    expect(e.samples.get('synod_gossip_records{kind="deliveryRecords",transport="waku-relay"}')).toBe(5);
    expect(e.types.get('synod_gossip_records')).toBe('gauge');
  });

  test('a reason the list does not know is exported too', () => {
    const m = new Metrics();
    const intake = { ...relay.node.metrics().intake, rejected: { SOMETHING_NEW: 2 } } as never;
    exportIntakeMetrics(m, intake);
    expect(
      readExposition(m.render()).samples.get('synod_packets_rejected_total{reason="SOMETHING_NEW"}'),
    ).toBe(2);
  });
});
