/**
 * Log when a running node loses its last peer or reaches peers again, so an operator reading the log
 * sees an outage (a relay restarted, the network gone) and its end, as /healthz does (503 NO_PEERS).
 * Looked at every `intervalMs`: a warning when the node has no peer, once per outage (at the first look
 * already when it was given `--bootstrap` peers and reached none), and an info line when it has some
 * again. The node keeps dialling its bootstrap peers meanwhile. Returns how to stop watching.
 */
export function watchPeers(o: {
  peers: () => number;
  bootstrap: readonly string[];
  log: (e: Record<string, unknown>) => void;
  intervalMs: number;
}): () => void {
  // Without --bootstrap, a node alone at the start waits to be dialled: nothing to warn about yet.
  let connected = o.bootstrap.length === 0 ? null : false;
  let warned = false;
  const look = () => {
    const peers = o.peers();
    if (peers > 0 && connected !== true) {
      if (warned) o.log({ level: 'info', msg: 'peers reached again', peers });
      connected = true;
      warned = false;
    } else if (peers === 0 && connected !== null && !warned) {
      o.log({
        level: 'warn',
        msg: 'no peers: this node hears no request',
        code: 'NO_PEERS',
        hint:
          o.bootstrap.length > 0
            ? 'check that the --bootstrap peers (a relay or other nodes) run and can be reached; the node dials them again by itself'
            : 'no --bootstrap peers were given: pass the multiaddrs of a relay or other nodes',
      });
      connected = false;
      warned = true;
    }
  };
  const timer = setInterval(look, o.intervalMs);
  (timer as { unref?: () => void }).unref?.();
  return () => clearInterval(timer);
}
