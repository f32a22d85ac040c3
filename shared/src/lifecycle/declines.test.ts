import { describe, expect, test } from 'bun:test';
import type { Frame } from '../frame/frame.ts';
import type { NodeKey } from '../identity/node-key.ts';
import { packetId, signPacket } from '../packets/envelope.ts';
import type { DeclineBody } from '../packets/index.ts';
import { deriveRequestId } from '../packets/request-id.ts';
import { type CoordinatorCtx, feedCoordinator, startedCoordinator } from './coordinator.test-helpers.ts';
import {
  type CoordinatorConfig,
  type CoordinatorState,
  stepCoordinator,
  trustedDeclines,
} from './coordinator.ts';
import { MODEL, makeRequest, signedCommit, T0 } from './sim.test-helpers.ts';
import type { Effect } from './types.ts';

/** A coordinator's handling of `decline` packets: nodes that say they cannot run its request. */

type Ctx = CoordinatorCtx;

const started = (
  frame: Partial<Omit<Frame, 'embeddingModel'>> = {},
  config: CoordinatorConfig = {},
): Promise<Ctx> => startedCoordinator(frame, config, 'declines-test');
const feed = feedCoordinator;

function decline(ctx: Ctx, i: number, at: number, over: Partial<DeclineBody> = {}) {
  return signPacket(ctx.keys[i]!, 'decline', {
    requestId: ctx.request.requestId,
    requestPacketId: packetId(ctx.requestPacket),
    model: MODEL,
    reason: 'context-exceeded',
    promptTokens: 4_812,
    contextTokens: 512,
    createdAt: at,
    ...over,
  });
}

const codes = (fx: Effect[]) => fx.flatMap((e) => (e.kind === 'rejected' ? [e.code] : []));
const ended = (fx: Effect[]) => fx.filter((e) => e.kind === 'expired' || e.kind === 'done');

