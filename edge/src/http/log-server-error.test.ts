import { expect, spyOn, test } from 'bun:test';
import { Hono } from 'hono';
import { LogSpells } from '../log-spells.ts';
import { edgeError, queueFullError, quorumUnavailableError } from './errors.ts';
import { logServerError } from './log-server-error.ts';

test('the same failure on the same route is one line a minute, with a timestamp and how many more there were', async () => {
  const clock = { t: 0 };
  const spells = new LogSpells(() => clock.t, 60_000);
  const app = new Hono();
  app.get('/down', () => {
    throw edgeError(503, 'STORE_UNAVAILABLE', 'the database cannot be reached', { reason: 'ECONNREFUSED' });
  });
  app.get('/bug', () => {
    throw new TypeError('x is undefined');
  });
  app.onError((err, c) => {
    logServerError(c, err, spells);
    return c.json({}, 503);
  });
  const logged = spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    for (let i = 0; i < 5; i++) await app.request('/down');
    await app.request('/bug');
    clock.t = 61_000;
    await app.request('/down');
    const lines = logged.mock.calls.map((args) => JSON.parse(String(args[0])) as Record<string, unknown>);
    expect(lines.map((l) => [l['msg'], l['code'], l['alsoFailedSinceLastLine']])).toEqual([
      ['request failed', 'STORE_UNAVAILABLE', undefined],
      ['unhandled', 'INTERNAL', undefined],
      ['request failed', 'STORE_UNAVAILABLE', 4],
    ]);
    for (const l of lines) expect(typeof l['t']).toBe('string');
  } finally {
    logged.mockRestore();
  }
});

test('the refusals a caller is told to retry (QUEUE_FULL, QUORUM_UNAVAILABLE) are counted elsewhere, not logged', async () => {
  const spells = new LogSpells(() => 0, 60_000);
  const app = new Hono();
  app.get('/full', () => {
    throw queueFullError({ queued: 2, limit: 2 });
  });
  app.get('/few', () => {
    throw quorumUnavailableError({ quorum: 5, serving: 3, models: ['m'] });
  });
  app.onError((err, c) => {
    logServerError(c, err, spells);
    return c.json({}, 503);
  });
  const logged = spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    await app.request('/full');
    await app.request('/few');
    expect(logged.mock.calls).toEqual([]);
  } finally {
    logged.mockRestore();
  }
});
