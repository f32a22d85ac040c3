import type { NodeMetrics } from '../node/synod-node.ts';

/**
 * The answer of a headless node's `/healthz`: 200 while it can serve, else 503 with a stable reason, so
 * a supervisor or load balancer sees it. `STORE_FAILING`: its state file could not be written (a full
 * disk), and it picks up no request until a write succeeds. `CLOCK_SKEW`: its clock is more than 5 s
 * off its peers' (see `clockSkew`). `NO_PEERS`: it is connected to no one, so it does nothing for the
 * network (as the relay's /healthz): at once when it was told where the network is (`--bootstrap`), else
 * once it has had no peer for `NO_PEERS_GRACE_MS` (`peerlessSince`, from `PeerlessClock`; the start when
 * not given), time for a relay or node that dials it to have done so.
 * `NO_TOPIC_PEERS`: it is connected, but none of its peers is on its topics (another `--waku-cluster`).
 * `NETWORK_SILENT`: it is connected, but has heard nothing for `NETWORK_SILENT_MS` (see `networkSilence`).
 * `ENGINE_FAILED`: its engine's worker died (not started again); it takes no request until restarted.
 * `EMBEDDER_DOWN`: its embedder's worker died and is being started again; it takes no request meanwhile.
 * `KEY_IN_USE_ELSEWHERE`, first: another process signs with this node's key (`NodeMetrics.keyElsewhere`),
 * and the node takes no request until it has been silent for a minute.
 */
export function nodeHealth(
  m: NodeMetrics,
  o: {
    bootstrap: readonly string[];
    db: string;
    wakuCluster?: number;
    now?: number;
    startedAt?: number;
    /** Since when it has had no peer (`PeerlessClock.look`), null while it has some. */
    peerlessSince?: number | null;
  },
): { status: 200 | 503; body: Record<string, unknown> } {
  const skew = clockSkew(m);
  const alone = m.peers === 0 ? aloneFor(o) : null;
  const silent =
    o.now === undefined || o.startedAt === undefined ? null : networkSilence(m, o.now, o.startedAt);
  const elsewhere = m.keyElsewhere?.active ? m.keyElsewhere : null;
  const problem = elsewhere
    ? {
        reason: 'KEY_IN_USE_ELSEWHERE',
        hint: keyElsewhereHint(elsewhere),
      }
    : m.store.failing
      ? {
          reason: 'STORE_FAILING',
          hint: `writing ${o.db} failed (${m.store.lastError}); free disk space there`,
        }
      : m.engineFailed
        ? {
            reason: 'ENGINE_FAILED',
            hint: `the inference engine's worker died (${m.engineFailed}); it is not started again: restart the node`,
          }
        : m.embedderDown
          ? {
              reason: 'EMBEDDER_DOWN',
              hint: `the embedder's worker died (${m.embedderDown.error}) and is being started again (${m.embedderDown.attempts} tries so far); the node takes no request until it is back (EMBEDDER_RESTORED in its log)`,
            }
          : skew !== null
            ? { reason: 'CLOCK_SKEW', hint: skew }
            : alone !== null
              ? { reason: 'NO_PEERS', hint: noPeersHint(o.bootstrap, alone) }
              : m.peers > 0 && m.topicPeers === 0
                ? { reason: 'NO_TOPIC_PEERS', hint: noTopicPeersHint(o.wakuCluster) }
                : silent !== null
                  ? { reason: 'NETWORK_SILENT', hint: networkSilentHint(silent) }
                  : null;
  return {
    status: problem === null ? 200 : 503,
    body: {
      ok: problem === null,
      ...problem,
      nodeId: m.nodeId,
      role: m.role,
      peers: m.peers,
      topicPeers: m.topicPeers,
      queue: m.queue,
      store: { errors: m.store.errors, failing: m.store.failing },
      clockOffsetMs: m.clock.offsetMs,
    },
  };
}

/**
 * How long a node without `--bootstrap` may have no peer before it is unhealthy (NO_PEERS) and says so in
 * its log: it dials no one, and a relay or node that dials it (heartbeats every 10 s, redials within
 * seconds) has done so by then.
 */
export const NO_PEERS_GRACE_MS = 30_000;

/** Since when a node has had no peer, as seen at each look: the start until a first one is seen. */
export class PeerlessClock {
  #since: number | null;
  constructor(startedAt: number) {
    this.#since = startedAt;
  }
  /** The peers seen now: since when it has had none (null while it has some). */
  look(peers: number, now: number): number | null {
    if (peers > 0) this.#since = null;
    else this.#since ??= now;
    return this.#since;
  }
}

