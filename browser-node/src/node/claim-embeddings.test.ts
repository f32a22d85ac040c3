import { describe, expect, test } from 'bun:test';
import { type EmbedClaimsEffect, NodeKey, toHex } from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import {
  CLAIM_CHECK_BUDGET_CHARS,
  type ClaimCheckConfig,
  ClaimEmbeddings,
  claimCheckOf,
} from './claim-embeddings.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { type ReembedConfig, type ServingConfig, SynodNode } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };

/** An embedder for tests: each text's bits are its length in every byte; the texts it was asked for. */
function lengthEmbedder(calls: string[]): ClaimCheckConfig {
  return {
    embedder,
    embed: async (text) => {
      calls.push(text);
      return new Uint8Array(64).fill(text.length);
    },
  };
}

function ask(reveals: { revealId: string; output: string }[], bits = 512): EmbedClaimsEffect {
  return {
    kind: 'embed-claims',
    requestId: 'r',
    verdictDigest: 'd',
    embeddingModel: { ...embedder, bits },
    reveals,
  };
}

describe('ClaimEmbeddings: a member embeds the texts claims name', () => {
  test('one embedding a distinct text, across claims and verdicts', async () => {
    const calls: string[] = [];
    const claims = new ClaimEmbeddings(lengthEmbedder(calls));
    const first = await claims.embed(
      ask([
        { revealId: 'a', output: 'abc' },
        { revealId: 'b', output: 'abc' },
        { revealId: 'c', output: 'hello' },
      ]),
    );
    expect(first).toEqual({
      ok: true,
      bits: { a: '03'.repeat(64), b: '03'.repeat(64), c: '05'.repeat(64) },
    });
    await claims.embed(ask([{ revealId: 'd', output: 'hello' }]));
    expect(calls).toEqual(['abc', 'hello']);
    expect(claims.embedded).toBe(2);
  });

  test('a verdict naming more new text than the budget is not checked (no attestation), and embeds nothing', async () => {
    const calls: string[] = [];
    const claims = new ClaimEmbeddings(lengthEmbedder(calls));
    const long = (c: string) => c.repeat(CLAIM_CHECK_BUDGET_CHARS / 2 + 1);
    const over = await claims.embed(
      ask([
        { revealId: 'a', output: long('x') },
        { revealId: 'b', output: long('y') },
      ]),
    );
    expect(over.ok).toBe(false);
    expect(calls).toEqual([]);
    // Texts already embedded cost nothing: within the budget, one at a time, it is checked.
    expect((await claims.embed(ask([{ revealId: 'a', output: long('x') }]))).ok).toBe(true);
    expect(
      (
        await claims.embed(
          ask([
            { revealId: 'a', output: long('x') },
            { revealId: 'c', output: long('z') },
          ]),
        )
      ).ok,
    ).toBe(true);
    expect(calls.map((c) => c[0])).toEqual(['x', 'z']);
  });

  test('checks run one at a time, in the order asked', async () => {
    const order: string[] = [];
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const claims = new ClaimEmbeddings({
      embedder,
      embed: async (text) => {
        order.push(`start ${text}`);
        if (text === 'first') await held;
        order.push(`end ${text}`);
        return '00'.repeat(64);
      },
    });
    const a = claims.embed(ask([{ revealId: 'a', output: 'first' }]));
    const b = claims.embed(ask([{ revealId: 'b', output: 'second' }]));
    await Promise.resolve();
    release();
    await Promise.all([a, b]);
    expect(order).toEqual(['start first', 'end first', 'start second', 'end second']);
  });

  test("a frame pinning fewer bits gets the prefix of the embedder's", async () => {
    const claims = new ClaimEmbeddings({ embedder, embed: async () => '8f'.repeat(64) });
    expect(await claims.embed(ask([{ revealId: 'a', output: 'x' }], 64))).toEqual({
      ok: true,
      bits: { a: '8f'.repeat(8) },
    });
  });

  test('an embedder that throws, or gives another number of bits, or not hex, is no answer', async () => {
    const throwing = new ClaimEmbeddings({
      embedder,
      embed: async () => {
        throw new Error('the embedder worker died');
      },
    });
    expect(await throwing.embed(ask([{ revealId: 'a', output: 'x' }]))).toEqual({
      ok: false,
      error: 'Error: the embedder worker died',
    });
    const short = new ClaimEmbeddings({ embedder, embed: async () => new Uint8Array(8) });
    expect(await short.embed(ask([{ revealId: 'a', output: 'x' }]))).toEqual({
      ok: false,
      error: 'the embedder gave 64 bits, not 512',
    });
    expect(short.embedded).toBe(0);
    const garbled = new ClaimEmbeddings({ embedder, embed: async () => 'zz'.repeat(64) });
    expect(await garbled.embed(ask([{ revealId: 'a', output: 'x' }], 64))).toEqual({
      ok: false,
      error: 'the embedder gave bits that are not hex',
    });
  });

  test("claimCheckOf: the one given, none for false, else the serving queue's embedder when it has one", async () => {
    const given = lengthEmbedder([]);
    const bare = { queue: fixedQueue(), models: [], embedder } as unknown as ServingConfig;
    expect(claimCheckOf(given, bare)).toBe(given);
    expect(claimCheckOf(false, bare)).toBeNull();
    expect(claimCheckOf(undefined, bare)).toBeNull();
    expect(claimCheckOf(undefined, undefined)).toBeNull();
    const own = {
      ...bare,
      queue: {
        ...fixedQueue(),
        embedder: { embedBits: async (t: string) => new Uint8Array(64).fill(t.length) },
      },
    } as unknown as ServingConfig;
    const fromQueue = claimCheckOf(undefined, own);
    expect(fromQueue?.embedder).toEqual(embedder);
    expect(toHex((await fromQueue?.embed('four')) as Uint8Array)).toBe('04'.repeat(64));
  });
});

