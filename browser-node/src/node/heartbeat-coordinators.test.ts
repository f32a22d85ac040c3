import { expect, test } from 'bun:test';
import { type HeartbeatBody, LIMITS, NodeKey } from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { SynodNode } from './synod-node.ts';

/** What a node's heartbeat says of the coordinators it serves (`--coordinators`, a tab's relay). */
async function heartbeatWith(coordinators: string[] | undefined): Promise<HeartbeatBody> {
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(191));
  const bodies: HeartbeatBody[] = [];
  const node = new SynodNode({
    key,
    role: 'follower',
    transports: [new MemoryNetwork().join(key.nodeId)],
    heartbeat: {
      intervalMs: 3_600_000,
      software: 'test',
      addresses: [],
      tokensPerSecond: 0,
      embeddingsPerSecond: 0,
      engine: 'none',
      ...(coordinators === undefined ? {} : { coordinators }),
    },
    onPacket: ({ packet }) => {
      if (packet.type === 'heartbeat') bodies.push(packet.body);
    },
  });
  await node.start();
  try {
    await node.publishHeartbeat();
    const body = bodies.at(-1);
    if (body === undefined) throw new Error('no heartbeat');
    return body;
  } finally {
    await node.close();
  }
}

test('a node that serves some coordinators only names them in its heartbeat; one that serves any names none', async () => {
  const ids = ['aa'.repeat(32), 'bb'.repeat(32)];
  expect((await heartbeatWith(ids)).coordinators).toEqual(ids);
  expect('coordinators' in (await heartbeatWith([]))).toBe(false);
  expect('coordinators' in (await heartbeatWith(undefined))).toBe(false);
  // More than a heartbeat may carry: none named, so relays count the node for all (as before).
  const many = Array.from({ length: LIMITS.maxHeartbeatCoordinators + 1 }, (_, i) =>
    i.toString(16).padStart(64, '0'),
  );
  expect('coordinators' in (await heartbeatWith(many))).toBe(false);
});
