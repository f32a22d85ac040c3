/**
 * A seal verifies only when dated from its request's createdAt to createdAt + maxTimeMs + the skew
 * window (`verifyTranscript`: SEAL_BEFORE_REQUEST, SEAL_LATE). The coordinator never signs one dated
 * later (a timer that fired minutes late, a restart after the deadline), and nodes and followers take
 * no seal dated outside that range: a node does not reveal to it, a follower does not attest a verdict
 * over it.
 */
import { describe, expect, test } from 'bun:test';
import { packetId, signPacket } from '../packets/envelope.ts';
import { LIMITS } from '../packets/limits.ts';
import type { AnyPacket, Packet, RequestBody } from '../packets/schemas.ts';
import { buildTranscript } from '../transcript/transcript.ts';
import { latestSealAt, verifyTranscript } from '../transcript/verify.ts';
import { decide, receive } from './common.ts';
import { type CoordinatorState, sealBy, startCoordinator, stepCoordinator } from './coordinator.ts';
import { initFollower, stepFollower } from './follower.ts';
import { initNode, stepNode } from './node.ts';
import { DEFAULT_GRACE_MS } from './observer.ts';
import {
  kinds,
  MODEL,
  makeRequest,
  material,
  nodeConfig,
  signedCommit,
  signedReveal,
  signPublishes,
  T0,
  testKey,
} from './sim.test-helpers.ts';
import { restoreState, serializeState } from './state.ts';
import type { Effect, Received } from './types.ts';

const FRAME = { quorum: 3, maxCommits: 5, maxTimeMs: 10_000, revealWindowMs: 5_000 };

/** A coordinator that published its request and holds `commits` valid commits, as stored. */
async function collecting(label: string, commits: number) {
  const ck = await testKey('coordinator');
  const keys = await Promise.all([0, 1, 2, 3, 4].map((i) => testKey(`node${i}`)));
  const request = makeRequest({ frame: FRAME, label });
  const t = startCoordinator({}, { now: T0, self: ck.nodeId, request });
  const [requestPacket] = (await signPublishes(ck, t.effects)) as [Packet<'request'>];
  let state = stepCoordinator({}, t.state, { kind: 'packet', now: T0, packet: requestPacket }).state;
  for (const k of keys.slice(0, commits)) {
    const c = await signedCommit(k, request, T0 + 1_000);
    state = stepCoordinator({}, state, { kind: 'packet', now: T0 + 1_000, packet: c }).state;
  }
  return { ck, keys, request, state };
}

function publishedSeal(effects: Effect[]) {
  return effects.find((e) => e.kind === 'publish' && e.packetType === 'seal');
}

describe('the coordinator never signs a seal its nodes no longer wait for, nor one that cannot verify', () => {
  test("restored past maxTimeMs and the nodes' grace: expires instead of sealing; at that date it still seals", async () => {
    const late = await collecting('seal-dates/restored', 3);
    const latest = sealBy(late.request);
    expect(latest).toBe(T0 + FRAME.maxTimeMs + DEFAULT_GRACE_MS);
    // Earlier than a verifier's bound: nodes have dropped what they committed well before it.
    expect(latest).toBeLessThan(latestSealAt(late.request));
    const stored = restoreState(serializeState(late.state)) as CoordinatorState;
    const after = stepCoordinator({}, stored, { kind: 'restored', now: latest + 1 });
    expect(publishedSeal(after.effects)).toBeUndefined();
    expect(after.effects.at(-1)).toEqual({ kind: 'expired', reason: 'quorum-not-met' });
    expect(after.state.phase).toBe('finished');

    const atLatest = stepCoordinator({}, stored, { kind: 'restored', now: latest });
    expect(kinds(atLatest.effects)).toEqual(['persist', 'publish:seal', 'set-timer']);
  });

  test('a seal timer that fires minutes late expires the request', async () => {
    const { request, state } = await collecting('seal-dates/late-timer', 3);
    const t = stepCoordinator({}, state, { kind: 'timer', name: 'seal-deadline', now: T0 + 200_000 });
    expect(t.effects).toEqual([{ kind: 'expired', reason: 'quorum-not-met' }]);
    expect(sealBy(request)).toBeLessThan(T0 + 200_000);
  });

  test('a commit that would close the seal early, past the latest date, does not seal', async () => {
    const { keys, request, state } = await collecting('seal-dates/early-close', 4);
    const now = sealBy(request) + 5_000; // the deadline timer has not been run yet
    const c = await signedCommit(keys[4]!, request, now);
    const t = stepCoordinator({}, state, { kind: 'packet', now, packet: c });
    expect(publishedSeal(t.effects)).toBeUndefined();
    expect(t.state.outcome).toMatchObject({ kind: 'expired', reason: 'quorum-not-met' });
  });
});

