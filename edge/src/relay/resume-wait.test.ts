/**
 * What a relay started again waits for before its restored machines resume. Its nodes come back one by
 * one (each when its redial comes due) and publish again, as the relay joins them, what it missed while
 * it was down; a sealed request whose reveal window closed meanwhile is judged the moment its machine
 * resumes, so a member whose reveal was not in by then was counted NOT_REVEALED though it revealed on time.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { SynodNode } from '@synod/browser-node';
import {
  type AnyPacket,
  NodeKey,
  type Packet,
  type PacketType,
  packetId,
  signPacket,
  type VerdictBody,
} from '@synod/shared';
import { testRequest } from '../../../browser-node/src/node/test-request.ts';
import type { HistoryStore } from '../store/history-store.ts';
import { openHistory } from '../store/open-history.ts';
import { storeRequest } from '../store/test-requests.ts';
import { InProcessRelayNetwork } from './in-process.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-resume-wait-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };

/** A test double of the relay's node: only its peer count (peers that can answer), which the test moves. */
function peersDouble() {
  const double = { count: 0, protocolPeers: () => double.count };
  return double;
}

/** A relay network whose node has a peer from the start: it settles 100 ms, waits 3 s at most. */
function relayWithAPeer(key: NodeKey, store: HistoryStore): InProcessRelayNetwork {
  const node = peersDouble();
  node.count = 1;
  return new InProcessRelayNetwork(key, node as unknown as SynodNode, store, Date.now, [], {
    peerSettleMs: 100,
    peerSettleMaxMs: 3_000,
  });
}

