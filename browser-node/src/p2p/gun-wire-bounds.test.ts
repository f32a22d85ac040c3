import { afterEach, describe, expect, test } from 'bun:test';
import { createServer, type Socket } from 'node:net';
import { GunTransport } from './gun.ts';
import { startGunRelay } from './gun-relay.ts';
import { GUN_WIRE_BOUNDS_DEFAULTS, GunWireBounds } from './gun-wire-bounds.ts';
import { waitFor } from './test-fixtures.ts';
import { contentTopic } from './topics.ts';

const requests = contentTopic('requests');
const LONG = 60_000;
const closers: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const encoder = new TextEncoder();
/** A distinct message of about `size` bytes (not a packet: Gun carries any UTF-8 JSON). */
const message = (n: number, size: number) =>
  encoder.encode(JSON.stringify({ n, pad: `${n}:`.padEnd(size, String.fromCharCode(97 + (n % 26))) }));

function heapUsed(): number {
  Bun.gc(true);
  return process.memoryUsage().heapUsed;
}

/** A TCP listener on 127.0.0.1 that takes connections and never answers: a socket stays connecting. */
async function silentServer(): Promise<number> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => void sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as { port: number }).port;
}

describe('Gun wire bounds', () => {
  test(
    'a flood of publications while the relay socket connects stays within the queue and ack bounds (heap measured)',
    async () => {
      const port = await silentServer();
      // the graph bound small, so what is measured is what waits on the way out
      const client = new GunTransport({
        peers: [`http://127.0.0.1:${port}/gun`],
        topics: [requests],
        bounds: { maxBytes: 256 * 1024 },
      });
      closers.push(() => client.close());
      const count = 2_000;
      const size = 8_192;
      const flood = Array.from({ length: count }, (_, n) => message(n, size));
      const before = heapUsed();
      for (const bytes of flood) await client.publish(requests, bytes);
      await waitFor(() => client.wireStats().queueDropped > 0, LONG, 'the queue to fill');
      await Bun.sleep(300); // Gun flushes its batches on a timer
      // Gun hands puts on in turns of its own (`setTimeout.turn`): on a loaded machine the last are still
      // on their way after that sleep. Every put but the last maxPendingAcks is released once they are in.
      await waitFor(
        () => client.wireStats().acksReleased >= count - GUN_WIRE_BOUNDS_DEFAULTS.maxPendingAcks,
        LONG,
        'the acks of all but the last puts to be released',
      );
      const stats = client.wireStats();
      const grown = heapUsed() - before;
      const peer = Object.values(
        (client.gun._ as { opt: { peers: Record<string, { queue?: string[] }> } }).opt.peers,
      )[0];
      const queuedAtGun = (peer?.queue ?? []).reduce((n, raw) => n + raw.length, 0);
      // unbounded, Gun held every publication twice (queued JSON and the put awaiting its ack): ~32 MB
      expect(count * size * 2).toBeGreaterThan(30_000_000);
      expect(queuedAtGun).toBe(stats.queuedBytes);
      expect(stats.queuedBytes).toBeLessThanOrEqual(GUN_WIRE_BOUNDS_DEFAULTS.maxQueuedBytes);
      expect(stats.queued).toBeLessThanOrEqual(GUN_WIRE_BOUNDS_DEFAULTS.maxQueued);
      expect(stats.queueDropped).toBeGreaterThan(0);
      expect(stats.pendingAcks).toBeLessThanOrEqual(GUN_WIRE_BOUNDS_DEFAULTS.maxPendingAcks);
      expect(stats.pendingAckBytes).toBeLessThanOrEqual(GUN_WIRE_BOUNDS_DEFAULTS.maxPendingAckBytes);
      expect(stats.acksReleased).toBeGreaterThanOrEqual(count - GUN_WIRE_BOUNDS_DEFAULTS.maxPendingAcks);
      expect(grown).toBeLessThan(16_000_000);
    },
    LONG,
  );

  test(
    'with a relay connected every publication of a burst is delivered while acks stay bounded',
    async () => {
      const relay = await startGunRelay({ topics: [requests] });
      closers.push(() => relay.close());
      const a = new GunTransport({
        peers: [relay.url],
        topics: [requests],
        wireBounds: { maxPendingAcks: 64 },
      });
      const b = new GunTransport({ peers: [relay.url], topics: [requests] });
      closers.push(
        () => a.close(),
        () => b.close(),
      );
      const got = new Set<number>();
      b.subscribe(requests, (bytes) =>
        got.add((JSON.parse(new TextDecoder().decode(bytes)) as { n: number }).n),
      );
      await waitFor(() => relay.clients() === 2, LONG, 'both clients connected');
      await Bun.sleep(200);
      const count = 500;
      for (let n = 0; n < count; n++) await a.publish(requests, message(n, 512));
      await waitFor(() => got.size === count, LONG, 'every publication at the other client');
      const stats = a.wireStats();
      // the relay keeps no store and never acks: without the bound all 500 would wait 9 s
      expect(stats.pendingAcks).toBeLessThanOrEqual(64);
      expect(stats.acksReleased).toBeGreaterThanOrEqual(count - 64);
      expect(stats.queueDropped).toBe(0);
    },
    LONG,
  );

  test('bounds must be positive integers', async () => {
    const port = await silentServer();
    const relayless = new GunTransport({ peers: [`http://127.0.0.1:${port}/gun`], topics: [requests] });
    closers.push(() => relayless.close());
    expect(() => new GunWireBounds(relayless.gun, { maxQueued: 0 })).toThrow(RangeError);
    expect(() => new GunWireBounds(relayless.gun, { maxPendingAckBytes: 1.5 })).toThrow(RangeError);
    expect(() => new GunWireBounds({ _: {} })).toThrow(TypeError);
  });
});
