import { afterEach, describe, expect, test } from 'bun:test';
import { FRAME_DEFAULTS, type NodeKey, signPacket } from '@synod/shared';
import { testRequest } from '../node/test-request.ts';
import { GUN_BOUNDS_DEFAULTS, GunTransport, type GunTransportOptions, gunKeyOf, soulOf } from './gun.ts';
import type { GunBoundsOptions } from './gun-bounds.ts';
import { type GunRelay, type GunRelayOptions, startGunRelay } from './gun-relay.ts';
import { Intake, type IntakePacket } from './intake.ts';
import { MemoryNetwork } from './memory.ts';
import { hex64, testKey, waitFor, wire } from './test-fixtures.ts';
import { contentTopic } from './topics.ts';
import type { MessageMeta } from './transport.ts';

const requests = contentTopic('requests');
const LONG = 60_000;
const relays: GunRelay[] = [];
const clients: GunTransport[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(relays.splice(0).map((r) => r.close()));
});

async function requestPacket(key: NodeKey, n: number, createdAt = Date.now()) {
  const body = testRequest({
    embedder: { id: 'use-lite-512', fileHash: hex64(7), bits: 512 },
    nonce: n,
    prompt: `What is ${n} + ${n}?`,
    acceptedModels: ['qwen2.5-0.5b-instruct'],
    params: { temperature: 0, maxTokens: 32 },
    frame: FRAME_DEFAULTS,
    createdAt,
  });
  return signPacket(key, 'request', body);
}

async function relayAndClients(
  n: number,
  relayOptions: GunRelayOptions = {},
  clientOptions: Partial<GunTransportOptions> = {},
) {
  const relay = await startGunRelay(relayOptions);
  relays.push(relay);
  expect(relay.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/gun$/);
  const made = Array.from({ length: n }, () => client(relay, clientOptions));
  return { relay, clients: made };
}

function client(relay: GunRelay, options: Partial<GunTransportOptions> = {}): GunTransport {
  const made = new GunTransport({ ...options, peers: [relay.url] });
  clients.push(made);
  return made;
}

/** A clock the tests move by hand; every Gun instance of a test reads it. */
function manualClock() {
  const clock = { t: Date.now(), now: () => clock.t };
  return clock;
}

/** A relay and two clients, all bounded with a sweep every 20 ms on one hand-moved clock. */
async function boundedRelayAndTwoClients() {
  const clock = manualClock();
  const bounds: GunBoundsOptions = { now: clock.now, sweepEveryMs: 20 };
  const { relay, clients } = await relayAndClients(2, { bounds }, { bounds });
  return { clock, bounds, relay, a: clients[0] as GunTransport, b: clients[1] as GunTransport };
}

/** The Gun 0.2020 internals the bounds prune (see gun-bounds.ts). */
interface GunInternals {
  graph: Record<string, Record<string, unknown> & { _: { '>': Record<string, number> } }>;
  next?: Record<string, { put?: Record<string, unknown>; next?: Record<string, unknown> }>;
}

/** Count, straight from Gun's structures, the packet keys an instance holds for a topic. */
function held(instance: { gun: unknown }, topic = requests) {
  const root = (instance.gun as { _: GunInternals })._;
  const soul = soulOf(topic);
  const keysOf = (o: object | undefined) => Object.keys(o ?? {}).filter((k) => k !== '_');
  const node = root.graph[soul];
  const chain = root.next?.[soul];
  return {
    graph: keysOf(node),
    states: keysOf(node?._['>']),
    cached: keysOf(chain?.put),
    children: keysOf(chain?.next),
  };
}

const total = (h: ReturnType<typeof held>) =>
  h.graph.length + h.states.length + h.cached.length + h.children.length;

async function publishAll(from: GunTransport, packets: Array<{ bytes: Uint8Array }>) {
  for (const p of packets) await from.publish(requests, p.bytes);
}

/** `count` signed requests; the i-th created at `createdAt + i * step`. */
async function packets(count: number, createdAt: number, { offset = 0, step = 0 } = {}) {
  const key = await testKey();
  return Promise.all(
    Array.from({ length: count }, async (_, i) =>
      wire(await requestPacket(key, offset + i, createdAt + i * step)),
    ),
  );
}