describe('a relay started again waits for its peers', () => {
  test('after its first peer, until none new came for peerSettleMs, at most peerSettleMaxMs', async () => {
    const h = await openHistory(`file:${join(dir, 'settle.db')}`);
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(60));
    const node = peersDouble();
    const network = new InProcessRelayNetwork(key, node as unknown as SynodNode, h.store, Date.now, [], {
      peerSettleMs: 500,
      peerSettleMaxMs: 3_000,
    });
    try {
      const t0 = Date.now();
      const heard = network.whenHeard().then(() => Date.now() - t0);
      // Nodes coming back one by one, 400 ms apart: each keeps the wait going.
      for (const at of [100, 500, 900]) {
        setTimeout(() => {
          node.count++;
        }, at);
      }
      const waited = await heard;
      expect(waited).toBeGreaterThanOrEqual(1_350);
      expect(waited).toBeLessThan(2_500);

      // One that keeps peers coming forever still resumes peerSettleMaxMs after the first.
      const other = peersDouble();
      other.count = 1;
      const busy = new InProcessRelayNetwork(key, other as unknown as SynodNode, h.store, Date.now, [], {
        peerSettleMs: 500,
        peerSettleMaxMs: 1_500,
      });
      const timer = setInterval(() => {
        other.count++;
      }, 200);
      const t1 = Date.now();
      await busy.whenHeard();
      clearInterval(timer);
      expect(Date.now() - t1).toBeGreaterThanOrEqual(1_450);
      expect(Date.now() - t1).toBeLessThan(2_500);
    } finally {
      h.client.close();
    }
  });

  test("a sealed request past its reveal window waits for its members' reveals to reach the history", async () => {
    const h = await openHistory(`file:${join(dir, 'reveals.db')}`);
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(70));
    const members = await Promise.all([1, 2].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(70 + i))));
    // Sealed 10 s ago with a reveal window of 1 s: over while the relay was down.
    const createdAt = Date.now() - 20_000;
    const body = testRequest({ embedder, nonce: 70, createdAt, frame: { quorum: 2, maxCommits: 2 } });
    const request = await signPacket(key, 'request', body);
    await storeRequest(h.store, { id: packetId(request), packet: request }, createdAt);
    const commits: Packet<'commit'>[] = [];
    for (const [i, m] of members.entries()) {
      const c = await signPacket(m, 'commit', {
        requestId: body.requestId,
        commitment: String(i + 1).repeat(64),
        createdAt: createdAt + 100,
      });
      commits.push(c);
      await h.store.recordCommit({ id: packetId(c), packet: c });
    }
    const sealMembers = commits
      .map((c) => ({ nodeId: c.from, commitment: c.body.commitment, commitId: packetId(c) }))
      .sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
    const seal = await signPacket(key, 'seal', {
      requestId: body.requestId,
      requestPacketId: packetId(request),
      members: sealMembers,
      createdAt: Date.now() - 10_000,
    });
    await h.store.recordSeal({ id: packetId(seal), packet: seal }, Date.now());
    const reveal = (m: NodeKey) =>
      signPacket(m, 'reveal', {
        requestId: body.requestId,
        output: 'Once upon a time',
        bEmbedding: '00'.repeat(64),
        model: { id: 'm', fileHash: '22'.repeat(32) },
        salt: '33'.repeat(32),
        createdAt: Date.now() - 9_500,
      });
    // One member's reveal was in the history before the kill; the other's is published again as the
    // relay joins its node, 600 ms after the relay's first peer.
    const first = await reveal(members[0] as NodeKey);
    await h.store.recordReveal({ id: packetId(first), packet: first });
    const network = relayWithAPeer(key, h.store);
    try {
      const late = await reveal(members[1] as NodeKey);
      setTimeout(() => {
        void h.store.recordReveal({ id: packetId(late), packet: late });
      }, 600);
      const t0 = Date.now();
      const kept: AnyPacket[] = await network.storedPackets(body.requestId);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
      expect(Date.now() - t0).toBeLessThan(2_500);
      expect(kept.filter((p) => p.type === 'reveal').map((p) => p.from)).toEqual(
        expect.arrayContaining(members.map((m) => m.nodeId)),
      );
      expect(kept.filter((p) => p.type === 'reveal')).toHaveLength(2);
    } finally {
      h.client.close();
    }
  });

  test('a sealed request whose verdict is in the history does not wait for the reveals it lacks', async () => {
    // The golden scenario: five members sealed, four revealed, the verdict published (on four) before
    // the relay was killed. Its machine, restored in its verdict phase, judges nothing more.
    const golden = (
      JSON.parse(readFileSync(resolve(import.meta.dir, '../../../shared/test-vectors/v1.json'), 'utf8')) as {
        scenarios: {
          nodes: { role: string; seed: string }[];
          transcript: { packets: AnyPacket[] };
          verdict: VerdictBody['verdict'];
          verdictDigest: string;
          root: string;
        }[];
      }
    ).scenarios[0];
    if (!golden) throw new Error('no golden scenario');
    const of = <T extends PacketType>(type: T) =>
      golden.transcript.packets.filter((p) => p.type === type) as Packet<T>[];
    const [request] = of('request');
    const [seal] = of('seal');
    if (!request || !seal) throw new Error('no request or seal');
    expect(of('reveal').length).toBeLessThan(seal.body.members.length);
    const seed = golden.nodes.find((n) => n.role === 'coordinator')?.seed ?? '';
    const key = await NodeKey.fromSeed(Uint8Array.from(Buffer.from(seed, 'hex')));
    const h = await openHistory(`file:${join(dir, 'verdict.db')}`);
    await storeRequest(h.store, { id: packetId(request), packet: request }, request.body.createdAt);
    for (const c of of('commit')) await h.store.recordCommit({ id: packetId(c), packet: c });
    await h.store.recordSeal({ id: packetId(seal), packet: seal }, seal.body.createdAt);
    for (const r of of('reveal')) await h.store.recordReveal({ id: packetId(r), packet: r });
    const verdict = await signPacket(key, 'verdict', {
      requestId: request.body.requestId,
      verdict: golden.verdict,
      verdictDigest: golden.verdictDigest,
      transcriptRoot: golden.root,
      createdAt: seal.body.createdAt + 1_000,
    });
    expect(await h.store.recordVerdict({ id: packetId(verdict), packet: verdict }, Date.now())).toBe(true);
    const network = relayWithAPeer(key, h.store);
    try {
      const t0 = Date.now();
      const kept = await network.storedPackets(request.body.requestId);
      // The settle after the first peer (100 ms), not the 3 s the missing reveal would be waited for.
      expect(Date.now() - t0).toBeLessThan(1_500);
      expect(kept.filter((p) => p.type === 'reveal')).toHaveLength(of('reveal').length);
    } finally {
      h.client.close();
    }
  });
});
