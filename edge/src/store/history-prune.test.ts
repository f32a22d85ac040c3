import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type AnyPacket,
  NodeKey,
  type Packet,
  type PacketType,
  packetId,
  type RequestBody,
  signPacket,
  type VerdictBody,
  verifyTranscript,
} from '@synod/shared';
import { readVerifyInput } from '../../../apps/verify/src/verify-input.ts';
import {
  type ArchiveRecord,
  PRUNE_MIN_AGE_MS,
  PruneError,
  pruneBatchPlan,
  pruneHistory,
} from './history-prune.ts';
import { openHistory } from './open-history.ts';
import { testBody } from './test-admissions.ts';
import { storeRequest } from './test-requests.ts';

/**
 * Pruning the history: what goes (ended requests older than the cutoff, with every row that hangs off
 * them), what stays (open requests, chain requests still settling, younger ones, reputation), and the
 * archive lines, which re-derive their verdict alone.
 */
const VECTORS = resolve(import.meta.dir, '../../../shared/test-vectors/v1.json');
interface Scenario {
  nodes: { seed: string; nodeId: string }[];
  transcript: { packets: AnyPacket[] };
  verdict: VerdictBody['verdict'];
  verdictDigest: string;
  root: string;
}
const first = (JSON.parse(readFileSync(VECTORS, 'utf8')) as { scenarios: Scenario[] }).scenarios[0];
if (!first) throw new Error('no golden transcript');
const golden: Scenario = first;
const packets = golden.transcript.packets;
const of = <T extends PacketType>(type: T) => packets.filter((p) => p.type === type) as Packet<T>[];
const stored = <T extends PacketType>(packet: Packet<T>) => ({ id: packetId(packet), packet });
const request = of('request')[0] as Packet<'request'>;
const seal = of('seal')[0] as Packet<'seal'>;
const keyOf = (nodeId: string) => {
  const seed = golden.nodes.find((n) => n.nodeId === nodeId)?.seed;
  if (seed === undefined) throw new Error(`no seed for ${nodeId}`);
  return NodeKey.fromSeed(Uint8Array.from(Buffer.from(seed, 'hex')));
};

