/**
 * For the node-registry tests: a heartbeat a plain node signs (no models, room for 4 jobs), as the
 * history stores it.
 */
import { NodeKey, type Packet, packetId, signPacket } from '@synod/shared';
import type { Stored } from './history-store.ts';

export async function testHeartbeat(key: NodeKey | number, createdAt: number): Promise<Packet<'heartbeat'>> {
  const signer = typeof key === 'number' ? await NodeKey.fromSeed(new Uint8Array(32).fill(key)) : key;
  return signPacket(signer, 'heartbeat', {
    role: 'node',
    software: 'test',
    models: [],
    embedders: [],
    capacity: { queued: 0, maxQueue: 4 },
    addresses: [],
    createdAt,
  });
}

/** A packet with its id, as `HistoryStore`'s record methods take it. */
export const storedHeartbeat = (packet: Packet<'heartbeat'>): Stored<'heartbeat'> => ({
  id: packetId(packet),
  packet,
});
