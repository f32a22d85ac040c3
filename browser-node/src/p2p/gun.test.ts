import { afterEach, describe, expect, test } from 'bun:test';
import { deriveRequestId, type NodeKey, resolveFrame, signPacket } from '@synod/shared';
import { GunTransport, gunKeyOf, soulOf } from './gun.ts';
import { type GunRelay, startGunRelay } from './gun-relay.ts';
import { Intake, type IntakePacket } from './intake.ts';
import { MemoryNetwork } from './memory.ts';
import { hex64, testKey, waitFor, wire } from './test-fixtures.ts';
import { contentTopic } from './topics.ts';
import type { MessageMeta } from './transport.ts';

const requests = contentTopic('requests');
const LONG = 60_000;
const relays: GunRelay[] = [];
const clients: GunTransport[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(relays.splice(0).map((r) => r.close()));
});

async function requestPacket(key: NodeKey, n: number) {
  const content = {
    nonce: hex64(n).slice(-32),
    prompt: `What is ${n} + ${n}?`,
    acceptedModels: ['qwen2.5-0.5b-instruct'],
    params: { temperature: 0, maxTokens: 32 },
    frame: resolveFrame({ embeddingModel: { id: 'use-lite-512', fileHash: hex64(7), bits: 512 } }),
    origin: { kind: 'http' as const },
    createdAt: Date.now(),
  };
  return signPacket(key, 'request', { ...content, requestId: deriveRequestId(content) });
}

async function relayAndClients(n: number) {
  const relay = await startGunRelay();
  relays.push(relay);
  expect(relay.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/gun$/);
  const made = Array.from({ length: n }, () => new GunTransport({ peers: [relay.url] }));
  clients.push(...made);
  return { relay, clients: made };
}

describe('Gun transport', () => {
  test(
    'two clients exchange a packet through a relay on 127.0.0.1',
    async () => {
      const {
        relay,
        clients: [a, b],
      } = await relayAndClients(2);
      const atA: Uint8Array[] = [];
      const atB: Array<{ bytes: Uint8Array; meta: MessageMeta }> = [];
      a!.subscribe(requests, (bytes) => atA.push(bytes));
      b!.subscribe(requests, (bytes, meta) => atB.push({ bytes, meta }));
      await waitFor(() => relay.clients() === 2, LONG, 'both clients connected');

      const packet = await requestPacket(await testKey(), 1);
      const { bytes, id } = wire(packet);
      expect(gunKeyOf(bytes)).toBe(id);
      await a!.publish(requests, bytes);
      await waitFor(() => atB.length >= 1, LONG, 'delivery through the relay');
      expect(atB[0]!.bytes).toEqual(bytes);
      expect(atB[0]!.meta).toEqual({
        peer: `gun:${relay.url}`,
        transport: 'gun',
        topic: requests,
        attributable: false,
      });
      // the publisher does not hear its own packet
      expect(atA).toHaveLength(0);
      expect(a!.peers()).toEqual([relay.url]);
      expect(soulOf(requests)).toBe('synod:/synod/1/requests/proto');
    },
    LONG + 10_000,
  );

  test(
    'a packet sent over both Gun and another transport reaches the core once',
    async () => {
      const {
        relay,
        clients: [sender, receiver],
      } = await relayAndClients(2);
      const net = new MemoryNetwork();
      const memSender = net.join('s');
      const memReceiver = net.join('r');
      const delivered: IntakePacket[] = [];
      const intake = new Intake({ now: Date.now, deliver: (p) => void delivered.push(p) });
      intake.attach(memReceiver);
      intake.attach(receiver!, [requests, contentTopic('verdicts')]);
      await waitFor(() => relay.clients() === 2, LONG, 'both clients connected');

      const packet = await requestPacket(await testKey(), 2);
      const { bytes, id } = wire(packet);
      await sender!.publish(requests, bytes);
      await memSender.publish(requests, bytes);
      await waitFor(() => intake.metrics().offered >= 2, LONG, 'both copies offered');
      await intake.idle();
      expect(delivered.map((d) => d.id)).toEqual([id]);
      // Gun may hand the same put over more than once (a peer's echo): every extra copy is a duplicate.
      const m = intake.metrics();
      expect(m).toMatchObject({ accepted: 1, rejectedTotal: 0 });
      expect(m.duplicates).toBeGreaterThanOrEqual(1);
      expect(m.offered).toBe(m.accepted + m.duplicates);
      await intake.close();
      await memSender.close();
      await memReceiver.close();
    },
    LONG + 10_000,
  );

  test(
    'refuses topics it does not carry, and closing disconnects from the relay',
    async () => {
      const {
        relay,
        clients: [a],
      } = await relayAndClients(1);
      a!.subscribe(requests, () => {});
      await waitFor(() => relay.clients() === 1, LONG, 'connected');
      await expect(a!.publish(contentTopic('heartbeats'), new Uint8Array([1]))).rejects.toThrow(
        'does not carry',
      );
      expect(() => a!.subscribe(contentTopic('commits'), () => {})).toThrow('does not carry');
      await a!.close();
      await waitFor(() => relay.clients() === 0, LONG, 'disconnected');
      expect(a!.peers()).toEqual([]);
      await expect(a!.publish(requests, new Uint8Array([1]))).rejects.toThrow('closed');
    },
    LONG + 10_000,
  );
});
