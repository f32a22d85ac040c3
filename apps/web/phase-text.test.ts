import { expect, test } from 'bun:test';
import { phaseText } from './phase-text.ts';

const running = { phase: 'running' as const, peers: ['p1'], role: 'node' as const, serving: true };

test('what the node is doing: running, with no peer, paused (Serve off), or another phase', () => {
  expect(phaseText(running)).toBe('running as node');
  expect(phaseText({ ...running, peers: [] })).toBe(
    'running as node, but connected to no peer: no request can reach this tab',
  );
  // Serve off: a node that takes no new request is said to be paused, not just running.
  expect(phaseText({ ...running, serving: false })).toBe(
    'running as node, paused: taking no new request (tick Serve models to take them)',
  );
  expect(phaseText({ ...running, role: 'follower', serving: false })).toBe('running as follower');
  expect(phaseText({ ...running, phase: 'locked' })).toBe('locked');
});
