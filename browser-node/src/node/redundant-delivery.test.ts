import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { deriveRequestId, NodeKey, type RequestBody, resolveFrame } from '@synod/shared';
import { GunTransport } from '../p2p/gun.ts';
import { type GunRelay, startGunRelay } from '../p2p/gun-relay.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { waitFor } from '../p2p/test-fixtures.ts';
import { contentTopic } from '../p2p/topics.ts';
import type { Transport } from '../p2p/transport.ts';
import { createHeadlessWakuRelay } from '../p2p/waku-relay-headless.ts';
import { SynodNode } from './synod-node.ts';
import { loadTestServing, type TestServing } from './test-helpers.ts';

describe('Gun as a second network beside the main one', () => {
  let gunRelay: GunRelay;
  let serving: TestServing;
  /** A quorum-1 request for the test model; `nonce` (one hex byte, repeated) tells requests apart. */
  const storyRequest = (nonce: string): RequestBody => {
    const body = {
      nonce: nonce.repeat(16),
      prompt: 'Once upon a time',
      acceptedModels: ['stories260K'],
      params: { temperature: 0, maxTokens: 16 },
      frame: resolveFrame({ embeddingModel: serving.embedder, quorum: 1, maxTimeMs: 20_000 }),
      origin: { kind: 'http' as const },
      createdAt: Date.now(),
    };
    return { ...body, requestId: deriveRequestId(body) } as RequestBody;
  };
  const closers: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    gunRelay = await startGunRelay({ host: '127.0.0.1', port: 0 });
    serving = await loadTestServing();
  });
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
    await serving.close();
    await gunRelay.close();
  });

  test('requests and verdicts travel both ways, the intake drops the copies, other packets skip Gun', async () => {
    const net = new MemoryNetwork();
    const make = async (seed: number, role: 'relay' | 'node') => {
      const key = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
      const gun = new GunTransport({ peers: [gunRelay.url] });
      const node = new SynodNode({
        key,
        role,
        transports: [net.join(key.nodeId), gun],
        ...(role === 'node' ? { serving } : {}),
      });
      await node.start();
      closers.push(async () => {
        await node.close();
        await gun.close();
      });
      return node;
    };
    const coordinator = await make(61, 'relay');
    const member = await make(62, 'node');
    const request = storyRequest('00');
    await coordinator.submit(request);
    await waitFor(
      () => member.status(request.requestId)?.verdict?.check === 'recomputed',
      30_000,
      'the member to recompute the verdict',
    );
    expect(coordinator.status(request.requestId)?.verdict?.status).toBe('accepted');
    // The request reached the member over both networks: one copy delivered, the other a duplicate.
    await waitFor(() => member.metrics().intake.duplicates >= 1, 30_000, 'the second copy of the request');
    // Commits, seals and reveals are not Gun topics: never offered to it, so no publish errors.
    expect(coordinator.metrics().publishErrors).toBe(0);
    expect(member.metrics().publishErrors).toBe(0);
    expect(member.metrics().intake.rejectedTotal).toBe(0);
  });

  test('a packet that reaches a node over Gun first goes on over Waku to the peers behind it', async () => {
    //   coordinator (Gun only) ── Gun relay ── bridge (Gun + Waku) ── Waku ── far (Waku only)
    // The far node can only hear of the request through the bridge, which must publish on Waku what
    // it accepted from Gun (a gossip transport forwards only what arrives over it).
    const requests = contentTopic('requests');
    const make = async (seed: number, transports: Transport[], followAll: boolean) => {
      const key = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
      const node = new SynodNode({ key, role: followAll ? 'follower' : 'relay', transports, followAll });
      await node.start();
      closers.push(async () => {
        await node.close();
        for (const t of transports) await t.close();
      });
      return node;
    };
    const bridgeWaku = await createHeadlessWakuRelay();
    const farWaku = await createHeadlessWakuRelay({
      bootstrap: [bridgeWaku.addresses().find((a) => !a.includes('/ws')) as string],
    });
    const coordinator = await make(71, [new GunTransport({ peers: [gunRelay.url] })], false);
    const bridge = await make(72, [new GunTransport({ peers: [gunRelay.url] }), bridgeWaku], true);
    const far = await make(73, [farWaku], true);
    await waitFor(
      () => bridgeWaku.meshPeers(requests).includes(farWaku.peerId),
      30_000,
      'the Waku mesh between the bridge and the far node',
    );
    const request = storyRequest('01');
    await coordinator.submit(request);
    await waitFor(() => far.status(request.requestId) !== null, 30_000, 'the request at the far node');
    // (the Gun relay also replays the first test's packets, still fresh, to the bridge: bridged too)
    expect(bridge.metrics().intake.bridged).toBeGreaterThanOrEqual(1);
    expect(bridge.metrics().intake.bridgeErrors).toBe(0);
    expect(far.metrics().intake.accepted).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
