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
  expect(phaseText({ ...running, phase: 'locking' })).toStartWith('locking: taking no new request');
  expect(phaseText({ ...running, phase: 'starting' })).toBe(
    'starting: opening the node key and joining the network…',
  );
  expect(phaseText({ ...running, phase: 'stopped' })).toStartWith('stopped: the page is closing');
});

test('a node key heard running somewhere else too: said, with where it says it is, and that the tab is paused', () => {
  const elsewhere = (active: boolean, addresses: string[]) => ({
    ...running,
    metrics: { keyElsewhere: { active, addresses } },
  });
  expect(phaseText(elsewhere(true, ['/ip4/127.0.0.1/tcp/9/ws']))).toBe(
    'running as node, paused: this node key is running somewhere else too (it advertises /ip4/127.0.0.1/tcp/9/ws). Stop the other copy; this tab takes no new request until it has heard none for a minute',
  );
  expect(phaseText(elsewhere(true, []))).toContain(
    'paused: this node key is running somewhere else too. Stop',
  );
  // Heard over a minute ago: gone, nothing said.
  expect(phaseText(elsewhere(false, []))).toBe('running as node');
  expect(phaseText({ ...running, metrics: null })).toBe('running as node');
});
