import { describe, expect, test } from 'bun:test';
import { NodeKey } from '@synod/shared';
import { type NodeMetrics, SynodNode } from '../node/synod-node.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { workLooks } from './work-watch.ts';

/** A real node's metrics, as a base the looks below change one member at a time. */
async function baseMetrics(): Promise<NodeMetrics> {
  const net = new MemoryNetwork();
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(190));
  const node = new SynodNode({ key, role: 'follower', transports: [net.join(key.nodeId)] });
  await node.start();
  const m = node.metrics();
  await node.close();
  return m;
}

/**
 * Looks over a scripted series of metrics (the first at the watch's making); the lines logged. `clock`:
 * the time at each, from a node started at 0 (else the real clock).
 */
function looks(
  series: NodeMetrics[],
  coordinators: string[] = [],
  o: { clock?: number[]; intervalMs?: number } = {},
) {
  const lines: Record<string, unknown>[] = [];
  let i = 0;
  const look = workLooks({
    metrics: () => series[Math.min(i, series.length - 1)] as NodeMetrics,
    coordinators,
    log: (e) => lines.push(e),
    ...(o.clock ? { now: () => o.clock?.[i] as number, startedAt: 0 } : {}),
    ...(o.intervalMs !== undefined ? { intervalMs: o.intervalMs } : {}),
  });
  for (i = 1; i < series.length; i++) look();
  return lines;
}

describe('what keeps a node from work, in its log', () => {
  test('a clock off its peers: one warning a spell (CLOCK_SKEW), and a line when it agrees again', async () => {
    const m = await baseMetrics();
    const ahead = { ...m, clock: { offsetMs: 30_000, peers: 3 } };
    const fine = { ...m, clock: { offsetMs: 40, peers: 3 } };
    const lines = looks([fine, ahead, ahead, ahead, fine, fine]);
    expect(lines.map((l) => [l['level'], l['code'] ?? l['msg']])).toEqual([
      ['warn', 'CLOCK_SKEW'],
      ['info', "this node's clock agrees with its peers' again"],
    ]);
    expect(lines[0]).toMatchObject({ offsetMs: 30_000, detail: expect.stringContaining('30 s ahead') });
  });

  test('connected and hearing nothing for a minute: one warning a spell (NETWORK_SILENT), and a line when heard again', async () => {
    const m = await baseMetrics();
    const heardAt = (t: number) => ({ ...m, peers: 2, intake: { ...m.intake, lastOfferedAt: t } });
    const lines = looks([heardAt(0), heardAt(0), heardAt(0), heardAt(100_000)], [], {
      clock: [10_000, 70_000, 90_000, 100_500],
    });
    expect(lines.map((l) => [l['level'], l['code'] ?? l['msg']])).toEqual([
      ['warn', 'NETWORK_SILENT'],
      ['info', 'the network is heard again'],
    ]);
    expect(lines[0]).toMatchObject({ peers: 2, silentMs: 70_000 });
  });

  test("a look long after the one before (the node itself was stopped, or asleep) does not judge the network's silence", async () => {
    const m = await baseMetrics();
    const heardAt = (t: number) => ({ ...m, peers: 2, intake: { ...m.intake, lastOfferedAt: t } });
    // Looks every 30 s; the process stopped from 30 s to 100 s: at 100 s nothing it missed is in yet.
    const lines = looks(
      [heardAt(0), heardAt(20_000), heardAt(20_000), heardAt(100_050), heardAt(100_050)],
      [],
      { clock: [0, 30_000, 100_000, 130_000, 190_000], intervalMs: 30_000 },
    );
    // At 190 s, 90 s since the last message: that silence is the network's.
    expect(lines.map((l) => l['code'] ?? l['msg'])).toEqual(['NETWORK_SILENT']);
  });

  test('requests heard, every one refused for its coordinator: one warning a spell (NOT_COORDINATOR) naming them; a request taken ends it', async () => {
    const m = await baseMetrics();
    const refusing = (n: number) => ({
      ...m,
      lifecycleRejected: { NOT_COORDINATOR: n },
      refusedCoordinators: ['ab'.repeat(32)],
    });
    const taking = { ...refusing(9), inferences: { ...m.inferences, started: 1 } };
    const lines = looks([refusing(0), refusing(3), refusing(6), refusing(9), taking], ['cd'.repeat(32)]);
    expect(lines.map((l) => [l['level'], l['code'] ?? l['msg']])).toEqual([
      ['warn', 'NOT_COORDINATOR'],
      ['info', 'requests of the --coordinators taken again'],
    ]);
    expect(lines[0]).toMatchObject({ refused: 3, from: ['ab'.repeat(32)], coordinators: ['cd'.repeat(32)] });
    // Without --coordinators the node refuses no coordinator: nothing to say.
    expect(looks([refusing(0), refusing(3)])).toEqual([]);
    // Requests refused beside others taken (a network of several relays): nothing to say either.
    const both = { ...refusing(3), skipped: { 'no-capacity': 1 } };
    expect(looks([refusing(0), both], ['cd'.repeat(32)])).toEqual([]);
  });
});
