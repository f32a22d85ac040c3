/**
 * Which addresses a node's transport dials, with no libp2p import (only the multiaddr parser): the
 * relay's and the web app's command lines check `--bootstrap` against `--dial` with it before they load
 * any transport, and the transport's connection gater uses the same check.
 *
 * `loopback` (the default everywhere) dials 127.0.0.0/8 and ::1 only: one machine, as in development and
 * tests. `any` dials other hosts too, as joining a relay on another machine needs; an operator says so
 * deliberately.
 */
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';

export type DialPolicyName = 'loopback' | 'any';

/** Whether an address is on this machine: IPv4 127.0.0.0/8 or IPv6 ::1, nothing resolved by name. */
export function isLoopbackAddress(address: Multiaddr): boolean {
  const first = address.stringTuples()[0];
  if (first === undefined) return false;
  const [code, value] = first;
  if (code === 4) return value?.startsWith('127.') ?? false;
  if (code === 41) return value === '::1' || value === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * Whether the transport under `policy` would dial a peer at this multiaddr (text), by the transport's own
 * check (`isLoopbackAddress`); text that is no multiaddr is dialled by neither.
 */
export function dialsMultiaddr(policy: DialPolicyName, address: string): boolean {
  let parsed: Multiaddr;
  try {
    parsed = multiaddr(address);
  } catch {
    return false;
  }
  return policy === 'any' || isLoopbackAddress(parsed);
}

/** `--dial`'s value as a policy, or null when it is neither `loopback` nor `any`. */
export function parseDialPolicy(text: string): DialPolicyName | null {
  return text === 'loopback' || text === 'any' ? text : null;
}
