import { noTopicPeersHint } from './node-health.ts';

/**
 * Log when a running node loses its last peer or reaches peers again, so an operator reading the log
 * sees an outage (a relay restarted, the network gone) and its end, as /healthz does (503 NO_PEERS).
 * Looked at every `intervalMs`: a warning when the node has no peer, once per outage (at the first look
 * already when it was given `--bootstrap` peers and reached none; without any, when none dialled it
 * within `aloneGraceMs`, if given), and an info line when it has some again. The node keeps dialling its
 * bootstrap peers meanwhile. Returns how to stop watching.
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
  /** Without `--bootstrap`: how long alone from the start is an outage (unset: none until a first peer). */
  aloneGraceMs?: number;
  now?: () => number;
}): () => void {
  const relay = o.who === 'relay';
  const now = o.now ?? Date.now;
  const watchedAt = now();
  // Without --bootstrap, a node alone at the start waits to be dialled: nothing to warn about yet.
  let connected = o.bootstrap.length === 0 ? null : false;
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
  const look = () => {
    const peers = o.peers();
    lookTopics(peers);
    // Never dialled within the grace: alone, as after an outage.
    if (peers === 0 && connected === null && o.aloneGraceMs !== undefined) {
      if (now() - watchedAt >= o.aloneGraceMs) connected = false;
    }
    if (peers > 0 && connected !== true) {
      if (warned) o.log({ level: 'info', msg: 'peers reached again', peers });
      connected = true;
      warned = false;
    } else if (peers === 0 && connected !== null && !warned) {
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
      });
      connected = false;
      warned = true;
    }
  };
  const timer = setInterval(look, o.intervalMs);
  (timer as { unref?: () => void }).unref?.();
  return () => clearInterval(timer);
}
