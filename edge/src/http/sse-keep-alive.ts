/** What `keepAlive` needs of a server-sent-events stream (Hono's `SSEStreamingApi` is one). */
export interface SseSink {
  write(text: string): Promise<unknown>;
  readonly closed: boolean;
  readonly aborted: boolean;
}

/**
 * Write an SSE comment line (`: keep-alive`) every `everyMs` until the returned function is called, so
 * that a stream waiting for a verdict is not cut by a proxy or client that drops idle connections.
 * Clients ignore comment lines (the EventSource standard; the `openai` client too). Each write is one
 * chunk, so it never lands inside an event another write is sending.
 */
export function keepAlive(stream: SseSink, everyMs: number): () => void {
  if (!(everyMs > 0)) return () => undefined;
  const t = setInterval(() => {
    if (stream.closed || stream.aborted) return;
    stream.write(': keep-alive\n\n').catch(() => undefined);
  }, everyMs);
  (t as { unref?: () => void }).unref?.();
  return () => clearInterval(t);
}
