import { describe, expect, test } from 'bun:test';
import { parseCorsOrigins } from './config.ts';

describe('parseCorsOrigins', () => {
  test('origins, or *; blanks dropped', () => {
    expect(parseCorsOrigins('')).toEqual([]);
    expect(parseCorsOrigins('*')).toEqual(['*']);
    expect(parseCorsOrigins(' https://app.example , http://127.0.0.1:8788,')).toEqual([
      'https://app.example',
      'http://127.0.0.1:8788',
    ]);
  });

  test.each([
    'app.example',
    'https://app.example/',
    'https://app.example/path',
    'ftp://app.example',
    'https://a b',
  ])('%p is not a web origin', (bad) => {
    expect(() => parseCorsOrigins(`https://ok.example,${bad}`)).toThrow(`not a web origin: ${bad.trim()}`);
  });
});
