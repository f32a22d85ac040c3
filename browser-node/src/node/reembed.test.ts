import { describe, expect, test } from 'bun:test';
import { encodePacket, NodeKey, signPacket, type VerdictEffect } from '@synod/shared';
import { MemoryNetwork, type MemoryTransport } from '../p2p/memory.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { type ReembedConfig, SynodNode } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const SCAM = 'The answer is: send your funds to 0xdeadbeef.';
const FRAME = { quorum: 3, maxCommits: 3, maxTimeMs: 10_000, revealWindowMs: 5_000 };

/** The relay's embedder: `output N` (what fixedQueue answers) is N in every byte; anything else 0xf0. */
function fakeReembed(calls: string[]): ReembedConfig {
  return {
    embedder,
    embed: async (text) => {
      calls.push(text);
      const n = /^output (\d+)$/.exec(text);
      return new Uint8Array(64).fill(n ? Number(n[1]) : 0xf0);
    },
  };
}

/** A member that answers its own text with the bits honest members give (fixedQueue's first: all 1s). */
function copierQueue() {
  const honest = fixedQueue();
  return {
    ...honest,
    submit: async (...args: Parameters<typeof honest.submit>) => ({
      ...(await honest.submit(...args)),
      text: SCAM,
    }),
  };
}

/** At the relay's seal: what a test sends meanwhile, as any peer of the network (`net`), signed by `keys`. */
type AtSeal = (o: { net: MemoryNetwork; keys: NodeKey[]; requestId: string }) => Promise<void>;

async function run(
  seed: number,
  reembed: ReembedConfig | undefined,
  nonce: number,
  extra: { atSeal?: AtSeal; logs?: Record<string, unknown>[] } = {},
) {
  const net = new MemoryNetwork();
  const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
  const keys = await Promise.all([1, 2, 3].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(seed + i))));
  const verdicts: VerdictEffect[] = [];
  const relay = new SynodNode({
    key: relayKey,
    role: 'relay',
    transports: [net.join(relayKey.nodeId)],
    store: new MemoryMachineStore(),
    onVerdict: (_id, v) => verdicts.push(v),
    ...(reembed ? { reembed } : {}),
    ...(extra.logs ? { log: (l: Record<string, unknown>) => extra.logs?.push(l) } : {}),
    onPacket: ({ packet, own }) => {
      if (own && packet.type === 'seal' && extra.atSeal) {
        void extra.atSeal({ net, keys, requestId: packet.body.requestId });
      }
    },
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
          queue: (i === 2 ? copierQueue() : fixedQueue()) as never,
          models: [{ id: 'm', fileHash: '22'.repeat(32) }],
          embedder,
        },
      }),
  );
  try {
    await relay.start();
    for (const m of members) await m.start();
    await relay.submit(testRequest({ embedder, nonce, frame: FRAME }));
    await until(() => verdicts.length === 1, 15_000);
    return { verdict: verdicts[0] as VerdictEffect, attacker: (keys[2] as NodeKey).nodeId, relay };
  } finally {
    await Promise.all([relay, ...members].map((n) => n.close()));
  }
}

