import { describe, expect, test } from 'bun:test';
import { startCoordinator } from './coordinator.ts';
import { makeRequest, T0, testKey } from './sim.test-helpers.ts';
import { expireState, restoreState, serializeState } from './state.ts';

describe('expireState: a driver ends a machine nothing can step again', () => {
  test('its timers cancelled, its outcome expired with the reason, as its own deadline would; the input untouched', async () => {
    const ck = await testKey('coordinator');
    const request = makeRequest({ label: 'expire-state' });
    const started = startCoordinator({}, { now: T0, self: ck.nodeId, request }).state;
    const before = serializeState(started);
    const t = expireState(started, 'no-verdict', T0 + 5);
    expect(t.effects).toEqual([
      { kind: 'cancel-timer', name: 'seal-deadline' },
      { kind: 'expired', reason: 'no-verdict' },
    ]);
    expect(t.state).toMatchObject({
      phase: 'finished',
      timers: {},
      outcome: { kind: 'expired', reason: 'no-verdict', at: T0 + 5 },
    });
    expect(serializeState(started)).toBe(before);
    // Still plain JSON a driver can store.
    expect(restoreState(serializeState(t.state))).toEqual(t.state);
    // A finished machine stays as it is.
    expect(expireState(t.state, 'no-verdict', T0 + 9)).toEqual({ state: t.state, effects: [] });
  });
});