describe('Gun transport', () => {
  test(
    'two clients exchange a packet through a relay on 127.0.0.1',
    async () => {
      const {
        relay,
        clients: [a, b],
      } = await relayAndClients(2);
      const atA: Uint8Array[] = [];
      const atB: Array<{ bytes: Uint8Array; meta: MessageMeta }> = [];
      a!.subscribe(requests, (bytes) => atA.push(bytes));
      b!.subscribe(requests, (bytes, meta) => atB.push({ bytes, meta }));
      await waitFor(() => relay.clients() === 2, LONG, 'both clients connected');

      const packet = await requestPacket(await testKey(), 1);
      const { bytes, id } = wire(packet);
      expect(gunKeyOf(bytes)).toBe(id);
      await a!.publish(requests, bytes);
      await waitFor(() => atB.length >= 1, LONG, 'delivery through the relay');
      expect(atB[0]!.bytes).toEqual(bytes);
      expect(atB[0]!.meta).toEqual({
        peer: `gun:${relay.url}`,
        transport: 'gun',
        topic: requests,
        attributable: false,
      });
      // the publisher does not hear its own packet
      expect(atA).toHaveLength(0);
      expect(a!.peers()).toEqual([relay.url]);
      expect(soulOf(requests)).toBe('synod:/synod/1/requests/proto');
    },
    LONG + 10_000,
  );

  test(
    'a packet sent over both Gun and another transport reaches the core once',
    async () => {
      const {
        relay,
        clients: [sender, receiver],
      } = await relayAndClients(2);
      const net = new MemoryNetwork();
      const memSender = net.join('s');
      const memReceiver = net.join('r');
      const delivered: IntakePacket[] = [];
      const intake = new Intake({ now: Date.now, deliver: (p) => void delivered.push(p) });
      intake.attach(memReceiver);
      intake.attach(receiver!, [requests, contentTopic('verdicts')]);
      await waitFor(() => relay.clients() === 2, LONG, 'both clients connected');

      const packet = await requestPacket(await testKey(), 2);
      const { bytes, id } = wire(packet);
      await sender!.publish(requests, bytes);
      await memSender.publish(requests, bytes);
      await waitFor(() => intake.metrics().offered >= 2, LONG, 'both copies offered');
      await intake.idle();
      expect(delivered.map((d) => d.id)).toEqual([id]);
      // Gun may hand the same put over more than once (a peer's echo): every extra copy is a duplicate.
      const m = intake.metrics();
      expect(m).toMatchObject({ accepted: 1, rejectedTotal: 0 });
      expect(m.duplicates).toBeGreaterThanOrEqual(1);
      expect(m.offered).toBe(m.accepted + m.duplicates);
      await intake.close();
      await memSender.close();
      await memReceiver.close();
    },
    LONG + 10_000,
  );

  test(
    'refuses topics it does not carry, and closing disconnects from the relay',
    async () => {
      const {
        relay,
        clients: [a],
      } = await relayAndClients(1);
      a!.subscribe(requests, () => {});
      await waitFor(() => relay.clients() === 1, LONG, 'connected');
      await expect(a!.publish(contentTopic('heartbeats'), new Uint8Array([1]))).rejects.toThrow(
        'does not carry',
      );
      expect(() => a!.subscribe(contentTopic('commits'), () => {})).toThrow('does not carry');
      await a!.close();
      await waitFor(() => relay.clients() === 0, LONG, 'disconnected');
      expect(a!.peers()).toEqual([]);
      await expect(a!.publish(requests, new Uint8Array([1]))).rejects.toThrow('closed');
    },
    LONG + 10_000,
  );

  describe('bounded memory', () => {
    const PAST_WINDOW = GUN_BOUNDS_DEFAULTS.maxAgeMs + 1;
    const FAST = 10_000;

    test(
      'packets past the skew window leave the graph and chain caches of relay and clients',
      async () => {
        const { clock, relay, a, b } = await boundedRelayAndTwoClients();
        const atB = new Set<string>();
        b!.subscribe(requests, (bytes) => atB.add(gunKeyOf(bytes)));
        await waitFor(() => relay.clients() === 2, LONG, 'both clients connected');

        const old = await packets(40, clock.t);
        await publishAll(a!, old);
        await waitFor(() => atB.size === old.length, LONG, 'every packet delivered');
        const ids = old.map((p) => p.id).sort();
        for (const instance of [relay, a!, b!]) {
          await waitFor(() => held(instance).graph.length === old.length, LONG, 'every packet held');
          expect(held(instance).graph.sort()).toEqual(ids);
          expect(held(instance).states.sort()).toEqual(ids);
        }
        // the subscriber's chain caches hold them too: the soul chain's put and one child chain per key
        expect(held(b!).cached.sort()).toEqual(ids);
        expect(held(b!).children.sort()).toEqual(ids);
        expect(relay.graphStats()).toMatchObject({ keys: 40, pruned: 0 });
        expect(relay.graphStats().bytes).toBeGreaterThan(40 * 64);

        clock.t += PAST_WINDOW;
        await waitFor(
          () => [relay, a!, b!].every((i) => total(held(i)) === 0),
          FAST,
          'old packets pruned everywhere',
        );
        for (const instance of [relay, a!, b!]) {
          expect(instance.graphStats()).toEqual({ keys: 0, bytes: 0, pruned: 40, refused: 0 });
        }
      },
      LONG + 10_000,
    );

    test(
      'a burst of fresh packets stays within the key and byte caps, newest kept',
      async () => {
        // born a millisecond apart, in the recent past (a birth is never later than the arrival here)
        const fresh = await packets(100, Date.now() - 10_000, { step: 1 });
        const size = 64 + fresh[0]!.bytes.length;
        const maxBytes = 12 * size;
        const {
          relay,
          clients: [a, b],
        } = await relayAndClients(2, { bounds: { maxBytes } }, { bounds: { maxKeys: 20 } });
        const got = new Set<string>();
        let most = 0;
        b!.subscribe(requests, (bytes) => {
          got.add(gunKeyOf(bytes));
          most = Math.max(most, held(b!).graph.length);
        });
        await waitFor(() => relay.clients() === 2, LONG, 'both clients connected');

        await publishAll(a!, fresh);
        await waitFor(() => got.size === fresh.length, LONG, 'the whole burst delivered');
        // The earliest born go first, so whatever order Gun delivers a burst in, the newest stay.
        const newest = (n: number) => fresh.slice(-n).map((p) => p.id);
        for (const instance of [a!, b!]) {
          expect(held(instance).graph.sort()).toEqual(newest(20).sort());
          expect(instance.graphStats()).toMatchObject({ keys: 20, pruned: 80 });
        }
        expect(most).toBeLessThanOrEqual(20);
        expect(held(b!).cached.length).toBe(20);
        expect(held(b!).children.length).toBe(20);
        const atRelay = held(relay).graph;
        expect(atRelay.length).toBeGreaterThanOrEqual(11);
        expect(atRelay.length).toBeLessThanOrEqual(12);
        expect(atRelay.sort()).toEqual(newest(atRelay.length).sort());
        expect(relay.graphStats().keys).toBe(atRelay.length);
        expect(relay.graphStats().bytes).toBeLessThanOrEqual(maxBytes);
      },
      LONG + 10_000,
    );

    test(
      'after a prune, new packets still flow and a pruned packet put again is refused',
      async () => {
        const { clock, relay, a, b } = await boundedRelayAndTwoClients();
        const atB: string[] = [];
        b!.subscribe(requests, (bytes) => atB.push(gunKeyOf(bytes)));
        await waitFor(() => relay.clients() === 2, LONG, 'both clients connected');
        const old = await packets(10, clock.t);
        await publishAll(a!, old);
        await waitFor(() => new Set(atB).size === old.length, LONG, 'old packets delivered');
        clock.t += PAST_WINDOW;
        await waitFor(() => [relay, a!, b!].every((i) => total(held(i)) === 0), FAST, 'pruned');

        // a peer that still has a pruned packet puts it again, straight through Gun
        const again = old[0]!;
        a!.gun.get(soulOf(requests)).put({ [again.id]: new TextDecoder().decode(again.bytes) });
        await waitFor(() => relay.graphStats().refused >= 1, FAST, 'the relay to refuse it');

        // a hostile peer puts a packet with a HAM state a year ahead (Gun would hold it in a timer)
        const [ahead] = await packets(1, clock.t, { offset: 200 });
        const soul = soulOf(requests);
        const socket = new WebSocket(relay.url.replace(/^http/, 'ws'));
        await new Promise((resolve) => socket.addEventListener('open', resolve, { once: true }));
        const refusedBefore = relay.graphStats().refused;
        socket.send(
          JSON.stringify({
            '#': 'future-state',
            put: {
              [soul]: {
                _: { '#': soul, '>': { [ahead!.id]: Date.now() + 365 * 86_400_000 } },
                [ahead!.id]: new TextDecoder().decode(ahead!.bytes),
              },
            },
          }),
        );
        await waitFor(() => relay.graphStats().refused > refusedBefore, FAST, 'the future state refused');
        socket.close();

        const [next] = await packets(1, clock.t, { offset: 100 });
        await a!.publish(requests, next!.bytes);
        await waitFor(() => atB.includes(next!.id), LONG, 'a new packet delivered after the prune');
        // (Gun may hand a put over twice: an echo; the intake's dedup drops the copy)
        expect([...new Set(atB)].sort()).toEqual([...old.map((p) => p.id), next!.id].sort());
        for (const instance of [relay, b!]) expect(held(instance).graph).toEqual([next!.id]);
        expect(held(b!).cached).toEqual([next!.id]);
        expect(held(b!).children).toEqual([next!.id]);
      },
      LONG + 10_000,
    );

    test(
      'a late subscriber gets what is fresh, not what was pruned, even from a peer that kept it',
      async () => {
        const clock = manualClock();
        const bounds: GunBoundsOptions = { now: clock.now, sweepEveryMs: 20 };
        const relay = (await relayAndClients(0, { bounds })).relay;
        // `keeper` never prunes (another build, a slow clock): it still answers with the old packets
        const keeper = client(relay, { bounds: { now: clock.now, maxAgeMs: 1e12 } });
        const b = client(relay, { bounds });
        const atB: string[] = [];
        b.subscribe(requests, (bytes) => atB.push(gunKeyOf(bytes)));
        await waitFor(() => relay.clients() === 2, LONG, 'both clients connected');
        const old = await packets(30, clock.t);
        await publishAll(keeper, old);
        await waitFor(() => new Set(atB).size === old.length, LONG, 'old packets delivered');

        clock.t += PAST_WINDOW;
        await waitFor(() => total(held(relay)) + total(held(b)) === 0, FAST, 'relay and b pruned');
        expect(held(keeper).graph).toHaveLength(30);
        const [fresh] = await packets(1, clock.t, { offset: 100 });
        await keeper.publish(requests, fresh!.bytes);
        await waitFor(() => atB.includes(fresh!.id), LONG, 'the fresh packet at b');

        const late = client(relay, { bounds });
        const atLate: string[] = [];
        late.subscribe(requests, (bytes) => atLate.push(gunKeyOf(bytes)));
        await waitFor(() => atLate.includes(fresh!.id), LONG, 'history at the late subscriber');
        // the relay passes the late subscriber's GET on to its peers; the keeper's answer carries the
        // 30 old packets, which the relay refuses
        await waitFor(() => relay.graphStats().refused >= 30, LONG, "the keeper's answer refused");
        expect([...new Set(atLate)]).toEqual([fresh!.id]);
        expect(held(late).graph).toEqual([fresh!.id]);
        expect(held(relay).graph).toEqual([fresh!.id]);
      },
      LONG + 10_000,
    );

    test(
      'puts with HAM states a little ahead are not held outside the bounds, nor delayed',
      async () => {
        // Gun holds a put whose HAM state is ahead of its clock in a timer until then, outside its graph
        // (and so outside the caps): 3 minutes ahead passed the far-future check, so 40 such puts of
        // 200 KB each were 8 MB held by a relay bounded at 1 MiB, and an honest writer whose clock runs
        // 5 s fast had each packet held 5 s by the relay.
        const maxBytes = 1024 * 1024;
        const relay = (await relayAndClients(0, { bounds: { maxBytes } })).relay;
        const b = client(relay);
        const atB: string[] = [];
        b.subscribe(requests, (bytes) => atB.push(gunKeyOf(bytes)));
        await waitFor(() => relay.clients() === 1, LONG, 'the client connected');
        const soul = soulOf(requests);
        const socket = new WebSocket(relay.url.replace(/^http/, 'ws'));
        await new Promise((resolve) => socket.addEventListener('open', resolve, { once: true }));
        const put = (id: string, key: string, value: string, ahead: number) =>
          socket.send(
            JSON.stringify({
              '#': id,
              put: { [soul]: { _: { '#': soul, '>': { [key]: Date.now() + ahead } }, [key]: value } },
            }),
          );
        // an honest writer 5 s fast
        const [fast] = await packets(1, Date.now());
        const sent = Date.now();
        put('fast-clock', fast!.id, new TextDecoder().decode(fast!.bytes), 5_000);
        await waitFor(() => atB.includes(fast!.id), LONG, 'the packet of the fast writer');
        expect(Date.now() - sent).toBeLessThan(2_000);
        // a flood 170 s ahead: all of it is within the bounds the moment it arrives
        const filler = 'x'.repeat(200_000);
        for (let i = 0; i < 40; i++) put(`ahead-${i}`, `k${i}`.padEnd(64, '0'), `${i}${filler}`, 170_000);
        await waitFor(() => relay.graphStats().pruned > 0, FAST, 'the relay to enforce its cap');
        expect(relay.graphStats().bytes).toBeLessThanOrEqual(maxBytes);
        socket.close();
      },
      LONG + 10_000,
    );
  });
});
