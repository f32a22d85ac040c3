/**
 * An auditor re-derives every node's reputation in `/v1/nodes` from what the public reads show: the
 * history's requests (`/v1/history`), each one's verdict (`/v1/inference/:id`, the same as
 * `/v1/verify/:id` re-computes), and the rule of `reputationDeltas`. Real nodes serve the requests; one
 * more peer commits to each request at once and never reveals (sealed, it is NOT_REVEALED), and never
 * sends a heartbeat: its withheld reveals are listed all the same.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { topicOfPacketType } from '@synod/browser-node';
import {
  encodePacket,
  NodeKey,
  type Packet,
  parseEnvelope,
  type RejectReason,
  signPacket,
} from '@synod/shared';
import { reputationDeltas, reputationScore } from '@synod/shared/history';
import type { NodeSummary } from '../store/node-pages.ts';
import { startTestNetwork, submitPrompt, type TestNetwork } from '../test-helpers.ts';
import { waitUntil } from '../test-servers.ts';

type HistoryPage = {
  items: {
    requestId: string;
    status: string;
    verdictDigest: string | null;
    transcriptRoot: string | null;
    winnerNodeId: string | null;
  }[];
  nextCursor: string | null;
};
type View = {
  status: string;
  seal: { members: { nodeId: string }[] } | null;
  verdict: {
    verdictDigest: string;
    transcriptRoot: string;
    accepted: { nodeId: string }[];
    rejected: { nodeId: string; reason: RejectReason }[];
    winner: { nodeId: string } | null;
  } | null;
  transcriptRoot: string | null;
};
/** A node's reputation as `/v1/nodes` answers it. */
type Reputation = NodeSummary['reputation'];

const FINAL = ['verdict', 'no-consensus', 'expired', 'failed'];

describe('reputation re-derived from the public history', () => {
  let t: TestNetwork;
  beforeAll(async () => {
    t = await startTestNetwork({});
    await waitUntil('the relay heard its nodes', async () => t.relay.node.knownNodes().length >= 3);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  const json = async <T>(path: string): Promise<T> =>
    (await (await fetch(`${t.relay.url}${path}`)).json()) as T;

  test('every figure of /v1/nodes, a withholding node without heartbeats included', async () => {
    const withholder = await NodeKey.fromSeed(new Uint8Array(32).fill(77));
    const peer = t.network.join(withholder.nodeId);
    peer.subscribe(topicOfPacketType('request'), (bytes) => {
      void (async () => {
        const request = parseEnvelope(JSON.parse(new TextDecoder().decode(bytes))) as Packet<'request'>;
        const commit = await signPacket(withholder, 'commit', {
          requestId: request.body.requestId,
          commitment: 'ab'.repeat(32),
          createdAt: request.body.createdAt + 1,
        });
        await peer.publish(topicOfPacketType('commit'), encodePacket(commit));
      })();
    });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await submitPrompt(t, `Once upon a time ${i}`));
    for (const id of ids) {
      await waitUntil(`request ${id.slice(0, 12)} final`, async () =>
        FINAL.includes((await json<View>(`/v1/inference/${id}`)).status),
      );
    }

    // The history a request a page, oldest last: each request once.
    const walked: HistoryPage['items'] = [];
    let cursor: string | null = null;
    do {
      const page: HistoryPage = await json(
        `/v1/history?limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      walked.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== null);
    expect(walked.map((i) => i.requestId).sort()).toEqual([...ids].sort());

    // Oldest first, as the relay recorded them: a node outside a seal counts only once it has a record.
    const derived = new Map<string, Omit<Reputation, 'score' | 'standing'>>();
    for (const item of [...walked].reverse()) {
      const view = await json<View>(`/v1/inference/${item.requestId}`);
      expect(view.status).toBe(item.status);
      expect(item.verdictDigest).toBe(view.verdict?.verdictDigest ?? null);
      expect(item.transcriptRoot).toBe(view.transcriptRoot);
      expect(item.winnerNodeId).toBe(view.verdict?.winner?.nodeId ?? null);
      if (view.verdict === null || view.seal === null) continue;
      const verified = await json<{ ok: boolean; verdictDigest: string; transcriptRoot: string }>(
        `/v1/verify/${item.requestId}`,
      );
      expect(verified).toMatchObject({
        ok: true,
        verdictDigest: view.verdict.verdictDigest,
        transcriptRoot: view.verdict.transcriptRoot,
      });
      const members = new Set(view.seal.members.map((m) => m.nodeId));
      const entries = [
        ...view.verdict.accepted.map((a) => ({
          nodeId: a.nodeId,
          outcome: 'accepted' as const,
          reason: null,
        })),
        ...view.verdict.rejected.map((r) => ({
          nodeId: r.nodeId,
          outcome: 'rejected' as const,
          reason: r.reason,
        })),
      ];
      // The request's status says the verdict's: `verdict` for an accepted one, else `no-consensus`.
      for (const d of reputationDeltas(entries, view.status === 'verdict' ? 'accepted' : 'no-consensus')) {
        const base = derived.get(d.nodeId);
        if (base === undefined && !members.has(d.nodeId)) continue;
        const b = base ?? {
          agreements: 0,
          disagreements: 0,
          withheld: 0,
          invalid: 0,
          commits: 0,
          vouched: 0,
        };
        derived.set(d.nodeId, {
          agreements: b.agreements + d.agreements,
          disagreements: b.disagreements + d.disagreements,
          withheld: b.withheld + d.withheld,
          invalid: b.invalid + d.invalid,
          commits: b.commits + 1,
          // The relay trusts no node here: no agreement is vouched for.
          vouched: 0,
        });
      }
    }
    // The withholder was sealed (it committed first) and withheld every time.
    expect(derived.get(withholder.nodeId)?.withheld).toBeGreaterThanOrEqual(1);

    const listed = new Map<string, Reputation>();
    cursor = null;
    do {
      const page: { nodes: { nodeId: string; reputation: Reputation }[]; nextCursor: string | null } =
        await json(`/v1/nodes?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      for (const n of page.nodes) listed.set(n.nodeId, n.reputation);
      cursor = page.nextCursor;
    } while (cursor !== null);
    for (const [nodeId, r] of derived) {
      expect({ nodeId, reputation: listed.get(nodeId) }).toEqual({
        nodeId,
        reputation: {
          ...r,
          score: reputationScore(r),
          standing: r.vouched - r.disagreements - r.withheld - r.invalid,
        },
      });
    }
  }, 180_000);
});
