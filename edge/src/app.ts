import { Hono } from 'hono';
import { AdmissionHealth } from './http/admission-health.ts';
import { allowedMethods } from './http/allowed-methods.ts';
import { BodyBudget } from './http/body-budget.ts';
import { addressBucket } from './http/client-address.ts';
import { corsFor } from './http/cors.ts';
import { edgeError, HttpError, toHttpError } from './http/errors.ts';
import { logServerError } from './http/log-server-error.ts';
import { isOpenAiPath } from './http/openai-paths.ts';
import { StreamSlots } from './http/stream-slots.ts';
import { LogSpells } from './log-spells.ts';
import type { EdgeDeps } from './routes/deps.ts';
import { mountInference } from './routes/inference.ts';
import { mountOpenAi, openAiError } from './routes/openai.ts';
import { mountPublic } from './routes/public.ts';
import { mountVerify } from './routes/verify.ts';

/**
 * The edge's Hono app, free of any runtime: runtime adapters (runtime/bun.ts, runtime/workerd.ts) build
 * its dependencies (libSQL client, relay network, clock) and serve `app.fetch`.
 */
export function createApp(given: EdgeDeps): Hono {
  const app = new Hono();
  // Every admission's outcome is watched, so /healthz can say when requests are not being stored.
  const admissionHealth = given.admissionHealth ?? new AdmissionHealth(given.now);
  const deps: EdgeDeps = {
    ...given,
    admitter: admissionHealth.watch(given.admitter),
    admissionHealth,
    streams: given.streams ?? new StreamSlots(),
    bodies: given.bodies ?? new BodyBudget(),
    serverErrors: given.serverErrors ?? new LogSpells(given.now, 60_000),
    // Limits per client address count an IPv6 client by its /64 (see addressBucket).
    clientAddress: (c) => addressBucket(given.clientAddress(c)),
  };

  // Browsers on the configured origins may call the API (opt-in; see EdgeConfig.corsOrigins).
  if (deps.config.corsOrigins.length > 0) app.use(corsFor(deps.config.corsOrigins));

  const requests = deps.metrics.counter('synod_http_requests_total', 'HTTP requests', [
    'method',
    'route',
    'status',
  ]);
  const duration = deps.metrics.histogram(
    'synod_http_request_duration_ms',
    'HTTP request duration',
    [5, 25, 100, 500, 2_500, 10_000, 60_000],
    ['route'],
  );
  app.use(async (c, next) => {
    const started = deps.now();
    await next();
    const route = c.req.routePath || 'unmatched';
    requests.inc([c.req.method, route, String(c.res.status)]);
    duration.observe([route], deps.now() - started);
  });

  mountPublic(app, deps);
  mountInference(app, deps);
  mountOpenAi(app, deps);
  mountVerify(app, deps);

  // A known path asked with another method is a 405 naming the ones it serves; anything else a 404.
  // The table is made from the routes as they are when asked (the runtime may mount more after this,
  // as the Bun relay mounts its gateway's internal routes), and again if any were added since.
  let allowed = { routes: -1, of: (_path: string): string[] => [] };
  app.notFound((c) => {
    const path = new URL(c.req.url).pathname;
    if (allowed.routes !== app.routes.length) {
      allowed = { routes: app.routes.length, of: allowedMethods(app.routes) };
    }
    const methods = allowed.of(path);
    const e =
      methods.length > 0
        ? new HttpError(
            405,
            'METHOD_NOT_ALLOWED',
            `${path} is not served with ${c.req.method}; it is with ${methods.join(', ')}`,
            { allow: methods },
            undefined,
            { allow: methods.join(', ') },
          )
        : edgeError(404, 'NOT_FOUND', `no route ${c.req.method} ${path}${unservedOpenAi(path)}`);
    if (isOpenAiPath(c.req.path)) return openAiError(c, e);
    return c.json(e.body(), e.status, e.headers);
  });

  app.onError((err, c) => {
    logServerError(c, err, deps.serverErrors as LogSpells);
    const e = toHttpError(err);
    if (isOpenAiPath(c.req.path)) return openAiError(c, e);
    return c.json(e.body(), e.status, e.headers);
  });

  return app;
}

/**
 * What an OpenAI path the relay does not serve is told, in the message (OpenAI's error body has no hint):
 * which of OpenAI's APIs it serves, and, for the Responses API, that frameworks defaulting to it (the AI
 * SDK's `createOpenAI()(model)`, LangChain's `useResponsesApi`) have a Chat Completions mode.
 */
function unservedOpenAi(path: string): string {
  if (!isOpenAiPath(path)) return '';
  const served =
    ": this relay serves OpenAI's Chat Completions API (/v1/chat/completions) and /v1/models only";
  if (path !== '/v1/responses') return served;
  return `${served}; the AI SDK: createOpenAI(...).chat(model) or @ai-sdk/openai-compatible; LangChain: leave useResponsesApi off`;
}
