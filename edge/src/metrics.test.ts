import { describe, expect, test } from 'bun:test';
import { Metrics } from './metrics.ts';

/** Each of `expected` is a line of the exposition. */
function expectLines(m: Metrics, expected: readonly string[]): void {
  const lines = m.render().split('\n');
  for (const line of expected) expect(lines).toContain(line);
}

describe('Metrics (Prometheus text format)', () => {
  test('a counter keeps one sample per label set, whatever order the labels come in', () => {
    const m = new Metrics();
    m.inc('reqs_total', 'Requests', { route: '/a', method: 'GET' });
    m.inc('reqs_total', 'Requests', { method: 'GET', route: '/a' }, 2);
    m.inc('reqs_total', 'Requests', { method: 'POST', route: '/a' });
    m.inc('plain_total', 'No labels');
    expect(m.render()).toBe(
      [
        '# HELP reqs_total Requests',
        '# TYPE reqs_total counter',
        'reqs_total{method="GET",route="/a"} 3',
        'reqs_total{method="POST",route="/a"} 1',
        '# HELP plain_total No labels',
        '# TYPE plain_total counter',
        'plain_total 1',
        '',
      ].join('\n'),
    );
  });

  test('handles with fixed label names write to the same series as inc and observe', () => {
    const m = new Metrics();
    const reqs = m.counter('reqs_total', 'Requests', ['route', 'method']);
    reqs.inc(['/a', 'GET']);
    m.inc('reqs_total', 'Requests', { method: 'GET', route: '/a' }, 2);
    reqs.inc(['/a', 'POST'], 5);
    const d = m.histogram('d_ms', 'Duration', [5, 25], ['route']);
    d.observe(['/x'], 3);
    m.observe('d_ms', 'Duration', 30, [5, 25], { route: '/x' });
    const none = m.counter('plain_total', 'No labels', []);
    none.inc([]);
    none.inc([], 2);
    expectLines(m, [
      'reqs_total{method="GET",route="/a"} 3',
      'reqs_total{method="POST",route="/a"} 5',
      'd_ms_bucket{route="/x",le="5"} 1',
      'd_ms_count{route="/x"} 2',
      'd_ms_sum{route="/x"} 33',
      'plain_total 3',
    ]);
    expect(() => reqs.inc(['/a'])).toThrow(RangeError);
  });

  test('collectors run at each render, before the text; one that throws leaves the scrape served', () => {
    const m = new Metrics();
    let total = 0;
    m.onScrape(() => {
      throw new Error('gone');
    });
    m.onScrape(() => m.setTotal('elsewhere_total', 'Counted elsewhere', total));
    expectLines(m, ['elsewhere_total 0']);
    total = 5;
    expectLines(m, ['elsewhere_total 5']);
  });

  test('label values are escaped', () => {
    const m = new Metrics();
    m.set('g', 'Gauge', 7, { v: 'a"b\\c\nd' });
    expect(m.render()).toContain('g{v="a\\"b\\\\c\\nd"} 7');
  });

  test('help text is escaped, so a backslash or a line break in it cannot break the exposition', () => {
    const m = new Metrics();
    m.inc('a_total', 'Paths like C:\\data\nand a second line', { k: 'v' });
    m.set('b', 'Plain', 1);
    expect(m.render()).toBe(
      [
        '# HELP a_total Paths like C:\\\\data\\nand a second line',
        '# TYPE a_total counter',
        'a_total{k="v"} 1',
        '# HELP b Plain',
        '# TYPE b gauge',
        'b 1',
        '',
      ].join('\n'),
    );
  });

  test('a histogram counts each bucket cumulatively, with +Inf, sum and count per label set', () => {
    const m = new Metrics();
    const buckets = [5, 25, 100] as const;
    for (const v of [1, 5, 30, 1_000]) m.observe('d_ms', 'Duration', v, buckets, { route: '/x' });
    m.observe('d_ms', 'Duration', 2, buckets, { route: '/y' });
    expectLines(m, [
      'd_ms_bucket{route="/x",le="5"} 2',
      'd_ms_bucket{route="/x",le="25"} 2',
      'd_ms_bucket{route="/x",le="100"} 3',
      'd_ms_bucket{route="/x",le="+Inf"} 4',
      'd_ms_sum{route="/x"} 1036',
      'd_ms_count{route="/x"} 4',
      'd_ms_bucket{route="/y",le="5"} 1',
      'd_ms_bucket{route="/y",le="100"} 1',
      'd_ms_count{route="/y"} 1',
    ]);
  });

  test('an empty bucket is written as 0 once its label set was observed', () => {
    const m = new Metrics();
    m.observe('d_ms', 'Duration', 50, [5, 100], {});
    expectLines(m, ['d_ms_bucket{le="5"} 0', 'd_ms_bucket{le="100"} 1', 'd_ms_sum 50']);
  });
});
