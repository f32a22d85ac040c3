import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type AnyPacket,
  buildTranscript,
  computeVerdict,
  LIMITS,
  MAX_OPEN_COMMITS,
  NON_MEMBER_REVEAL_BYTES,
  NodeKey,
  type Packet,
  type PacketType,
  packetId,
  REVEALS_PER_MEMBER,
  signPacket,
  transcriptRoot,
  type VerdictBody,
  verdictDigest,
  verifyTranscript,
} from '@synod/shared';
import { recordPacket } from '../relay/history-sink.ts';
import { requestView } from '../views.ts';
import { COUNTED_REVEALS_CACHE, DECLINES_HELD, verdictReveals } from './history-store.ts';
import { openHistory } from './open-history.ts';
import { storeRequest } from './test-requests.ts';

/**
 * The quorum history fed by a hostile network: packets with valid signatures and schemas, from fresh
 * keys or from a request's own members, that every node's state machine refuses or ignores. Each is
 * checked on the golden transcript (shared/test-vectors/v1.json).
 */
const VECTORS = resolve(import.meta.dir, '../../../shared/test-vectors/v1.json');
const golden = (
  JSON.parse(readFileSync(VECTORS, 'utf8')) as {
    scenarios: {
      nodes: { role: string; seed: string; nodeId: string }[];
      transcript: { packets: AnyPacket[] };
      verdict: VerdictBody['verdict'];
      verdictDigest: string;
      root: string;
    }[];
  }
).scenarios[0];
if (!golden) throw new Error('no golden transcript');
const packets = golden.transcript.packets;
const of = <T extends PacketType>(type: T) => packets.filter((p) => p.type === type) as Packet<T>[];
const stored = <T extends PacketType>(packet: Packet<T>) => ({ id: packetId(packet), packet });
const [firstRequest] = of('request');
const [firstSeal] = of('seal');
if (!firstRequest || !firstSeal) throw new Error('no request or seal');
const request: Packet<'request'> = firstRequest;
const seal: Packet<'seal'> = firstSeal;
const requestId = request.body.requestId;
const keyOf = (nodeId: string) => {
  const seed = golden.nodes.find((n) => n.nodeId === nodeId)?.seed;
  if (seed === undefined) throw new Error(`no seed for ${nodeId}`);
  return NodeKey.fromSeed(Uint8Array.from(Buffer.from(seed, 'hex')));
};
const fresh = (n: number) => {
  const seed = new Uint8Array(32).fill(9);
  seed[0] = n & 0xff;
  seed[1] = n >> 8;
  return NodeKey.fromSeed(seed);
};
let verdict: Packet<'verdict'>;
beforeAll(async () => {
  verdict = await signPacket(await keyOf(request.from), 'verdict', {
    requestId,
    verdict: golden.verdict,
    verdictDigest: golden.verdictDigest,
    transcriptRoot: golden.root,
    createdAt: seal.body.createdAt + 1_000,
  });
});