/**
 * How long a node with no peer has been alone, when that makes it NO_PEERS (ms, 0 when it is told of
 * `--bootstrap` peers: at once), else null (within the grace).
 */
function aloneFor(o: {
  bootstrap: readonly string[];
  now?: number;
  startedAt?: number;
  peerlessSince?: number | null;
}): number | null {
  if (o.bootstrap.length > 0) return 0;
  const since = o.peerlessSince ?? o.startedAt;
  if (o.now === undefined || since === undefined) return null;
  return o.now - since >= NO_PEERS_GRACE_MS ? o.now - since : null;
}

/** What to check when a node has no peer, with or without `--bootstrap`. */
export function noPeersHint(bootstrap: readonly string[], aloneMs: number): string {
  return bootstrap.length > 0
    ? 'none of the --bootstrap peers could be reached, or each was answered by another peer than its multiaddr names (BOOTSTRAP_PEER_MISMATCH in the log)'
    : `no peer for ${Math.round(aloneMs / 1000)} s, and no --bootstrap was given: this node dials no one, so it gets work only if a relay or node dials it; pass --bootstrap with a relay's multiaddr (its "relay listening" line; --dial any for one on another machine)`;
}

/** What to do about another process signing with this node's key, and where it says it is. */
export function keyElsewhereHint(k: { addresses: readonly string[]; software: string | null }): string {
  const said = [
    ...(k.addresses.length > 0 ? [`it advertises ${k.addresses.join(', ')}`] : []),
    ...(k.software ? [k.software] : []),
  ];
  const where = said.length > 0 ? ` (${said.join('; ')})` : ' (found by two conflicting packets it signed)';
  return `another process signs with this node's key${where}: two copies of one key commit twice to the same requests, evidence against the key. Stop one; this one takes no request until it has heard none for a minute`;
}

/**
 * What to check when the node is connected but none of its peers is on its topics: they are on another
 * Waku cluster (or another network altogether), so it hears no request.
 */
export function noTopicPeersHint(wakuCluster: number | undefined): string {
  const ours = wakuCluster === undefined ? '' : ` (this node's is ${wakuCluster})`;
  return `connected peers, none on this node's topics: is --waku-cluster the network's${ours}? A relay logs its own as wakuCluster`;
}

/**
 * Connected, and not a message heard for this long: every node and relay sends a heartbeat every 10 s, so
 * a node that hears nothing for six of them is cut off, whatever its connections say (a copy of its key
 * running elsewhere has been seen to leave it so).
 */
export const NETWORK_SILENT_MS = 60_000;

/**
 * How long a node with peers has heard no message from any transport, when that is `NETWORK_SILENT_MS` or
 * more (counted from `startedAt` before the first); null otherwise.
 */
export function networkSilence(m: NodeMetrics, now: number, startedAt: number): number | null {
  if (m.peers === 0) return null;
  const silentMs = now - (m.intake.lastOfferedAt ?? startedAt);
  return silentMs >= NETWORK_SILENT_MS ? silentMs : null;
}

export function networkSilentHint(silentMs: number): string {
  return `connected, but nothing heard for ${Math.round(silentMs / 1000)} s (peers send a heartbeat every 10 s): check that no copy of this node's key runs elsewhere, then restart it`;
}

/** Past it, a clock's offset to its peers' eats visibly into every request's deadline. */
export const CLOCK_SKEW_LIMIT_MS = 5_000;
/** Packets refused as stale or from the future, with none accepted, that tell of a clock far off. */
const CLOCK_REFUSED_PACKETS = 5;

/**
 * What is wrong with this node's clock, or null. Deadlines are absolute times: a clock ahead skips
 * requests as already late, one behind commits after the others have sealed; past the 120 s skew window
 * every packet is refused as stale or from the future, so none is accepted and no offset is measured.
 */
export function clockSkew(m: NodeMetrics): string | null {
  const { offsetMs } = m.clock;
  if (offsetMs !== null && Math.abs(offsetMs) > CLOCK_SKEW_LIMIT_MS) {
    const s = Math.round(Math.abs(offsetMs) / 1000);
    return `this clock is ${s} s ${offsetMs > 0 ? 'ahead of' : 'behind'} its peers': synchronize it (NTP)`;
  }
  const refused = (m.intake.rejected.PACKET_STALE ?? 0) + (m.intake.rejected.PACKET_FROM_FUTURE ?? 0);
  if (m.intake.accepted === 0 && refused >= CLOCK_REFUSED_PACKETS) {
    return `every packet received (${refused}) was refused as stale or from the future: this clock is off by over 120 s; synchronize it (NTP)`;
  }
  return null;
}
