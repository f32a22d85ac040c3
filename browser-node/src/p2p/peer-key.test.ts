import { describe, expect, test } from 'bun:test';
import { NodeKey } from '@synod/shared';
import { libp2pKeyFor } from './peer-key.ts';
import { createHeadlessWakuRelay } from './waku-relay-headless.ts';

describe('libp2pKeyFor', () => {
  test('one node key, one peer id, at every start; another key, another; never the node key itself', async () => {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(5));
    const a = await libp2pKeyFor(key);
    const b = await libp2pKeyFor(await NodeKey.fromSeed(new Uint8Array(32).fill(5)));
    const other = await libp2pKeyFor(await NodeKey.fromSeed(new Uint8Array(32).fill(6)));
    const hex = (k: typeof a) => Buffer.from(k.publicKey.raw).toString('hex');
    expect(hex(a)).toBe(hex(b));
    expect(hex(a)).not.toBe(hex(other));
    // The libp2p key is derived, not the Synod signing key.
    expect(hex(a)).not.toBe(key.nodeId);
  });

  test('a relay restarted with the same identity listens under the same peer id', async () => {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(7));
    const first = await createHeadlessWakuRelay({ privateKey: await libp2pKeyFor(key) });
    const id = first.peerId;
    await first.close();
    const second = await createHeadlessWakuRelay({ privateKey: await libp2pKeyFor(key) });
    try {
      expect(second.peerId).toBe(id);
      expect(second.addresses().every((a) => a.endsWith(`/p2p/${id}`))).toBe(true);
    } finally {
      await second.close();
    }
  });
});
