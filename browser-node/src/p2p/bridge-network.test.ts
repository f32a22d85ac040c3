import { afterAll, describe, expect, test } from 'bun:test';
import { GunTransport } from './gun.ts';
import { type GunRelay, startGunRelay } from './gun-relay.ts';
import { Intake, type IntakePacket } from './intake.ts';
import { commitPacket, testKey, waitFor, wire } from './test-fixtures.ts';
import { contentTopic } from './topics.ts';
import type { Transport } from './transport.ts';
import { encodeWakuMessage, type WakuRelayTransport } from './waku-relay.ts';
import { createHeadlessWakuRelay } from './waku-relay-headless.ts';

const LONG = 120_000;
const commits = contentTopic('commits');
const heartbeats = contentTopic('heartbeats');
const closers: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});
const tcp = (t: WakuRelayTransport) => t.addresses().find((a) => !a.includes('/ws')) as string;

/** Closed after the file's tests, last made first. */
function closing<T extends { close(): unknown }>(t: T): T {
  closers.push(async () => t.close());
  return t;
}

/** A Gun relay carrying commits, and a maker of Gun clients of it. */
async function gunNetwork(): Promise<() => GunTransport> {
  const relay: GunRelay = closing(await startGunRelay({ host: '127.0.0.1', port: 0, topics: [commits] }));
  return () => closing(new GunTransport({ peers: [relay.url], topics: [commits] }));
}

/**
 * The bridge's intake, its one verification slot held by a blocker (a memory-transport packet) until
 * `release`, its queue `maxQueue` deep, over a Gun client and a Waku transport of its own.
 */
function gatedBridge(gun: Transport, waku: WakuRelayTransport, maxQueue?: number) {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const bridge = closing(
    new Intake({
      now: Date.now,
      concurrency: 1,
      ...(maxQueue === undefined ? {} : { maxQueue }),
      deliver: async (p) => {
        if (p.transport === 'memory') await gate;
      },
    }),
  );
  bridge.attach(gun);
  bridge.attach(waku);
  return { bridge, release: () => release() };
}

/** An intake on `waku`, and what it delivered. */
function farIntake(waku: WakuRelayTransport): { far: Intake; delivered: IntakePacket[] } {
  const delivered: IntakePacket[] = [];
  const far = closing(new Intake({ now: Date.now, deliver: (p) => void delivered.push(p) }));
  far.attach(waku);
  return { far, delivered };
}

describe('Intake over real transports: Gun bridged onto Waku', () => {
  test(
    "an attacker's copy of a Gun packet on another Waku topic is not forwarded: the packet goes on on its own topic and the bridge is not scored for it",
    async () => {
      //   author ── Gun relay ── bridge (Gun + Waku) ── Waku ── far
      //                                     └── Waku ── attacker
      const gun = await gunNetwork();
      const bridgeWaku = closing(await createHeadlessWakuRelay());
      const farWaku = closing(await createHeadlessWakuRelay({ bootstrap: [tcp(bridgeWaku)] }));
      const attacker = closing(await createHeadlessWakuRelay({ bootstrap: [tcp(bridgeWaku)] }));
      attacker.subscribe(commits, () => undefined);

      // the bridge: one verification slot, held by a blocker until `release`
      const { bridge, release } = gatedBridge(gun(), bridgeWaku);
      const { far, delivered: atFar } = farIntake(farWaku);

      await waitFor(
        () => bridgeWaku.meshPeers(commits).length === 2,
        LONG,
        'the Waku mesh: bridge with far and attacker',
      );
      const author = gun();
      author.subscribe(commits, () => undefined);
      await Bun.sleep(500);

      const key = await testKey();
      const blocker = wire(await commitPacket(key, 1, Date.now()));
      const packet = await commitPacket(key, 2, Date.now());
      const target = wire(packet);
      bridge.offer(blocker.bytes, { peer: 'p0', transport: 'memory', topic: commits });
      await author.publish(commits, target.bytes);
      await waitFor(() => bridge.metrics().offered >= 2, LONG, 'the Gun copy at the bridge');
      // the attacker saw the packet on Gun and sends its bytes to the bridge on another Synod topic
      await attacker.node.services.pubsub.publish(
        attacker.pubsubTopic(heartbeats),
        encodeWakuMessage(heartbeats, target.bytes, packet.body.createdAt),
      );
      await waitFor(() => bridgeWaku.stats().validated >= 1, LONG, 'the wrong copy at the bridge');
      release();

      await waitFor(() => atFar.some((p) => p.id === target.id), 20_000, 'the packet at the far node');
      expect(atFar.find((p) => p.id === target.id)?.topic).toBe(commits);
      await Bun.sleep(500);
      expect(far.metrics().rejected.TOPIC_MISMATCH ?? 0).toBe(0);
      expect(far.peerStats({ transport: 'waku-relay', peer: bridgeWaku.peerId })?.invalid ?? 0).toBe(0);
      expect(farWaku.node.services.pubsub.getScore(bridgeWaku.peerId)).toBeGreaterThanOrEqual(0);
      expect(bridge.peerStats({ transport: 'waku-relay', peer: attacker.peerId })?.invalid).toBe(1);
    },
    LONG,
  );
});

describe('Intake over real transports: a gossip copy shed under load', () => {
  test(
    'a packet whose Waku copy the bridge shed, then accepted from Gun, still reaches the Waku peers behind the bridge',
    async () => {
      //   author (Gun + Waku) ── Waku ── bridge (Gun + Waku) ── Waku ── far
      //          └──────────── Gun relay ──────┘
      const gun = await gunNetwork();
      const bridgeWaku = closing(await createHeadlessWakuRelay());
      const authorWaku = closing(await createHeadlessWakuRelay({ bootstrap: [tcp(bridgeWaku)] }));
      const farWaku = closing(await createHeadlessWakuRelay({ bootstrap: [tcp(bridgeWaku)] }));
      authorWaku.subscribe(commits, () => undefined);

      // the bridge: one verification slot and one queue place, both taken until `release`
      const { bridge, release } = gatedBridge(gun(), bridgeWaku, 1);
      const { delivered: atFar } = farIntake(farWaku);
      await waitFor(
        () => bridgeWaku.meshPeers(commits).length === 2 && !farWaku.peers().includes(authorWaku.peerId),
        LONG,
        'a line: author - bridge - far',
      );
      const authorGun = gun();
      authorGun.subscribe(commits, () => undefined);
      await Bun.sleep(500);

      const key = await testKey();
      const memory = { peer: 'p0', transport: 'memory', topic: commits } as const;
      bridge.offer(wire(await commitPacket(key, 11, Date.now())).bytes, memory); // held in delivery
      await waitFor(() => bridge.metrics().inFlight === 1, LONG, 'the blocker in its slot');
      bridge.offer(wire(await commitPacket(key, 12, Date.now())).bytes, memory); // the queue's one place
      const packet = await commitPacket(key, 13, Date.now());
      const target = wire(packet);
      await authorWaku.publish(commits, target.bytes, { createdAt: packet.body.createdAt });
      await waitFor(() => bridge.metrics().dropped === 1, LONG, 'the Waku copy shed at the bridge');
      release();
      await bridge.idle();

      await authorGun.publish(commits, target.bytes);
      await waitFor(() => atFar.some((p) => p.id === target.id), 20_000, 'the packet at the far node');
      expect(bridge.metrics()).toMatchObject({ accepted: 3, bridged: 3, bridgeErrors: 0 }); // the memory two as well
      expect(bridgeWaku.stats().republished).toBe(1);
    },
    LONG,
  );
});
