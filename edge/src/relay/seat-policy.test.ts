/**
 * Keys cost nothing: a party that commits with fresh keys the moment a request appears would, if the
 * coordinator sealed whoever commits first, hold every seat of the quorum and decide its answer. With
 * proven nodes online (a reputation from this relay's verdicts, heartbeats within a minute), the relay's
 * coordinator leaves nodes without a record fewer seats than a verdict needs: the request is answered by
 * the proven nodes. A real relay with three serving nodes (stories260K + USE Lite) on a memory network.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { topicOfPacketType } from '@synod/browser-node';
import {
  encodePacket,
  NodeKey,
  type Packet,
  packetId,
  parseEnvelope,
  type RequestBody,
  signPacket,
} from '@synod/shared';
import { reputation } from '@synod/shared/history';
import { startTestNetwork, submitPrompt, type TestNetwork, waitForStatus } from '../test-helpers.ts';
import { waitUntil } from '../test-servers.ts';

describe('the relay coordinator with proven nodes online', () => {
  let t: TestNetwork;
  beforeAll(async () => {
    t = await startTestNetwork();
    // The three nodes have a record here (ten agreements each, vouched for by each other), and are
    // heard from.
    for (const n of t.nodes) {
      await t.relay.store.db.insert(reputation).values({
        nodeId: n.nodeId,
        agreements: 10,
        vouched: 10,
        score: 0.72,
        updatedAt: Date.now(),
      });
    }
    await t.relay.seats.refresh();
    for (const n of t.nodes) await n.publishHeartbeat();
    await waitUntil('the relay heard the nodes', async () => t.relay.node.knownNodes().length >= 3);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  /**
   * Submit a prompt, and commit for it with each of `keys`, in that order, the moment its request is
   * seen (before any node has run the model); resolves with the request id once it has a verdict.
   */
  async function promptWithCommitsFirst(peer: string, keys: readonly NodeKey[]): Promise<string> {
    const attacker = t.network.join(peer);
    let flooded: Promise<void> | undefined;
    attacker.subscribe(topicOfPacketType('request'), (bytes) => {
      flooded ??= (async () => {
        const request = parseEnvelope(JSON.parse(new TextDecoder().decode(bytes))) as Packet<'request'>;
        for (const [i, k] of keys.entries()) {
          const commit = await signPacket(k, 'commit', {
            requestId: request.body.requestId,
            commitment: String(i).repeat(64),
            createdAt: request.body.createdAt + 1,
          });
          await attacker.publish(topicOfPacketType('commit'), encodePacket(commit));
        }
      })();
    });
    const requestId = await submitPrompt(t);
    await waitForStatus(t, requestId, 'verdict');
    await flooded;
    return requestId;
  }

  test('fresh keys that commit first take at most the seats a verdict cannot be reached with', async () => {
    const keys = await Promise.all([1, 2, 3].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(220 + i))));
    const requestId = await promptWithCommitsFirst('attacker', keys);
    const held = await t.relay.store.getRequest(requestId);
    const members = held?.seal?.packet.body.members.map((m) => m.nodeId) ?? [];
    const attackers = new Set(keys.map((k) => k.nodeId));
    // quorum 3 at 0.6: a verdict needs 2 agreeing; nodes without a record get at most 1 seat.
    expect(members.filter((m) => attackers.has(m)).length).toBeLessThanOrEqual(1);
    const winner = held?.verdict?.packet.body.verdict.winner?.nodeId ?? 'none';
    expect(t.nodes.map((n) => n.nodeId)).toContain(winner);
  }, 120_000);

  test('committing first wins no seat: a node with a vouched agreement takes it from fresh keys that came before', async () => {
    // A newcomer one vouched agreement into its record; the fresh keys' commits all come before its own.
    const newcomer = await NodeKey.fromSeed(new Uint8Array(32).fill(230));
    await t.relay.store.db.insert(reputation).values({
      nodeId: newcomer.nodeId,
      agreements: 1,
      vouched: 1,
      score: 0.2,
      updatedAt: Date.now(),
    });
    await t.relay.seats.refresh();
    expect(t.relay.seats.standing(newcomer.nodeId)).toBe(1);
    const keys = await Promise.all([1, 2, 3].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(240 + i))));
    const requestId = await promptWithCommitsFirst('attacker-2', [...keys, newcomer]);
    const held = await t.relay.store.getRequest(requestId);
    const members = held?.seal?.packet.body.members.map((m) => m.nodeId) ?? [];
    expect(members).toContain(newcomer.nodeId);
    expect(members.filter((m) => keys.some((k) => k.nodeId === m))).toEqual([]);
  }, 120_000);

  test('fresh keys that decline a request the moment it appears cannot end it: it is answered', async () => {
    const keys = await Promise.all(
      [1, 2, 3, 4].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(200 + i))),
    );
    const attacker = t.network.join('decliner');
    let declined: Promise<void> | undefined;
    attacker.subscribe(topicOfPacketType('request'), (bytes) => {
      declined ??= (async () => {
        const request = parseEnvelope(JSON.parse(new TextDecoder().decode(bytes))) as Packet<'request'>;
        for (const k of keys) {
          const decline = await signPacket(k, 'decline', {
            requestId: request.body.requestId,
            requestPacketId: packetId(request),
            model: { id: request.body.acceptedModels[0] as string, fileHash: 'ab'.repeat(32) },
            reason: 'context-exceeded',
            promptTokens: 9_999,
            contextTokens: 512,
            createdAt: request.body.createdAt + 1,
          });
          await attacker.publish(topicOfPacketType('decline'), encodePacket(decline));
        }
      })();
    });
    const requestId = await submitPrompt(t);
    await waitForStatus(t, requestId, 'verdict');
    await declined;
    // Their declines are stored (and shown), and counted as no more than the seats such keys may take.
    const view = (await (await fetch(`${t.relay.url}/v1/inference/${requestId}`)).json()) as {
      declines: { nodeId: string }[];
    };
    expect(view.declines.map((d) => d.nodeId).sort()).toEqual(keys.map((k) => k.nodeId).sort());
  }, 120_000);

  test("a prompt longer than the model's context is declined by the proven nodes: DECLINED at once (and charged, as sent out)", async () => {
    const ask = async (prompt: string) => {
      const r = await fetch(`${t.relay.url}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` },
        body: JSON.stringify({ prompt, params: { maxTokens: 4 }, frame: { maxTimeMs: 60_000 } }),
      });
      expect(r.status).toBe(202);
      return (await r.json()) as { requestId: string; quota: { remaining: number } };
    };
    const started = Date.now();
    const long = await ask('Once upon a time, there was a little girl who liked to play. '.repeat(300));
    await waitForStatus(t, long.requestId, 'expired');
    expect(Date.now() - started).toBeLessThan(30_000);
    const view = (await (await fetch(`${t.relay.url}/v1/inference/${long.requestId}`)).json()) as {
      error: string;
      declines: { nodeId: string; promptTokens: number; contextTokens: number }[];
    };
    expect(view.error).toBe('DECLINED');
    expect(view.declines.map((d) => d.nodeId).sort()).toEqual(t.nodes.map((n) => n.nodeId).sort());
    for (const d of view.declines) expect(d.promptTokens).toBeGreaterThanOrEqual(d.contextTokens);
    // Charged as any request sent out (the relay stored it and the nodes read it): a flood of prompts
    // that are declined is bounded by the quota as any other.
    const next = await ask('Once upon a time');
    expect(next.quota.remaining).toBe(long.quota.remaining - 1);
  }, 120_000);

  test('a flood of heartbeats from fresh keys does not make the proven nodes look offline', async () => {
    // The relay's node keeps the last 10,000 nodes heard from; heartbeats cost nothing to sign, and
    // 10,000 of them from fresh keys pushed every proven node out of that list: the cap stopped
    // applying, and fresh keys could take every seat again.
    const [first] = t.relay.node.knownNodes().filter((n) => n.nodeId === t.nodes[0]?.nodeId);
    if (!first) throw new Error('the relay has not heard the first node');
    const request = {
      acceptedModels: first.body.models.map((m) => m.id),
      frame: { quorum: 3, embeddingModel: { id: first.body.embedders[0]?.id } },
    } as unknown as RequestBody;
    expect(t.relay.seats.applies(request)).toBe(true);
    const flooder = t.network.join('flooder');
    const heard = () => new Set(t.relay.node.knownNodes().map((n) => n.nodeId));
    const total = 10_200;
    for (let start = 0; start < total; start += 200) {
      const batch: string[] = [];
      for (let i = start; i < Math.min(total, start + 200); i++) {
        const seed = new Uint8Array(32);
        new DataView(seed.buffer).setUint32(0, 0x5eed0000 + i);
        const key = await NodeKey.fromSeed(seed);
        const hb = await signPacket(key, 'heartbeat', {
          ...first.body,
          models: [],
          embedders: [],
          createdAt: Date.now(),
        });
        batch.push(key.nodeId);
        await flooder.publish(topicOfPacketType('heartbeat'), encodePacket(hb));
      }
      await waitUntil('the relay took the batch', async () => {
        const ids = heard();
        return batch.every((id) => ids.has(id));
      });
    }
    expect(t.relay.seats.applies(request)).toBe(true);
  }, 180_000);
});
