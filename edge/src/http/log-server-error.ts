import type { Context } from 'hono';
import { HttpError, toHttpError } from './errors.ts';

/**
 * Log a request's server-side failure, one JSON line on stderr: a 5xx the route chose (STORE_UNAVAILABLE,
 * …) or a database that could not be reached, with its code and reason ("request failed"); anything else
 * reached the handler unexpected ("unhandled"). QUEUE_FULL is load shedding, counted in
 * synod_requests_shed_total: a line for each would flood the log exactly when the relay is busiest.
 * The app's error handler logs through it, and so do the routes that answer their own errors.
 */
export function logServerError(c: Context, err: unknown): void {
  const e = toHttpError(err);
  if (e.status < 500 || e.code === 'QUEUE_FULL') return;
  const chosen = err instanceof HttpError || e.code === 'STORE_UNAVAILABLE';
  console.error(
    JSON.stringify({
      level: 'error',
      msg: chosen ? 'request failed' : 'unhandled',
      code: e.code,
      route: `${c.req.method} ${c.req.routePath || c.req.path}`,
      ...(chosen && e.details?.['reason'] !== undefined ? { reason: e.details['reason'] } : {}),
      ...(chosen ? {} : { err: String(err) }),
    }),
  );
}
