import { describe, expect, test } from 'bun:test';
import { multiaddr } from '@multiformats/multiaddr';
import { dialsMultiaddr, parseDialPolicy } from './dial-policy.ts';
import { isLoopbackAddress } from './waku-relay.ts';

const PEER = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA';

describe('the dial policy on multiaddr text', () => {
  test('loopback takes what the transport’s own loopback check takes, and nothing else', () => {
    for (const a of [
      `/ip4/127.0.0.1/tcp/1/p2p/${PEER}`,
      `/ip4/127.8.9.10/tcp/1/ws/p2p/${PEER}`,
      `/ip6/::1/tcp/1/p2p/${PEER}`,
      `/ip4/192.0.2.7/tcp/1/p2p/${PEER}`,
      `/ip4/10.0.0.1/tcp/1/p2p/${PEER}`,
      `/ip6/::2/tcp/1/p2p/${PEER}`,
      `/dns4/localhost/tcp/1/p2p/${PEER}`,
      `/dns4/relay.example/tcp/443/wss/p2p/${PEER}`,
    ]) {
      expect([a, dialsMultiaddr('loopback', a)]).toEqual([a, isLoopbackAddress(multiaddr(a))]);
      expect(dialsMultiaddr('any', a)).toBe(true);
    }
  });

  test('--dial takes loopback or any', () => {
    expect(parseDialPolicy('loopback')).toBe('loopback');
    expect(parseDialPolicy('any')).toBe('any');
    expect(parseDialPolicy('all')).toBeNull();
    expect(parseDialPolicy('')).toBeNull();
  });
});
