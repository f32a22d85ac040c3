import { describe, expect, test } from 'bun:test';
import { NodeKey, type Verdict } from '@synod/shared';
import type { InferenceQueue, QueueJob, QueueResult } from '../inference/queue.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { SynodNode } from './synod-node.ts';
import { relayAndNode } from './test-helpers.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const EMBEDDER = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const MODEL = { id: 'm', fileHash: '22'.repeat(32) };

/**
 * A test double of the inference queue: one fixed answer after `ms` of wall time, its `startedAt` and
 * `finishedAt` the queue's own (what the driver reports as the inference and embedding time).
 */
function fixedQueue(text: string, fill: number, ms: number): InferenceQueue {
  const queue = {
    accepting: true,
    running: false,
    capacity: { queued: 0, maxQueue: 4 },
    estimateMs: () => 1,
    submit: async (_job: QueueJob): Promise<QueueResult> => {
      const startedAt = Date.now();
      await Bun.sleep(ms);
      return {
        text,
        tokens: 5,
        tokensPerSecond: 100,
        bEmbedding: new Uint8Array(EMBEDDER.bits / 8).fill(fill),
        finishReason: 'stop',
        startedAt,
        finishedAt: startedAt + ms,
      };
    },
  };
  return queue as unknown as InferenceQueue;
}

type Line = Record<string, unknown>;

/** The per-request lines a node logged for one request. */
function linesOf(logs: Line[], requestId: string): Line[] {
  return logs.filter((l) => l['requestId'] === requestId && l['level'] === 'info');
}

