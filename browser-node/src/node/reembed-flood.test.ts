// The audit's flood (h-audit's audit-reembed-flood.test.ts), with a test-double embedder: keys seated on
// many requests reveal long distinct texts, and an honest request's short answer must not wait behind
// them for its re-embedding (so for its verdict). Asserted on the order of the embeddings, never on time.
import { describe, expect, test } from 'bun:test';
import {
  computeCommitment,
  decodePacket,
  encodePacket,
  NodeKey,
  type Packet,
  signPacket,
  type VerdictEffect,
} from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { SynodNode } from './synod-node.ts';
import { recordingEmbedder } from './test-embedder.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const MODEL = { id: 'm', fileHash: '22'.repeat(32) };
/** The attackers' requests accept a model the honest members do not serve: only the attackers commit. */
const ATTACK_MODEL = { id: 'attack', fileHash: '33'.repeat(32) };
const REQUESTS = 12;
const KEYS = 6;
/** Of each request's seated keys, these reveal dated past the reveal window (REVEAL_LATE anyway). */
const LATE_KEYS = 2;

describe('SynodNode: a flood of long seated reveals does not hold another request behind it', () => {
  test("the honest request's short answer is embedded next, and it is verified and attested", async () => {
    // `output N` (what fixedQueue answers) is N in every byte, as the members claim; anything else 0xf0.
    const double = recordingEmbedder({
      held: true,
      bitsOf: (text) => new Uint8Array(64).fill(Number(/^output (\d+)$/.exec(text)?.[1] ?? 0xf0)),
    });
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(90));
    const honestKeys = await Promise.all(
      [91, 92, 93].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(i))),
    );
    const attackKeys = await Promise.all(
      Array.from({ length: KEYS }, (_, i) => NodeKey.fromSeed(new Uint8Array(32).fill(100 + i))),
    );
    const verdicts = new Map<string, VerdictEffect>();
    const relay = new SynodNode({
      key: relayKey,
      role: 'relay',
      transports: [net.join(relayKey.nodeId)],
      store: new MemoryMachineStore(),
      onVerdict: (id, v) => verdicts.set(id, v),
      reembed: { embedder, embed: (text) => double.embed(text) },
    });
    const members = honestKeys.map(
      (key) =>
        new SynodNode({
          key,
          role: 'node',
          transports: [net.join(key.nodeId)],
          store: new MemoryMachineStore(),
          lingerMs: 50,
          serving: { queue: fixedQueue() as never, models: [MODEL], embedder },
        }),
    );
    // The attacker: commits under its keys to each of its requests, and at the seal reveals a long text
    // for each (distinct: each costs an embedding), some dated past the reveal window.
    const attacker = net.join('attacker');
    const attackIds = new Set<string>();
    const salt = '02'.repeat(32);
    const bEmbedding = '00'.repeat(64);
    const text = (requestId: string, i: number) =>
      `${i < LATE_KEYS ? 'late' : 'long'} ${requestId.slice(0, 8)} ${i} ${'w'.repeat(65_000)}`;
    attacker.subscribe(topicOfPacketType('request'), async (bytes) => {
      const request = (await decodePacket(bytes, { now: Date.now() })).packet as Packet<'request'>;
      const requestId = request.body.requestId;
      if (!attackIds.has(requestId)) return;
      for (const [i, key] of attackKeys.entries()) {
        const commitment = computeCommitment({
          requestId,
          nodeId: key.nodeId,
          model: ATTACK_MODEL,
          output: text(requestId, i),
          bEmbedding,
          salt,
        });
        const commit = await signPacket(key, 'commit', { requestId, commitment, createdAt: Date.now() });
        await attacker.publish(topicOfPacketType('commit'), encodePacket(commit));
      }
    });
    attacker.subscribe(topicOfPacketType('seal'), async (bytes) => {
      const seal = (await decodePacket(bytes, { now: Date.now() })).packet as Packet<'seal'>;
      const requestId = seal.body.requestId;
      if (!attackIds.has(requestId)) return;
      for (const [i, key] of attackKeys.entries()) {
        const reveal = await signPacket(key, 'reveal', {
          requestId,
          output: text(requestId, i),
          bEmbedding,
          model: ATTACK_MODEL,
          salt,
          createdAt: i < LATE_KEYS ? seal.body.createdAt + 10_001 : Date.now(),
        });
        await attacker.publish(topicOfPacketType('reveal'), encodePacket(reveal));
      }
    });
    try {
      await relay.start();
      for (const m of members) await m.start();
      for (let r = 0; r < REQUESTS; r++) {
        const body = testRequest({
          embedder,
          nonce: 0xa000 + r,
          acceptedModels: [ATTACK_MODEL.id],
          frame: { quorum: KEYS, maxCommits: KEYS, maxTimeMs: 10_000, revealWindowMs: 10_000 },
        });
        attackIds.add(body.requestId);
        await relay.submit(body);
      }
      // Every attack request has a long text queued (one request's reveals are stepped in one by one):
      // the first embedding runs (held), the others wait.
      await until(() => relay.metrics().reembed.queued === REQUESTS, 20_000);
      expect(double.calls).toHaveLength(1);
      const honest = testRequest({
        embedder,
        nonce: 0xb000,
        frame: { quorum: 3, maxCommits: 3, maxTimeMs: 10_000, revealWindowMs: 10_000 },
      });
      await relay.submit(honest);
      await until(() => relay.metrics().reembed.queued === REQUESTS + 1, 10_000);
      double.release();
      await until(
        () => verdicts.has(honest.requestId) && relay.status(honest.requestId)?.attestations === 3,
        20_000,
      );

      // The honest text was embedded right after the one running when it came, before the 11 long texts
      // queued ahead of it; once (its three reveals share it).
      expect(double.calls[1]).toBe('output 1');
      expect(double.calls.filter((c) => c === 'output 1')).toHaveLength(1);
      const v = verdicts.get(honest.requestId)?.verdict;
      expect(v?.status).toBe('accepted');
      expect(v?.accepted).toHaveLength(3);
      for (const m of members) {
        await until(() => m.status(honest.requestId)?.finished === true, 5_000);
        expect(m.status(honest.requestId)?.outcome).toMatchObject({ kind: 'done', reason: 'verified' });
      }

      // The attack requests are judged too, each long text embedded once, one at a time; those dated past
      // the reveal window never (stepped in without bits, REVEAL_LATE).
      await until(() => [...attackIds].every((id) => verdicts.has(id)), 20_000);
      const long = double.calls.filter((c) => c.startsWith('long'));
      expect(long).toHaveLength(REQUESTS * (KEYS - LATE_KEYS));
      expect(new Set(long).size).toBe(long.length);
      expect(double.calls.some((c) => c.startsWith('late'))).toBe(false);
      expect(double.maxRunning).toBe(1);
      for (const id of attackIds) {
        const late = verdicts.get(id)?.verdict.rejected.filter((r) => r.reason === 'REVEAL_LATE');
        expect(late).toHaveLength(LATE_KEYS);
      }
      expect(relay.metrics().reembed).toMatchObject({ queued: 0, queuedChars: 0 });
    } finally {
      double.release();
      await Promise.all([relay, ...members].map((n) => n.close()));
      await attacker.close();
    }
  }, 60_000);
});