describe('SynodNode: a relay that re-embeds the reveals it coordinates', () => {
  test('without an embedder, a member that revealed the honest bits with its own text is accepted', async () => {
    const { verdict, attacker } = await run(200, undefined, 0x71);
    expect(verdict.verdict.accepted.map((a) => a.nodeId)).toContain(attacker);
    expect(verdict.verdict.reembedded).toBeUndefined();
  }, 30_000);

  test('with one, it is rejected EMBEDDING_DISAGREES and the honest text wins', async () => {
    const calls: string[] = [];
    const { verdict, attacker, relay } = await run(210, fakeReembed(calls), 0x72);
    const v = verdict.verdict;
    expect(v.status).toBe('accepted');
    expect(v.accepted).toHaveLength(2);
    expect(v.rejected).toEqual([
      expect.objectContaining({ nodeId: attacker, reason: 'EMBEDDING_DISAGREES' }),
    ]);
    expect(v.winner?.output).toBe('output 1');
    expect(v.reembedded).toEqual([expect.objectContaining({ nodeId: attacker, bits: 'f0'.repeat(64) })]);
    // Each text once: the honest members' one text, and the copier's.
    expect([...calls].sort()).toEqual(['output 1', SCAM].sort());
    expect(relay.metrics().reembed).toMatchObject({ embedded: 2, failed: 0 });
  }, 30_000);

  test("a seated member's flood of reveals that do not open its commitment costs no embedding", async () => {
    const calls: string[] = [];
    const atSeal: AtSeal = async ({ net, keys, requestId }) => {
      const copier = keys[2] as NodeKey;
      const t = net.join('flooder');
      for (let i = 0; i < 40; i++) {
        const reveal = await signPacket(copier, 'reveal', {
          requestId,
          model: { id: 'm', fileHash: '22'.repeat(32) },
          output: `junk ${i} ${'x'.repeat(2_000)}`,
          bEmbedding: '01'.repeat(64),
          salt: '02'.repeat(32),
          createdAt: Date.now(),
        });
        await t.publish(topicOfPacketType('reveal'), encodePacket(reveal));
      }
    };
    const { verdict, attacker } = await run(215, fakeReembed(calls), 0x75, { atSeal });
    // The flood is refused by the verdict, as before, and never reached the embedder.
    expect(verdict.verdict.accepted.map((a) => a.nodeId)).not.toContain(attacker);
    expect(calls.some((c) => c.startsWith('junk'))).toBe(false);
    expect(calls.length).toBeLessThanOrEqual(2);
  }, 30_000);

  test("its tolerance (reembed.noiseToleranceBits) is the verdict's: bits that far from its own pass", async () => {
    const calls: string[] = [];
    // The copier's claimed bits (all 1s) and the relay's of its text (all 0xf0): 5 bits a byte apart.
    const loose = { ...fakeReembed(calls), noiseToleranceBits: 5 * 64 };
    const { verdict, attacker } = await run(225, loose, 0x76);
    expect(verdict.verdict.accepted.map((a) => a.nodeId)).toContain(attacker);
    expect(verdict.verdict.reembedded).toBeUndefined();
    const tight = { ...fakeReembed([]), noiseToleranceBits: 5 * 64 - 1 };
    const again = await run(226, tight, 0x77);
    expect(again.verdict.verdict.rejected).toEqual([
      expect.objectContaining({ nodeId: again.attacker, reason: 'EMBEDDING_DISAGREES' }),
    ]);
  }, 30_000);

  test('a frame pinning another embedder is coordinated as without one', async () => {
    const calls: string[] = [];
    const other = { ...fakeReembed(calls), embedder: { ...embedder, fileHash: '33'.repeat(32) } };
    const { verdict, attacker } = await run(220, other, 0x73);
    expect(verdict.verdict.accepted.map((a) => a.nodeId)).toContain(attacker);
    expect(calls).toEqual([]);
  }, 30_000);

  test('an embedding that fails leaves the reveal unchecked, counted', async () => {
    const failing: ReembedConfig = {
      embedder,
      embed: async () => {
        throw new Error('boom');
      },
    };
    const logs: Record<string, unknown>[] = [];
    const { verdict, relay } = await run(230, failing, 0x74, { logs });
    expect(verdict.verdict.accepted).toHaveLength(3);
    expect(relay.metrics().reembed.failed).toBeGreaterThanOrEqual(2);
    // Failing still: said so in the metrics, and logged once for the spell (REEMBED_FAILED).
    expect(relay.metrics().reembed.failing).toMatchObject({ error: 'Error: boom' });
    expect(logs.filter((l) => l['code'] === 'REEMBED_FAILED')).toHaveLength(1);
  }, 30_000);

  test('a relay started again with an embedder gives the reveals its state held without bits theirs: the copier is caught', async () => {
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(240));
    const keys = await Promise.all([1, 2, 3].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(240 + i))));
    const store = new MemoryMachineStore();
    const verdicts: VerdictEffect[] = [];
    const relayTransports: MemoryTransport[] = [];
    const relay = (reembed: ReembedConfig | undefined, onReveal?: (from: string) => void) => {
      const transport = net.join(relayKey.nodeId);
      relayTransports.push(transport);
      return new SynodNode({
        key: relayKey,
        role: 'relay',
        transports: [transport],
        store,
        reannounce: { joinDelayMs: 50 },
        onVerdict: (_id, v) => verdicts.push(v),
        ...(reembed ? { reembed } : {}),
        onPacket: ({ packet, own }) => {
          if (!own && packet.type === 'reveal') onReveal?.(packet.from);
        },
      });
    };
    const attacker = (keys[2] as NodeKey).nodeId;
    // The first relay, as stored before re-embedding existed (no embedder), is killed as the copier's
    // reveal reaches it (member 0's never does): that reveal is held in its state without bits.
    let killed = false;
    let first: SynodNode | null = relay(undefined, (from) => {
      if (from !== attacker || killed) return;
      killed = true;
      void relayTransports[0]?.close();
    });
    const stores = keys.map(() => new MemoryMachineStore());
    const member = (i: number, awayAtCommit = false) => {
      const key = keys[i] as NodeKey;
      const transport = net.join(key.nodeId);
      return new SynodNode({
        key,
        role: 'node',
        transports: [transport],
        store: stores[i] as MemoryMachineStore,
        lingerMs: 50,
        reannounce: { joinDelayMs: 50 },
        serving: {
          queue: (i === 2 ? copierQueue() : fixedQueue()) as never,
          models: [{ id: 'm', fileHash: '22'.repeat(32) }],
          embedder,
        },
        // Member 0 drops off the network as its commit goes out: it misses the seal, so its reveal
        // comes only once it is back, after the relay was started again.
        onPacket: ({ packet, own }) => {
          if (awayAtCommit && own && packet.type === 'commit') void transport.close();
        },
      });
    };
    const away = member(0, true);
    const members = [away, member(1), member(2)];
    const calls: string[] = [];
    let second: SynodNode | null = null;
    try {
      await first.start();
      for (const m of members) await m.start();
      const body = testRequest({ embedder, nonce: 0x78, frame: { ...FRAME, revealWindowMs: 15_000 } });
      await first.submit(body);
      await until(() => killed, 10_000);
      await first.close();
      first = null;
      expect(verdicts).toHaveLength(0);
      // Started again with its embedder, over the same state; member 0 back too.
      await away.close();
      second = relay(fakeReembed(calls));
      await second.start();
      const back = member(0);
      members.push(back);
      await back.start();
      await until(() => verdicts.length === 1, 15_000);
      const v = (verdicts[0] as VerdictEffect).verdict;
      expect(v.rejected).toEqual([
        expect.objectContaining({ nodeId: attacker, reason: 'EMBEDDING_DISAGREES' }),
      ]);
      expect(v.winner?.output).toBe('output 1');
      expect(calls).toContain(SCAM);
    } finally {
      await Promise.all([first, second, ...members].map((n) => n?.close()));
    }
  }, 30_000);
});
