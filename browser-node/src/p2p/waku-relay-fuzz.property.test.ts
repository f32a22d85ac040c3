/**
 * Property-based fuzzing of what a Waku relay node takes from gossipsub: hand-made WakuMessage
 * protobufs (wrong wire types, missing and huge fields, lengths past the end) carrying valid and mutated
 * Synod packets, run through the topic validator the transport installs (as gossipsub runs it on every
 * message in) and then dispatched as gossipsub dispatches what was accepted. No network: one libp2p
 * node with no listener.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type NodeKey, utf8 } from '@synod/shared';
import fc from 'fast-check';
import {
  applyRaw,
  PACKET_REJECT_REASONS,
  rawMutation,
  type SignedCase,
  validPackets,
} from './hostile-packets.ts';
import { Intake, type IntakePacket } from './intake.ts';
import { T0, testKey } from './test-fixtures.ts';
import { ALL_TOPICS, isContentTopic } from './topics.ts';
import { createWakuRelayTransport, type WakuRelayTransport } from './waku-relay.ts';

/** One protobuf field as written on the wire: any field number, any wire type, any content. */
type Field =
  | { no: number; wt: 0; value: bigint }
  | { no: number; wt: 1; value: Uint8Array }
  | { no: number; wt: 2; value: Uint8Array; claimed?: bigint | undefined }
  | { no: number; wt: 5; value: Uint8Array }
  | { no: number; wt: 3 | 4 | 6 | 7 };

function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

function encode(fields: Field[]): Uint8Array {
  const out: number[] = [];
  for (const f of fields) {
    out.push(...varint((BigInt(f.no) << 3n) | BigInt(f.wt)));
    if (f.wt === 0) out.push(...varint(f.value));
    else if (f.wt === 1 || f.wt === 5) out.push(...f.value);
    else if (f.wt === 2) {
      out.push(...varint(f.claimed ?? BigInt(f.value.length)));
      for (const b of f.value) out.push(b);
    }
  }
  return Uint8Array.from(out);
}

const zigzag = (n: bigint) => (n << 1n) ^ (n >> 63n);

let key: NodeKey;
let valid: SignedCase[];
let transport: WakuRelayTransport;
const delivered: IntakePacket[] = [];
let intake: Intake;

beforeAll(async () => {
  key = await testKey(0x77);
  valid = await validPackets(key, 5);
  transport = await createWakuRelayTransport({});
  intake = new Intake({ now: () => T0, deliver: (p) => void delivered.push(p) });
  intake.attach(transport);
});

afterAll(async () => {
  await intake.close();
  await transport.close();
});

const WAKU_FIELDS = [1, 2, 3, 10, 11, 21, 31];

/** Fields a hostile peer may add or put in place of the real ones. */
const field: fc.Arbitrary<Field> = fc.oneof(
  fc.record({
    no: fc.oneof(fc.constantFrom(...WAKU_FIELDS), fc.integer({ min: 1, max: 536_870_911 })),
    wt: fc.constant(0 as const),
    value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(2n ** 64n - 1n, 0n, 1n)),
  }),
  fc.record({
    no: fc.constantFrom(...WAKU_FIELDS),
    wt: fc.constantFrom(1 as const, 5 as const),
    value: fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => b),
  }) as fc.Arbitrary<Field>,
  fc.record({
    no: fc.constantFrom(...WAKU_FIELDS),
    wt: fc.constant(2 as const),
    value: fc.oneof(
      fc.uint8Array({ maxLength: 80 }),
      fc.constant(utf8('x'.repeat(10 * 1024))),
      fc.constantFrom(...ALL_TOPICS).map(utf8),
    ),
    claimed: fc.option(fc.constantFrom(2n ** 32n - 1n, 2n ** 64n - 1n, 2n ** 31n), { nil: undefined }),
  }),
  fc.record({
    no: fc.constantFrom(...WAKU_FIELDS),
    wt: fc.constantFrom(3 as const, 4 as const, 6 as const, 7 as const),
  }),
);

interface Case {
  data: Uint8Array;
  /** Whether the payload, if read as the message's, is a valid packet signed here. */
  synodTopic: boolean;
}

