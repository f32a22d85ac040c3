import type { BrowserNodeStatus } from '../../browser-node/src/browser/browser-node.ts';

/**
 * What the node is doing, in words a contributor reads (never a bare state name): with no peer it does
 * nothing for the network, and with Serve off it takes no new request (it finishes those it committed
 * to): said, not just "running". An unlock that failed leaves it "locked", the error said beside it.
 */
export function phaseText(
  s: Pick<BrowserNodeStatus, 'phase' | 'peers' | 'role' | 'serving'> & {
    metrics?: { keyElsewhere: { active: boolean; addresses: string[] } | null } | null;
  },
): string {
  switch (s.phase) {
    case 'locked':
      return 'locked';
    case 'starting':
      return 'starting: opening the node key and joining the network…';
    case 'locking':
      return 'locking: taking no new request, finishing those this tab committed to (up to a minute), then closing the key';
    case 'stopped':
      return 'stopped: the page is closing (reload it to start again)';
    case 'running':
      break;
  }
  if (s.peers.length === 0) {
    return `running as ${s.role}, but connected to no peer: no request can reach this tab`;
  }
  const elsewhere = s.metrics?.keyElsewhere;
  if (elsewhere?.active) {
    // Another browser or box holds a copy of this key (a saved key file loaded there): both would commit
    // to the same requests, evidence against the key.
    const where = elsewhere.addresses.length > 0 ? ` (it advertises ${elsewhere.addresses.join(', ')})` : '';
    return `running as ${s.role}, paused: this node key is running somewhere else too${where}. Stop the other copy; this tab takes no new request until it has heard none for a minute`;
  }
  if (s.role === 'node' && !s.serving) {
    return 'running as node, paused: taking no new request (tick Serve models to take them)';
  }
  return `running as ${s.role}`;
}
