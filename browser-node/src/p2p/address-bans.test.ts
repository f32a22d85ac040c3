import { describe, expect, test } from 'bun:test';
import { multiaddr } from '@multiformats/multiaddr';
import { ADDRESS_BAN_AFTER_PEERS, AddressBans, hostOf, isLoopback } from './address-bans.ts';
import { waitFor } from './test-fixtures.ts';
import { createHeadlessWakuRelay } from './waku-relay-headless.ts';
import { addressOf, closedAfterEach } from './waku-test-transports.ts';

const LONG = 120_000;
const track = closedAfterEach();

describe('AddressBans', () => {
  test(`an address is banned at its ${ADDRESS_BAN_AFTER_PEERS}rd distinct banned peer id, for the ban's length`, () => {
    let now = 1_000;
    const bans = new AddressBans(() => now);
    expect(bans.record('203.0.113.7', 'peer-a', 10_000)).toBe(false);
    // The same peer again is still one.
    expect(bans.record('203.0.113.7', 'peer-a', 10_000)).toBe(false);
    expect(bans.record('203.0.113.7', 'peer-b', 10_000)).toBe(false);
    expect(bans.has('203.0.113.7')).toBe(false);
    expect(bans.record('203.0.113.7', 'peer-c', 10_000)).toBe(true);
    expect(bans.has('203.0.113.7')).toBe(true);
    expect(bans.has('203.0.113.8')).toBe(false);
    expect(bans.size).toBe(1);
    now += 10_000;
    expect(bans.has('203.0.113.7')).toBe(false);
    expect(bans.size).toBe(0);
  });

  test('peer bans that ended do not count: one bad peer a ban length behind a NAT never bans it', () => {
    let now = 1_000;
    const bans = new AddressBans(() => now);
    for (const peer of ['a', 'b', 'c', 'd']) {
      expect(bans.record('198.51.100.1', peer, 5_000)).toBe(false);
      now += 5_000;
    }
    expect(bans.has('198.51.100.1')).toBe(false);
  });

  test('loopback is never banned by default (this machine is own processes); exemptLoopback: false bans it', () => {
    const exempt = new AddressBans(() => 0);
    const strict = new AddressBans(() => 0, { exemptLoopback: false });
    for (const peer of ['a', 'b', 'c']) {
      exempt.record('127.0.0.1', peer, 1_000);
      exempt.record('::1', peer, 1_000);
      strict.record('127.0.0.1', peer, 1_000);
    }
    expect(exempt.has('127.0.0.1')).toBe(false);
    expect(exempt.has('::1')).toBe(false);
    expect(strict.has('127.0.0.1')).toBe(true);
    expect(['127.0.0.1', '127.9.9.9', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'].every(isLoopback)).toBe(
      true,
    );
    expect(['10.0.0.1', '::2', '2001:db8::1'].some(isLoopback)).toBe(false);
  });

  test('bad settings are refused; hostOf reads the IP a multiaddr starts with', () => {
    expect(() => new AddressBans(() => 0, { afterPeers: 0 })).toThrow(RangeError);
    expect(hostOf(multiaddr('/ip4/203.0.113.7/tcp/60000'))).toBe('203.0.113.7');
    expect(hostOf(multiaddr('/ip6/2001:db8::1/tcp/1/ws'))).toBe('2001:db8::1');
    expect(hostOf(multiaddr('/dns4/example.org/tcp/443/wss'))).toBeNull();
    expect(hostOf(undefined)).toBeNull();
  });
});

describe('a Waku relay that bans addresses', () => {
  test(
    'a banned peer back under new peer ids: at the third, its address is refused before any handshake, and its other connections closed',
    async () => {
      const hub = track(await createHeadlessWakuRelay({ addressBans: { exemptLoopback: false } }));
      const reconnect = { initialMs: 100, maxMs: 200 };
      const bootstrap = [addressOf(hub, false)];
      // A peer from the same address, connected before: it goes with the address.
      const neighbour = track(await createHeadlessWakuRelay({ bootstrap, reconnect }));
      await waitFor(() => hub.peers().includes(neighbour.peerId), LONG, 'the neighbour');
      for (let i = 0; i < 3; i++) {
        // A fresh identity each time, as an attacker makes one in a millisecond.
        const bad = track(await createHeadlessWakuRelay({ bootstrap, reconnect }));
        await waitFor(() => hub.peers().includes(bad.peerId), LONG, `identity ${i + 1} connected`);
        await hub.disconnect(bad.peerId, 60_000);
        await waitFor(() => !hub.peers().includes(bad.peerId), LONG, `identity ${i + 1} hung up on`);
        expect(hub.stats().bannedAddresses).toBe(i === 2 ? 1 : 0);
      }
      await waitFor(
        () => !hub.peers().includes(neighbour.peerId),
        LONG,
        'the neighbour closed with the address',
      );
      const fourth = track(await createHeadlessWakuRelay({ bootstrap, reconnect }));
      await waitFor(() => fourth.stats().redials >= 3, LONG, 'the fourth identity redialling');
      expect(hub.peers()).not.toContain(fourth.peerId);
      expect(hub.peers()).toEqual([]);
      expect(hub.stats().banned).toBe(3);
    },
    LONG,
  );
});
