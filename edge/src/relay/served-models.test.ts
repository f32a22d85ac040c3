/**
 * Which models a relay serves: its configured `--models`, plus what the nodes it has reason to trust
 * (proven or trusted for its seat policy) advertise in their heartbeats. Anyone may send a heartbeat,
 * from a fresh key that costs nothing: one advertising `gpt-9-evil` put it in `/v1/models`, and a
 * request for it was accepted (202, charged to the caller's quota) only to expire QUORUM_NOT_MET.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNetwork, type MemoryTransport, type SynodNode, topicOfPacketType } from '@synod/browser-node';
import { encodePacket, type HeartbeatBody, NodeKey, signPacket } from '@synod/shared';
import { createApiKey } from '../auth/api-keys.ts';
import type { RunningRelay } from '../runtime/bun.ts';
import { TEST_EMBEDDER } from '../store/test-admissions.ts';
import { loneRelay } from '../test-relay.ts';
import { waitUntil } from '../test-servers.ts';
import { InProcessRelayNetwork } from './in-process.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-served-models-'));
let relay: RunningRelay;
let apiKey: string;
let trusted: NodeKey;
let stranger: NodeKey;
let net: MemoryNetwork;

function heartbeat(models: string[]): HeartbeatBody {
  return {
    role: 'node',
    software: 'synod-node/test',
    models: models.map((id) => ({ id, fileHash: 'a'.repeat(64), engine: 'e', tokensPerSecond: 1 })),
    embedders: [{ ...TEST_EMBEDDER, embeddingsPerSecond: 1 }],
    capacity: { queued: 0, maxQueue: 4 },
    addresses: [],
    createdAt: Date.now(),
  };
}

async function publishHeartbeat(key: NodeKey, models: string[]): Promise<void> {
  const transport = net.join(key.nodeId) as MemoryTransport;
  const packet = await signPacket(key, 'heartbeat', heartbeat(models));
  await transport.publish(topicOfPacketType('heartbeat'), encodePacket(packet));
}

beforeAll(async () => {
  net = new MemoryNetwork();
  trusted = await NodeKey.fromSeed(new Uint8Array(32).fill(71));
  stranger = await NodeKey.fromSeed(new Uint8Array(32).fill(72));
  relay = await loneRelay(
    `file:${join(dir, 'relay.db')}`,
    70,
    { trustedNodes: [trusted.nodeId], waits: { peerWaitMs: 0 } },
    net,
  );
  const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
  await relay.store.createApiKey({ id: k.id, hash: k.hash, label: 't', quotaPerDay: 10 }, Date.now());
  apiKey = k.key;
  await publishHeartbeat(stranger, ['gpt-9-evil']);
  await publishHeartbeat(trusted, ['trusted-model']);
  await waitUntil('both heartbeats heard', async () => relay.node.knownNodes().length >= 2, 10_000, 20);
}, 60_000);

afterAll(async () => {
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const models = async (): Promise<string[]> =>
  ((await (await relay.app.request('/v1/models')).json()) as { data: { id: string }[] }).data.map(
    (m) => m.id,
  );

const submit = (model: string) =>
  relay.app.request('/v1/inference', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ prompt: 'hello', models: [model] }),
  });

describe('the models a relay serves', () => {
  test("a trusted node's models are listed; a stranger's heartbeat adds none", async () => {
    // The list is cached 1 s: wait for one made after both heartbeats.
    await waitUntil(
      'the trusted model listed',
      async () => (await models()).includes('trusted-model'),
      5_000,
    );
    const listed = await models();
    expect(listed).toContain('m');
    expect(listed).not.toContain('gpt-9-evil');
    expect((await relay.app.request('/v1/models/gpt-9-evil')).status).toBe(404);
    expect((await relay.app.request('/v1/models/trusted-model')).status).toBe(200);
  });

  test("a request for a stranger's model is refused UNKNOWN_MODEL, stores nothing and charges nothing", async () => {
    const refused = await submit('gpt-9-evil');
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('UNKNOWN_MODEL');
    expect(await relay.store.openRequests()).toHaveLength(0);
    // The next accepted request is the first charged today.
    const accepted = await submit('trusted-model');
    expect(accepted.status).toBe(202);
    expect(((await accepted.json()) as { quota: { remaining: number } }).quota.remaining).toBe(9);
  });
});

describe('InProcessRelayNetwork.servedModels', () => {
  test('follows the trust predicate: a node proven later adds its models once the cache expires', async () => {
    const a = await NodeKey.fromSeed(new Uint8Array(32).fill(73));
    const node = {
      knownNodes: () => [{ nodeId: a.nodeId, body: heartbeat(['later-model']), at: 0 }],
    } as unknown as SynodNode;
    const proven = new Set<string>();
    let now = 0;
    const network = new InProcessRelayNetwork(
      a,
      node,
      relay.store,
      () => now,
      ['m'],
      {},
      (id) => proven.has(id),
    );
    expect([...(await network.servedModels())]).toEqual(['m']);
    proven.add(a.nodeId);
    // Cached as before: the same list within the TTL.
    expect([...(await network.servedModels())]).toEqual(['m']);
    now += 1_000;
    expect([...(await network.servedModels())].sort()).toEqual(['later-model', 'm']);
  });

  test('without a trust predicate, only the configured models', async () => {
    const a = await NodeKey.fromSeed(new Uint8Array(32).fill(74));
    const node = {
      knownNodes: () => [{ nodeId: a.nodeId, body: heartbeat(['x']), at: 0 }],
    } as unknown as SynodNode;
    const network = new InProcessRelayNetwork(a, node, relay.store, () => 0, ['m']);
    expect([...(await network.servedModels())]).toEqual(['m']);
  });
});
