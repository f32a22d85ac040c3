/**
 * For chain bridge tests: a JSON-RPC proxy on 127.0.0.1 in front of a node (anvil), to play an RPC
 * endpoint that misbehaves. `upstream` may be switched at any time (another node behind the same URL),
 * and `fault` sees each call first: it may answer it itself (an error, an HTTP status, a lie), change
 * it before it is forwarded, or let it through. Every call's method is counted in `calls`.
 */

/** One JSON-RPC call as the watcher sent it. */
export interface RpcCall {
  id: unknown;
  method: string;
  params: unknown[];
}

/** What `fault` does with a call. */
export type FaultAction =
  /** Forward it unchanged. */
  | undefined
  /** Forward these params instead. */
  | { params: unknown[] }
  /** Answer with this JSON-RPC error. */
  | { error: { code: number; message: string } }
  /** Answer with this HTTP status and no JSON-RPC body (a 429 or 5xx of a provider). */
  | { status: number }
  /** Forward it, then hand its result to `result` and answer with what that returns. */
  | { result: (upstream: unknown) => unknown };

export interface RpcProxy {
  url: string;
  upstream: string;
  fault: ((call: RpcCall) => FaultAction) | undefined;
  /** Calls seen, by method. */
  calls: Map<string, number>;
  stop(): void;
}

export function startRpcProxy(upstream: string): RpcProxy {
  const proxy: RpcProxy = {
    url: '',
    upstream,
    fault: undefined,
    calls: new Map(),
    stop: () => server.stop(true),
  };
  const forward = async (call: RpcCall): Promise<{ result?: unknown; error?: unknown }> => {
    const res = await fetch(proxy.upstream, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', ...call }),
    });
    return (await res.json()) as { result?: unknown; error?: unknown };
  };
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const call = (await req.json()) as RpcCall;
      proxy.calls.set(call.method, (proxy.calls.get(call.method) ?? 0) + 1);
      const action = proxy.fault?.(call);
      const reply = (body: Record<string, unknown>) =>
        Response.json({ jsonrpc: '2.0', id: call.id, ...body });
      if (action && 'status' in action) return new Response('unavailable', { status: action.status });
      if (action && 'error' in action) return reply({ error: action.error });
      const sent = action && 'params' in action ? { ...call, params: action.params } : call;
      const answer = await forward(sent);
      if (action && 'result' in action && answer.error === undefined) {
        return reply({ result: action.result(answer.result) });
      }
      return reply(answer);
    },
  });
  proxy.url = `http://127.0.0.1:${server.port}`;
  return proxy;
}