/** Request, three members' commits, a seal dated `sealAt` by the request's author, reveals, verdict. */
async function transcriptSealedAt(label: string, sealAt: number) {
  const ck = await testKey('coordinator');
  const keys = await Promise.all([0, 1, 2].map((i) => testKey(`node${i}`)));
  const request: RequestBody = makeRequest({ frame: { ...FRAME, maxCommits: 3 }, label });
  const requestPacket = await signPacket(ck, 'request', request);
  const commits = await Promise.all(keys.map((k) => signedCommit(k, request, T0 + 1_000)));
  const members = commits
    .map((c) => ({ nodeId: c.from, commitment: c.body.commitment, commitId: packetId(c) }))
    .sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
  const seal = await signPacket(ck, 'seal', {
    requestId: request.requestId,
    requestPacketId: packetId(requestPacket),
    members,
    createdAt: sealAt,
  });
  const reveals = await Promise.all(keys.map((k) => signedReveal(k, request, sealAt + 100)));
  const result = decide(
    receive(requestPacket) as Received<'request'>,
    commits.map(receive) as Received<'commit'>[],
    receive(seal) as Received<'seal'>,
    reveals.map(receive) as Received<'reveal'>[],
  );
  const verdict = await signPacket(ck, 'verdict', {
    requestId: request.requestId,
    verdict: result.verdict,
    verdictDigest: result.digest,
    transcriptRoot: result.transcriptRoot,
    createdAt: sealAt + 200,
  });
  const transcript: AnyPacket[] = [requestPacket, ...commits, seal, ...reveals];
  return { keys, request, requestPacket, commits, seal, reveals, verdict, transcript };
}

describe('nodes and followers take no seal that cannot verify', () => {
  const cases = [
    { name: 'dated before the request', sealAt: T0 - 1, check: 'SEAL_BEFORE_REQUEST', valid: false },
    { name: 'dated at the request', sealAt: T0, check: null, valid: true },
    {
      name: 'dated at the latest seal date',
      sealAt: T0 + FRAME.maxTimeMs + LIMITS.defaultSkewMs,
      check: null,
      valid: true,
    },
    {
      name: 'dated past the latest seal date',
      sealAt: T0 + FRAME.maxTimeMs + LIMITS.defaultSkewMs + 1,
      check: 'SEAL_LATE',
      valid: false,
    },
  ];
  for (const c of cases) {
    test(`a follower with attest, a seal ${c.name}: ${c.valid ? 'verified and attested' : 'SEAL_INVALID, nothing attested'}`, async () => {
      const x = await transcriptSealedAt(`seal-dates/follower/${c.name}`, c.sealAt);
      const verified = await verifyTranscript(buildTranscript(x.transcript));
      const issues = verified.ok ? [] : ((verified.error.details?.issues ?? []) as { check: string }[]);
      expect(issues.map((issue) => issue.check)).toEqual(c.check === null ? [] : [c.check]);
      const me = await testKey('follower');
      const config = { attest: true };
      let s = initFollower(config, { now: T0, self: me.nodeId, requestId: x.request.requestId }).state;
      const effects: Effect[] = [];
      for (const p of [...x.transcript, x.verdict]) {
        const t = stepFollower(config, s, { kind: 'packet', now: T0 + 500, packet: p });
        s = t.state;
        effects.push(...t.effects);
      }
      const attested = effects.some((e) => e.kind === 'publish' && e.packetType === 'attestation');
      expect(attested).toBe(c.valid);
      expect(s.seal === null).toBe(!c.valid);
      if (!c.valid) {
        expect(effects).toContainEqual({
          kind: 'rejected',
          code: 'SEAL_INVALID',
          reason: expect.any(String),
          packetId: packetId(x.seal),
        });
      }
    });
  }

  test('a committed node does not reveal to a seal dated past the latest seal date', async () => {
    const x = await transcriptSealedAt('seal-dates/node', T0 + FRAME.maxTimeMs + LIMITS.defaultSkewMs + 1);
    const me = x.keys[0]!;
    const config = nodeConfig();
    let s = initNode(config, { now: T0, self: me.nodeId, requestId: x.request.requestId }).state;
    const step = (event: Parameters<typeof stepNode>[2]) => {
      const t = stepNode(config, s, event);
      s = t.state;
      return t.effects;
    };
    step({ kind: 'packet', now: T0 + 10, packet: x.requestPacket });
    const m = material(me, x.request);
    step({
      kind: 'inference-done',
      now: T0 + 1_000,
      requestId: x.request.requestId,
      model: MODEL,
      output: m.output,
      bEmbedding: m.bEmbedding,
      salt: m.salt,
    });
    expect(s.work.phase).toBe('committed');
    for (const c of x.commits) step({ kind: 'packet', now: T0 + 1_100, packet: c });
    const fx = step({ kind: 'packet', now: T0 + 2_000, packet: x.seal });
    expect(kinds(fx)).toEqual(['rejected']);
    expect(s.work.phase).toBe('committed');
  });
});
