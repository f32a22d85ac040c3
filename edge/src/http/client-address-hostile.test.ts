import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningRelay } from '../runtime/bun.ts';
import { loneRelay } from '../test-relay.ts';
import { addressBucket } from './client-address.ts';

/**
 * The limits kept per client address (public reads, /v1/verify, signed requests, key lookups, event
 * streams) must not be escaped by changing address. Over IPv6 a single subscriber is given a whole /64
 * (2^64 addresses), so an address is counted by its /64 there.
 */
describe('addressBucket', () => {
  test('IPv6 addresses count by their /64, however they are written', () => {
    const a = addressBucket('2001:db8:1:2::1');
    expect(addressBucket('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe(a);
    expect(addressBucket('2001:0DB8:0001:0002:0:0:0:2')).toBe(a);
    expect(addressBucket('2001:db8:1:3::1')).not.toBe(a);
    expect(addressBucket('::1')).toBe(addressBucket('::2'));
    expect(addressBucket('fe80::1%eth0')).toBe(addressBucket('fe80::2'));
  });

  test('IPv4, also mapped into IPv6 (a dual-stack listener), counts by its address', () => {
    expect(addressBucket('203.0.113.7')).toBe('203.0.113.7');
    expect(addressBucket('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressBucket('::ffff:cb00:7107')).toBe('203.0.113.7');
    expect(addressBucket('203.0.113.8')).not.toBe(addressBucket('203.0.113.7'));
  });

  test('anything else is kept as it is (one bucket each, as before)', () => {
    expect(addressBucket('unknown')).toBe('unknown');
    expect(addressBucket('')).toBe('');
  });
});

describe('a relay limits an IPv6 /64 as one client', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-address-hostile-'));
  let relay: RunningRelay;
  beforeAll(async () => {
    relay = await loneRelay(`file:${join(dir, 'relay.db')}`, 6, {
      config: { rateLimit: { ratePerSecond: 0.001, burst: 5 } },
    });
  });
  afterAll(async () => {
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** GET /v1/history as the Bun server would hand it over from `address`. */
  const readFrom = (address: string) =>
    relay.app.request('/v1/history', undefined, {
      requestIP: () => ({ address, family: address.includes(':') ? 'IPv6' : 'IPv4', port: 40_000 }),
    });

  test('a fresh address of the same /64 for each read does not reset the bucket', async () => {
    const statuses: number[] = [];
    for (let i = 1; i <= 7; i++) statuses.push((await readFrom(`2001:db8:7:7::${i.toString(16)}`)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    // Another /64 is another client.
    expect((await readFrom('2001:db8:7:8::1')).status).toBe(200);
  });
});
