import type { BrowserNodeStatus } from '../../browser-node/src/browser/browser-node.ts';

/**
 * What the node is doing, in words: with no peer it does nothing for the network, and with Serve off
 * it takes no new request (it finishes those it committed to): said, not just "running".
 */
export function phaseText(s: Pick<BrowserNodeStatus, 'phase' | 'peers' | 'role' | 'serving'>): string {
  if (s.phase !== 'running') return s.phase;
  if (s.peers.length === 0) {
    return `running as ${s.role}, but connected to no peer: no request can reach this tab`;
  }
  if (s.role === 'node' && !s.serving) {
    return 'running as node, paused: taking no new request (tick Serve models to take them)';
  }
  return `running as ${s.role}`;
}
