import { describe, expect, test } from 'bun:test';
import { type AnyPacket, LIMITS, utf8 } from '@synod/shared';
import { Intake, type IntakeOptions, type IntakePacket, TtlSet } from './intake.ts';
import { MemoryNetwork } from './memory.ts';
import { commitPacket, heartbeatPacket, hex64, T0, testKey, wire } from './test-fixtures.ts';
import { contentTopic, topicOfPacketType } from './topics.ts';
import type {
  ForwardValidator,
  ForwardVerdict,
  MessageMeta,
  PublishOptions,
  Transport,
  Unsubscribe,
} from './transport.ts';

const commits = contentTopic('commits');
const heartbeats = contentTopic('heartbeats');
const meta = (peer = 'p1', transport = 'memory', topic = commits): MessageMeta => ({
  peer,
  transport,
  topic,
});

/**
 * An intake with a queue of 8 and one verification slot whose delivery waits until `release()`: the
 * first message takes the slot and the rest queue up. `delivered` records `label` of each delivery.
 */
function gated(options: Partial<IntakeOptions>, label: (p: IntakePacket) => string) {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const delivered: string[] = [];
  const intake = new Intake({
    now: () => T0,
    maxQueue: 8,
    concurrency: 1,
    ...options,
    deliver: async (p) => {
      delivered.push(label(p));
      await gate;
    },
  });
  return { intake, delivered, release: () => release() };
}

function setup(options: Partial<IntakeOptions> = {}) {
  const clock = { now: T0 };
  const delivered: IntakePacket[] = [];
  const intake = new Intake({
    now: () => clock.now,
    deliver: (p) => {
      delivered.push(p);
    },
    ...options,
  });
  return { clock, delivered, intake };
}

/** The JSON of a packet with a change applied, as bytes (signature left as it was). */
function tampered(packet: AnyPacket, change: (json: Record<string, unknown>) => void): Uint8Array {
  const json = JSON.parse(JSON.stringify(packet)) as Record<string, unknown>;
  change(json);
  return utf8(JSON.stringify(json));
}

