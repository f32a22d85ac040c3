/**
 * How many nodes could serve a request, as a relay tells from their heartbeats (`servingNodes`): the
 * accept path refuses a quorum larger than that (503 QUORUM_UNAVAILABLE) rather than take, charge and
 * expire the request. Nothing is said while the relay has just started (a node connected may not have
 * sent its heartbeat yet), nor when no node that could is heard (requests then wait for nodes to come).
 */
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNetwork, type MemoryTransport, topicOfPacketType } from '@synod/browser-node';
import { encodePacket, type HeartbeatBody, NodeKey, type RequestBody, signPacket } from '@synod/shared';
import { buildRequest } from '../inference-input.ts';
import { TEST_EMBEDDER } from '../store/test-admissions.ts';
import { loneRelay } from '../test-relay.ts';
import { waitUntil } from '../test-servers.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-serving-nodes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function heartbeat(
  models: string[],
  embedder = TEST_EMBEDDER.id,
  aheadMs = 0,
  capacity = { queued: 0, maxQueue: 4 },
  coordinators?: string[],
): HeartbeatBody {
  return {
    ...(coordinators ? { coordinators } : {}),
    role: 'node',
    software: 'synod-node/test',
    models: models.map((id) => ({ id, fileHash: 'a'.repeat(64), engine: 'e', tokensPerSecond: 1 })),
    embedders: [{ ...TEST_EMBEDDER, id: embedder, embeddingsPerSecond: 1 }],
    capacity,
    addresses: [],
    createdAt: Date.now() + aheadMs,
  };
}

function request(models: string[]): RequestBody {
  return buildRequest(
    { prompt: 'hello', models },
    { knownModels: new Set(['m1', 'm2', 'm3', 'm4']), defaultModels: ['m1'], embedders: [TEST_EMBEDDER] },
    Date.now(),
    (n) => crypto.getRandomValues(new Uint8Array(n)),
  ).body;
}

test('counts the nodes heard that serve one of its models with its embedder, once the relay has settled', async () => {
  const net = new MemoryNetwork();
  const relay = await loneRelay(
    `file:${join(dir, 'relay.db')}`,
    80,
    { configuredModels: ['m1', 'm2', 'm3', 'm4'], waits: { peerWaitMs: 0, servingSettleMs: 1_500 } },
    net,
  );
  try {
    const busy = { queued: 4, maxQueue: 4 };
    const none = { queued: 0, maxQueue: 0 };
    const free = { queued: 0, maxQueue: 4 };
    const other = 'ab'.repeat(32);
    const me = relay.network.coordinatorId;
    const nodes: [number, string[], string?, number?, HeartbeatBody['capacity']?, string[]?][] = [
      [81, ['m1']],
      [82, ['m1', 'm2']],
      [83, ['m2']],
      // Serves m1, with another embedder than the relay pins: it could not take part.
      [84, ['m1'], 'another-embedder'],
      // Serves m1 and m2, its clock 30 s ahead: it would skip every request as already late.
      [85, ['m1', 'm2'], TEST_EMBEDDER.id, 30_000],
      // Serves m2 with its queue full: busy, not unable (it counts).
      [86, ['m2'], TEST_EMBEDDER.id, 0, busy],
      // Serves m1 and m2 and takes no request at all (a tab whose Serve is off, a node whose state
      // file cannot be written): room for none.
      [87, ['m1', 'm2'], TEST_EMBEDDER.id, 0, none],
      // The only node that serves m4, paused.
      [88, ['m4'], TEST_EMBEDDER.id, 0, none],
      // Serves m1, for another relay only (its --coordinators): it never takes this relay's requests.
      [89, ['m1'], TEST_EMBEDDER.id, 0, free, [other]],
      // Serves m1, for this relay among others: it counts.
      [90, ['m1'], TEST_EMBEDDER.id, 0, free, [other, me]],
    ];
    for (const [seed, models, embedder, ahead, capacity, coordinators] of nodes) {
      const key = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
      const packet = await signPacket(
        key,
        'heartbeat',
        heartbeat(models, embedder, ahead, capacity, coordinators),
      );
      await (net.join(key.nodeId) as MemoryTransport).publish(
        topicOfPacketType('heartbeat'),
        encodePacket(packet),
      );
    }
    await waitUntil('the heartbeats heard', async () => relay.node.knownNodes().length >= 10, 10_000, 20);
    // Just started: nothing said yet, whatever was heard.
    expect(relay.network.servingNodes(request(['m1']))).toBeUndefined();
    await waitUntil(
      'the relay settled',
      async () => relay.network.servingNodes(request(['m1'])) !== undefined,
      10_000,
      50,
    );
    expect(relay.network.servingNodes(request(['m1']))).toBe(3);
    expect(relay.network.servingNodes(request(['m2']))).toBe(3);
    expect(relay.network.servingNodes(request(['m1', 'm2']))).toBe(5);
    // No node heard that serves it: nothing said (its requests wait for one).
    expect(relay.network.servingNodes(request(['m3']))).toBeUndefined();
    // Served only by a node that takes no request now: 0, refused (it was taken, charged and expired).
    expect(relay.network.servingNodes(request(['m4']))).toBe(0);
    // What it counts from, grouped by what the nodes serve, as a gateway publishes it to relays on
    // workerd: neither the node whose clock runs ahead nor the one serving another relay only.
    const groups = relay.network.servingGroups() ?? [];
    const byModels = (models: string[], embedder = TEST_EMBEDDER.id) =>
      groups.find((g) => g.models.join() === models.join() && g.embedders.join() === embedder);
    expect(byModels(['m1'])).toEqual({ models: ['m1'], embedders: [TEST_EMBEDDER.id], able: 2, paused: 0 });
    expect(byModels(['m1', 'm2'])).toMatchObject({ able: 1, paused: 1 });
    expect(byModels(['m2'])).toMatchObject({ able: 2, paused: 0 });
    expect(byModels(['m4'])).toMatchObject({ able: 0, paused: 1 });
    expect(byModels(['m1'], 'another-embedder')).toMatchObject({ able: 1, paused: 0 });
    expect(groups.reduce((n, g) => n + g.able + g.paused, 0)).toBe(8);
  } finally {
    await relay.stop();
  }
}, 60_000);
