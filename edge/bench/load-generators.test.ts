import { describe, expect, test } from 'bun:test';
import { resolve } from 'node:path';
import { availableGenerators, parseWrkReport, runLoad, wrkScript } from './load-generators.ts';

/** A real wrk 4.1 report (Debian's build), against a server answering 404 to every request. */
const NOT_FOUND_REPORT = `Running 1s test @ http://127.0.0.1:40489/bad
  1 threads and 5 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    46.63us  117.38us   3.48ms   98.81%
    Req/Sec   125.77k    13.40k  144.83k    63.64%
  Latency Distribution
     50%   38.00us
     75%   47.00us
     90%   53.00us
     99%  204.00us
  137103 requests in 1.10s, 16.21MB read
  Non-2xx or 3xx responses: 137103
Requests/sec: 124657.90
Transfer/sec:     14.74MB
`;

describe('parseWrkReport', () => {
  test('counts only 2xx per second, latencies in ms', () => {
    expect(parseWrkReport(NOT_FOUND_REPORT)).toEqual({
      ok: 0,
      non2xx: 137103,
      errors: 0,
      perSecond: 0,
      p50: 0.038,
      p99: 0.204,
    });
  });

  test('a clean run with socket errors and times in ms and s', () => {
    const r = parseWrkReport(`  Latency Distribution
     50%    1.25ms
     75%    2.00ms
     90%    3.00ms
     99%    1.50s
  50000 requests in 10.00s, 9.00MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
Requests/sec:   5000.00
`);
    expect(r).toEqual({ ok: 50000, non2xx: 0, errors: 6, perSecond: 5000, p50: 1.25, p99: 1500 });
  });

  test('anything else is a TypeError', () => {
    expect(() => parseWrkReport('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(TypeError);
  });
});

describe('wrkScript', () => {
  test('method, body and headers as Lua literals, quotes and non-ASCII escaped', () => {
    const s = wrkScript({
      method: 'POST',
      body: '{"prompt":"é \\\\ x"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(s).toBe(
      'wrk.method = "POST"\n' +
        'wrk.body = "{\\34prompt\\34:\\34\\195\\169 \\92\\92 x\\34}"\n' +
        'wrk.headers["content-type"] = "application/json"\n',
    );
  });
});

describe('runLoad', () => {
  test.each(availableGenerators())(
    '%s: counts answers by status and reports its own CPU time',
    async (tool) => {
      let n = 0;
      const server = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        // Every third request is refused, so non-2xx answers are counted apart.
        fetch: () => new Response('hello', { status: ++n % 3 === 0 ? 429 : 200 }),
      });
      try {
        const r = await runLoad(
          tool,
          `http://127.0.0.1:${server.port}/`,
          { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } },
          { connections: 4, durationSeconds: 1, repo: resolve(import.meta.dir, '../..') },
        );
        expect(r.ok).toBeGreaterThan(0);
        expect(r.non2xx).toBeGreaterThan(0);
        // Roughly one in three refused (the generator may stop between requests).
        expect(Math.abs(r.non2xx / (r.ok + r.non2xx) - 1 / 3)).toBeLessThan(0.05);
        expect(r.perSecond).toBeGreaterThan(0);
        expect(r.generatorCpuMs).toBeGreaterThan(0);
        expect(r.p99).toBeGreaterThanOrEqual(r.p50);
      } finally {
        server.stop(true);
      }
    },
  );
});
