/**
 * Property-based fuzzing of a node in the middle of hostile traffic: a relay (the coordinator) and a
 * node that trusts it on an in-memory network, while strangers send a random mix of hostile packets
 * (requests by keys the node does not serve, packets for the real request and for requests never seen,
 * signed by strangers, mutated copies of the real packets, replays, junk). The real request must still
 * get its verdict; nothing may throw out, and what the node holds must stay bounded.
 */
import { describe, expect, test } from 'bun:test';
import { type AnyPacket, encodePacket, NodeKey, type PacketType, signPacket } from '@synod/shared';
import fc from 'fast-check';
import {
  applyRaw,
  applySemantic,
  type RawMutation,
  rawMutation,
  type SemanticMutation,
  semanticMutation,
  signRaw,
  validBodies,
} from '../p2p/hostile-packets.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { hex64 } from '../p2p/test-fixtures.ts';
import { ALL_TOPICS, topicOfPacketType } from '../p2p/topics.ts';
import { coordinatorTrust } from './coordinator-trust.ts';
import { SynodNode } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const NON_REQUEST: PacketType[] = ['commit', 'seal', 'reveal', 'verdict', 'attestation', 'heartbeat'];

type Noise =
  | { kind: 'strangerRequest'; n: number }
  | { kind: 'forReal'; type: PacketType; n: number }
  | { kind: 'forUnknown'; type: PacketType; n: number }
  | { kind: 'semantic'; type: PacketType; n: number; m: SemanticMutation }
  | { kind: 'raw'; pick: number; m: RawMutation }
  | { kind: 'replay'; pick: number }
  | { kind: 'junk'; bytes: Uint8Array; topic: number };

const noise: fc.Arbitrary<Noise> = fc.oneof(
  fc.record({ kind: fc.constant('strangerRequest' as const), n: fc.nat(1_000_000) }),
  fc.record({
    kind: fc.constant('forReal' as const),
    type: fc.constantFrom(...NON_REQUEST),
    n: fc.nat(1000),
  }),
  fc.record({
    kind: fc.constant('forUnknown' as const),
    type: fc.constantFrom(...NON_REQUEST),
    n: fc.nat(1_000_000),
  }),
  fc.constantFrom(...NON_REQUEST, 'request' as const).chain((type) =>
    fc.record({
      kind: fc.constant('semantic' as const),
      type: fc.constant(type),
      n: fc.nat(1000),
      m: semanticMutation(type),
    }),
  ) as fc.Arbitrary<Noise>,
  fc.record({ kind: fc.constant('raw' as const), pick: fc.nat(), m: rawMutation() }),
  fc.record({ kind: fc.constant('replay' as const), pick: fc.nat() }),
  fc.record({
    kind: fc.constant('junk' as const),
    bytes: fc.uint8Array({ maxLength: 200 }),
    topic: fc.nat(6),
  }),
);

let seed = 0xa0;