const DAY = 86_400_000;
const NOW = request.body.createdAt + 30 * DAY;
const dir = mkdtempSync(join(tmpdir(), 'synod-prune-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A history holding: the golden request with its verdict (old), and the requests `extra` makes. */
async function history() {
  const h = await openHistory(`file:${join(dir, `p-${n++}.db`)}`);
  await storeRequest(h.store, stored(request), request.body.createdAt);
  for (const c of of('commit')) await h.store.recordCommit(stored(c));
  await h.store.recordSeal(stored(seal), request.body.createdAt + 1);
  for (const r of of('reveal')) await h.store.recordReveal(stored(r));
  const verdict = await signPacket(await keyOf(request.from), 'verdict', {
    requestId: request.body.requestId,
    verdict: golden.verdict,
    verdictDigest: golden.verdictDigest,
    transcriptRoot: golden.root,
    createdAt: seal.body.createdAt + 1_000,
  });
  expect(await h.store.recordVerdict(stored(verdict), request.body.createdAt + 2)).toBe(true);
  const member = golden.nodes.find((x) => x.nodeId === seal.body.members[0]?.nodeId)?.nodeId as string;
  const attestation = await signPacket(await keyOf(member), 'attestation', {
    requestId: request.body.requestId,
    verdictDigest: golden.verdictDigest,
    transcriptRoot: golden.root,
    createdAt: seal.body.createdAt + 2_000,
  });
  await h.store.recordAttestation(stored(attestation));
  const coordinator = await NodeKey.fromSeed(new Uint8Array(32).fill(77));
  /** A request by `coordinator` created `ageDays` before NOW, in `status`. */
  const another = async (ageDays: number, body: Partial<RequestBody> = {}) => {
    const b = { ...testBody({ createdAt: NOW - ageDays * DAY }), ...body };
    const packet = await signPacket(coordinator, 'request', b);
    await storeRequest(h.store, stored(packet), b.createdAt);
    return packet;
  };
  return { ...h, verdict, attestation, another };
}

const count = async (h: Awaited<ReturnType<typeof history>>, table: string) =>
  Number((await h.client.execute(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.['n']);

describe('pruneHistory', () => {
  test('ended requests older than the cutoff go with every row of theirs; open and younger ones stay', async () => {
    const h = await history();
    try {
      // Old and declined: its decline goes with it.
      const declined = await h.another(10);
      const decline = await signPacket(await NodeKey.fromSeed(new Uint8Array(32).fill(78)), 'decline', {
        requestId: declined.body.requestId,
        requestPacketId: packetId(declined),
        model: { id: 'm', fileHash: 'ab'.repeat(32) },
        reason: 'context-exceeded',
        promptTokens: 600,
        contextTokens: 512,
        createdAt: declined.body.createdAt + 5,
      });
      await h.store.recordDecline(stored(decline));
      await h.store.setStatus(declined.body.requestId, 'expired', NOW - 10 * DAY, 'DECLINED');
      const open = await h.another(9); // old, still pending: kept
      const young = await h.another(1);
      await h.store.setStatus(young.body.requestId, 'expired', NOW - DAY, 'QUORUM_NOT_MET');
      const reputationBefore = await count(h, 'reputation');
      expect(reputationBefore).toBeGreaterThan(0);

      const lines: string[] = [];
      const r = await pruneHistory(h.store, {
        before: NOW - 2 * DAY,
        now: NOW,
        batch: 1,
        archive: async (l) => {
          lines.push(...l);
        },
      });
      expect(r).toMatchObject({ pruned: 2, kept: 1 });
      expect(r.archivedBytes).toBe(lines.reduce((a, l) => a + Buffer.byteLength(l) + 1, 0));
      const left = (await h.client.execute('SELECT request_id FROM requests ORDER BY created_at')).rows.map(
        (x) => x['request_id'],
      );
      expect(left).toEqual([open.body.requestId, young.body.requestId]);
      for (const table of [
        'commits',
        'seals',
        'seal_members',
        'reveals',
        'verdicts',
        'verdict_entries',
        'attestations',
        'declines',
      ]) {
        expect(await count(h, table)).toBe(0);
      }
      // The counts /healthz and /metrics read follow; a node's record stays as it was.
      const counts = await h.store.counts();
      expect(counts).toMatchObject({ pending: 1, expired: 1 });
      expect(counts.verdict ?? 0).toBe(0);
      expect(await count(h, 'reputation')).toBe(reputationBefore);

      // The archive: one line a request, oldest first.
      const [first, second] = lines.map((l) => JSON.parse(l) as ArchiveRecord);
      expect(first?.requestId).toBe(request.body.requestId);
      expect(first).toMatchObject({ status: 'verdict', verdictDigest: golden.verdictDigest });
      expect(first?.attestations).toEqual([h.attestation]);
      expect(first?.verdict).toEqual(h.verdict);
      // Every packet once: the transcript's, and the rest (here: the commit the seal left out, if any).
      const inTranscript = first?.transcript?.packets.length ?? 0;
      expect(inTranscript + (first?.others.length ?? 0)).toBe(packets.length);
      // The line alone re-derives the verdict, as synod-verify reads it.
      const input = readVerifyInput(lines[0] as string);
      expect(input.claimed).toEqual({
        verdictDigest: golden.verdictDigest,
        root: golden.root,
        requestId: first?.requestId ?? '',
        status: 'verdict',
      });
      // The coordinator's signed verdict rides along, for synod-verify to check.
      expect(input.verdictPacket).toEqual(h.verdict);
      const check = await verifyTranscript(input.transcript as never, {
        expectedVerdictDigest: golden.verdictDigest,
        expectedRoot: golden.root,
      });
      expect(check.ok).toBe(true);
      expect(second).toMatchObject({
        requestId: declined.body.requestId,
        status: 'expired',
        error: 'DECLINED',
        transcript: null,
        verdict: null,
      });
      expect(second?.others).toEqual([declined, decline]);
    } finally {
      h.client.close();
    }
  });

  test('a chain request stays while its settlement is pending or not final, and goes once it is', async () => {
    const h = await history();
    try {
      const contract = `0x${'c'.repeat(40)}`;
      const chain = await h.another(20, {
        requestId: `31337:${contract}:7`,
        origin: {
          kind: 'chain',
          chainId: 31337,
          contract,
          requestNo: '7',
          txHash: `0x${'d'.repeat(64)}`,
          blockNumber: 5,
        },
      });
      await h.store.setStatus(chain.body.requestId, 'verdict', NOW - 20 * DAY);
      const row = (status: string, finalizedAt: number | null) =>
        h.client.execute({
          sql: `INSERT INTO chain_requests (chain_id, contract, request_no, request_id, tx_hash, log_index,
                  block_number, block_hash, status, fulfilled_tx, created_at, updated_at, finalized_at)
                VALUES (31337, ?, '7', ?, ?, 0, 5, ?, ?, ?, 1, 1, ?)
                ON CONFLICT (chain_id, contract, request_no) DO UPDATE SET status = excluded.status,
                  fulfilled_tx = excluded.fulfilled_tx, finalized_at = excluded.finalized_at`,
          args: [
            contract,
            chain.body.requestId,
            `0x${'d'.repeat(64)}`,
            `0x${'e'.repeat(64)}`,
            status,
            status === 'pending' ? null : `0x${'f'.repeat(64)}`,
            finalizedAt,
          ],
        });
      const ids = async () =>
        (await h.client.execute('SELECT request_id FROM requests')).rows.map((x) => x['request_id']);
      await row('pending', null);
      await pruneHistory(h.store, { before: NOW - 2 * DAY, now: NOW });
      expect(await ids()).toEqual([chain.body.requestId]);
      await row('fulfilled', null);
      expect(await pruneHistory(h.store, { before: NOW - 2 * DAY, now: NOW })).toMatchObject({
        pruned: 0,
        kept: 1,
      });
      const prunedAt = async () =>
        (await h.client.execute('SELECT pruned_at FROM chain_requests')).rows[0]?.['pruned_at'];
      expect(await prunedAt()).toBeNull();
      await row('fulfilled', NOW - 19 * DAY);
      expect(await pruneHistory(h.store, { before: NOW - 2 * DAY, now: NOW })).toMatchObject({ pruned: 1 });
      expect(await ids()).toEqual([]);
      // The chain row itself stays: it is what keeps the request from being settled twice; it says the
      // request was run and pruned (its 404 says so, not that it was never run).
      expect(await count(h, 'chain_requests')).toBe(1);
      expect(await prunedAt()).toBe(NOW);
    } finally {
      h.client.close();
    }
  });

  test('a dry run counts and changes nothing; a cutoff younger than two days is refused', async () => {
    const h = await history();
    try {
      expect(await pruneHistory(h.store, { before: NOW - 2 * DAY, now: NOW, dryRun: true })).toEqual({
        pruned: 1,
        kept: 0,
        archivedBytes: 0,
      });
      expect(await count(h, 'requests')).toBe(1);
      let caught: unknown;
      try {
        await pruneHistory(h.store, { before: NOW - PRUNE_MIN_AGE_MS + 1, now: NOW });
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(PruneError);
      expect((caught as PruneError).code).toBe('PRUNE_TOO_RECENT');
      expect(await count(h, 'requests')).toBe(1);
    } finally {
      h.client.close();
    }
  });

  test('a batch is deleted only after its archive resolves: an archive that fails deletes nothing', async () => {
    const h = await history();
    try {
      let caught: unknown;
      try {
        await pruneHistory(h.store, {
          before: NOW - 2 * DAY,
          now: NOW,
          archive: () => Promise.reject(new Error('ENOSPC: no space left on device')),
        });
      } catch (e) {
        caught = e;
      }
      expect(String(caught)).toContain('ENOSPC');
      expect(await count(h, 'requests')).toBe(1);
      expect(await count(h, 'reveals')).toBe(of('reveal').length);
    } finally {
      h.client.close();
    }
  });
});

test('a batch walks requests_created_idx from where the last one ended, with no sort: its cost does not grow with the history', async () => {
  const h = await openHistory(':memory:');
  try {
    const plan = await pruneBatchPlan(h.store);
    expect(plan[0]).toStartWith('SEARCH requests USING INDEX requests_created_idx');
    expect(plan.join('\n')).not.toContain('TEMP B-TREE');
  } finally {
    h.client.close();
  }
});