describe('SynodNode: what a node logs of the requests it serves', () => {
  test('one line when it commits, one when it reveals, one for the verdict: accepted, winner or not, rejected with the reason', async () => {
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(190));
    const verdicts = new Map<string, Verdict>();
    const relay = new SynodNode({
      key: relayKey,
      role: 'relay',
      transports: [net.join(relayKey.nodeId)],
      onVerdict: (id, v) => verdicts.set(id, v.verdict),
    });
    // Two nodes answer alike, a third far from them (its embedding differs in 3 bits of every 8).
    const answers = [
      { text: 'the same answer', fill: 7, ms: 40 },
      { text: 'the same answer', fill: 7, ms: 60 },
      { text: 'something else', fill: 0, ms: 20 },
    ];
    const logs: Line[][] = answers.map(() => []);
    const nodes: SynodNode[] = [];
    for (const [i, a] of answers.entries()) {
      const key = await NodeKey.fromSeed(new Uint8Array(32).fill(191 + i));
      nodes.push(
        new SynodNode({
          key,
          role: 'node',
          transports: [net.join(key.nodeId)],
          serving: { queue: fixedQueue(a.text, a.fill, a.ms), models: [MODEL], embedder: EMBEDDER },
          log: (e) => logs[i]?.push(e),
        }),
      );
    }
    const finished = new Set<SynodNode>();
    await relay.start();
    for (const n of nodes) await n.start();
    try {
      const body = testRequest({
        embedder: EMBEDDER,
        acceptedModels: [MODEL.id],
        frame: { quorum: 3, revealWindowMs: 2_000 },
      });
      await relay.submit(body);
      await until(() => {
        for (const n of nodes) if (n.status(body.requestId)?.finished === true) finished.add(n);
        return finished.size === nodes.length;
      });
      for (const n of nodes) await n.settled();
      const verdict = verdicts.get(body.requestId);
      expect(verdict?.status).toBe('accepted');
      const winner = verdict?.winner?.nodeId;

      for (const [i, node] of nodes.entries()) {
        const lines = linesOf(logs[i] ?? [], body.requestId);
        // Bounded: these three lines for the request, however many packets of it the node heard.
        expect(lines.map((l) => l['msg'])).toEqual(['committed', 'revealed', 'verdict']);
        const [committed, revealed, verdictLine] = lines;
        expect(committed).toMatchObject({ node: node.nodeId.slice(0, 12), model: MODEL.id, tokens: 5 });
        expect(committed?.['inferenceMs']).toBe(answers[i]?.ms);
        expect(revealed).toMatchObject({ sealSize: 3 });
        expect(verdictLine).toMatchObject({ status: 'accepted' });
        // The first verdict heard: recomputed, or checked by its digest while reveals are on their way.
        expect(['recomputed', 'digest']).toContain(String(verdictLine?.['check']));
        if (i < 2) {
          expect(verdictLine).toMatchObject({
            outcome: 'accepted',
            reason: null,
            winner: node.nodeId === winner,
          });
        } else {
          expect(verdictLine).toMatchObject({
            outcome: 'rejected',
            reason: 'OUTSIDE_CLUSTER',
            winner: false,
          });
        }
      }
      expect(nodes.filter((n) => n.nodeId === winner)).toHaveLength(1);
    } finally {
      for (const n of nodes) await n.close();
      await relay.close();
    }
  }, 60_000);

  test('a node left out of the seal says so in its verdict line; with requestLog false a node logs none of these lines', async () => {
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(200));
    const verdicts = new Map<string, Verdict>();
    const relay = new SynodNode({
      key: relayKey,
      role: 'relay',
      transports: [net.join(relayKey.nodeId)],
      onVerdict: (id, v) => verdicts.set(id, v.verdict),
    });
    const fastKey = await NodeKey.fromSeed(new Uint8Array(32).fill(201));
    const slowKey = await NodeKey.fromSeed(new Uint8Array(32).fill(202));
    const quietKey = await NodeKey.fromSeed(new Uint8Array(32).fill(203));
    const fastLogs: Line[] = [];
    const slowLogs: Line[] = [];
    const quietLogs: Line[] = [];
    /** A node serving a fixed answer after `ms`, its log lines into `logs`. */
    const servingNode = (key: NodeKey, ms: number, logs: Line[], requestLog = true) =>
      new SynodNode({
        key,
        role: 'node',
        transports: [net.join(key.nodeId)],
        serving: { queue: fixedQueue('an answer', 7, ms), models: [MODEL], embedder: EMBEDDER },
        requestLog,
        log: (e) => logs.push(e),
      });
    const fast = servingNode(fastKey, 10, fastLogs);
    // Still inferring when the seal closed on the first two commits (maxCommits 2): left out.
    const slow = servingNode(slowKey, 300, slowLogs);
    const quiet = servingNode(quietKey, 10, quietLogs, false);
    const nodes = [fast, slow, quiet];
    await relay.start();
    for (const n of nodes) await n.start();
    try {
      const body = testRequest({
        embedder: EMBEDDER,
        acceptedModels: [MODEL.id],
        nonce: 1,
        frame: { quorum: 2, maxCommits: 2, revealWindowMs: 2_000 },
      });
      await relay.submit(body);
      await until(() => nodes.every((n) => n.status(body.requestId)?.finished === true));
      for (const n of nodes) await n.settled();
      const winner = verdicts.get(body.requestId)?.winner?.nodeId;
      expect(linesOf(fastLogs, body.requestId).map((l) => l['msg'])).toEqual([
        'committed',
        'revealed',
        'verdict',
      ]);
      expect(linesOf(fastLogs, body.requestId).at(-1)).toMatchObject({
        outcome: 'accepted',
        winner: fast.nodeId === winner,
      });
      // The slow node heard the seal while it was still inferring: it never committed.
      const slowLines = linesOf(slowLogs, body.requestId);
      expect(slowLines.map((l) => l['msg'])).toEqual(['verdict']);
      expect(slowLines[0]).toMatchObject({ outcome: 'not-sealed', reason: null, winner: false });
      expect(linesOf(quietLogs, body.requestId)).toEqual([]);
    } finally {
      for (const n of nodes) await n.close();
      await relay.close();
    }
  }, 60_000);

  test('a request whose inference outlasts its commit deadline ends in one line, request expired, with the reason', async () => {
    // Estimated at 1 ms, it takes 2 s: past the commit deadline, maxTimeMs 1.5 s.
    const serving = { queue: fixedQueue('late', 7, 2_000), models: [MODEL], embedder: EMBEDDER };
    const { relay, node, key, lines: logs, close } = await relayAndNode([210, 211], serving);
    try {
      const body = testRequest({
        embedder: EMBEDDER,
        acceptedModels: [MODEL.id],
        nonce: 2,
        frame: { maxTimeMs: 1_500, revealWindowMs: 10_000 },
      });
      await relay.submit(body);
      await until(() => node.status(body.requestId)?.finished === true, 10_000);
      // The inference's late result changes nothing.
      await Bun.sleep(800);
      await node.settled();
      expect(linesOf(logs, body.requestId)).toEqual([
        {
          node: key.nodeId.slice(0, 12),
          level: 'info',
          msg: 'request expired',
          requestId: body.requestId,
          reason: 'deadline-passed',
        },
      ]);
    } finally {
      await close();
    }
  }, 30_000);
  test('a node that committed and heard no seal by the deadline says it may have been sealed without it', async () => {
    const serving = { queue: fixedQueue('an answer', 7, 10), models: [MODEL], embedder: EMBEDDER };
    const { relay, node, lines: logs, close } = await relayAndNode([212, 213], serving);
    try {
      // A quorum of 2 with one node: the seal never comes.
      const body = testRequest({
        embedder: EMBEDDER,
        acceptedModels: [MODEL.id],
        nonce: 3,
        frame: { quorum: 2, maxTimeMs: 4_000, revealWindowMs: 1_000 },
      });
      await relay.submit(body);
      await until(() => node.status(body.requestId)?.finished === true, 20_000);
      await node.settled();
      const lines = linesOf(logs, body.requestId);
      expect(lines.map((l) => l['msg'])).toEqual(['committed', 'request expired']);
      expect(lines[1]).toMatchObject({ reason: 'not-sealed' });
      expect(String(lines[1]?.['hint'])).toContain(
        'it may have been sealed while this node was stopped or cut off',
      );
    } finally {
      await close();
    }
  }, 30_000);

  test('a commit a restarted node publishes for its saved machine says afterRestart, not empty timings', async () => {
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(196));
    const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(197));
    const relay = new SynodNode({ key: relayKey, role: 'relay', transports: [net.join(relayKey.nodeId)] });
    const store = new MemoryMachineStore();
    const logs: Line[] = [];
    const start = (name: string) =>
      new SynodNode({
        key: nodeKey,
        role: 'node',
        transports: [net.join(name)],
        store,
        log: (l) => logs.push(l),
        serving: { queue: fixedQueue('an answer', 3, 10), models: [MODEL], embedder: EMBEDDER },
      });
    const first = start('node-1');
    await relay.start();
    await first.start();
    let second: SynodNode | undefined;
    try {
      // A quorum of two, one node: the request stays open.
      const body = testRequest({ embedder: EMBEDDER, nonce: 0x196, frame: { quorum: 2 } });
      await relay.submit(body);
      await until(() => linesOf(logs, body.requestId).some((l) => l['msg'] === 'committed'));
      await first.close();
      // Its state as a kill between the commit's write-ahead barrier and its publication leaves it: the
      // commit still to publish (the outbox), not fed back yet.
      const [row] = await store.load(nodeKey.nodeId);
      const state = JSON.parse(row?.state ?? '{}') as {
        self: string;
        outbox: unknown[];
        commits: { id: string; packet: { from: string; body: unknown } }[];
      };
      const own = state.commits.find((c) => c.packet.from === state.self);
      state.outbox = [{ packetType: 'commit', body: own?.packet.body, id: own?.id }];
      state.commits = state.commits.filter((c) => c !== own);
      await store.save(nodeKey.nodeId, body.requestId, JSON.stringify(state));
      logs.length = 0;
      second = start('node-2');
      await second.start();
      await until(() => linesOf(logs, body.requestId).some((l) => l['msg'] === 'committed'));
      const line = linesOf(logs, body.requestId).find((l) => l['msg'] === 'committed');
      expect(line).toMatchObject({ msg: 'committed', model: MODEL.id, afterRestart: true });
      expect(line).not.toHaveProperty('inferenceMs');
      expect(line).not.toHaveProperty('tokens');
    } finally {
      await second?.close();
      await relay.close();
    }
  }, 30_000);
});
