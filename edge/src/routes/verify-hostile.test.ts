import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AnyPacket, buildTranscript, NodeKey, type Packet, signPacket } from '@synod/shared';
import { AGREE_SPEC, buildScenario } from '../../../shared/test-vectors/fixtures.ts';
import type { RunningRelay } from '../runtime/bun.ts';
import { loneRelay } from '../test-relay.ts';
import { verifyCost } from './verify.ts';

/**
 * `POST /v1/verify` needs no key, and the work of a transcript grows with its packets (a signature each)
 * and its bytes: a maximal one (hundreds of packets, 4 MiB) costs the relay about 40 times a small one.
 * Charged one token each, one client address could make the relay verify 50 maximal transcripts a
 * second, more than two cores' worth. Each is charged by its size instead.
 */
const dir = mkdtempSync(join(tmpdir(), 'synod-verify-hostile-'));
let relay: RunningRelay;
/** The fixtures' quorum transcript as a /v1/verify body (17 packets, about 12 KB). */
let small: string;
/** The same with reveals from fresh keys up to the verdict's 256 entries, 15,000 characters each. */
let maximal: string;
let maximalPackets: number;

beforeAll(async () => {
  relay = await loneRelay(`file:${join(dir, 'relay.db')}`, 5, {
    // A bucket that does not refill during the test: what each verification costs is what is left.
    config: { rateLimit: { ratePerSecond: 0.001, burst: 100 } },
  });
  const scenario = await buildScenario(AGREE_SPEC);
  small = JSON.stringify({ transcript: buildTranscript(scenario.packets) });
  const packets: AnyPacket[] = [...scenario.packets];
  const reveal = packets.find((p): p is Packet<'reveal'> => p.type === 'reveal');
  if (!reveal) throw new Error('the fixture has no reveal');
  let reveals = packets.filter((p) => p.type === 'reveal').length;
  for (let i = 0; reveals < 256; i++, reveals++) {
    const seed = new Uint8Array(32).fill(9);
    seed[0] = i & 0xff;
    seed[1] = 100 + (i >> 8);
    const outsider = await NodeKey.fromSeed(seed);
    packets.push(
      await signPacket(outsider, 'reveal', { ...reveal.body, output: `${'x'.repeat(15_000)}${i}` }),
    );
  }
  maximalPackets = packets.length;
  maximal = JSON.stringify({ transcript: buildTranscript(packets) });
});

afterAll(async () => {
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const verify = (body: string) =>
  fetch(`${relay.url}/v1/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

describe('POST /v1/verify is charged by the work of the transcript', () => {
  test('a small transcript costs one token; a maximal one tens', () => {
    expect(verifyCost(17, small.length)).toBe(1);
    expect(maximal.length).toBeGreaterThan(3_900_000);
    expect(verifyCost(maximalPackets, maximal.length)).toBeGreaterThanOrEqual(30);
  });

  test('maximal transcripts exhaust the burst in a few requests; small ones still pass after', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await verify(maximal);
      statuses.push(r.status);
      if (r.status === 429) {
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(await r.json()).toMatchObject({ error: { code: 'RATE_LIMITED' } });
      } else {
        expect(await r.json()).toMatchObject({ ok: true });
      }
    }
    // Two maximal transcripts are most of the burst of 100: the third is refused.
    expect(statuses).toEqual([200, 200, 429]);
    // What is left still serves small transcripts, one token each.
    const r = await verify(small);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ ok: true });
  }, 60_000);
});
