import type { Context } from 'hono';
import type { LogSpells } from '../log-spells.ts';
import { HttpError, toHttpError } from './errors.ts';

/**
 * Log a request's server-side failure, one JSON line on stderr (at most one a minute for the same code and
 * route, counted in `spells`, the app's: with how many more there were): a 5xx the route chose (STORE_UNAVAILABLE,
 * …) or a database that could not be reached, with its code and reason ("request failed"); anything else
 * reached the handler unexpected ("unhandled"). QUEUE_FULL is load shedding, counted in
 * synod_requests_shed_total: a line for each would flood the log exactly when the relay is busiest; nor is
 * QUORUM_UNAVAILABLE a failure of the relay's (a caller's quorum that the nodes heard cannot meet), counted
 * in synod_requests_quorum_unavailable_total.
 * The app's error handler logs through it, and so do the routes that answer their own errors.
 */
export function logServerError(c: Context, err: unknown, spells: LogSpells): void {
  const e = toHttpError(err);
  if (e.status < 500 || e.code === 'QUEUE_FULL' || e.code === 'QUORUM_UNAVAILABLE') return;
  const chosen = err instanceof HttpError || e.code === 'STORE_UNAVAILABLE';
  const route = `${c.req.method} ${c.req.routePath || c.req.path}`;
  // The same failure on the same route (every request while the database is out of reach): one line a
  // minute, which says how many were not logged since.
  const spell = spells.failed(`${e.code} ${route}`);
  if (!spell.log) return;
  console.error(
    JSON.stringify({
      t: new Date().toISOString(),
      level: 'error',
      msg: chosen ? 'request failed' : 'unhandled',
      code: e.code,
      route,
      ...(chosen && e.details?.['reason'] !== undefined ? { reason: e.details['reason'] } : {}),
      ...(chosen ? {} : { err: String(err) }),
      ...(spell.unlogged > 0 ? { alsoFailedSinceLastLine: spell.unlogged } : {}),
    }),
  );
}