describe('SynodNode fuzz', () => {
  test('property: in a storm of hostile packets the node never throws, stays bounded, and a trusted request still gets its verdict', async () => {
    const errors: unknown[] = [];
    const onError = (e: unknown) => errors.push(e);
    process.on('uncaughtException', onError);
    process.on('unhandledRejection', onError);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(noise, { minLength: 50, maxLength: 150 }),
          fc.array(noise, { minLength: 50, maxLength: 150 }),
          async (before, during) => {
            const net = new MemoryNetwork();
            const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
            const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
            const stranger = await NodeKey.fromSeed(new Uint8Array(32).fill(seed++));
            const finished = new Map<string, string>();
            const relay = new SynodNode({
              key: relayKey,
              role: 'relay',
              transports: [net.join(relayKey.nodeId)],
              onFinished: (id, o) => finished.set(id, o.kind),
            });
            const node = new SynodNode({
              key: nodeKey,
              role: 'node',
              transports: [net.join(nodeKey.nodeId)],
              serving: {
                queue: fixedQueue() as never,
                models: [{ id: 'm', fileHash: '22'.repeat(32) }],
                embedder,
              },
              observer: coordinatorTrust([relayKey.nodeId]),
              lingerMs: 50,
            });
            // the real packets on the wire, for mutated copies and replays
            const seen: Array<{ bytes: Uint8Array; packet: AnyPacket }> = [];
            const spy = net.join('spy');
            for (const t of ALL_TOPICS)
              spy.subscribe(t, (bytes) =>
                seen.push({ bytes, packet: JSON.parse(new TextDecoder().decode(bytes)) }),
              );
            const peers = [0, 1, 2, 3].map((i) => net.join(`stranger-${i}`));
            await relay.start();
            await node.start();
            const body = testRequest({
              embedder,
              nonce: seed,
              frame: { maxTimeMs: 3_000, revealWindowMs: 500 },
            });
            const send = async (x: Noise, i: number) => {
              const out = peers[i % peers.length]!;
              const now = Date.now();
              const bodyFor = (type: PacketType, n: number, requestId: string) => {
                const b = structuredClone(validBodies(n, now)[type]);
                if (type !== 'heartbeat' && type !== 'request') b.requestId = requestId;
                if (type === 'verdict') (b.verdict as Record<string, unknown>).requestId = requestId;
                return b;
              };
              let bytes: Uint8Array | null = null;
              let topic = ALL_TOPICS[0]!;
              switch (x.kind) {
                case 'strangerRequest': {
                  const p = await signPacket(stranger, 'request', testRequest({ embedder, nonce: x.n }));
                  bytes = encodePacket(p);
                  topic = topicOfPacketType('request');
                  break;
                }
                case 'forReal':
                case 'forUnknown': {
                  const id = x.kind === 'forReal' ? body.requestId : hex64(x.n + 0xabc000);
                  const s = await signRaw(stranger, x.type, bodyFor(x.type, x.n, id));
                  bytes = s?.bytes ?? null;
                  topic = topicOfPacketType(x.type);
                  break;
                }
                case 'semantic': {
                  const s = await applySemantic(stranger, x.type, x.n, x.m, now);
                  bytes = s?.bytes ?? null;
                  topic = s?.topic ?? topic;
                  break;
                }
                case 'raw':
                case 'replay': {
                  const real = seen[x.pick % Math.max(1, seen.length)];
                  if (real === undefined) return;
                  bytes = x.kind === 'raw' ? applyRaw(real.bytes, x.m) : real.bytes;
                  topic = topicOfPacketType(real.packet.type);
                  break;
                }
                case 'junk':
                  bytes = x.bytes;
                  topic = ALL_TOPICS[x.topic]!;
                  break;
              }
              if (bytes !== null) await out.publish(topic, bytes);
            };
            try {
              for (const [i, x] of before.entries()) await send(x, i);
              await relay.submit(body);
              for (const [i, x] of during.entries()) {
                await send(x, i);
                if (i % 10 === 0) await Bun.sleep(1);
              }
              await until(() => finished.has(body.requestId), 20_000);
              expect(finished.get(body.requestId)).toBe('done');
              await net.settled();
              await node.settled();
              const m = node.metrics();
              // Requests by keys it does not serve hold no machine; only the real one may be held.
              expect(m.machines.node + m.machines.follower + m.machines.coordinator).toBeLessThanOrEqual(1);
              expect(m.early.requests).toBeLessThanOrEqual(256);
              expect(m.early.bytes).toBeLessThanOrEqual(16 * 1024 * 1024);
              expect(m.intake.rejected.INTERNAL).toBeUndefined();
              expect(m.intake.consumerErrors).toBe(0);
              expect(m.verdicts).toBeGreaterThanOrEqual(1);
              // the storm reached the node
              expect(m.intake.rejectedTotal).toBeGreaterThan(10);
            } finally {
              await node.close();
              await relay.close();
            }
          },
        ),
        { seed: 0x5eed5, numRuns: 6 },
      );
    } finally {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
    }
    expect(errors).toEqual([]);
  }, 120_000);
});