describe('a coordinator and declines', () => {
  test('quorum (3) declines end the request `declined` at once, long before its deadline; two do not', async () => {
    const ctx = await started();
    expect(feed(ctx, await decline(ctx, 0, T0 + 100), T0 + 100)).toEqual([]);
    expect(feed(ctx, await decline(ctx, 1, T0 + 110), T0 + 110)).toEqual([]);
    expect(ctx.state.outcome).toBeNull();
    const fx = feed(ctx, await decline(ctx, 2, T0 + 120), T0 + 120);
    expect(ended(fx)).toEqual([{ kind: 'expired', reason: 'declined' }]);
    expect(fx).toContainEqual({ kind: 'cancel-timer', name: 'seal-deadline' });
    expect(ctx.state).toMatchObject({
      phase: 'finished',
      outcome: { kind: 'expired', reason: 'declined', at: T0 + 120 },
    });
    expect(ctx.state.declines?.map((d) => d.packet.from)).toEqual(ctx.keys.slice(0, 3).map((k) => k.nodeId));
    // Finished: a late commit is refused as such.
    expect(codes(feed(ctx, await signedCommit(ctx.keys[3]!, ctx.request, T0 + 130), T0 + 130))).toEqual([
      'FINISHED',
    ]);
  });

  test('declines do not end a request that holds quorum commits (another model, a larger context): it seals', async () => {
    const ctx = await started({ maxCommits: 7 });
    for (const i of [0, 1, 2])
      feed(ctx, await signedCommit(ctx.keys[i]!, ctx.request, T0 + 10 + i), T0 + 10 + i);
    for (const i of [3, 4, 5]) expect(feed(ctx, await decline(ctx, i, T0 + 20 + i), T0 + 20 + i)).toEqual([]);
    expect(ctx.state.outcome).toBeNull();
    const fx = stepCoordinator(ctx.config, ctx.state, {
      kind: 'timer',
      now: T0 + ctx.request.frame.maxTimeMs,
      name: 'seal-deadline',
    });
    expect(fx.state.phase).toBe('sealed');
    expect(fx.state.seal?.body.members.map((m) => m.nodeId).sort()).toEqual(
      ctx.keys
        .slice(0, 3)
        .map((k) => k.nodeId)
        .sort(),
    );
  });

  test('what is refused: another request packet, a model not asked, a second decline, a committer, after the seal', async () => {
    const ctx = await started({ quorum: 2, maxCommits: 2 });
    expect(
      codes(feed(ctx, await decline(ctx, 0, T0 + 1, { requestPacketId: 'ab'.repeat(32) }), T0 + 1)),
    ).toEqual(['DECLINE_INVALID']);
    expect(
      codes(
        feed(
          ctx,
          await decline(ctx, 0, T0 + 2, { model: { id: 'other', fileHash: MODEL.fileHash } }),
          T0 + 2,
        ),
      ),
    ).toEqual(['DECLINE_INVALID']);
    const first = await decline(ctx, 0, T0 + 3);
    expect(feed(ctx, first, T0 + 3)).toEqual([]);
    expect(feed(ctx, first, T0 + 4)).toEqual([]); // the same packet again: a duplicate delivery
    expect(codes(feed(ctx, await decline(ctx, 0, T0 + 5), T0 + 5))).toEqual(['DUPLICATE_DECLINE']);
    // A node that declined cannot commit after all, nor a committer decline.
    expect(codes(feed(ctx, await signedCommit(ctx.keys[0]!, ctx.request, T0 + 6), T0 + 6))).toEqual([
      'DECLINE_CONFLICT',
    ]);
    feed(ctx, await signedCommit(ctx.keys[1]!, ctx.request, T0 + 7), T0 + 7);
    expect(codes(feed(ctx, await decline(ctx, 1, T0 + 8), T0 + 8))).toEqual(['DECLINE_CONFLICT']);
    // The second commit fills maxCommits: sealed; a decline then changes nothing.
    feed(ctx, await signedCommit(ctx.keys[2]!, ctx.request, T0 + 9), T0 + 9);
    expect(ctx.state.phase).toBe('sealed');
    expect(codes(feed(ctx, await decline(ctx, 3, T0 + 10), T0 + 10))).toEqual(['DECLINE_CONFLICT']);
    expect(ctx.state.declines?.length).toBe(1);
  });

  test('a node the eligibility predicate rules out does not count', async () => {
    const ctx = await started({}, {});
    ctx.config = { isEligible: (_r, nodeId) => nodeId !== ctx.keys[0]!.nodeId };
    expect(codes(feed(ctx, await decline(ctx, 0, T0 + 1), T0 + 1))).toEqual(['NOT_ELIGIBLE']);
    expect(ctx.state.declines).toEqual([]);
  });

  test('under the seat policy, declines count as a seal would trust them: fresh keys alone cannot end a request', async () => {
    // Nodes 0-2 are proven. quorum 3, maxCommits 5 at 0.6: a seal seats at most 2 nodes without a record,
    // and fewer than its members would need to agree (a seal of 3 needs 2: at most 1 such node).
    let keys: NodeKey[] = [];
    const isProven = (nodeId: string) => keys.slice(0, 3).some((k) => k.nodeId === nodeId);
    const ctx = await started({}, { seats: { isProven, applies: () => true } });
    keys = ctx.keys;
    expect(ctx.state.unprovenSeats).toBe(2);
    const counted = () => trustedDeclines(ctx.config, ctx.state).length;
    for (const i of [3, 4, 5, 6]) expect(feed(ctx, await decline(ctx, i, T0 + i), T0 + i)).toEqual([]);
    expect(counted()).toBe(0);
    expect(feed(ctx, await decline(ctx, 0, T0 + 20), T0 + 20)).toEqual([]);
    expect(counted()).toBe(2);
    expect(ctx.state.outcome).toBeNull();
    const fx = feed(ctx, await decline(ctx, 1, T0 + 21), T0 + 21);
    expect(counted()).toBe(4);
    expect(ended(fx)).toEqual([{ kind: 'expired', reason: 'declined' }]);
  });

  test('quorum 1 with room for more commits: one fresh key declining cannot end it, as it could not answer it', async () => {
    // maxCommits 3 at 0.6: required 2 of 3, so the cap leaves one seat to fresh keys; a seal of that
    // one alone is trimmed at the deadline (it would need its own agreement).
    const isProven = () => false;
    const ctx = await started({ quorum: 1, maxCommits: 3 }, { seats: { isProven, applies: () => true } });
    expect(ctx.state.unprovenSeats).toBe(1);
    expect(feed(ctx, await decline(ctx, 3, T0 + 3), T0 + 3)).toEqual([]);
    expect(ctx.state.outcome).toBeNull();
    expect(trustedDeclines(ctx.config, ctx.state)).toEqual([]);
  });

  test('a request that accepts two models is not ended by declines of one: the other may still answer', async () => {
    const base = makeRequest({ label: 'two-models' });
    const { requestId: _, ...rest } = { ...base, acceptedModels: [MODEL.id, 'stories15M'] };
    const ctx = await startedCoordinator({}, {}, 'two-models', { ...rest, requestId: deriveRequestId(rest) });
    for (const i of [0, 1, 2]) feed(ctx, await decline(ctx, i, T0 + i), T0 + i);
    expect(ctx.state.outcome).toBeNull();
    const other = { id: 'stories15M', fileHash: 'ef'.repeat(32) };
    const fx = feed(ctx, await decline(ctx, 3, T0 + 9, { model: other }), T0 + 9);
    expect(ended(fx)).toEqual([{ kind: 'expired', reason: 'declined' }]);
  });

  test('where the policy does not apply, every decline counts', async () => {
    const ctx = await started({}, { seats: { isProven: () => false, applies: () => false } });
    for (const i of [3, 4]) feed(ctx, await decline(ctx, i, T0 + i), T0 + i);
    expect(ctx.state.outcome).toBeNull();
    expect(ended(feed(ctx, await decline(ctx, 5, T0 + 9), T0 + 9))).toEqual([
      { kind: 'expired', reason: 'declined' },
    ]);
  });

  test('a state stored before declines existed takes them', async () => {
    const ctx = await started({ quorum: 1, maxCommits: 1 });
    const { declines: _none, ...old } = ctx.state;
    ctx.state = old as CoordinatorState;
    expect(ended(feed(ctx, await decline(ctx, 0, T0 + 1), T0 + 1))).toEqual([
      { kind: 'expired', reason: 'declined' },
    ]);
  });

  test('a decline whose counts say the prompt fits is not a valid packet', async () => {
    const ctx = await started();
    await expect(decline(ctx, 0, T0 + 1, { promptTokens: 100 })).rejects.toMatchObject({
      code: 'PACKET_INVALID_FIELD',
    });
  });
});
