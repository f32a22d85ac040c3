import { describe, expect, test } from 'bun:test';
import { countersGoneDown, readExposition } from './test-exposition.ts';

describe('readExposition (the checker /metrics tests use)', () => {
  test('a well-formed exposition has no problems, and its samples are read', () => {
    const e = readExposition(
      [
        '# HELP a_total A',
        '# TYPE a_total counter',
        'a_total{k="q\\"b\\\\s\\nn",z="1"} 3',
        '# HELP d Duration',
        '# TYPE d histogram',
        'd_bucket{le="1"} 1',
        'd_bucket{le="+Inf"} 2',
        'd_sum 4.5',
        'd_count 2',
        '',
      ].join('\n'),
    );
    expect(e.problems).toEqual([]);
    expect(e.samples.get('a_total{k="q\\"b\\\\s\\nn",z="1"}')).toBe(3);
    expect(e.samples.get('d_count')).toBe(2);
  });

  test('each broken rule is named', () => {
    const problems = readExposition(
      [
        '# HELP a A',
        '# TYPE a counter',
        'a{k="un"escaped"} 1',
        'a 1',
        'a 2',
        '# HELP b B',
        '# TYPE b gauge',
        'b 1',
        'a 3',
        '# HELP b B',
        'b{x="1"} one',
      ].join('\n'),
    ).problems;
    expect(problems).toEqual([
      'no final line break',
      'counter a not named _total',
      'not a sample: "a{k=\\"un\\"escaped\\"} 1"',
      'a twice',
      "a outside its family's block",
      'a twice',
      'HELP b twice',
      'b{x="1"}: value one',
    ]);
  });

  test('a counter lower, or gone, in a later scrape is named; a gauge is not', () => {
    const head = '# HELP c_total C\n# TYPE c_total counter\n';
    const gauge = '# HELP g G\n# TYPE g gauge\n';
    const before = readExposition(`${head}c_total{k="a"} 5\nc_total{k="b"} 1\n${gauge}g 9\n`);
    const after = readExposition(`${head}c_total{k="a"} 4\n${gauge}g 1\n`);
    expect(countersGoneDown(before, after)).toEqual([
      'c_total{k="a"}: 5 -> 4',
      'c_total{k="b"}: 1 -> undefined',
    ]);
  });
});
