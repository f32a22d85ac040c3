import { describe, expect, test } from 'bun:test';
import { allowedMethods } from './allowed-methods.ts';

describe('allowedMethods', () => {
  const allowed = allowedMethods([
    { method: 'ALL', path: '*' },
    { method: 'ALL', path: '/v1/history' },
    { method: 'POST', path: '/v1/inference' },
    { method: 'GET', path: '/v1/inference/:id' },
    { method: 'GET', path: '/v1/inference/:id/events' },
    { method: 'GET', path: '/v1/history' },
    { method: 'POST', path: '/v1/verify' },
    { method: 'GET', path: '/v1/verify/:id' },
    { method: 'GET', path: '/openapi.json' },
  ]);

  test('the methods of the routes a path matches, HEAD with GET; middleware does not count', () => {
    expect(allowed('/v1/inference')).toEqual(['POST']);
    expect(allowed('/v1/inference/abc')).toEqual(['GET', 'HEAD']);
    expect(allowed('/v1/inference/abc/events')).toEqual(['GET', 'HEAD']);
    expect(allowed('/v1/history')).toEqual(['GET', 'HEAD']);
    expect(allowed('/openapi.json')).toEqual(['GET', 'HEAD']);
  });

  test('no method for a path no route matches (a parameter is one segment; a dot is a dot)', () => {
    expect(allowed('/v1/nothing')).toEqual([]);
    expect(allowed('/v1/inference/a/b')).toEqual([]);
    expect(allowed('/openapiXjson')).toEqual([]);
    expect(allowed('/v1/inference/')).toEqual([]);
  });
});