describe('Intake', () => {
  test('delivers a valid packet once, with its id, transport and peer', async () => {
    const { intake, delivered } = setup();
    const packet = await commitPacket(await testKey(), 1);
    const { bytes, id } = wire(packet);
    expect(intake.offer(bytes, meta('peer-a', 'waku-relay'))).toBe('queued');
    await intake.idle();
    expect(delivered).toHaveLength(1);
    expect(delivered[0]).toMatchObject({
      id,
      packet,
      transport: 'waku-relay',
      peer: 'peer-a',
      topic: commits,
    });
    const m = intake.metrics();
    expect(m).toMatchObject({ offered: 1, accepted: 1, rejectedTotal: 0, duplicates: 0, queueDepth: 0 });
    expect(intake.peerStats({ transport: 'waku-relay', peer: 'peer-a' })).toMatchObject({
      accepted: 1,
      invalid: 0,
    });
    await intake.close();
  });

  test('rejects a forged signature', async () => {
    const { intake, delivered } = setup();
    const packet = await commitPacket(await testKey(), 2);
    const forged = tampered(packet, (j) => {
      (j['body'] as Record<string, unknown>)['commitment'] = hex64(999);
    });
    intake.offer(forged, meta());
    // a signature made by another key over the same body
    const other = await commitPacket(await testKey(), 2);
    intake.offer(
      tampered(packet, (j) => {
        j['sig'] = other.sig;
      }),
      meta(),
    );
    await intake.idle();
    expect(delivered).toHaveLength(0);
    expect(intake.metrics().rejected).toEqual({ PACKET_BAD_SIGNATURE: 2 });
    expect(intake.peerStats({ transport: 'memory', peer: 'p1' })?.invalidByCode).toEqual({
      PACKET_BAD_SIGNATURE: 2,
    });
    await intake.close();
  });

  test('a replayed packet is delivered once across two transports, even re-encoded', async () => {
    const { intake, delivered } = setup();
    const packet = await commitPacket(await testKey(), 3);
    const { bytes, id } = wire(packet);
    expect(intake.offer(bytes, meta('a', 'waku-relay'))).toBe('queued');
    // the same bytes while the first copy is still queued: caught before parsing
    expect(intake.offer(bytes, meta('b', 'gun'))).toBe('duplicate');
    await intake.idle();
    // the same packet in a different (non-canonical) encoding: caught by packet id after verification
    const reencoded = utf8(JSON.stringify(packet, null, 2));
    expect(intake.offer(reencoded, meta('c', 'gun'))).toBe('queued');
    expect(intake.offer(bytes, meta('a', 'gun'))).toBe('duplicate');
    await intake.idle();
    expect(delivered.map((d) => d.id)).toEqual([id]);
    expect(delivered[0]?.transport).toBe('waku-relay');
    expect(intake.metrics()).toMatchObject({ accepted: 1, duplicates: 3, rejectedTotal: 0 });
    await intake.close();
  });

  test('dedups packets from two attached transports', async () => {
    const netA = new MemoryNetwork();
    const netB = new MemoryNetwork();
    const senderA = netA.join('s');
    const senderB = netB.join('s');
    const rxA = netA.join('r');
    const rxB = netB.join('r');
    const { intake, delivered } = setup();
    intake.attach(rxA);
    intake.attach(rxB);
    const packets = await Promise.all([1, 2, 3].map(async (n) => commitPacket(await testKey(), 10 + n)));
    for (const p of packets) {
      const { bytes } = wire(p);
      await senderA.publish(topicOfPacketType(p.type), bytes);
      await senderB.publish(topicOfPacketType(p.type), bytes);
    }
    await netA.settled();
    await netB.settled();
    await intake.idle();
    expect(delivered.map((d) => d.id).sort()).toEqual(packets.map((p) => wire(p).id).sort());
    expect(intake.metrics().duplicates).toBe(3);
    await intake.close();
    // detached on close: nothing more arrives
    await senderA.publish(commits, wire(packets[0]!).bytes);
    await netA.settled();
    expect(intake.metrics().offered).toBe(6);
    for (const t of [senderA, senderB, rxA, rxB]) await t.close();
  });

  test('rejects stale and future createdAt by the injected clock; a future packet counts later', async () => {
    const { intake, delivered, clock } = setup({ skewMs: 60_000 });
    const key = await testKey();
    const stale = wire(await commitPacket(key, 4, T0 - 60_001));
    const future = wire(await commitPacket(key, 5, T0 + 60_001));
    const edge = wire(await commitPacket(key, 6, T0 - 60_000));
    intake.offer(stale.bytes, meta());
    intake.offer(future.bytes, meta());
    intake.offer(edge.bytes, meta());
    await intake.idle();
    expect(intake.metrics().rejected).toEqual({ PACKET_STALE: 1, PACKET_FROM_FUTURE: 1 });
    expect(delivered.map((d) => d.id)).toEqual([edge.id]);
    // the same stale bytes again: refused without another verification, still counted, but not held
    // against the peer (staleness depends on our clock and the transit time, not on its honesty)
    expect(intake.offer(stale.bytes, meta())).toBe('ignored');
    expect(intake.peerStats({ peer: 'p1', transport: 'memory' })?.invalid).toBe(0);
    // time passes: the packet from the future is now inside the window
    clock.now = T0 + 1;
    expect(intake.offer(future.bytes, meta())).toBe('queued');
    await intake.idle();
    expect(delivered.map((d) => d.id)).toEqual([edge.id, future.id]);
    expect(intake.metrics().rejected).toEqual({ PACKET_STALE: 2, PACKET_FROM_FUTURE: 1 });
    await intake.close();
  });

  test('rejects unknown fields, in the body and in the envelope', async () => {
    const { intake, delivered } = setup();
    const packet = await commitPacket(await testKey(), 7);
    intake.offer(
      tampered(packet, (j) => {
        (j['body'] as Record<string, unknown>)['tip'] = 1;
      }),
      meta(),
    );
    intake.offer(
      tampered(packet, (j) => {
        j['route'] = 'x';
      }),
      meta(),
    );
    await intake.idle();
    expect(delivered).toHaveLength(0);
    expect(intake.metrics().rejected).toEqual({ PACKET_UNKNOWN_FIELD: 2 });
    await intake.close();
  });

  test('rejects oversized messages at once and malformed JSON after parsing', async () => {
    const { intake, delivered } = setup();
    const big = new Uint8Array(LIMITS.maxPacketBytes + 1).fill(0x20);
    expect(intake.offer(big, meta())).toBe('rejected');
    expect(intake.metrics()).toMatchObject({ rejected: { PACKET_TOO_LARGE: 1 }, queueDepth: 0 });
    intake.offer(utf8('{"v":1,"type":"commit",'), meta());
    intake.offer(new Uint8Array([0xff, 0xfe, 0x00, 0x7b]), meta());
    intake.offer(utf8('[]'), meta());
    await intake.idle();
    expect(delivered).toHaveLength(0);
    expect(intake.metrics().rejected).toEqual({ PACKET_TOO_LARGE: 1, PACKET_MALFORMED: 3 });
    await intake.close();
  });

  test('rejects a packet on the topic of another type, and still takes it on its own topic', async () => {
    const { intake, delivered } = setup();
    const { bytes, id } = wire(await commitPacket(await testKey(), 8));
    intake.offer(bytes, meta('p1', 'memory', heartbeats));
    await intake.idle();
    expect(delivered).toHaveLength(0);
    expect(intake.metrics().rejected).toEqual({ TOPIC_MISMATCH: 1 });
    // The verdict was about the topic, not the bytes: a copy on the wrong topic (say, an attacker's)
    // does not poison the genuine one.
    expect(intake.offer(bytes, meta('p2'))).toBe('queued');
    await intake.idle();
    expect(delivered.map((d) => d.id)).toEqual([id]);
    await intake.close();
  });

  test('stale packets never get a peer banned, nor does anything from a shared space like Gun', async () => {
    const bans: string[] = [];
    const { intake } = setup({ banThreshold: 3, onBan: (ref) => bans.push(ref.peer) });
    const key = await testKey();
    // Near the end of the window where they were made, past it here: judged `ignore`, never `reject`.
    const stale = await Promise.all([1, 2, 3, 4, 5].map((i) => commitPacket(key, 40 + i, T0 - 121_000)));
    for (const p of stale) expect(await intake.judge(wire(p).bytes, meta('honest'))).toBe('ignore');
    // Junk under the Gun label (every writer of its graph comes under it): counted, never banned.
    for (let i = 0; i < 5; i++) {
      intake.offer(new TextEncoder().encode(`junk ${i}`), {
        ...meta('gun:relay', 'gun'),
        attributable: false,
      });
    }
    await intake.idle();
    expect(intake.peerStats({ peer: 'gun:relay', transport: 'gun' })?.invalid).toBe(5);
    expect(bans).toEqual([]);
    const fresh = wire(await commitPacket(key, 50));
    expect(intake.offer(fresh.bytes, { ...meta('gun:relay', 'gun'), attributable: false })).toBe('queued');
    await intake.close();
  });

  test("one peer's flood takes at most its share of the queue: another peer's message still gets a place", async () => {
    const { intake, delivered, release } = gated({}, (p) => p.peer);
    const key = await testKey();
    const flood = await Promise.all(Array.from({ length: 12 }, (_, i) => commitPacket(key, 200 + i)));
    const results = flood.map((p) => intake.offer(wire(p).bytes, meta('flooder')));
    // One in verification, then its share of a queue of 8 (a quarter), then nothing more.
    expect(results.filter((r) => r === 'queued')).toHaveLength(3);
    expect(results.filter((r) => r === 'dropped')).toHaveLength(9);
    const honest = wire(await commitPacket(key, 300));
    expect(intake.offer(honest.bytes, meta('honest'))).toBe('queued');
    release();
    await intake.idle();
    expect(delivered).toContain('honest');
    await intake.close();
  });

  test('a few peers whose floods fill the queue together cannot crowd out another peer: the biggest gives up its newest', async () => {
    // A queue of 8, at most 2 a peer: four flooders fill it, each within its share.
    const { intake, delivered, release } = gated(
      { maxQueuePerPeer: 2 },
      (p) => `${p.peer}:${Number.parseInt((p.packet.body as { requestId: string }).requestId, 16) - 1}`,
    );
    const key = await testKey();
    const first = wire(await commitPacket(key, 1));
    expect(intake.offer(first.bytes, meta('f0'))).toBe('queued'); // takes the only verification slot
    for (const [i, f] of ['f1', 'f2', 'f3', 'f4'].entries()) {
      for (const n of [10, 11]) {
        expect(intake.offer(wire(await commitPacket(key, 100 * (i + 1) + n)).bytes, meta(f))).toBe('queued');
      }
    }
    expect(intake.metrics()).toMatchObject({ queueDepth: 8, dropped: 0 });
    // A flooder at its share is refused by the share; one more message of the same rank from a peer
    // with nothing queued takes the place of the newest message of a peer holding two.
    const honest = wire(await commitPacket(key, 999));
    expect(intake.offer(honest.bytes, meta('honest'))).toBe('queued');
    expect(intake.metrics()).toMatchObject({ queueDepth: 8, dropped: 1 });
    // A second message from that peer would make it hold 2, no fewer than any other: it is dropped.
    expect(intake.offer(wire(await commitPacket(key, 998)).bytes, meta('honest'))).toBe('dropped');
    expect(intake.metrics()).toMatchObject({ queueDepth: 8, dropped: 2 });
    release();
    await intake.idle();
    expect(delivered).toContain('honest:999');
    // Exactly one flooder lost its newest (x11) message; every other message queued was delivered, once.
    expect(delivered).toHaveLength(9);
    expect(delivered.filter((d) => d.endsWith('10'))).toHaveLength(4);
    expect(delivered.filter((d) => d.endsWith('11'))).toHaveLength(3);
    expect(new Set(delivered).size).toBe(delivered.length);
    expect(intake.sizes()).toMatchObject({ queuedPeers: 0 });
    await intake.close();
  });

  test('shedding from the middle of the queue stays bounded: rounds of new flooders never grow it', async () => {
    const { intake, delivered, release } = gated({ maxQueue: 16, maxQueuePerPeer: 16 }, (p) =>
      String(Number.parseInt((p.packet.body as { requestId: string }).requestId, 16) - 1),
    );
    const key = await testKey();
    const packets = await Promise.all(Array.from({ length: 161 }, (_, i) => commitPacket(key, 1000 + i)));
    expect(intake.offer(wire(packets[0]!).bytes, meta('first'))).toBe('queued'); // the verification slot
    // Ten peers in turn send 16 messages each: every new one takes places from the biggest holders
    // until it holds no more than they do.
    let maxShed = 0;
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 16; i++) {
        intake.offer(wire(packets[1 + round * 16 + i]!).bytes, meta(`f${round}`));
        expect(intake.metrics().queueDepth).toBeLessThanOrEqual(16);
        maxShed = Math.max(maxShed, intake.sizes().shedInQueue);
      }
    }
    // More messages were shed from the middle than the queue holds, and what it kept of them stayed
    // within the queue's bound (compacted).
    expect(intake.metrics().dropped).toBe(160 - 16);
    expect(maxShed).toBe(16);
    // Each of the ten peers kept one or two places.
    expect(intake.sizes().queuedPeers).toBe(10);
    release();
    await intake.idle();
    expect(delivered).toHaveLength(17);
    expect(new Set(delivered).size).toBe(17);
    expect(intake.sizes()).toMatchObject({ queuedPeers: 0, shedInQueue: 0 });
    await intake.close();
  });

  test('bans a peer at the invalid threshold and calls the hook once; other peers are unaffected', async () => {
    const bans: Array<{ peer: string; invalid: number }> = [];
    const { intake, delivered, clock } = setup({
      banThreshold: 5,
      banMs: 1000,
      onBan: (ref, stats) => bans.push({ peer: ref.peer, invalid: stats.invalid }),
    });
    for (let i = 0; i < 5; i++) intake.offer(utf8(`not json ${i}`), meta('bad'));
    await intake.idle();
    expect(bans).toEqual([{ peer: 'bad', invalid: 5 }]);
    const good = wire(await commitPacket(await testKey(), 9));
    expect(intake.offer(good.bytes, meta('bad'))).toBe('banned');
    expect(intake.offer(good.bytes, meta('good'))).toBe('queued');
    await intake.idle();
    expect(delivered.map((d) => d.peer)).toEqual(['good']);
    expect(intake.metrics()).toMatchObject({ bans: 1, fromBanned: 1 });
    // the ban expires and the counters start again
    clock.now = T0 + 1000;
    const again = wire(await commitPacket(await testKey(), 10));
    expect(intake.offer(again.bytes, meta('bad'))).toBe('queued');
    await intake.idle();
    expect(delivered.map((d) => d.peer)).toEqual(['good', 'bad']);
    expect(intake.peerStats({ transport: 'memory', peer: 'bad' })).toMatchObject({ invalid: 0, accepted: 1 });
    await intake.close();
  });

  test('a full queue sheds heartbeats first and never grows past its bound', async () => {
    // One peer sends everything here: the shedding by rank is what this test is about.
    const { intake, delivered, release } = gated({ maxQueuePerPeer: 8 }, (p) => p.packet.type);
    const key = await testKey();
    const beats = await Promise.all(Array.from({ length: 9 }, (_, i) => heartbeatPacket(key, i)));
    const cms = await Promise.all(Array.from({ length: 6 }, (_, i) => commitPacket(key, 100 + i)));
    // the first heartbeat takes the only verification slot; eight more fill the queue
    for (const b of beats)
      expect(intake.offer(wire(b).bytes, meta('p', 'memory', heartbeats))).toBe('queued');
    expect(intake.metrics()).toMatchObject({ queueDepth: 8, dropped: 0 });
    // one more heartbeat does not fit and outranks nothing
    expect(intake.offer(wire(await heartbeatPacket(key, 99)).bytes, meta('p', 'memory', heartbeats))).toBe(
      'dropped',
    );
    // commits push heartbeats out
    for (const c of cms) expect(intake.offer(wire(c).bytes, meta())).toBe('queued');
    expect(intake.metrics()).toMatchObject({ queueDepth: 8, maxQueueDepth: 8, dropped: 7 });
    release();
    await intake.idle();
    // commits are verified before the heartbeats that were left
    expect(delivered).toEqual(['heartbeat', ...Array(6).fill('commit'), ...Array(2).fill('heartbeat')]);
    expect(intake.metrics()).toMatchObject({ accepted: 9, dropped: 7, queueDepth: 0 });
    await intake.close();
  });

  test('a flood of 10,000 junk messages is rejected within bounds, and a valid packet still gets through', async () => {
    const delivered: IntakePacket[] = [];
    const clock = { now: T0 };
    const maxQueue = 256;
    const intake = new Intake({
      now: () => clock.now,
      maxQueue,
      concurrency: 8,
      banThreshold: 1_000_000,
      deliver: (p) => {
        delivered.push(p);
      },
    });
    const key = await testKey();
    const base = await commitPacket(key, 20);
    const junk = (i: number): Uint8Array => {
      switch (i % 5) {
        case 0: // not JSON
          return utf8(`\u0000junk-${i}-${'x'.repeat(i % 300)}`);
        case 1: // schema-valid, signature does not match the changed body
          return tampered(base, (j) => {
            (j['body'] as Record<string, unknown>)['commitment'] = hex64(i);
          });
        case 2: // unknown field
          return tampered(base, (j) => {
            (j['body'] as Record<string, unknown>)[`f${i}`] = i;
          });
        case 3: // stale, and forged (the date changed, not signed again): a bad signature
          return tampered(base, (j) => {
            (j['body'] as Record<string, unknown>)['createdAt'] = T0 - LIMITS.defaultSkewMs - 1 - i;
          });
        default: // wrong field type
          return tampered(base, (j) => {
            (j['body'] as Record<string, unknown>)['requestId'] = i;
          });
      }
    };
    Bun.gc(true);
    const heapBefore = process.memoryUsage().heapUsed;

    // 1) a burst, as a transport callback would give it: the queue sheds what it cannot hold
    let queued = 0;
    let dropped = 0;
    for (let i = 0; i < 10_000; i++) {
      const r = intake.offer(junk(i), meta(`peer-${i % 97}`));
      if (r === 'queued') queued++;
      else if (r === 'dropped') dropped++;
      expect(intake.metrics().queueDepth).toBeLessThanOrEqual(maxQueue);
    }
    expect(queued + dropped).toBe(10_000);
    expect(dropped).toBeGreaterThan(0);
    await intake.idle();
    let m = intake.metrics();
    expect(m).toMatchObject({ accepted: 0, rejectedTotal: queued, dropped, queueDepth: 0, inFlight: 0 });
    expect(m.maxQueueDepth).toBeLessThanOrEqual(maxQueue);

    // 2) the same kinds of junk, new bytes, fed at the pace the intake drains: every one is judged
    const before = intake.metrics();
    for (let i = 10_000; i < 20_000; i++) {
      expect(intake.offer(junk(i), meta(`peer-${i % 97}`))).toBe('queued');
      if (intake.metrics().queueDepth >= maxQueue) await intake.idle();
    }
    await intake.idle();
    m = intake.metrics();
    expect(m.rejectedTotal - before.rejectedTotal).toBe(10_000);
    const delta = (code: keyof typeof m.rejected) => (m.rejected[code] ?? 0) - (before.rejected[code] ?? 0);
    expect(delta('PACKET_MALFORMED')).toBe(2000);
    expect(delta('PACKET_BAD_SIGNATURE')).toBe(4000);
    expect(delta('PACKET_UNKNOWN_FIELD')).toBe(2000);
    expect(delta('PACKET_STALE')).toBe(0);
    expect(delta('PACKET_INVALID_FIELD')).toBe(2000);
    expect(m.dropped).toBe(dropped);
    expect(m.maxQueueDepth).toBeLessThanOrEqual(maxQueue);
    expect(m.accepted).toBe(0);
    expect(delivered).toHaveLength(0);
    expect(m.trackedPeers).toBe(97);

    Bun.gc(true);
    const heapAfter = process.memoryUsage().heapUsed;
    expect(heapAfter - heapBefore).toBeLessThan(64 * 1024 * 1024);

    // 3) a valid packet after the flood is delivered
    const good = wire(await commitPacket(key, 21));
    expect(intake.offer(good.bytes, meta('peer-1'))).toBe('queued');
    await intake.idle();
    expect(delivered.map((d) => d.id)).toEqual([good.id]);
    await intake.close();
  });

  test('closing discards the queue and refuses new messages', async () => {
    const { intake, delivered } = setup({ concurrency: 1 });
    const key = await testKey();
    const packets = await Promise.all([0, 1, 2, 3, 4].map((i) => commitPacket(key, 200 + i)));
    for (const p of packets) intake.offer(wire(p).bytes, meta());
    // one is being verified, four wait; close lets the one finish and discards the rest
    await intake.close();
    expect(delivered.map((d) => d.id)).toEqual([wire(packets[0]!).id]);
    expect(intake.metrics().queueDepth).toBe(0);
    expect(intake.offer(wire(await commitPacket(key, 300)).bytes, meta())).toBe('closed');
  });
});

