/**
 * For the node-registry tests: a heartbeat a plain node signs (no models, room for 4 jobs), as the
 * history stores it.
 */
import { type HeartbeatBody, NodeKey, type Packet, packetId, signPacket } from '@synod/shared';
import type { Stored } from './history-store.ts';

export async function testHeartbeat(
  key: NodeKey | number,
  createdAt: number,
  body: Partial<Omit<HeartbeatBody, 'createdAt'>> = {},
): Promise<Packet<'heartbeat'>> {
  const signer = typeof key === 'number' ? await NodeKey.fromSeed(new Uint8Array(32).fill(key)) : key;
  return signPacket(signer, 'heartbeat', {
    role: 'node',
    software: 'test',
    models: [],
    embedders: [],
    capacity: { queued: 0, maxQueue: 4 },
    addresses: [],
    ...body,
    createdAt,
  });
}

/** A packet with its id, as `HistoryStore`'s record methods take it. */
export const storedHeartbeat = (packet: Packet<'heartbeat'>): Stored<'heartbeat'> => ({
  id: packetId(packet),
  packet,
});

/**
 * A heartbeat of a key made for it, as an audit's flood sent them: `software` at its 64 characters and
 * one 256-character address. `n` makes the key (distinct `n`, distinct keys; `salt` another series).
 */
export async function throwawayHeartbeat(
  n: number,
  createdAt: number,
  salt = 0,
): Promise<Stored<'heartbeat'>> {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, n);
  seed[31] = salt;
  seed[30] = 0xa5;
  const packet = await testHeartbeat(await NodeKey.fromSeed(seed), createdAt, {
    software: 's'.repeat(64),
    addresses: [`/ip4/127.0.0.1/tcp/4001/p2p/${'a'.repeat(256 - 28)}`],
  });
  return storedHeartbeat(packet);
}
