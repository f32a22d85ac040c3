/**
 * Bans by network address, on top of the bans by peer id (`PeerBans`, waku-relay.ts). A peer id is a key
 * anyone makes in a millisecond: a peer banned for invalid packets came straight back under a new one
 * (a security audit: banned after 64 bad signatures, a new identity admitted at once and banned again,
 * each round costing the relay 64 signature checks and a Noise handshake). So once `afterPeers` distinct
 * peer ids connected from one address were banned within a ban's length, the address itself is refused
 * at the connection gate, before any handshake, for that length.
 *
 * Not after one: several honest machines share an address behind a NAT, and one ban there is one bad
 * peer among them. Loopback addresses are never banned by default (`exemptLoopback`): they are this
 * machine's own processes, as in a local network started with `npm start`.
 */
import type { Multiaddr } from '@multiformats/multiaddr';

/** Distinct peer ids banned from one address, within a ban's length, that ban the address. */
export const ADDRESS_BAN_AFTER_PEERS = 3;

/** Most addresses tracked (with banned peers, or banned themselves); past it the oldest entry goes. */
export const MAX_TRACKED_ADDRESSES = 4096;

export interface AddressBansOptions {
  /** Distinct banned peer ids that ban their address. Default `ADDRESS_BAN_AFTER_PEERS`. */
  afterPeers?: number;
  /** Never ban 127.0.0.0/8 or ::1. Default true. */
  exemptLoopback?: boolean;
}

export class AddressBans {
  readonly #now: () => number;
  readonly #afterPeers: number;
  readonly #exemptLoopback: boolean;
  /** By address: the peer ids banned from it, each with when its ban ends. */
  readonly #peers = new Map<string, Map<string, number>>();
  /** By address: when its own ban ends. */
  readonly #until = new Map<string, number>();

  constructor(now: () => number, options: AddressBansOptions = {}) {
    const afterPeers = options.afterPeers ?? ADDRESS_BAN_AFTER_PEERS;
    if (!Number.isInteger(afterPeers) || afterPeers < 1) {
      throw new RangeError(`afterPeers must be a positive integer, not ${afterPeers}`);
    }
    this.#now = now;
    this.#afterPeers = afterPeers;
    this.#exemptLoopback = options.exemptLoopback ?? true;
  }

  /** Addresses banned now. */
  get size(): number {
    const now = this.#now();
    for (const [a, u] of this.#until) if (u <= now) this.#until.delete(a);
    return this.#until.size;
  }

  /** Whether connections from `address` (an IP address, as a multiaddr's host) are refused now. */
  has(address: string): boolean {
    const until = this.#until.get(address);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#until.delete(address);
    return false;
  }

  /**
   * `peer`, connected from `address`, was banned for `forMs`. Returns true when that bans the address
   * (its `afterPeers`-th distinct peer id banned within a ban's length); its ban then lasts `forMs`.
   */
  record(address: string, peer: string, forMs: number): boolean {
    if (this.#exemptLoopback && isLoopback(address)) return false;
    const now = this.#now();
    let peers = this.#peers.get(address);
    if (peers === undefined) {
      peers = new Map();
      this.#track(this.#peers, address, peers);
    }
    for (const [p, until] of peers) if (until <= now) peers.delete(p);
    peers.set(peer, Math.max(peers.get(peer) ?? 0, now + forMs));
    if (peers.size < this.#afterPeers) return false;
    const until = Math.max(this.#until.get(address) ?? 0, now + forMs);
    this.#until.delete(address);
    this.#track(this.#until, address, until);
    return true;
  }

  /** Set `key` last in `map` (newest), dropping the oldest entry past `MAX_TRACKED_ADDRESSES`. */
  #track<V>(map: Map<string, V>, key: string, value: V): void {
    map.set(key, value);
    while (map.size > MAX_TRACKED_ADDRESSES) {
      const oldest = map.keys().next().value;
      if (oldest === undefined) break;
      map.delete(oldest);
    }
  }
}

/** 127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6. */
export function isLoopback(address: string): boolean {
  const a = address.toLowerCase();
  return a.startsWith('127.') || a === '::1' || a === '0:0:0:0:0:0:0:1' || a.startsWith('::ffff:127.');
}

/** The IP address a multiaddr starts with (`/ip4/…` or `/ip6/…`), or null (a DNS name, a relay, none). */
export function hostOf(address: Multiaddr | undefined): string | null {
  const first = address?.stringTuples()[0];
  if (first === undefined) return null;
  const [code, value] = first;
  return (code === 4 || code === 41) && value !== undefined ? value : null;
}