/**
 * Test double of a gossip transport (the real one is WakuRelayTransport, tested in waku-relay.test.ts and
 * in the loopback-network tests): it records what is published on it, and `receive` hands bytes to the
 * installed forward validator as gossipsub would, returning the verdict.
 */
class GossipTransportDouble implements Transport {
  readonly name = 'waku-relay';
  readonly published: Array<{ topic: string; bytes: Uint8Array; options: PublishOptions | undefined }> = [];
  #validator: ForwardValidator | null = null;

  async publish(topic: (typeof commits & string) | string, bytes: Uint8Array, options?: PublishOptions) {
    this.published.push({ topic, bytes, options });
  }
  subscribe(): Unsubscribe {
    return () => undefined;
  }
  peers(): string[] {
    return [];
  }
  async close(): Promise<void> {}
  setForwardValidator(validator: ForwardValidator | null): void {
    this.#validator = validator;
  }
  receive(bytes: Uint8Array, peer = 'gossip-peer', topic = commits): Promise<ForwardVerdict> {
    if (this.#validator === null) throw new Error('no forward validator installed');
    return this.#validator(bytes, { peer, transport: this.name, topic });
  }
}

describe('Intake: relaying across transports', () => {
  const gun = (peer = 'gun:relay'): MessageMeta => ({ ...meta(peer, 'gun'), attributable: false });

  test('a packet accepted from a non-gossip transport is published once on the gossip transport, stamped with its own createdAt', async () => {
    const { intake, delivered } = setup();
    const gossip = new GossipTransportDouble();
    intake.attach(gossip);
    const packet = await commitPacket(await testKey(), 40, T0 - 1234);
    const { bytes, id } = wire(packet);
    intake.offer(bytes, gun());
    await intake.idle();
    expect(delivered.map((d) => d.id)).toEqual([id]);
    expect(gossip.published).toEqual([{ topic: commits, bytes, options: { createdAt: T0 - 1234 } }]);
    // later copies, over either transport, are duplicates: nothing more is published or forwarded
    expect(intake.offer(bytes, gun())).toBe('duplicate');
    expect(await gossip.receive(bytes)).toBe('ignore');
    await intake.idle();
    expect(gossip.published).toHaveLength(1);
    expect(intake.metrics()).toMatchObject({ accepted: 1, bridged: 1, bridgeErrors: 0, duplicates: 2 });
    await intake.close();
  });

  test('a packet that came over gossip is forwarded by gossip and not published again', async () => {
    const { intake, delivered } = setup();
    const gossip = new GossipTransportDouble();
    intake.attach(gossip);
    const { bytes, id } = wire(await commitPacket(await testKey(), 41));
    expect(await gossip.receive(bytes)).toBe('accept');
    await intake.idle();
    expect(delivered.map((d) => d.id)).toEqual([id]);
    expect(gossip.published).toEqual([]);
    expect(intake.offer(bytes, gun())).toBe('duplicate');
    expect(intake.metrics().bridged).toBe(0);
    await intake.close();
  });

  test('a gossip copy that arrives while the same bytes are verified waits, and is the one forwarded', async () => {
    // Answered `ignore` at once, the copy would sit in gossip's seen cache, the bridged publication of
    // the same bytes would be refused there as a duplicate, and the peers behind this node would miss it.
    const { intake, delivered, release } = gated({}, (p) => p.id);
    const gossip = new GossipTransportDouble();
    intake.attach(gossip);
    const key = await testKey();
    const blocker = wire(await commitPacket(key, 42));
    const target = wire(await commitPacket(key, 43));
    intake.offer(blocker.bytes, meta('p0', 'memory')); // holds the only verification slot
    intake.offer(target.bytes, gun()); // queued behind it
    const first = gossip.receive(target.bytes, 'g1');
    const second = gossip.receive(target.bytes, 'g2');
    // copies past the few that may wait are answered at once: a flood of envelopes holds no memory
    const more = [3, 4].map((n) => gossip.receive(target.bytes, `g${n}`));
    expect(await gossip.receive(target.bytes, 'g5')).toBe('ignore');
    let answered = false;
    void first.then(() => {
      answered = true;
    });
    await Bun.sleep(20);
    expect(answered).toBe(false); // waiting for the verdict on the Gun copy
    release();
    expect(await first).toBe('accept');
    expect(await second).toBe('ignore'); // one copy forwarded per transport
    expect(await Promise.all(more)).toEqual(['ignore', 'ignore']);
    await intake.idle();
    expect(delivered).toEqual([blocker.id, target.id]);
    expect(gossip.published.map((p) => p.bytes)).toEqual([blocker.bytes]); // bridged: it came over memory
    expect(intake.metrics()).toMatchObject({ accepted: 2, duplicates: 5, bridged: 1 });
    await intake.close();
  });

  test('copies waiting on invalid bytes are held against their senders; after a topic mismatch they are judged on their own', async () => {
    const { intake, delivered, release } = gated({}, (p) => p.id);
    const gossip = new GossipTransportDouble();
    intake.attach(gossip);
    const key = await testKey();
    const blocker = wire(await commitPacket(key, 44));
    const packet = await commitPacket(key, 45);
    const forged = tampered(packet, (json) => {
      (json.body as Record<string, unknown>).commitment = hex64(99);
    });
    const genuine = wire(packet);
    intake.offer(blocker.bytes, meta('p0', 'memory'));
    intake.offer(forged, gun());
    // the genuine bytes, first on the wrong topic (Gun, say an attacker's put), then over gossip
    intake.offer(genuine.bytes, { ...gun('gun:other'), topic: heartbeats });
    const forgedCopy = gossip.receive(forged, 'g-forger');
    const genuineCopy = gossip.receive(genuine.bytes, 'g-honest');
    release();
    expect(await forgedCopy).toBe('reject');
    expect(await genuineCopy).toBe('accept');
    await intake.idle();
    expect(delivered).toEqual([blocker.id, genuine.id]);
    expect(intake.peerStats({ transport: 'waku-relay', peer: 'g-forger' })?.invalid).toBe(1);
    expect(intake.peerStats({ transport: 'waku-relay', peer: 'g-honest' })?.invalid).toBe(0);
    await intake.close();
  });

  test('a gossip copy on the wrong topic that waited on a Gun copy is not forwarded, and crowds no copy on the right topic out', async () => {
    // Forwarded, the copy would go out on the wrong content topic (every honest neighbour rejects it and
    // scores this node for it), and the packet would not go out on its own topic at all.
    const { intake, delivered, release } = gated({}, (p) => p.id);
    const gossip = new GossipTransportDouble();
    intake.attach(gossip);
    const key = await testKey();
    const blocker = wire(await commitPacket(key, 48));
    const target = wire(await commitPacket(key, 49));
    intake.offer(blocker.bytes, meta('p0', 'memory')); // holds the only verification slot
    intake.offer(target.bytes, gun()); // queued behind it
    const wrong = [1, 2, 3, 4, 5].map((n) => gossip.receive(target.bytes, `g-attacker${n}`, heartbeats));
    const right = gossip.receive(target.bytes, 'g-honest');
    release();
    expect(await Promise.all(wrong)).not.toContain('accept');
    expect(await right).toBe('accept');
    await intake.idle();
    expect(delivered).toEqual([blocker.id, target.id]);
    expect(intake.peerStats({ transport: 'waku-relay', peer: 'g-attacker1' })?.invalid).toBe(1);
    expect(intake.peerStats({ transport: 'waku-relay', peer: 'g-honest' })?.invalid).toBe(0);
    await intake.close();
  });

  test('a gossip copy on the wrong topic that waited on a Gun copy does not stop the bridge', async () => {
    const { intake, release } = gated({}, (p) => p.id);
    const gossip = new GossipTransportDouble();
    intake.attach(gossip);
    const key = await testKey();
    const blocker = wire(await commitPacket(key, 50));
    const target = wire(await commitPacket(key, 51));
    intake.offer(blocker.bytes, meta('p0', 'memory'));
    intake.offer(target.bytes, gun());
    const wrong = gossip.receive(target.bytes, 'g-attacker', heartbeats);
    release();
    expect(await wrong).toBe('reject');
    await intake.idle();
    // published on its own topic, as if the wrong copy had never come
    expect(gossip.published.map((p) => [p.topic, p.bytes])).toEqual([
      [commits, blocker.bytes],
      [commits, target.bytes],
    ]);
    await intake.close();
  });

  test('with bridge off nothing is published; closing answers waiting copies', async () => {
    const { intake, release } = gated({ bridge: false }, (p) => p.id);
    const gossip = new GossipTransportDouble();
    intake.attach(gossip);
    const key = await testKey();
    const blocker = wire(await commitPacket(key, 46));
    const target = wire(await commitPacket(key, 47));
    intake.offer(blocker.bytes, meta('p0', 'memory'));
    intake.offer(target.bytes, gun());
    const waiting = gossip.receive(target.bytes);
    const closed = intake.close();
    expect(await waiting).toBe('ignore');
    release();
    await closed;
    expect(gossip.published).toEqual([]);
    expect(intake.metrics().bridged).toBe(0);
  });
});

describe('TtlSet', () => {
  test('is bounded in entries, oldest first, and expires entries by age', () => {
    const s = new TtlSet<number>(3, 100);
    s.set('a', 1, 0);
    s.set('b', 2, 10);
    s.set('c', 3, 20);
    s.set('d', 4, 30);
    expect(s.size).toBe(3);
    expect(s.get('a', 30)).toBeUndefined();
    expect(s.get('b', 30)).toBe(2);
    expect(s.get('b', 110)).toBeUndefined();
    s.set('e', 5, 125);
    expect(s.get('c', 125)).toBeUndefined();
    expect(s.get('d', 125)).toBe(4);
    expect(s.get('e', 125)).toBe(5);
  });

  test('a set on a live key keeps its expiry', () => {
    const s = new TtlSet<string>(10, 100);
    s.set('k', 'x', 0);
    s.set('k', 'y', 90);
    expect(s.get('k', 99)).toBe('y');
    expect(s.get('k', 100)).toBeUndefined();
  });
});
