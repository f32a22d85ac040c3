import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import type { RunningRelay } from '../runtime/bun.ts';
import { loneRelay } from '../test-relay.ts';
import { readBody } from './body.ts';
import { BodyBudget } from './body-budget.ts';
import { toHttpError } from './errors.ts';

/**
 * Bodies sent slowly, or never finished: each one the relay waits for holds what has arrived of it
 * (up to 4 MiB on /v1/verify) for as long as the client trickles bytes in. Unbounded, one address
 * holding a few thousand such requests, which need no key, exhausts the relay's memory. The bytes of
 * bodies being read are bounded per client address and in all, and a body must arrive in time.
 */

/** A raw HTTP/1.1 connection that sends `head` and `sent` bytes of a body, then holds; what it gets. */
function hold(port: number, head: string, sent: number) {
  const socket: Socket = connect(port, '127.0.0.1');
  let answer = '';
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('data', (d) => {
    answer += d.toString();
  });
  socket.on('error', () => undefined);
  socket.write(head);
  if (sent > 0) socket.write(Buffer.alloc(sent, 0x20));
  return {
    socket,
    closed,
    answer: () => answer,
    status: () => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0),
  };
}

const post = (path: string, length: number | 'chunked') =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${
    length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`
  }\r\n\r\n`;

async function until(what: string, ok: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

describe('readBody under a BodyBudget', () => {
  let server: ReturnType<typeof Bun.serve>;
  const budget = new BodyBudget({ perAddress: 1_000, inAll: 1_500, deadlineMs: 400 });
  beforeAll(() => {
    const app = new Hono();
    app.post('/:address', async (c) => {
      const bytes = await readBody(c, 900, { budget, address: c.req.param('address') });
      return c.json({ bytes: bytes.byteLength });
    });
    app.onError((err, c) => {
      const e = toHttpError(err);
      return c.json(e.body(), e.status, e.headers);
    });
    server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: app.fetch });
  });
  afterAll(() => server?.stop(true));

  test('past its bytes in flight an address is refused at once; the others are not; done, it is free', async () => {
    const port = server.port ?? 0;
    const first = hold(port, post('/a', 800), 10);
    await Bun.sleep(50);
    const second = hold(port, post('/a', 800), 10);
    await until('the second answer', () => second.status() !== 0);
    expect(second.status()).toBe(429);
    expect(second.answer()).toContain('"RATE_LIMITED"');
    expect(second.answer().toLowerCase()).toContain('retry-after: 1');
    // Another address has a budget of its own (and the relay's, 1,500 in all, still has room for it).
    const other = hold(port, post('/b', 600), 600);
    await until('the other answer', () => other.status() !== 0);
    expect(other.status()).toBe(200);
    // The first body ends: its bytes are given back.
    first.socket.write(Buffer.alloc(790, 0x20));
    await until('the first answer', () => first.status() !== 0);
    expect(first.status()).toBe(200);
    const third = hold(port, post('/a', 800), 800);
    await until('the third answer', () => third.status() !== 0);
    expect(third.status()).toBe(200);
    for (const h of [first, second, other, third]) h.socket.destroy();
  });

  test('a body without a length is counted at the limit; bodies together past the relay bound are refused', async () => {
    const port = server.port ?? 0;
    const chunked = hold(port, `${post('/c', 'chunked')}5\r\n{"a":\r\n`, 0);
    await Bun.sleep(50);
    // 900 of /c's 1,000 are taken: 200 more from /c is too much for it.
    const more = hold(port, post('/c', 200), 10);
    await until('an answer', () => more.status() !== 0);
    expect(more.status()).toBe(429);
    // 900 of the relay's 1,500 are taken: 700 from another address is too much for the relay.
    const d = hold(port, post('/d', 700), 10);
    await until('an answer', () => d.status() !== 0);
    expect(d.status()).toBe(429);
    expect(d.answer()).toContain('on this relay');
    chunked.socket.destroy();
    more.socket.destroy();
    d.socket.destroy();
  });

  test('a body that does not arrive in time is a 408 BODY_TIMEOUT, and its connection is closed', async () => {
    const port = server.port ?? 0;
    const started = Date.now();
    const slow = hold(port, post('/e', 800), 10);
    // A byte now and then does not stretch the deadline.
    const trickle = setInterval(() => slow.socket.write(' '), 100);
    await slow.closed;
    clearInterval(trickle);
    expect(slow.status()).toBe(408);
    expect(slow.answer()).toContain('"BODY_TIMEOUT"');
    expect(Date.now() - started).toBeLessThan(3_000);
    // Its bytes were given back: the address may send a body again.
    const next = hold(port, post('/e', 800), 800);
    await until('an answer', () => next.status() !== 0);
    expect(next.status()).toBe(200);
    next.socket.destroy();
  });
});

describe('a relay bounds the bodies one address holds unfinished', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-body-hostile-'));
  let relay: RunningRelay;
  beforeAll(async () => {
    relay = await loneRelay(`file:${join(dir, 'relay.db')}`, 7);
  });
  afterAll(async () => {
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('four unfinished 4 MiB transcripts on /v1/verify: the fifth is refused at once, without a key', async () => {
    const length = 4 * 1024 * 1024;
    const held = [];
    for (let i = 0; i < 4; i++) held.push(hold(relay.port, post('/v1/verify', length), 1_000));
    await Bun.sleep(100);
    const fifth = hold(relay.port, post('/v1/verify', length), 1_000);
    const inference = hold(relay.port, post('/v1/inference', 200_000), 1_000);
    await until('the fifth answer', () => fifth.status() !== 0 && inference.status() !== 0, 3_000);
    expect(fifth.status()).toBe(429);
    expect(inference.status()).toBe(429);
    expect(held.map((h) => h.status())).toEqual([0, 0, 0, 0]);
    for (const h of [...held, fifth, inference]) h.socket.destroy();
  });
});
