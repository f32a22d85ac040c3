import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type AnyPacket, NodeKey, type Packet, type PacketType, packetId, signPacket } from '@synod/shared';
import { openHistory } from './open-history.ts';

const VECTORS = resolve(import.meta.dir, '../../../shared/test-vectors/v1.json');
const scenario = (
  JSON.parse(readFileSync(VECTORS, 'utf8')) as { scenarios: { transcript: { packets: AnyPacket[] } }[] }
).scenarios[0];
if (!scenario) throw new Error('no golden transcript');
const packets = scenario.transcript.packets;
const of = <T extends PacketType>(type: T) => packets.filter((p) => p.type === type) as Packet<T>[];
const stored = <T extends PacketType>(packet: Packet<T>) => ({ id: packetId(packet), packet });

const dir = mkdtempSync(join(tmpdir(), 'synod-history-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A history holding the golden request and its commits, not yet sealed. */
async function beforeTheSeal(name: string) {
  const h = await openHistory(`file:${join(dir, `${name}.db`)}`);
  const [request] = of('request');
  if (!request) throw new Error('no request');
  await h.store.moveFromIntake([{ seq: 0, request: stored(request), status: 'pending' }], 1);
  for (const c of of('commit')) await h.store.recordCommit(stored(c));
  return h;
}

describe('HistoryStore: reveals', () => {
  const [seal] = of('seal');
  const [reveal] = of('reveal');
  if (!seal || !reveal) throw new Error('no seal or reveal');
  const requestId = seal.body.requestId;
  const members = new Set(seal.body.members.map((m) => m.nodeId));
  const strangerReveal = async (n: number) =>
    signPacket(await NodeKey.fromSeed(new Uint8Array(32).fill(200 + n)), 'reveal', reveal.body);

  test('a reveal taken before its seal from a node the seal leaves out goes when the seal is recorded', async () => {
    const h = await beforeTheSeal('early');
    try {
      const stranger = await strangerReveal(1);
      await h.store.recordReveal(stored(reveal));
      await h.store.recordReveal(stored(stranger));
      expect((await h.store.getRequest(requestId))?.reveals.map((r) => r.id)).toContain(packetId(stranger));
      await h.store.recordSeal(stored(seal), 2);
      const after = (await h.store.getRequest(requestId))?.reveals ?? [];
      expect(after.map((r) => r.id)).toEqual([packetId(reveal)]);
      // After the seal, a stranger's reveal is not taken at all.
      await h.store.recordReveal(stored(await strangerReveal(2)));
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      const all = (await h.store.getRequest(requestId))?.reveals ?? [];
      expect(all.every((r) => members.has(r.packet.from))).toBe(true);
      expect(all).toHaveLength(of('reveal').filter((r) => members.has(r.from)).length);
    } finally {
      h.client.close();
    }
  });

  test('at most two reveals a member (the verdict ends them: see app.test.ts)', async () => {
    const h = await beforeTheSeal('cap');
    try {
      await h.store.recordSeal(stored(seal), 2);
      const nodes = (
        JSON.parse(readFileSync(VECTORS, 'utf8')) as {
          scenarios: { nodes: { seed: string; nodeId: string }[] }[];
        }
      ).scenarios[0]?.nodes;
      const seed = nodes?.find((n) => n.nodeId === reveal.from)?.seed ?? '';
      const key = await NodeKey.fromSeed(Uint8Array.from(Buffer.from(seed, 'hex')));
      const again = (ms: number) =>
        signPacket(key, 'reveal', { ...reveal.body, createdAt: reveal.body.createdAt + ms });
      for (const r of [reveal, await again(1), await again(2)]) await h.store.recordReveal(stored(r));
      const mine = (await h.store.getRequest(requestId))?.reveals.filter(
        (r) => r.packet.from === reveal.from,
      );
      expect(mine).toHaveLength(2);
    } finally {
      h.client.close();
    }
  });

  test('no reveal is taken for a request the history does not hold', async () => {
    const h = await openHistory(`file:${join(dir, 'unknown.db')}`);
    try {
      await h.store.recordReveal(stored(reveal));
      expect(await h.store.getRequest(requestId)).toBeNull();
      const n = await h.client.execute('SELECT count(*) AS n FROM reveals');
      expect(Number(n.rows[0]?.['n'])).toBe(0);
    } finally {
      h.client.close();
    }
  });
});
