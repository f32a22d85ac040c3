/**
 * A seated member that never reveals keeps the reveal window open; meanwhile fresh keys outside the seal
 * each publish one reveal of the largest output (65,536 "€", about 196 KB). The coordinator cites such
 * reveals in its verdict (NOT_SEALED) and the observers hold them to recompute it, but only within a byte
 * budget (`NON_MEMBER_REVEAL_BYTES`), and none of them is needed to resume a machine: saving one is no
 * reason to write the machine again. The bytes a machine hands its store grow at most linearly with the
 * reveals, not with their square (each of them used to rewrite the whole state, every reveal held
 * included).
 */
import { describe, expect, test } from 'bun:test';
import {
  encodePacket,
  NON_MEMBER_REVEAL_BYTES,
  NodeKey,
  signPacket,
  toHex,
  type Verdict,
} from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { SynodNode } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const model = { id: 'm', fileHash: '22'.repeat(32) };

/** A machine store that counts what it is handed, per request. */
class CountingStore extends MemoryMachineStore {
  readonly bytes = new Map<string, number>();
  readonly saves = new Map<string, number>();
  largest = 0;

  override async save(owner: string, requestId: string, state: string): Promise<void> {
    const n = Buffer.byteLength(state);
    this.bytes.set(requestId, (this.bytes.get(requestId) ?? 0) + n);
    this.saves.set(requestId, (this.saves.get(requestId) ?? 0) + 1);
    this.largest = Math.max(this.largest, n);
    return super.save(owner, requestId, state);
  }
}

describe('reveals from outside the seal', () => {
  test('N reveals of ~196 KB: bytes written stay linear in N, held bytes within the budget', async () => {
    const N = 40;
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(90));
    const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(91));
    const hostile = await NodeKey.fromSeed(new Uint8Array(32).fill(92));
    const relayStore = new CountingStore();
    let verdict: Verdict | null = null;
    const nodeStore = new CountingStore();
    const relay = new SynodNode({
      key: relayKey,
      role: 'relay',
      transports: [net.join(relayKey.nodeId)],
      store: relayStore,
      onVerdict: (_, v) => {
        verdict = v.verdict;
      },
    });
    const node = new SynodNode({
      key: nodeKey,
      role: 'node',
      transports: [net.join(nodeKey.nodeId)],
      serving: { queue: fixedQueue() as never, models: [model], embedder },
      store: nodeStore,
    });
    const wire = net.join(hostile.nodeId);
    await relay.start();
    await node.start();
    try {
      // Two seats: the honest node's and the hostile key's, which never reveals (the window stays open).
      const body = testRequest({
        embedder,
        nonce: 7,
        frame: { quorum: 2, maxCommits: 2, maxTimeMs: 10_000, revealWindowMs: 4_000 },
      });
      const output = '€'.repeat(65_536);
      const reveals = [];
      for (let i = 0; i < N; i++) {
        const key = await NodeKey.fromSeed(crypto.getRandomValues(new Uint8Array(32)));
        reveals.push(
          encodePacket(
            await signPacket(key, 'reveal', {
              requestId: body.requestId,
              output,
              bEmbedding: '00'.repeat(64),
              model,
              salt: toHex(crypto.getRandomValues(new Uint8Array(32))),
              createdAt: Date.now(),
            }),
          ),
        );
      }
      const revealBytes = reveals[0]?.length ?? 0;
      expect(revealBytes).toBeGreaterThan(196_000);
      await relay.submit(body);
      const commit = await signPacket(hostile, 'commit', {
        requestId: body.requestId,
        commitment: '33'.repeat(32),
        createdAt: Date.now(),
      });
      await wire.publish(topicOfPacketType('commit'), encodePacket(commit));
      await until(() => node.status(body.requestId)?.phase === 'revealing', 10_000);
      for (const bytes of reveals) await wire.publish(topicOfPacketType('reveal'), bytes);
      // The verdict comes when the window closes (the hostile member never reveals): every reveal
      // before it has been through both machines.
      await until(() => verdict !== null, 15_000);
      await until(() => node.status(body.requestId)?.verdict?.check === 'recomputed', 15_000);
      const cited = ((verdict as Verdict | null)?.rejected ?? []).filter(
        (r) => r.reason === 'NOT_SEALED',
      ).length;
      // Held, and so cited, within the budget (and at least one: the budget is no ban).
      expect(cited).toBeGreaterThan(0);
      expect(cited * revealBytes).toBeLessThanOrEqual(NON_MEMBER_REVEAL_BYTES);
      for (const store of [relayStore, nodeStore]) {
        const written = store.bytes.get(body.requestId) ?? 0;
        // Linear: less than each reveal written twice, where every reveal rewriting all held was ~N²/2.
        expect(written).toBeLessThan(2 * N * revealBytes);
        // And no single write holds more than the budget's worth of reveals (the observer's, twice it).
        expect(store.largest).toBeLessThan(2 * NON_MEMBER_REVEAL_BYTES + 64 * 1024);
      }
    } finally {
      await node.close();
      await relay.close();
    }
  }, 60_000);
});
