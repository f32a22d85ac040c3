/** The `/v1/` routes that are Synod's own; their errors are Synod's `{error: {code, message, …}}`. */
const SYNOD_ROUTES = ['/v1/inference', '/v1/verify', '/v1/history', '/v1/nodes'];

/**
 * Whether an error on `path` is answered with OpenAI's error body: the OpenAI-compatible routes
 * (`/v1/chat/…`, `/v1/models…`) and every other `/v1/` path outside Synod's own, so that a client or
 * agent framework calling an OpenAI route the relay does not serve (`/v1/responses`, `/v1/embeddings`,
 * `/v1/completions`, …) reads the 404 the way it reads OpenAI's.
 */
export function isOpenAiPath(path: string): boolean {
  if (!path.startsWith('/v1/')) return false;
  return !SYNOD_ROUTES.some((r) => path === r || path.startsWith(`${r}/`));
}
