/**
 * GET /v1/verify/:id of a request that was sealed and ended without a verdict (its coordinator gone, say):
 * 409 NO_VERDICT with why, the signed request packet, and the transcript the history holds, so that an
 * auditor can check whether its members had answered.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type AnyPacket, buildTranscript, type Packet, type PacketType, packetId } from '@synod/shared';
import type { RunningRelay } from '../runtime/bun.ts';
import { openHistory } from '../store/open-history.ts';
import { storeRequest } from '../store/test-requests.ts';
import { loneRelay } from '../test-relay.ts';

const VECTORS = resolve(import.meta.dir, '../../../shared/test-vectors/v1.json');
const golden = (
  JSON.parse(readFileSync(VECTORS, 'utf8')) as { scenarios: { transcript: { packets: AnyPacket[] } }[] }
).scenarios[0];
if (!golden) throw new Error('no golden transcript');
const packets = golden.transcript.packets;
const of = <T extends PacketType>(type: T) => packets.filter((p) => p.type === type) as Packet<T>[];
const stored = <T extends PacketType>(packet: Packet<T>) => ({ id: packetId(packet), packet });
const request = of('request')[0] as Packet<'request'>;
const seal = of('seal')[0] as Packet<'seal'>;
const requestId = request.body.requestId;

const dir = mkdtempSync(join(tmpdir(), 'synod-no-verdict-'));
let relay: RunningRelay;

beforeAll(async () => {
  const dbUrl = `file:${join(dir, 'relay.db')}`;
  const h = await openHistory(dbUrl);
  await storeRequest(h.store, stored(request), request.body.createdAt);
  for (const c of of('commit')) await h.store.recordCommit(stored(c));
  await h.store.recordSeal(stored(seal), request.body.createdAt + 1);
  for (const r of of('reveal')) await h.store.recordReveal(stored(r));
  await h.store.setStatus(requestId, 'expired', request.body.createdAt + 60_000, 'COORDINATOR_GONE');
  h.client.close();
  relay = await loneRelay(dbUrl, 8);
});
afterAll(async () => {
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a sealed request that ended without a verdict: 409 NO_VERDICT with why, its request and its transcript', async () => {
  const r = await relay.app.request(`http://127.0.0.1/v1/verify/${requestId}`);
  expect(r.status).toBe(409);
  const body = (await r.json()) as {
    error: {
      code: string;
      details: { status: string; error: string; request: unknown; transcript: { packets: AnyPacket[] } };
    };
  };
  expect(body.error.code).toBe('NO_VERDICT');
  expect(body.error.details).toMatchObject({ status: 'expired', error: 'COORDINATOR_GONE' });
  expect(body.error.details.request).toEqual(request);
  // The transcript as the history holds it: the golden one, packet for packet.
  expect(body.error.details.transcript).toEqual(buildTranscript(packets) as never);
});