const messageCase: fc.Arbitrary<() => Case> = fc
  .record({
    pick: fc.nat(),
    mutate: fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 1 },
      { arbitrary: rawMutation(), weight: 1 },
    ),
    topic: fc.oneof(
      fc.constant('own' as const),
      fc.constantFrom(...ALL_TOPICS),
      fc.constant('x'.repeat(10 * 1024)),
      fc.constant(''),
      fc.constant('/synod/1/commits/json'),
      fc.constant('/synod/1/commits/proto\u0000'),
    ),
    payload: fc.constantFrom('present', 'missing', 'twice', 'wrong-type'),
    version: fc.option(fc.constantFrom(0n, 1n, 2n ** 32n - 1n, 2n ** 64n - 1n), { nil: undefined }),
    timestamp: fc.option(fc.constantFrom(2n ** 64n - 1n, 2n ** 63n - 1n, -1n, 0n, BigInt(T0) * 1_000_000n), {
      nil: undefined,
    }),
    extra: fc.array(field, { maxLength: 4 }),
    extraFirst: fc.boolean(),
    cut: fc.oneof({ arbitrary: fc.constant(undefined), weight: 5 }, { arbitrary: fc.nat(), weight: 1 }),
  })
  .map((c) => () => {
    const base = valid[c.pick % valid.length]!;
    const payload = c.mutate === undefined ? base.bytes : applyRaw(base.bytes, c.mutate);
    const topic = c.topic === 'own' ? base.topic : c.topic;
    const fields: Field[] = [];
    if (c.payload === 'present' || c.payload === 'twice') fields.push({ no: 1, wt: 2, value: payload });
    if (c.payload === 'wrong-type') fields.push({ no: 1, wt: 0, value: 5n });
    fields.push({ no: 2, wt: 2, value: utf8(topic) });
    if (c.version !== undefined) fields.push({ no: 3, wt: 0, value: c.version });
    if (c.timestamp !== undefined) fields.push({ no: 10, wt: 0, value: zigzag(c.timestamp) });
    if (c.payload === 'twice')
      fields.push({ no: 1, wt: 2, value: valid[(c.pick + 1) % valid.length]!.bytes });
    const all = c.extraFirst ? [...c.extra, ...fields] : [...fields, ...c.extra];
    let data = encode(all);
    if (c.cut !== undefined && data.length > 0) data = data.slice(0, c.cut % data.length);
    return { data, synodTopic: isContentTopic(topic) };
  });

describe('Waku relay fuzz', () => {
  test('property: hostile WakuMessages never throw out of the validator or the dispatch, are counted, and only valid packets are taken', async () => {
    const shard = transport.pubsubTopic(ALL_TOPICS[0]!);
    // every Synod topic lives on one shard: its validator judges them all
    for (const t of ALL_TOPICS) expect(transport.pubsubTopic(t)).toBe(shard);
    const validator = transport.node.services.pubsub.topicValidators.get(shard)!;
    expect(validator).toBeDefined();
    const pubsub = transport.node.services.pubsub;
    const errors: unknown[] = [];
    const seen = { taken: 0, rejected: 0, other: 0 };
    const onError = (e: unknown) => errors.push(e);
    process.on('uncaughtException', onError);
    process.on('unhandledRejection', onError);
    try {
      await fc.assert(
        fc.asyncProperty(messageCase, async (make) => {
          const { data } = make();
          const before = { t: transport.stats(), i: intake.metrics(), d: delivered.length };
          const verdict = String(
            await validator(transport.node.peerId, { type: 'unsigned', topic: shard, data }),
          );
          expect(['accept', 'reject', 'ignore']).toContain(verdict);
          // accepted data is dispatched, as gossipsub would
          if (verdict === 'accept') {
            pubsub.dispatchEvent(
              new CustomEvent('gossipsub:message', {
                detail: {
                  propagationSource: transport.node.peerId,
                  msgId: `m${before.t.received}`,
                  msg: { type: 'unsigned', topic: shard, data },
                },
              }),
            );
          }
          await intake.idle();
          const after = { t: transport.stats(), i: intake.metrics() };
          expect(after.t.received).toBe(before.t.received + 1);
          const judged = after.t.validated - before.t.validated;
          if (verdict === 'reject') {
            expect(
              after.t.invalidEnvelopes -
                before.t.invalidEnvelopes +
                after.i.rejectedTotal -
                before.i.rejectedTotal,
            ).toBe(1);
          }
          if (judged === 1 && verdict === 'accept') {
            // a Synod message let through is a packet signed here, delivered once
            expect(delivered.length).toBe(before.d + 1);
            expect(valid.map((v) => v.id)).toContain(delivered.at(-1)!.id);
          }
          if (judged === 0) expect(delivered.length).toBe(before.d);
          if (judged === 1 && verdict === 'accept') seen.taken++;
          else if (verdict === 'reject') seen.rejected++;
          else seen.other++;
          for (const r of Object.keys(after.i.rejected))
            expect([...PACKET_REJECT_REASONS]).toContain(r as never);
        }),
        { seed: 0x5eed4, numRuns: 1500 },
      );
    } finally {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
    }
    expect(errors).toEqual([]);
    expect(intake.metrics().rejected.INTERNAL).toBeUndefined();
    // the cases reach every outcome: packets taken, data rejected, and the rest relayed or ignored
    expect(seen.taken).toBeGreaterThan(0);
    expect(seen.rejected).toBeGreaterThan(100);
    expect(seen.other).toBeGreaterThan(100);
  });
});
