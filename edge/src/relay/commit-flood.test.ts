/**
 * A peer floods the network with commits from fresh keys the moment a request appears, before the
 * nodes that will be sealed have answered (each key signs two different commitments: the history keeps
 * both as evidence). The history bounds the commits it takes before a seal (as a node's observer does),
 * so the flood fills that room and the honest commits find none; the coordinator (the relay's node, which
 * trusts the test's nodes, so fresh keys take at most one seat whatever order the flood arrives in)
 * seals the honest nodes all the same, and the history takes the seal with the commits its machine
 * holds: the request gets its verdict, and the relay a transcript that holds.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { topicOfPacketType } from '@synod/browser-node';
import {
  encodePacket,
  MAX_OPEN_COMMITS,
  NodeKey,
  type Packet,
  parseEnvelope,
  signPacket,
} from '@synod/shared';
import { startTestNetwork, submitPrompt, type TestNetwork, waitForStatus } from '../test-helpers.ts';
import { waitUntil } from '../test-servers.ts';

describe('a flood of commits from fresh keys before the nodes commit', () => {
  let t: TestNetwork;
  beforeAll(async () => {
    t = await startTestNetwork({ trustNodes: true });
    await waitUntil('the relay heard its nodes', async () => t.relay.node.knownNodes().length >= 3);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  test('fills the history bound, and the request still gets its verdict and a transcript that holds', async () => {
    const attacker = t.network.join('attacker');
    const keys = await Promise.all(
      Array.from({ length: MAX_OPEN_COMMITS / 2 }, (_, i) => {
        const seed = new Uint8Array(32).fill(211);
        seed[0] = i & 0xff;
        seed[1] = i >> 8;
        return NodeKey.fromSeed(seed);
      }),
    );
    // Signed as soon as the request shows up, and published in one burst.
    let flooded: Promise<void> | undefined;
    attacker.subscribe(topicOfPacketType('request'), (bytes) => {
      flooded ??= (async () => {
        const request = parseEnvelope(JSON.parse(new TextDecoder().decode(bytes))) as Packet<'request'>;
        const commits = await Promise.all(
          keys.flatMap((k, i) =>
            [2 * i, 2 * i + 1].map((n) =>
              signPacket(k, 'commit', {
                requestId: request.body.requestId,
                commitment: n.toString(16).padStart(64, 'f'),
                createdAt: request.body.createdAt + 1,
              }),
            ),
          ),
        );
        for (const c of commits) await attacker.publish(topicOfPacketType('commit'), encodePacket(c));
      })();
    });
    const requestId = await submitPrompt(t);
    await waitForStatus(t, requestId, 'verdict');
    await flooded;
    // The flood took the room before the seal: the history holds no more commits than that bound and
    // the seal's members' (brought by the seal where the flood had left them no room).
    const held = await t.relay.store.getRequest(requestId);
    expect(held?.commits.length).toBeLessThanOrEqual(MAX_OPEN_COMMITS + 3);
    // At most one of the fresh keys was sealed (the seat left to nodes without a record).
    const sealed = held?.seal?.packet.body.members.map((m) => m.nodeId) ?? [];
    expect(sealed.filter((id) => keys.some((k) => k.nodeId === id)).length).toBeLessThanOrEqual(1);
    expect(held?.commits.filter((c) => keys.some((k) => k.nodeId === c.packet.from)).length).toBeGreaterThan(
      MAX_OPEN_COMMITS - 3,
    );
    const members = held?.seal?.packet.body.members.map((m) => m.commitId) ?? [];
    expect(members).toHaveLength(3);
    for (const id of members) expect(held?.commits.map((c) => c.id)).toContain(id);
    const verified = await fetch(`${t.relay.url}/v1/verify/${requestId}`);
    expect(verified.status).toBe(200);
    expect(((await verified.json()) as { ok: boolean }).ok).toBe(true);
  }, 120_000);
});
