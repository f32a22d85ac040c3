import { describe, expect, test } from 'bun:test';
import { dialsMultiaddr, parseDialPolicy } from './dial-policy.ts';

const PEER = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA';

describe('the dial policy on multiaddr text', () => {
  test('loopback: 127.0.0.0/8 and ::1 only, nothing resolved by name; any: every multiaddr', () => {
    const cases: [string, boolean][] = [
      [`/ip4/127.0.0.1/tcp/1/p2p/${PEER}`, true],
      [`/ip4/127.8.9.10/tcp/1/ws/p2p/${PEER}`, true],
      [`/ip6/::1/tcp/1/p2p/${PEER}`, true],
      [`/ip4/192.0.2.7/tcp/1/p2p/${PEER}`, false],
      [`/ip4/10.0.0.1/tcp/1/p2p/${PEER}`, false],
      [`/ip6/::2/tcp/1/p2p/${PEER}`, false],
      [`/dns4/localhost/tcp/1/p2p/${PEER}`, false],
      [`/dns4/relay.example/tcp/443/wss/p2p/${PEER}`, false],
    ];
    for (const [a, loopback] of cases) {
      expect([a, dialsMultiaddr('loopback', a)]).toEqual([a, loopback]);
      expect(dialsMultiaddr('any', a)).toBe(true);
    }
    // Text that is no multiaddr is dialled by neither (the transport could not parse it either).
    expect(dialsMultiaddr('loopback', '/ip4/127.x/tcp/1')).toBe(false);
    expect(dialsMultiaddr('any', 'not an address')).toBe(false);
  });

  test('--dial takes loopback or any', () => {
    expect(parseDialPolicy('loopback')).toBe('loopback');
    expect(parseDialPolicy('any')).toBe('any');
    expect(parseDialPolicy('all')).toBeNull();
    expect(parseDialPolicy('')).toBeNull();
  });
});
