/**
 * A `fetch` for @libsql/client's HTTP transport that gives up after `timeoutMs`: without it a libSQL
 * server that takes the connection and never answers holds every request waiting on it for good (and a
 * relay's shutdown behind them). The timeout is a `TimeoutError`, which the HTTP layer answers as
 * `503 STORE_UNAVAILABLE` (store-unavailable.ts). A signal the client passes still aborts the call too.
 */
export function boundedFetch(timeoutMs: number, base: typeof fetch = fetch): typeof fetch {
  const bounded = (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    const signals = [AbortSignal.timeout(timeoutMs), ...(init?.signal ? [init.signal] : [])];
    return base(input, { ...init, signal: AbortSignal.any(signals) });
  };
  return bounded as typeof fetch;
}
