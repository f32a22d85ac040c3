import { expect, test } from 'bun:test';
import { quorumUnavailableError } from './errors.ts';

test('QUORUM_UNAVAILABLE says what to ask for, or, with no node taking requests, to wait', () => {
  const some = quorumUnavailableError({ quorum: 3, serving: 2, models: ['m1'] });
  expect(some).toMatchObject({ status: 503, code: 'QUORUM_UNAVAILABLE', details: { quorum: 3, serving: 2 } });
  expect(some.hint).toBe(
    'ask for a quorum of at most 2 (frame.quorum), or retry after the Retry-After seconds',
  );
  expect(some.headers).toEqual({ 'retry-after': '10' });
  // Not "a quorum of at most 0": the nodes of those models are paused.
  const none = quorumUnavailableError({ quorum: 1, serving: 0, models: ['m1'] });
  expect(none.message).toBe(
    'a quorum of 1 was asked, and the nodes heard that serve m1 take no requests now; nothing was stored',
  );
  expect(none.hint).toStartWith('they are paused');
});
