import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createServer, type Server, type Socket } from 'node:net';
import { isStoreUnreachable } from '../http/store-unavailable.ts';
import { boundedFetch } from './bounded-fetch.ts';
import { openHistory } from './open-history.ts';

/** A "libSQL server" that takes every connection and never answers a byte. */
let silent: Server;
let url = '';
const sockets: Socket[] = [];
beforeAll(async () => {
  silent = createServer((s) => {
    sockets.push(s);
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const address = silent.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(r));
});

describe('boundedFetch: a libSQL server that never answers', () => {
  test('a request to it fails with a timeout, which the relay answers as STORE_UNAVAILABLE', async () => {
    const started = Date.now();
    const failed = await boundedFetch(300)(`${url}/v2/pipeline`, { method: 'POST', body: '{}' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(failed).not.toBeNull();
    expect(isStoreUnreachable(failed)).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('the relay opening its history on it fails, instead of waiting for good', async () => {
    const failed = await openHistory(url, undefined, undefined, 1_000, 300).then(
      (h) => {
        h.client.close();
        return null;
      },
      (e: unknown) => e,
    );
    expect(failed).not.toBeNull();
    expect(isStoreUnreachable(failed)).toBe(true);
  }, 20_000);
});
