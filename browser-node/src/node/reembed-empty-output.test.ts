import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { NodeKey, toHex, type VerdictEffect } from '@synod/shared';
import { UseLiteEmbedder } from '../inference/use-lite.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { SynodNode } from './synod-node.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const HONEST = 'Once upon a time, there was a little cat named Tom.';
const MODEL = { id: 'm', fileHash: '22'.repeat(32) };
const FRAME = { quorum: 3, maxCommits: 3, maxTimeMs: 10_000, revealWindowMs: 5_000 };

/** A test double of the inference queue answering `text` with the bits `bits` (the real text's or not). */
function answering(text: string, bits: Uint8Array) {
  return {
    accepting: true,
    running: false,
    capacity: { queued: 0, maxQueue: 4 },
    estimateMs: () => 1,
    submit: async () => ({
      text,
      tokens: 2,
      tokensPerSecond: 100,
      bEmbedding: bits,
      finishReason: 'stop' as const,
      startedAt: Date.now(),
      finishedAt: Date.now(),
    }),
  };
}

// The audit's empty answer: a seated member revealed "" with the honest members' bits. USE Lite had no
// embedding of an empty text, the relay's re-embedding failed, and the reveal counted with the bits it
// claimed: "" was accepted, won the (ground) tie-break, and was served and attested.
describe('a relay re-embedding with the real USE Lite, against an empty answer with honest bits', () => {
  const use = new UseLiteEmbedder();
  beforeAll(async () => {
    await use.load();
  }, 60_000);
  afterAll(async () => {
    await use.unload();
  });

  test('the empty reveal is rejected EMBEDDING_DISAGREES (its bits are all 0), and the honest text wins', async () => {
    const embedder = use.ref;
    const honestBits = await use.embedBits(HONEST);
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(120));
    const keys = await Promise.all([1, 2, 3].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(120 + i))));
    const verdicts: VerdictEffect[] = [];
    const logs: Record<string, unknown>[] = [];
    const relay = new SynodNode({
      key: relayKey,
      role: 'relay',
      transports: [net.join(relayKey.nodeId)],
      store: new MemoryMachineStore(),
      onVerdict: (_id, v) => verdicts.push(v),
      log: (l) => logs.push(l),
      reembed: { embedder, embed: (text) => use.embedBits(text) },
    });
    const members = keys.map(
      (key, i) =>
        new SynodNode({
          key,
          role: 'node',
          transports: [net.join(key.nodeId)],
          store: new MemoryMachineStore(),
          lingerMs: 50,
          serving: {
            queue: (i === 2 ? answering('', honestBits) : answering(HONEST, honestBits)) as never,
            models: [MODEL],
            embedder,
          },
        }),
    );
    const attacker = (keys[2] as NodeKey).nodeId;
    try {
      await relay.start();
      for (const m of members) await m.start();
      await relay.submit(testRequest({ embedder, nonce: 0x7e, frame: FRAME }));
      await until(() => verdicts.length === 1, 20_000);
    } finally {
      await Promise.all([relay, ...members].map((n) => n.close()));
    }
    const v = (verdicts[0] as VerdictEffect).verdict;
    expect(v.status).toBe('accepted');
    expect(v.accepted.map((a) => a.nodeId)).not.toContain(attacker);
    expect(v.rejected).toEqual([
      expect.objectContaining({ nodeId: attacker, reason: 'EMBEDDING_DISAGREES' }),
    ]);
    expect(v.reembedded).toEqual([expect.objectContaining({ nodeId: attacker, bits: '00'.repeat(64) })]);
    expect(v.winner?.output).toBe(HONEST);
    expect(v.winner?.nodeId).not.toBe(attacker);
    // Nothing failed on the way: the empty text has an embedding now.
    expect(relay.metrics().reembed).toMatchObject({ failed: 0 });
    expect(logs.filter((l) => l['code'] === 'REEMBED_FAILED')).toEqual([]);
    expect(toHex(honestBits)).not.toBe('00'.repeat(64));
  }, 60_000);
});