const dir = mkdtempSync(join(tmpdir(), 'synod-history-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A history holding the golden request, pending. */
async function withRequest(name: string) {
  const h = await openHistory(`file:${join(dir, `${name}.db`)}`);
  await storeRequest(h.store, stored(request), 1);
  return h;
}

async function count(h: Awaited<ReturnType<typeof withRequest>>, table: string): Promise<number> {
  const r = await h.client.execute({
    sql: `SELECT count(*) AS n FROM ${table} WHERE request_id = ?`,
    args: [requestId],
  });
  return Number(r.rows[0]?.['n']);
}

/** A commit for the golden request from `key`, with a commitment of its own. */
async function commitFrom(key: NodeKey, n: number): Promise<Packet<'commit'>> {
  return signPacket(key, 'commit', {
    requestId,
    commitment: n.toString(16).padStart(64, 'c'),
    createdAt: request.body.createdAt + 10,
  });
}

describe('HistoryStore under a hostile network: commits', () => {
  test('after the seal, a commit from a node it did not seal is not stored', async () => {
    const h = await withRequest('commit-after-seal');
    try {
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      await h.store.recordSeal(stored(seal), 2);
      for (let i = 0; i < 20; i++) await h.store.recordCommit(stored(await commitFrom(await fresh(i), i)));
      expect(await count(h, 'commits')).toBe(seal.body.members.length);
      expect(await count(h, 'request_committers')).toBe(seal.body.members.length);
      const d = await h.store.getRequest(requestId);
      expect(d?.commits.map((c) => c.id).sort()).toEqual(seal.body.members.map((m) => m.commitId).sort());
    } finally {
      h.client.close();
    }
  });

  test("after the seal, a sealed member's second, different commitment is kept as evidence, a third is not", async () => {
    const h = await withRequest('member-double-commit');
    try {
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      await h.store.recordSeal(stored(seal), 2);
      const member = await keyOf(seal.body.members[0]?.nodeId ?? '');
      for (let i = 0; i < 3; i++) await h.store.recordCommit(stored(await commitFrom(member, i)));
      expect(await count(h, 'commits')).toBe(seal.body.members.length + 1);
    } finally {
      h.client.close();
    }
  });

  test('before the seal, one node has at most two commitments stored (the second is evidence)', async () => {
    const h = await withRequest('commits-per-node');
    try {
      const key = await fresh(1);
      for (let i = 0; i < 50; i++) await h.store.recordCommit(stored(await commitFrom(key, i)));
      expect(await count(h, 'commits')).toBe(2);
      // The request's own commits and seal are still taken.
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      await h.store.recordSeal(stored(seal), 2);
      expect((await h.store.getRequest(requestId))?.status).toBe('sealed');
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore under a hostile network: a flood of commits before the seal', () => {
  /** MAX_OPEN_COMMITS commits from fresh keys, two each (the second one's evidence). */
  async function flood(h: Awaited<ReturnType<typeof withRequest>>, keys: number): Promise<void> {
    for (let i = 0; i < keys; i++) {
      const key = await fresh(1_000 + i);
      for (const n of [0, 1]) await h.store.recordCommit(stored(await commitFrom(key, 2 * i + n)));
    }
  }

  test('is bounded as a node bounds it; the seal brings the commits it names, and the verdict holds', async () => {
    const h = await withRequest('commit-flood');
    try {
      await flood(h, MAX_OPEN_COMMITS / 2 + 20);
      expect(await count(h, 'commits')).toBe(MAX_OPEN_COMMITS);
      // The honest members' commits came after the flood: no room for them.
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      expect(await count(h, 'commits')).toBe(MAX_OPEN_COMMITS);
      // The coordinator's seal, with the commits its machine holds: stored, and so is its verdict.
      await h.store.recordSeal(stored(seal), 2, of('commit').map(stored));
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      expect(await h.store.recordVerdict(stored(verdict), 3)).toBe(true);
      const packetsServed = await h.store.transcriptPackets(requestId);
      if (packetsServed === null) throw new Error('no transcript');
      expect(transcriptRoot(buildTranscript(packetsServed))).toBe(golden.root);
      const check = await verifyTranscript(buildTranscript(packetsServed), {
        expectedVerdictDigest: golden.verdictDigest,
      });
      expect(check.ok).toBe(true);
    } finally {
      h.client.close();
    }
  });

  test("commits handed with a seal are taken only as the seal names them: its member's, its commitment", async () => {
    const h = await withRequest('commit-flood-forged');
    try {
      await flood(h, MAX_OPEN_COMMITS / 2);
      const member = seal.body.members[0];
      if (!member) throw new Error('no member');
      // Another commitment of a member (signed by it), and a stranger's commit: neither is the sealed one.
      const other = await commitFrom(await keyOf(member.nodeId), 7);
      const stranger = await commitFrom(await fresh(5), 8);
      await expect(h.store.recordSeal(stored(seal), 2, [stored(other), stored(stranger)])).rejects.toThrow();
      expect((await h.store.getRequest(requestId))?.seal).toBeNull();
      expect(await count(h, 'commits')).toBe(MAX_OPEN_COMMITS);
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore under a hostile network: reveals', () => {
  test('before the seal, a reveal from a node that never committed to the request is not stored', async () => {
    const h = await withRequest('reveal-no-commit');
    try {
      const [reveal] = of('reveal');
      if (!reveal) throw new Error('no reveal');
      for (let i = 0; i < 20; i++) {
        await h.store.recordReveal(stored(await signPacket(await fresh(i), 'reveal', reveal.body)));
      }
      expect(await count(h, 'reveals')).toBe(0);
      // A committed node's reveal taken before the seal is recorded (the seal's own race) still is.
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      await h.store.recordReveal(stored(reveal));
      expect(await count(h, 'reveals')).toBe(1);
    } finally {
      h.client.close();
    }
  });

  test("a member's reveal sent before the seal, which the coordinator never counted, is not in the transcript /v1/verify serves", async () => {
    const h = await withRequest('early-reveal');
    try {
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      // An accepted member publishes a copy of its reveal before the seal (the coordinator refuses it,
      // REVEAL_BEFORE_SEAL), with a createdAt that makes its packet id the smaller of the two.
      const acceptedIds = new Set(golden.verdict.accepted.map((a) => a.nodeId));
      const reveal = of('reveal').find((r) => acceptedIds.has(r.from));
      if (!reveal) throw new Error('no accepted reveal');
      const key = await keyOf(reveal.from);
      let early: Packet<'reveal'> | undefined;
      for (let ms = 1; early === undefined; ms++) {
        const p = await signPacket(key, 'reveal', { ...reveal.body, createdAt: seal.body.createdAt - ms });
        if (packetId(p) < packetId(reveal)) early = p;
      }
      await h.store.recordReveal(stored(early));
      await h.store.recordSeal(stored(seal), 2);
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      expect(await h.store.recordVerdict(stored(verdict), 3)).toBe(true);
      const transcript = await h.store.transcriptPackets(requestId);
      if (!transcript) throw new Error('no transcript');
      expect(transcript.map((p) => packetId(p)).sort()).toEqual(packets.map((p) => packetId(p)).sort());
      const check = await verifyTranscript(buildTranscript(transcript), {
        expectedVerdictDigest: golden.verdictDigest,
        expectedRoot: golden.root,
      });
      expect(check.ok).toBe(true);
      // GET /v1/inference/:id shows the reveals the verdict was computed over, not the refused copy.
      const d = await h.store.getRequest(requestId);
      if (!d) throw new Error('no request');
      expect(
        requestView(d)
          .reveals.map((r) => r.packetId)
          .sort(),
      ).toEqual(
        of('reveal')
          .map((r) => packetId(r))
          .sort(),
      );
      // The search for them was done once and is remembered, not redone on every read (an event stream
      // reads the request each second): a second read finds the same reveals through the cache.
      const cacheKey = [...COUNTED_REVEALS_CACHE.keys()].find((k) => k.startsWith(`${packetId(verdict)}:`));
      expect(cacheKey).toBeDefined();
      const cachedIds = COUNTED_REVEALS_CACHE.get(cacheKey as string) ?? [];
      expect(cachedIds).not.toContain(packetId(early));
      expect(verdictReveals(d).map((r) => r.id)).toEqual(cachedIds);
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore under a hostile network: reveals from outside the seal', () => {
  test('a reveal from a node outside the seal, which the verdict cites (NOT_SEALED), is in the transcript /v1/verify serves', async () => {
    const h = await withRequest('not-sealed');
    try {
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      await h.store.recordSeal(stored(seal), 2);
      const [copied] = of('reveal');
      if (!copied) throw new Error('no reveal');
      // Anyone sends a reveal after the seal: the coordinator holds it and its verdict rejects it,
      // citing its packet id, so the verdict's transcript holds it.
      const stranger = await signPacket(await fresh(500), 'reveal', copied.body);
      const reveals = [...of('reveal'), stranger];
      for (const r of reveals) await h.store.recordReveal(stored(r));
      const v = computeVerdict({ request, seal, sealId: packetId(seal), reveals: reveals.map(stored) });
      expect(v.rejected.map((r) => r.reason)).toContain('NOT_SEALED');
      const all = [...packets, stranger];
      const body: VerdictBody = {
        requestId,
        verdict: v,
        verdictDigest: verdictDigest(v),
        transcriptRoot: transcriptRoot(buildTranscript(all)),
        createdAt: seal.body.createdAt + 1_000,
      };
      const signed = await signPacket(await keyOf(request.from), 'verdict', body);
      expect(await h.store.recordVerdict(stored(signed), 3)).toBe(true);
      const transcript = await h.store.transcriptPackets(requestId);
      if (!transcript) throw new Error('no transcript');
      const check = await verifyTranscript(buildTranscript(transcript), {
        expectedVerdictDigest: body.verdictDigest,
        expectedRoot: body.transcriptRoot,
      });
      expect(check.ok).toBe(true);
      // The key made for it gets no reputation row (which would keep it from ever being forgotten);
      // the members do.
      const rows = await h.client.execute('SELECT node_id FROM reputation');
      const held = rows.rows.map((r) => String(r['node_id'])).sort();
      expect(held).toEqual(seal.body.members.map((m) => m.nodeId).sort());
    } finally {
      h.client.close();
    }
  });

  test('reveals from outside the seal are bounded as a node bounds them: one node two, all of them together', async () => {
    const h = await withRequest('not-sealed-flood');
    try {
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      await h.store.recordSeal(stored(seal), 2);
      const [copied] = of('reveal');
      if (!copied) throw new Error('no reveal');
      const one = await fresh(600);
      for (let i = 0; i < 4; i++) {
        await h.store.recordReveal(
          stored(await signPacket(one, 'reveal', { ...copied.body, createdAt: copied.body.createdAt + i })),
        );
      }
      expect(await count(h, 'reveals')).toBe(REVEALS_PER_MEMBER);
      const bound = REVEALS_PER_MEMBER * (LIMITS.maxVerdictEntries - 2 * seal.body.members.length);
      for (let i = 0; i < bound + 10; i++) {
        await h.store.recordReveal(stored(await signPacket(await fresh(700 + i), 'reveal', copied.body)));
      }
      expect(await count(h, 'reveals')).toBe(bound);
      // The members' own reveals are still taken.
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      expect(await count(h, 'reveals')).toBe(bound + of('reveal').length);
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore under a hostile network: large reveals from outside the seal', () => {
  test('they are stored within the bytes an observer holds of them (NON_MEMBER_REVEAL_BYTES, twice), not by count alone', async () => {
    const h = await withRequest('not-sealed-large');
    try {
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      await h.store.recordSeal(stored(seal), 2);
      const [copied] = of('reveal');
      if (!copied) throw new Error('no reveal');
      const output = '€'.repeat(65_536);
      for (let i = 0; i < 30; i++) {
        await h.store.recordReveal(
          stored(await signPacket(await fresh(800 + i), 'reveal', { ...copied.body, output })),
        );
      }
      const rows = await h.client.execute(
        'SELECT count(*) AS n, sum(length(cast(raw as blob))) AS bytes FROM reveals',
      );
      const n = Number(rows.rows[0]?.['n']);
      const bytes = Number(rows.rows[0]?.['bytes']);
      // About 196 KB each: 10 fit in 2 MiB, the 20 others are refused.
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThan(30);
      expect(bytes).toBeLessThanOrEqual(REVEALS_PER_MEMBER * NON_MEMBER_REVEAL_BYTES);
      expect(bytes + 196_000).toBeGreaterThan(REVEALS_PER_MEMBER * NON_MEMBER_REVEAL_BYTES);
      // The members' own reveals are still taken.
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      expect(await count(h, 'reveals')).toBe(n + of('reveal').length);
    } finally {
      h.client.close();
    }
  });
});

describe('HistoryStore under a hostile network: status transitions', () => {
  test('an expired request takes no seal status and no verdict later; a verdict is not overwritten by expired', async () => {
    const h = await withRequest('expired-then-verdict');
    try {
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      await h.store.setStatus(requestId, 'expired', 2, 'QUORUM_NOT_MET');
      await h.store.recordSeal(stored(seal), 3);
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      expect(await h.store.recordVerdict(stored(verdict), 4)).toBe(false);
      const d = await h.store.getRequest(requestId);
      expect(d?.status).toBe('expired');
      expect(d?.error).toBe('QUORUM_NOT_MET');
      expect(d?.verdict).toBeNull();
      const rep = await h.client.execute('SELECT count(*) AS n FROM reputation');
      expect(Number(rep.rows[0]?.['n'])).toBe(0);
    } finally {
      h.client.close();
    }
  });

  test("the relay's own verdict the history does not take is logged (VERDICT_NOT_STORED, with why); a second copy of a stored one is not", async () => {
    const h = await withRequest('verdict-not-stored');
    try {
      const lines: Record<string, unknown>[] = [];
      const o = { self: verdict.from, log: (e: Record<string, unknown>) => lines.push(e) };
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      // No seal stored: the verdict names one the history does not hold.
      await recordPacket(h.store, verdict, packetId(verdict), 3, o);
      expect(lines).toEqual([
        expect.objectContaining({
          level: 'error',
          msg: 'verdict not stored',
          code: 'VERDICT_NOT_STORED',
          requestId,
          sealId: verdict.body.verdict.sealId,
          status: 'pending',
          seals: [],
        }),
      ]);
      // Another node's verdict packet for it is not the relay's own business: not logged.
      await recordPacket(h.store, verdict, packetId(verdict), 3, { ...o, self: 'f'.repeat(64) });
      expect(lines).toHaveLength(1);
      await h.store.recordSeal(stored(seal), 4);
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      await recordPacket(h.store, verdict, packetId(verdict), 5, o);
      await recordPacket(h.store, verdict, packetId(verdict), 6, o);
      expect(lines).toHaveLength(1);
      expect((await h.store.getRequest(requestId))?.verdict).not.toBeNull();
    } finally {
      h.client.close();
    }
  });

  test('a verdict, once stored, is not overwritten by a late expired or failed status', async () => {
    const h = await withRequest('verdict-then-expired');
    try {
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      await h.store.recordSeal(stored(seal), 2);
      for (const r of of('reveal')) await h.store.recordReveal(stored(r));
      expect(await h.store.recordVerdict(stored(verdict), 3)).toBe(true);
      await h.store.setStatus(requestId, 'expired', 4, 'COORDINATOR_RESTARTED');
      await h.store.setStatus(requestId, 'failed', 5, 'COORDINATOR_FAILED');
      const d = await h.store.getRequest(requestId);
      expect(d?.status).toBe(golden.verdict.status === 'accepted' ? 'verdict' : 'no-consensus');
      expect(d?.error).toBeNull();
    } finally {
      h.client.close();
    }
  });
});

/** A decline of the golden request by `key`. */
async function declineFrom(key: NodeKey, over: { requestPacketId?: string; createdAt?: number } = {}) {
  return signPacket(key, 'decline', {
    requestId,
    requestPacketId: over.requestPacketId ?? packetId(request),
    model: request.body.acceptedModels[0]
      ? { id: request.body.acceptedModels[0], fileHash: 'ab'.repeat(32) }
      : { id: 'm', fileHash: 'ab'.repeat(32) },
    reason: 'context-exceeded',
    promptTokens: 4_812,
    contextTokens: 512,
    createdAt: over.createdAt ?? request.body.createdAt + 10,
  });
}

describe('HistoryStore under a hostile network: declines', () => {
  test('stored one per node, for the request packet held, before the seal only; the view lists them', async () => {
    const h = await withRequest('declines');
    try {
      const a = await declineFrom(await fresh(1));
      await h.store.recordDecline(stored(a));
      await h.store.recordDecline(stored(a)); // the same packet again
      await h.store.recordDecline(
        stored(await declineFrom(await fresh(1), { createdAt: request.body.createdAt + 11 })),
      );
      await h.store.recordDecline(
        stored(await declineFrom(await fresh(2), { requestPacketId: 'cd'.repeat(32) })),
      );
      expect(await count(h, 'declines')).toBe(1);
      for (const c of of('commit')) await h.store.recordCommit(stored(c));
      await h.store.recordSeal(stored(seal), 2);
      await h.store.recordDecline(stored(await declineFrom(await fresh(3))));
      expect(await count(h, 'declines')).toBe(1);
      const d = await h.store.getRequest(requestId);
      expect(d?.declines.map((x) => x.id)).toEqual([packetId(a)]);
      expect(requestView(d!).declines).toEqual([
        {
          packetId: packetId(a),
          nodeId: a.from,
          model: a.body.model,
          reason: 'context-exceeded',
          promptTokens: 4_812,
          contextTokens: 512,
          createdAt: a.body.createdAt,
        },
      ]);
    } finally {
      h.client.close();
    }
  });

  test(`a flood of declines from fresh keys is bounded at ${DECLINES_HELD} a request`, async () => {
    const h = await withRequest('declines-flood');
    try {
      for (let n = 0; n < DECLINES_HELD + 10; n++) {
        await h.store.recordDecline(stored(await declineFrom(await fresh(100 + n))));
      }
      expect(await count(h, 'declines')).toBe(DECLINES_HELD);
    } finally {
      h.client.close();
    }
  });

  test('a request that is gone takes no decline, and deleting a request deletes its declines', async () => {
    const h = await withRequest('declines-cascade');
    try {
      await h.store.recordDecline(stored(await declineFrom(await fresh(7))));
      expect(await count(h, 'declines')).toBe(1);
      await h.client.execute({ sql: 'DELETE FROM requests WHERE request_id = ?', args: [requestId] });
      expect(await count(h, 'declines')).toBe(0);
      await h.store.recordDecline(stored(await declineFrom(await fresh(8))));
      expect(await count(h, 'declines')).toBe(0);
    } finally {
      h.client.close();
    }
  });
});
