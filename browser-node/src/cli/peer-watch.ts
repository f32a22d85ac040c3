import { noTopicPeersHint, PeerlessClock } from './node-health.ts';

/**
 * Log when a running node loses its last peer or reaches peers again, so an operator reading the log
 * sees an outage (a relay restarted, the network gone) and its end, as /healthz does (503 NO_PEERS).
 * Looked at every `intervalMs`: a warning when the node has no peer, once per outage, and an info line
 * when it has some again. With `--bootstrap` peers, at the first look without one. Without any, given
 * `aloneGraceMs`: once it has had no peer for that long, from the start or from its last peer, on the
 * `peerless` clock /healthz reads too (so the log and /healthz say the outage together, within a look);
 * without `aloneGraceMs` (a relay, which its nodes dial): not before a first peer, then at the first look
 * without one. The node keeps dialling its bootstrap peers meanwhile. Returns how to stop watching.
 */
export function watchPeers(o: {
  peers: () => number;
  /** Of `peers`, those on the node's topics: none at two looks in a row is warned about (NO_TOPIC_PEERS). */
  topicPeers?: () => number;
  wakuCluster?: number;
  bootstrap: readonly string[];
  log: (e: Record<string, unknown>) => void;
  intervalMs: number;
  /** Whose log it is: a relay's outage is said in its words (its nodes dial it). Default `node`. */
  who?: 'node' | 'relay';
  /**
   * Without `--bootstrap`: how long with no peer, from the start or from the last peer, is an outage
   * (unset: none until a first peer, then at once).
   */
  aloneGraceMs?: number;
  /** Since when there has been no peer, the clock /healthz reads too. Default: one from the watch's start. */
  peerless?: PeerlessClock;
  now?: () => number;
}): () => void {
  const relay = o.who === 'relay';
  const now = o.now ?? Date.now;
  const peerless = o.peerless ?? new PeerlessClock(now());
  // Without --bootstrap or a grace (a relay), alone at the start is waiting to be dialled: no outage.
  let reached = false;
  let warned = false;
  // Connected to peers none of which is on our topics (another --waku-cluster): looks in a row, warned.
  let offTopic = 0;
  let offTopicWarned = false;
  const lookTopics = (peers: number) => {
    if (o.topicPeers === undefined) return;
    const on = peers > 0 ? o.topicPeers() : 0;
    if (peers > 0 && on === 0) {
      offTopic++;
      // Two looks: a peer just connected tells its subscriptions a moment later.
      if (offTopic >= 2 && !offTopicWarned) {
        o.log({
          level: 'warn',
          msg: 'peers, none on our topics: this node hears no request',
          code: 'NO_TOPIC_PEERS',
          peers,
          hint: noTopicPeersHint(o.wakuCluster),
        });
        offTopicWarned = true;
      }
    } else {
      if (offTopicWarned && on > 0) o.log({ level: 'info', msg: 'peers on our topics again', peers: on });
      offTopic = 0;
      offTopicWarned = false;
    }
  };
  /** No peer, and an outage by the rules above (`since`: since when there has been none). */
  const outage = (since: number | null, t: number): boolean => {
    if (since === null) return false;
    if (o.bootstrap.length > 0) return true;
    if (o.aloneGraceMs !== undefined) return t - since >= o.aloneGraceMs;
    return reached;
  };
  const look = () => {
    const peers = o.peers();
    const t = now();
    const since = peerless.look(peers, t);
    lookTopics(peers);
    if (peers > 0) {
      if (warned) o.log({ level: 'info', msg: 'peers reached again', peers });
      reached = true;
      warned = false;
    } else if (!warned && outage(since, t)) {
      o.log({
        level: 'warn',
        msg: relay
          ? 'no peers: this relay reaches no node, and starts no request'
          : 'no peers: this node hears no request',
        code: 'NO_PEERS',
        hint: relay
          ? "its nodes dial it (--bootstrap with this relay's multiaddrs, as relay listening gives them): check that they run and reach it; requests wait in its log meanwhile"
          : o.bootstrap.length > 0
            ? 'check that the --bootstrap peers (a relay or other nodes) run and can be reached, and that each multiaddr names the peer id listening there (else BOOTSTRAP_PEER_MISMATCH is logged); the node dials them again by itself'
            : "no --bootstrap peers were given: this node dials no one, and gets work only if a relay or node dials it; pass --bootstrap with a relay's multiaddr",
        // Past the grace: how long (the clock /healthz's 503 NO_PEERS counts from).
        ...(o.bootstrap.length === 0 && o.aloneGraceMs !== undefined && since !== null
          ? { noPeerForS: Math.round((t - since) / 1000) }
          : {}),
      });
      warned = true;
    }
  };
  const timer = setInterval(look, o.intervalMs);
  (timer as { unref?: () => void }).unref?.();
  return () => clearInterval(timer);
}
