import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AnyPacket,
  buildTranscript,
  NodeKey,
  type Packet,
  packetId,
  signPacket,
  verifyTranscript,
} from '@synod/shared';
import { AGREE_SPEC, buildScenario, keyOf } from '../../../shared/test-vectors/fixtures.ts';
import { recordPacket } from '../relay/history-sink.ts';
import type { RunningRelay } from '../runtime/bun.ts';
import { storeRequest } from '../store/test-requests.ts';
import { loneRelay } from '../test-relay.ts';

/**
 * A request's history keeps reveals from nodes outside its seal (evidence the verdict cites), and node
 * keys cost nothing: anyone on the network can hang such reveals on a request, their own or another's, up
 * to what the history keeps of them (2 MiB a request, `NON_MEMBER_REVEAL_BYTES` twice). Its view
 * (`GET /v1/inference/:id`, its events) and its transcript (`GET /v1/verify/:id`) are then megabytes, each read costing the relay tens to hundreds of milliseconds, for a GET of a few
 * bytes that needs no key. Such reads are charged to the client address by their size; light ones,
 * what every poller reads, cost nothing more than before.
 */
const dir = mkdtempSync(join(tmpdir(), 'synod-inference-hostile-'));
let relay: RunningRelay;
/**
 * A request with a verdict whose transcript holds 90 reveals of 20,000 characters from outside its seal
 * (about 1.9 MB: all the history keeps, 2 MiB, would be about 100).
 */
let flooded: string;
/** A request with a verdict and nothing more than its members' reveals. */
let light: string;

/** Store `scenario`'s request, commits, seal and reveals, `outsiders` reveals more, and a verdict. */
async function stored(seedBase: number, outsiders: number, prompt: string): Promise<string> {
  const s = await buildScenario({ ...AGREE_SPEC, prompt });
  const requestId = s.request.body.requestId;
  const now = s.request.body.createdAt + 1_000;
  await storeRequest(relay.store, { id: packetId(s.request), packet: s.request }, now);
  const packets: AnyPacket[] = [...s.commits, s.seal, ...s.reveals];
  const reveal = s.reveals[0] as Packet<'reveal'>;
  for (let i = 0; i < outsiders; i++) {
    const seed = new Uint8Array(32).fill(seedBase);
    seed[0] = i & 0xff;
    seed[1] = i >> 8;
    const outsider = await NodeKey.fromSeed(seed);
    packets.push(
      await signPacket(outsider, 'reveal', { ...reveal.body, output: `${'y'.repeat(20_000)}${i}` }),
    );
  }
  for (const p of packets) await recordPacket(relay.store, p, packetId(p), now);
  const check = await verifyTranscript(buildTranscript([s.request, ...packets]));
  if (!check.ok) throw new Error(`the scenario does not verify: ${check.error.message}`);
  const verdict = await signPacket(await keyOf(AGREE_SPEC.coordinatorSeed), 'verdict', {
    requestId,
    verdict: check.verdict,
    verdictDigest: check.verdictDigest,
    transcriptRoot: check.root,
    createdAt: now + 20_000,
  });
  await recordPacket(relay.store, verdict, packetId(verdict), now + 20_000);
  return requestId;
}

beforeAll(async () => {
  relay = await loneRelay(`file:${join(dir, 'relay.db')}`, 10, {
    // A bucket that does not refill during the test.
    config: { rateLimit: { ratePerSecond: 0.001, burst: 100 } },
  });
  light = await stored(11, 0, 'a light request');
  flooded = await stored(12, 90, 'a flooded request');
}, 60_000);

afterAll(async () => {
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** GET `path` as the Bun server hands it over from `address`: its status and size. */
async function get(path: string, address: string) {
  const r = await relay.app.request(path, undefined, {
    requestIP: () => ({ address, family: 'IPv4', port: 40_000 }),
  });
  return { status: r.status, bytes: (await r.arrayBuffer()).byteLength };
}

describe('heavy reads cost their size', () => {
  test('GET /v1/inference/:id of a light request: no limit, as before', async () => {
    for (let i = 0; i < 150; i++)
      expect((await get(`/v1/inference/${light}`, '203.0.113.1')).status).toBe(200);
  });

  test('GET /v1/inference/:id of a flooded request: a few, then 429, and its events too', async () => {
    const first = await get(`/v1/inference/${flooded}`, '203.0.113.2');
    expect(first.status).toBe(200);
    expect(first.bytes).toBeGreaterThan(1_800_000);
    const statuses = [first.status];
    for (let i = 0; i < 9; i++) statuses.push((await get(`/v1/inference/${flooded}`, '203.0.113.2')).status);
    expect(statuses.slice(0, 2)).toEqual([200, 200]);
    expect(statuses.at(-1)).toBe(429);
    expect((await get(`/v1/inference/${flooded}/events`, '203.0.113.2')).status).toBe(429);
    // Another address, and light reads of this one, are not affected.
    expect((await get(`/v1/inference/${flooded}`, '203.0.113.3')).status).toBe(200);
    expect((await get(`/v1/inference/${light}`, '203.0.113.2')).status).toBe(200);
  });

  test('GET /v1/verify/:id of a flooded request: a few, then 429', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await get(`/v1/verify/${flooded}`, '203.0.113.4')).status);
    expect(statuses.slice(0, 2)).toEqual([200, 200]);
    expect(statuses.at(-1)).toBe(429);
    expect((await get(`/v1/verify/${light}`, '203.0.113.5')).status).toBe(200);
  });
});
