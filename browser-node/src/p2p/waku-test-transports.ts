/**
 * For the Waku relay tests: the transports a test file opens, closed after each test, and a transport's
 * listening address of one kind. Not part of the public API; kept beside the tests that use it.
 */
import { afterEach } from 'bun:test';
import type { WakuRelayTransport } from './waku-relay.ts';

/** Registers an `afterEach` that closes every transport passed to the returned `track` in that test. */
export function closedAfterEach(): <T extends WakuRelayTransport>(t: T) => T {
  const open: WakuRelayTransport[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
  });
  return (t) => {
    open.push(t);
    return t;
  };
}

/** The transport's WebSocket (`ws`) or TCP listening multiaddr. */
export function addressOf(t: WakuRelayTransport, ws: boolean): string {
  const a = t.addresses().find((x) => x.includes('/ws/') === ws);
  if (a === undefined) throw new Error(`no ${ws ? 'ws' : 'tcp'} address on ${t.peerId}`);
  return a;
}