describe('SynodNode: a member whose embedder fails to embed the claimed texts', () => {
  test('does not attest, ends reembed-claims-unchecked, logs REEMBED_FAILED once and counts it', async () => {
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(90));
    const keys = await Promise.all([1, 2, 3].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(90 + i))));
    // The relay: `output N` (what fixedQueue answers) embeds to N in every byte, anything else to 0xf0,
    // so the third member's text (not `output 1`, its bits all 1s) is rejected with a claim.
    const reembed: ReembedConfig = {
      embedder,
      embed: async (text) => new Uint8Array(64).fill(/^output (\d+)$/.exec(text) ? 1 : 0xf0),
    };
    const relay = new SynodNode({
      key: relayKey,
      role: 'relay',
      transports: [net.join(relayKey.nodeId)],
      store: new MemoryMachineStore(),
      reembed,
    });
    const lines: Record<string, unknown>[][] = [[], [], []];
    const finished: string[][] = [[], [], []];
    const attested: string[] = [];
    const members = keys.map((key, i) => {
      const honest = fixedQueue();
      const queue =
        i === 2
          ? { ...honest, submit: async () => ({ ...(await honest.submit()), text: 'my own' }) }
          : honest;
      return new SynodNode({
        key,
        role: 'node',
        transports: [net.join(key.nodeId)],
        store: new MemoryMachineStore(),
        serving: { queue: queue as never, models: [{ id: 'm', fileHash: '22'.repeat(32) }], embedder },
        claimCheck: {
          embedder,
          embed: async () => {
            throw new Error('the embedder worker died');
          },
        },
        log: (line) => lines[i]?.push(line),
        onFinished: (_id, o) => finished[i]?.push(o.reason),
        onPacket: ({ packet, own }) => {
          if (own && packet.type === 'attestation') attested.push(key.nodeId);
        },
      });
    });
    try {
      await relay.start();
      for (const m of members) await m.start();
      await relay.submit(
        testRequest({
          embedder,
          nonce: 0x91,
          frame: { quorum: 3, maxCommits: 3, maxTimeMs: 10_000, revealWindowMs: 5_000 },
        }),
      );
      await until(() => finished.every((f) => f.length === 1), 15_000);
      for (const i of [0, 1]) {
        expect(finished[i]).toEqual(['reembed-claims-unchecked']);
        expect(lines[i]?.filter((l) => l['code'] === 'REEMBED_FAILED')).toEqual([
          expect.objectContaining({ level: 'warn', err: 'Error: the embedder worker died' }),
        ]);
        expect(members[i]?.metrics().claimChecks).toEqual({ held: 0, false: 0, failed: 1, embedded: 0 });
      }
      // The member the claim names: as before (its own claim is never co-signed, never embedded).
      expect(finished[2]).toEqual(['verified']);
      expect(attested).toEqual([]);
    } finally {
      await Promise.all([relay, ...members].map((n) => n.close()));
    }
  }, 30_000);
});
