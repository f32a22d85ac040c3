import type { MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';

/**
 * CORS for the configured web origins (EdgeConfig.corsOrigins; `*` for any): pages there may call the
 * API with whatever request headers their preflight asks for (the official `openai` client sends a dozen
 * `x-stainless-*` headers, more with each version: the origin is what is checked), and read the headers
 * a client acts on (retries, quota, request id).
 */
export function corsFor(origins: readonly string[]): MiddlewareHandler {
  return cors({
    origin: origins.includes('*') ? '*' : [...origins],
    allowMethods: ['GET', 'POST', 'OPTIONS'],
    allowHeaders: [],
    exposeHeaders: [
      'retry-after',
      'x-should-retry',
      'x-request-id',
      'x-synod-quota-limit',
      'x-synod-quota-remaining',
      'x-synod-quota-reset',
    ],
    maxAge: 600,
  });
}
