/**
 * Which addresses a node's transport dials, with no libp2p import: the relay's and the web app's command
 * lines check `--bootstrap` against `--dial` with it before they load any transport.
 *
 * `loopback` (the default everywhere) dials 127.0.0.0/8 and ::1 only: one machine, as in development and
 * tests. `any` dials other hosts too, as joining a relay on another machine needs; an operator says so
 * deliberately.
 */
export type DialPolicyName = 'loopback' | 'any';

/** A multiaddr (as text) on a loopback IP address, as the `loopback` policy takes it. */
const LOOPBACK_MULTIADDR_RE = /^\/(?:ip4\/127\.[^/]+|ip6\/(?:::1|0:0:0:0:0:0:0:1))\//;

/** Whether the transport under `policy` would dial a peer at this multiaddr (text). */
export function dialsMultiaddr(policy: DialPolicyName, address: string): boolean {
  return policy === 'any' || LOOPBACK_MULTIADDR_RE.test(address);
}

/** `--dial`'s value as a policy, or null when it is neither `loopback` nor `any`. */
export function parseDialPolicy(text: string): DialPolicyName | null {
  return text === 'loopback' || text === 'any' ? text : null;
}
