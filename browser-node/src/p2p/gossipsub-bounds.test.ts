import { describe, expect, test } from 'bun:test';
import { boundGossipRecords, MAX_GOSSIP_MESSAGE_IDS } from './gossipsub-bounds.ts';
import { contentTopic } from './topics.ts';
import type { ForwardVerdict } from './transport.ts';
import { createWakuRelayTransport, encodeWakuMessage, type WakuRelayTransport } from './waku-relay.ts';
import { closedAfterEach } from './waku-test-transports.ts';

const track = closedAfterEach();
const commits = contentTopic('commits');
const AT = 1_800_000_000_000;

/** Gossipsub's handling of one message from a peer (private in its types, present at run time). */
type Receive = (from: unknown, message: { topic: string; data: Uint8Array }) => Promise<void>;

/**
 * A transport subscribed to commits whose forward validator answers `verdict` (as the intake answers a
 * stale or shed commit: `ignore`), and a way to hand its gossipsub the `i`-th distinct message from a
 * peer, as if it came off the wire. Counts the messages that reached the validator.
 */
async function receiver(verdict: ForwardVerdict = 'ignore') {
  const t = track(await createWakuRelayTransport());
  t.subscribe(commits, () => undefined);
  const judged = { count: 0 };
  t.setForwardValidator(async () => {
    judged.count++;
    return verdict;
  });
  // The sending peer: another node's id (nothing is sent over a connection).
  const from = track(await createWakuRelayTransport()).node.peerId;
  const pubsub = t.node.services.pubsub as unknown as { handleReceivedMessage: Receive };
  const topic = t.pubsubTopic(commits);
  const payload = new TextEncoder().encode('{"v":1}');
  const receive = (i: number) =>
    pubsub.handleReceivedMessage(from, { topic, data: encodeWakuMessage(commits, payload, AT + i) });
  return { t, judged, receive };
}

async function flood(receive: (i: number) => Promise<void>, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i += 1_000) {
    await Promise.all(Array.from({ length: Math.min(1_000, to - i) }, (_, k) => receive(i + k)));
  }
}

const recordsOf = (t: WakuRelayTransport) => t.stats().gossipRecords;

describe("gossipsub's per-message records are bounded", () => {
  test('a flood of distinct messages the intake ignores leaves at most MAX_GOSSIP_MESSAGE_IDS seen ids and delivery records', async () => {
    const { t, judged, receive } = await receiver();
    const n = MAX_GOSSIP_MESSAGE_IDS + 5_000;
    await flood(receive, 0, n);
    expect(judged.count).toBe(n);
    // Without the bound both held every id for two minutes: n of each.
    expect(recordsOf(t)).toEqual({ seen: MAX_GOSSIP_MESSAGE_IDS, deliveryRecords: MAX_GOSSIP_MESSAGE_IDS });
    // The newest are still known: a copy of one is a duplicate, not judged again.
    await receive(n - 1);
    expect(judged.count).toBe(n);
  }, 60_000);

  test('past the bound the oldest ids go first; a late copy of one is judged again (the intake dedups it)', async () => {
    const { t, judged, receive } = await receiver();
    boundGossipRecords(t.node.services.pubsub, 8);
    await flood(receive, 0, 20);
    expect(recordsOf(t)).toEqual({ seen: 8, deliveryRecords: 8 });
    await receive(19); // among the 8 newest: a duplicate
    expect(judged.count).toBe(20);
    await receive(12); // the oldest of the 8 kept (12 to 19): still a duplicate
    expect(judged.count).toBe(20);
    await receive(0); // forgotten: judged again, and remembered as the newest
    expect(judged.count).toBe(21);
    expect(recordsOf(t)).toEqual({ seen: 8, deliveryRecords: 8 });
    await receive(0);
    expect(judged.count).toBe(21);
  });

  test('messages that hold still reach the subscribers past the bound', async () => {
    const { t, judged, receive } = await receiver('accept');
    const got: Uint8Array[] = [];
    t.subscribe(commits, (bytes) => got.push(bytes));
    boundGossipRecords(t.node.services.pubsub, 8);
    await flood(receive, 0, 50);
    expect(judged.count).toBe(50);
    expect(got).toHaveLength(50);
    expect(recordsOf(t)).toEqual({ seen: 8, deliveryRecords: 8 });
  });

  test('refuses a bound that is not a positive integer', async () => {
    const { t } = await receiver();
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => boundGossipRecords(t.node.services.pubsub, bad)).toThrow(RangeError);
    }
  });
});
