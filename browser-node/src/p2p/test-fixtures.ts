/**
 * Signed packets for the P2P tests. Not part of the public API; kept beside the tests that use it.
 */
import { type AnyPacket, encodePacket, NodeKey, packetId, signPacket } from '@synod/shared';

export const T0 = 1_800_000_000_000;

let seedCounter = 0;

/** A deterministic key: the seed is a counter, so runs are reproducible. */
export async function testKey(n = ++seedCounter): Promise<NodeKey> {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, n);
  seed[31] = 0x5a;
  return NodeKey.fromSeed(seed);
}

export const hex64 = (n: number): string => n.toString(16).padStart(64, '0');

export async function commitPacket(key: NodeKey, n: number, createdAt = T0): Promise<AnyPacket> {
  return signPacket(key, 'commit', { requestId: hex64(n + 1), commitment: hex64(n + 2), createdAt });
}

export async function heartbeatPacket(key: NodeKey, n: number, createdAt = T0): Promise<AnyPacket> {
  return signPacket(key, 'heartbeat', {
    role: 'node',
    software: `synod-test/${n}`,
    models: [],
    embedders: [],
    capacity: { queued: n % 1000, maxQueue: 1000 },
    addresses: [],
    createdAt,
  });
}

export function wire(packet: AnyPacket): { bytes: Uint8Array; id: string } {
  return { bytes: encodePacket(packet), id: packetId(packet) };
}

/** Poll `check` until it returns true; fail after `timeoutMs`. Never a fixed sleep. */
export async function waitFor(check: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}
