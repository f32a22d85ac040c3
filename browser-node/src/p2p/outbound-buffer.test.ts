/**
 * A peer that stops reading: gossipsub queues what it sends that peer in memory, and past
 * MAX_OUTBOUND_BUFFER_BYTES drops it instead (without the bound the queue grew with every message for as
 * long as the peer stalled). Real TCP connections between two headless relays.
 */
import { expect, test } from 'bun:test';
import { waitFor } from './test-fixtures.ts';
import { contentTopic } from './topics.ts';
import { MAX_OUTBOUND_BUFFER_BYTES, MAX_WAKU_MESSAGE_BYTES } from './waku-relay.ts';
import { createHeadlessWakuRelay } from './waku-relay-headless.ts';
import { addressOf, closedAfterEach } from './waku-test-transports.ts';

const commits = contentTopic('commits');
const track = closedAfterEach();

/** Gossipsub's private parts used here (present at run time in version 14). */
interface GossipsubInternals {
  opts: { awaitRpcHandler: boolean; maxOutboundBufferSize?: number };
  handleReceivedRpc: (...args: unknown[]) => Promise<void>;
  streamsOutbound: Map<string, { pushable: { readableLength: number } }>;
}

test('what is queued for a peer that stopped reading stays within MAX_OUTBOUND_BUFFER_BYTES; the others still get every message', async () => {
  const hub = track(await createHeadlessWakuRelay());
  const stalled = track(await createHeadlessWakuRelay({ bootstrap: [addressOf(hub, false)] }));
  const reader = track(await createHeadlessWakuRelay({ bootstrap: [addressOf(hub, false)] }));
  stalled.subscribe(commits, () => undefined);
  let read = 0;
  reader.subscribe(commits, () => read++);
  hub.subscribe(commits, () => undefined);
  await waitFor(() => hub.meshPeers(commits).length === 2, 60_000, 'the mesh');

  // The stalled peer reads one more RPC and then never another: its read loop waits on it for good.
  const inner = stalled.node.services.pubsub as unknown as GossipsubInternals;
  inner.opts.awaitRpcHandler = true;
  inner.handleReceivedRpc = () => new Promise<void>(() => undefined);

  const hubSub = hub.node.services.pubsub as unknown as GossipsubInternals;
  expect(hubSub.opts.maxOutboundBufferSize).toBe(MAX_OUTBOUND_BUFFER_BYTES);
  const queued = () => hubSub.streamsOutbound.get(stalled.peerId)?.pushable.readableLength ?? 0;
  const size = MAX_WAKU_MESSAGE_BYTES - 4096;
  const count = Math.ceil((2 * MAX_OUTBOUND_BUFFER_BYTES) / size) + 16;
  let most = 0;
  for (let i = 0; i < count; i++) {
    const payload = new Uint8Array(size).fill(i % 251);
    payload[0] = i & 0xff;
    payload[1] = i >> 8;
    await hub.publish(commits, payload);
    most = Math.max(most, queued());
    // Let the connections move what they can.
    if (i % 8 === 7) await new Promise((r) => setTimeout(r, 5));
  }
  // Twice the bound was sent its way; the queue held at most the bound and the message that crossed it.
  expect(most).toBeGreaterThan(MAX_OUTBOUND_BUFFER_BYTES / 2);
  expect(most).toBeLessThanOrEqual(MAX_OUTBOUND_BUFFER_BYTES + MAX_WAKU_MESSAGE_BYTES + 64);
  // The peer that reads got every one of them.
  await waitFor(() => read === count, 60_000, 'delivery to the reading peer');
}, 150_000);
