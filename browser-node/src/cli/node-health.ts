import type { NodeMetrics } from '../node/synod-node.ts';

/**
 * The answer of a headless node's `/healthz`: 200 while it can serve, else 503 with a stable reason, so
 * a supervisor or load balancer sees it. `STORE_FAILING`: its state file could not be written (a full
 * disk), and it picks up no request until a write succeeds. `CLOCK_SKEW`: its clock is more than 5 s
 * off its peers' (see `clockSkew`). `NO_PEERS`: it was told where the network is
 * (`--bootstrap`) but is connected to no one, so it does nothing for it (as the relay's /healthz).
 * `NO_TOPIC_PEERS`: it is connected, but none of its peers is on its topics (another `--waku-cluster`).
 * `NETWORK_SILENT`: it is connected, but has heard nothing for `NETWORK_SILENT_MS` (see `networkSilence`).
 * `KEY_IN_USE_ELSEWHERE`, first: another process signs with this node's key (`NodeMetrics.keyElsewhere`),
 * and the node takes no request until it has been silent for a minute.
 */
export function nodeHealth(
  m: NodeMetrics,
  o: { bootstrap: readonly string[]; db: string; wakuCluster?: number; now?: number; startedAt?: number },
): { status: 200 | 503; body: Record<string, unknown> } {
  const skew = clockSkew(m);
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
      : skew !== null
        ? { reason: 'CLOCK_SKEW', hint: skew }
        : o.bootstrap.length > 0 && m.peers === 0
          ? {
              reason: 'NO_PEERS',
              hint: 'none of the --bootstrap peers could be reached, or each was answered by another peer than its multiaddr names (BOOTSTRAP_PEER_MISMATCH in the log)',
            }
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
