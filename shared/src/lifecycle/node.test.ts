import { describe, expect, test } from 'bun:test';
import { computeCommitment } from '../commitment/commitment.ts';
import { verdictDigest } from '../consensus/verdict.ts';
import { compareStrings } from '../encoding/bytes.ts';
import { isSynodError } from '../errors.ts';
import type { Frame } from '../frame/frame.ts';
import type { NodeKey } from '../identity/node-key.ts';
import { packetId, signPacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet, RequestBody, SealBody } from '../packets/index.ts';
import { decide } from './common.ts';
import { initNode, type NodeConfig, type NodeState, stepNode } from './node.ts';
import {
  EMBEDDER,
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
import type { DoneReason, Effect, NodeEvent } from './types.ts';

interface World {
  ck: NodeKey;
  keys: NodeKey[];
  me: NodeKey;
  request: RequestBody;
  requestPacket: Packet<'request'>;
}

async function world(
  frame: Partial<Omit<Frame, 'embeddingModel'>> = {},
  label = 'node-test',
): Promise<World> {
  const ck = await testKey('coordinator');
  const keys = await Promise.all([0, 1, 2, 3, 4].map((i) => testKey(`node${i}`)));
  const request = makeRequest({ frame: { quorum: 3, maxCommits: 3, ...frame }, label });
  const requestPacket = await signPacket(ck, 'request', request);
  return { ck, keys, me: keys[0]!, request, requestPacket };
}

class Harness {
  state: NodeState;
  constructor(
    readonly w: World,
    readonly config: NodeConfig,
    now = T0,
  ) {
    this.state = initNode(config, { now, self: w.me.nodeId, requestId: w.request.requestId }).state;
  }
  step(event: NodeEvent): Effect[] {
    const t = stepNode(this.config, this.state, event);
    this.state = t.state;
    return t.effects;
  }
  packet(packet: AnyPacket, now: number): Effect[] {
    return this.step({ kind: 'packet', now, packet });
  }
  infer(now: number, output = material(this.w.me, this.w.request).output): Effect[] {
    const m = material(this.w.me, this.w.request, output);
    return this.step({
      kind: 'inference-done',
      now,
      requestId: this.w.request.requestId,
      model: MODEL,
      output,
      bEmbedding: m.bEmbedding,
      salt: m.salt,
    });
  }
}

async function sealOf(
  w: World,
  members: { key: NodeKey; commit: Packet<'commit'> }[],
  at: number,
  by = w.ck,
) {
  const body: SealBody = {
    requestId: w.request.requestId,
    requestPacketId: packetId(w.requestPacket),
    members: members
      .map(({ key, commit }) => ({
        nodeId: key.nodeId,
        commitment: commit.body.commitment,
        commitId: packetId(commit),
      }))
      .sort((a, b) => compareStrings(a.nodeId, b.nodeId)),
    createdAt: at,
  };
  return signPacket(by, 'seal', body);
}

function codes(effects: Effect[]) {
  return effects.flatMap((e) => (e.kind === 'rejected' ? [e.code] : []));
}

describe('pick-up', () => {
  test('takes a request it serves: arms its deadlines and starts inference', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    const fx = h.packet(w.requestPacket, T0 + 5);
    expect(kinds(fx)).toEqual(['cancel-timer', 'set-timer', 'set-timer', 'start-inference']);
    expect(fx[1]).toEqual({
      kind: 'set-timer',
      name: 'seal-wait',
      at: T0 + w.request.frame.maxTimeMs + 5_000,
    });
    expect(fx[2]).toEqual({ kind: 'set-timer', name: 'commit-deadline', at: T0 + w.request.frame.maxTimeMs });
    expect(fx[3]).toEqual({
      kind: 'start-inference',
      requestId: w.request.requestId,
      model: MODEL,
      embeddingModel: EMBEDDER,
      input: { kind: 'prompt', prompt: w.request.prompt! },
      params: w.request.params,
      deadline: T0 + w.request.frame.maxTimeMs - 1_000,
    });
  });

  const skips: [string, Partial<NodeConfig>, DoneReason][] = [
    [
      'a model it does not serve',
      { models: [{ id: 'other-model', fileHash: 'ab'.repeat(32) }] },
      'not-served',
    ],
    ['another embedder', { embedder: { ...EMBEDDER, bits: 128 } }, 'embedder-mismatch'],
    ['not eligible', { isEligible: () => false }, 'not-eligible'],
    ['no capacity', { hasCapacity: () => false }, 'no-capacity'],
    ['cannot finish before the deadline', { estimateInferenceMs: () => 9_500 }, 'cannot-meet-deadline'],
  ];
  for (const [what, extra, reason] of skips) {
    test(`skips a request: ${what}`, async () => {
      const w = await world();
      const h = new Harness(w, nodeConfig(extra));
      const fx = h.packet(w.requestPacket, T0 + 5);
      expect(fx.some((e) => e.kind === 'start-inference')).toBe(false);
      expect(fx.at(-1)).toEqual({ kind: 'done', reason });
      expect(h.state.timers).toEqual({});
    });
  }

  test('a request whose seal it already holds is not taken', async () => {
    const w = await world({ quorum: 1, maxCommits: 1 });
    const other = w.keys[1]!;
    const commit = await signedCommit(other, w.request, T0 + 100);
    const seal = await sealOf(w, [{ key: other, commit }], T0 + 200);
    const h = new Harness(w, nodeConfig());
    expect(h.packet(seal, T0 + 300)).toEqual([]); // held until the request arrives
    const fx = h.packet(w.requestPacket, T0 + 301);
    expect(fx.at(-1)).toEqual({ kind: 'done', reason: 'already-sealed' });
    expect(fx.some((e) => e.kind === 'start-inference')).toBe(false);
  });
});

describe('commit and reveal', () => {
  test('commits the commitment of its result, and publishes no reveal before the seal', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const fx = h.infer(T0 + 1_000);
    expect(kinds(fx)).toEqual(['cancel-timer', 'persist', 'publish:commit']);
    const m = material(w.me, w.request);
    const commitment = computeCommitment({
      requestId: w.request.requestId,
      nodeId: w.me.nodeId,
      model: MODEL,
      output: m.output,
      bEmbedding: m.bEmbedding,
      salt: m.salt,
    });
    expect(fx[2]).toMatchObject({
      body: { requestId: w.request.requestId, commitment, createdAt: T0 + 1_000 },
    });
    expect(h.state.work.phase).toBe('committed');
    expect(h.state.work.material?.commitment).toBe(commitment);
    // Other nodes' reveals, commits, the clock: nothing makes it reveal before a seal.
    const others = await Promise.all([1, 2].map((i) => signedReveal(w.keys[i]!, w.request, T0 + 1_100)));
    for (const r of others) expect(h.packet(r, T0 + 1_100)).toEqual([]);
    expect(h.step({ kind: 'timer', now: T0 + 1_200, name: 'verdict-wait' })).toEqual([]);
  });

  test('reveals once a seal from the coordinator holds its commitment', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const [commitFx] = h.infer(T0 + 1_000).filter((e) => e.kind === 'publish');
    const mine = await signPacket(
      w.me,
      'commit',
      (commitFx as Extract<Effect, { kind: 'publish' }>).body as never,
    );
    h.packet(mine, T0 + 1_000);
    const others = await Promise.all([1, 2].map((i) => signedCommit(w.keys[i]!, w.request, T0 + 1_050)));
    const seal = await sealOf(
      w,
      [
        { key: w.me, commit: mine as Packet<'commit'> },
        ...others.map((commit, i) => ({ key: w.keys[i + 1]!, commit })),
      ],
      T0 + 1_100,
    );
    const fx = h.packet(seal, T0 + 1_150);
    expect(kinds(fx)).toEqual(['cancel-timer', 'set-timer', 'persist', 'publish:reveal']);
    const m = material(w.me, w.request);
    expect(fx[3]).toMatchObject({
      body: { output: m.output, bEmbedding: m.bEmbedding, salt: m.salt, model: MODEL, createdAt: T0 + 1_150 },
    });
    expect(h.state.work).toMatchObject({ phase: 'revealed', material: null });
  });

  test('a result cut at maxTokens is revealed with finishReason length, uncommitted, across a restart', async () => {
    /** Infer (cut or not), commit, maybe restart, then seal: the reveal body this node publishes. */
    async function revealOf(finishReason: 'stop' | 'length' | undefined, stripStored = false) {
      const w = await world();
      const h = new Harness(w, nodeConfig());
      h.packet(w.requestPacket, T0 + 5);
      const m = material(w.me, w.request);
      const commitFx = h
        .step({
          kind: 'inference-done',
          now: T0 + 1_000,
          requestId: w.request.requestId,
          model: MODEL,
          output: m.output,
          bEmbedding: m.bEmbedding,
          salt: m.salt,
          ...(finishReason ? { finishReason } : {}),
        })
        .find((e) => e.kind === 'publish') as Extract<Effect, { kind: 'publish' }>;
      // The commitment does not cover it: the same as for an uncut result.
      expect(commitFx.body).toMatchObject({ commitment: m.commitment });
      // Stored and loaded again; `stripStored` stands for a state saved before the field existed.
      const stored = JSON.parse(serializeState(h.state)) as NodeState;
      if (stripStored) delete stored.work.material?.finishReason;
      h.state = restoreState(JSON.stringify(stored)) as NodeState;
      h.step({ kind: 'restored', now: T0 + 1_050 });
      const mine = (await signPacket(w.me, 'commit', commitFx.body as never)) as Packet<'commit'>;
      const others = await Promise.all([1, 2].map((i) => signedCommit(w.keys[i]!, w.request, T0 + 1_050)));
      const seal = await sealOf(
        w,
        [{ key: w.me, commit: mine }, ...others.map((commit, i) => ({ key: w.keys[i + 1]!, commit }))],
        T0 + 1_100,
      );
      const fx = h.packet(seal, T0 + 1_150);
      const reveal = fx.find((e) => e.kind === 'publish' && e.packetType === 'reveal') as Extract<
        Effect,
        { kind: 'publish' }
      >;
      return reveal.body as Packet<'reveal'>['body'];
    }
    const cut = await revealOf('length');
    expect(cut.finishReason).toBe('length');
    // It signs as a reveal; the verdict's inputs (output, bits, salt, model) are those of an uncut one.
    const signed = await signPacket((await world()).me, 'reveal', cut);
    expect(signed.body.finishReason).toBe('length');
    for (const body of [await revealOf('stop'), await revealOf(undefined), await revealOf('length', true)]) {
      expect('finishReason' in body).toBe(false);
      const { finishReason: _drop, ...uncut } = cut;
      expect(body).toEqual(uncut);
    }
  });

  test('a seal without it: drops the material and never reveals', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    h.infer(T0 + 1_000);
    const members = await Promise.all(
      [1, 2, 3].map(async (i) => ({
        key: w.keys[i]!,
        commit: await signedCommit(w.keys[i]!, w.request, T0 + 900),
      })),
    );
    const fx = h.packet(await sealOf(w, members, T0 + 1_100), T0 + 1_150);
    expect(fx.some((e) => e.kind === 'publish')).toBe(false);
    expect(h.state.work).toMatchObject({ phase: 'excluded', material: null });
  });

  test('a seal from anyone but the request author is rejected', async () => {
    const w = await world({ quorum: 1, maxCommits: 1 });
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const commitFx = h.infer(T0 + 1_000).find((e) => e.kind === 'publish') as Extract<
      Effect,
      { kind: 'publish' }
    >;
    const mine = (await signPacket(w.me, 'commit', commitFx.body as never)) as Packet<'commit'>;
    const forged = await sealOf(w, [{ key: w.me, commit: mine }], T0 + 1_100, w.keys[3]!);
    expect(codes(h.packet(forged, T0 + 1_150))).toEqual(['NOT_COORDINATOR']);
    expect(h.state.work.phase).toBe('committed');
  });

  test('a seal listing it under a commitment it did not make gets no reveal', async () => {
    const w = await world({ quorum: 1, maxCommits: 1 });
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    h.infer(T0 + 1_000);
    const fake = await signedCommit(w.me, w.request, T0 + 1_000, 'something else', 'x');
    const fx = h.packet(await sealOf(w, [{ key: w.me, commit: fake }], T0 + 1_100), T0 + 1_150);
    expect(codes(fx)).toEqual(['SEAL_COMMITMENT_MISMATCH']);
    expect(fx.some((e) => e.kind === 'publish')).toBe(false);
  });

  test('the seal coming while it infers cancels the inference; a late result is dropped', async () => {
    const w = await world({ quorum: 1, maxCommits: 1 });
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const other = w.keys[1]!;
    const seal = await sealOf(
      w,
      [{ key: other, commit: await signedCommit(other, w.request, T0 + 100) }],
      T0 + 200,
    );
    const fx = h.packet(seal, T0 + 250);
    expect(fx).toContainEqual({ kind: 'cancel-inference', requestId: w.request.requestId });
    expect(fx).toContainEqual({ kind: 'cancel-timer', name: 'commit-deadline' });
    expect(codes(h.infer(T0 + 900))).toEqual(['WRONG_PHASE']);
  });
});

describe('token counts', () => {
  test("the engine's counts are revealed as usage (signed, not committed to); counts a reveal cannot carry are left out", async () => {
    for (const [usage, revealed] of [
      [
        { promptTokens: 12, completionTokens: 5 },
        { completionTokens: 5, promptTokens: 12 },
      ],
      [{ promptTokens: -1, completionTokens: 5 }, undefined],
      [{ promptTokens: 1.5, completionTokens: 5 }, undefined],
    ] as const) {
      const w = await world();
      const h = new Harness(w, nodeConfig());
      h.packet(w.requestPacket, T0 + 5);
      const m = material(w.me, w.request);
      const done = h.step({
        kind: 'inference-done',
        now: T0 + 500,
        requestId: w.request.requestId,
        model: MODEL,
        output: m.output,
        bEmbedding: m.bEmbedding,
        salt: m.salt,
        usage,
      });
      const commitFx = done.find((e) => e.kind === 'publish' && e.packetType === 'commit');
      // The commitment is the same with or without counts.
      expect(commitFx).toMatchObject({ body: { commitment: m.commitment } });
      const mine = await signPacket(
        w.me,
        'commit',
        (commitFx as Extract<Effect, { kind: 'publish' }>).body as never,
      );
      h.packet(mine, T0 + 500);
      const others = await Promise.all([1, 2].map((i) => signedCommit(w.keys[i]!, w.request, T0 + 550)));
      const seal = await sealOf(
        w,
        [
          { key: w.me, commit: mine as Packet<'commit'> },
          ...others.map((commit, i) => ({ key: w.keys[i + 1]!, commit })),
        ],
        T0 + 600,
      );
      const fx = h.packet(seal, T0 + 1_000);
      const reveal = fx.find((e) => e.kind === 'publish' && e.packetType === 'reveal');
      expect(reveal).toBeDefined();
      expect((reveal as { body: { usage?: unknown } }).body.usage).toEqual(revealed);
    }
  });
});

describe('deadlines and failures', () => {
  test('a result after the commit deadline is not committed', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const fx = h.infer(T0 + w.request.frame.maxTimeMs);
    expect(fx.some((e) => e.kind === 'publish')).toBe(false);
    expect(fx.at(-1)).toEqual({ kind: 'expired', reason: 'deadline-passed' });
  });

  test('the commit deadline passing during inference cancels it', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const fx = h.step({ kind: 'timer', now: T0 + w.request.frame.maxTimeMs, name: 'commit-deadline' });
    expect(fx).toContainEqual({ kind: 'expired', reason: 'deadline-passed' });
    expect(fx.at(-1)).toEqual({ kind: 'cancel-inference', requestId: w.request.requestId });
  });

  test('an engine failure expires the machine', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const fx = h.step({
      kind: 'inference-failed',
      now: T0 + 500,
      requestId: w.request.requestId,
      reason: 'oom',
    });
    expect(fx.at(-1)).toEqual({ kind: 'expired', reason: 'inference-failed' });
  });

  test('a request the model cannot run: a signed decline of that request packet, then done `declined`', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const fx = h.step({
      kind: 'inference-failed',
      now: T0 + 300,
      requestId: w.request.requestId,
      reason: 'PROMPT_TOO_LONG',
      decline: { reason: 'context-exceeded', promptTokens: 900, contextTokens: 512 },
    });
    const published = fx.filter((e) => e.kind === 'publish');
    expect(published).toEqual([
      {
        kind: 'publish',
        packetType: 'decline',
        id: expect.any(String),
        body: {
          requestId: w.request.requestId,
          requestPacketId: packetId(w.requestPacket),
          model: MODEL,
          reason: 'context-exceeded',
          promptTokens: 900,
          contextTokens: 512,
          createdAt: T0 + 300,
        },
      },
    ]);
    expect(fx.at(-1)).toEqual({ kind: 'done', reason: 'declined' });
    expect(h.state.timers).toEqual({});
    // Its own decline, fed back signed, settles the outbox; nothing else is taken.
    const [signed] = await signPublishes(w.me, published);
    expect(h.packet(signed!, T0 + 301)).toEqual([]);
    expect(h.state.outbox).toEqual([]);
  });

  test('a decline the measure does not support (the prompt fits) is published as nothing: inference-failed', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const fx = h.step({
      kind: 'inference-failed',
      now: T0 + 300,
      requestId: w.request.requestId,
      reason: 'PROMPT_TOO_LONG',
      decline: { reason: 'context-exceeded', promptTokens: 100, contextTokens: 512 },
    });
    expect(fx.some((e) => e.kind === 'publish')).toBe(false);
    expect(fx.at(-1)).toEqual({ kind: 'expired', reason: 'inference-failed' });
  });

  test("another node's decline changes nothing for a node", async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const other = await testKey('decliner');
    const decline = await signPacket(other, 'decline', {
      requestId: w.request.requestId,
      requestPacketId: packetId(w.requestPacket),
      model: MODEL,
      reason: 'context-exceeded',
      promptTokens: 900,
      contextTokens: 512,
      createdAt: T0 + 10,
    });
    const before = h.state;
    expect(h.packet(decline, T0 + 11)).toEqual([]);
    expect(h.state.work).toEqual(before.work);
    expect(h.state.outcome).toBeNull();
  });

  test('no seal by the deadline plus grace: expires and drops the material', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig({ graceMs: 2_000 }));
    h.packet(w.requestPacket, T0 + 5);
    h.infer(T0 + 1_000);
    const fx = h.step({ kind: 'timer', now: T0 + w.request.frame.maxTimeMs + 2_000, name: 'seal-wait' });
    expect(fx.at(-1)).toEqual({ kind: 'expired', reason: 'not-sealed' });
  });

  test('a malformed inference result is a driver bug', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const m = material(w.me, w.request);
    const base = {
      kind: 'inference-done' as const,
      now: T0 + 500,
      requestId: w.request.requestId,
      ...m,
    };
    const bad: NodeEvent[] = [
      { ...base, salt: 'abcd' },
      { ...base, bEmbedding: `${m.bEmbedding}00` },
      { ...base, model: { id: 'other', fileHash: MODEL.fileHash } },
      { ...base, requestId: 'cd'.repeat(32) },
    ];
    for (const event of bad) {
      let thrown: unknown;
      try {
        h.step(event);
      } catch (e) {
        thrown = e;
      }
      expect(isSynodError(thrown, 'LIFECYCLE_INVALID_EVENT')).toBe(true);
    }
  });
});

describe('restarts', () => {
  test('an inference lost in a crash is started again when there is time', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    h.state = restoreState(serializeState(h.state)) as NodeState;
    const fx = h.step({ kind: 'restored', now: T0 + 2_000 });
    expect(kinds(fx)).toEqual(['set-timer', 'set-timer', 'start-inference']);
    expect(h.infer(T0 + 3_000).some((e) => e.kind === 'publish')).toBe(true);
  });

  test('restored past its deadline: expires cleanly', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    h.state = restoreState(serializeState(h.state)) as NodeState;
    const fx = h.step({ kind: 'restored', now: T0 + w.request.frame.maxTimeMs + 1 });
    expect(fx).toContainEqual({ kind: 'expired', reason: 'deadline-passed' });
    expect(fx.some((e) => e.kind === 'start-inference')).toBe(false);
    expect(h.state.outcome?.kind).toBe('expired');
  });

  test('a commit not seen back signed is published again after a restart', async () => {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const commit = h.infer(T0 + 1_000).find((e) => e.kind === 'publish');
    h.state = restoreState(serializeState(h.state)) as NodeState;
    const fx = h.step({ kind: 'restored', now: T0 + 1_500 });
    expect(fx[0]).toEqual(commit!);
    expect(h.state.work.material).not.toBeNull();
  });
});

describe('verdict check', () => {
  /** A sealed request with this node and two others, all revealed, and the honest verdict body. */
  async function revealed() {
    const w = await world();
    const h = new Harness(w, nodeConfig());
    h.packet(w.requestPacket, T0 + 5);
    const commitFx = h.infer(T0 + 1_000).find((e) => e.kind === 'publish') as Extract<
      Effect,
      { kind: 'publish' }
    >;
    const mine = (await signPacket(w.me, 'commit', commitFx.body as never)) as Packet<'commit'>;
    h.packet(mine, T0 + 1_000);
    const others = await Promise.all(
      [1, 2].map(async (i) => ({
        key: w.keys[i]!,
        commit: await signedCommit(w.keys[i]!, w.request, T0 + 1_010),
      })),
    );
    for (const o of others) h.packet(o.commit, T0 + 1_020);
    const seal = await sealOf(w, [{ key: w.me, commit: mine }, ...others], T0 + 1_100);
    const revealFx = h.packet(seal, T0 + 1_150).find((e) => e.kind === 'publish') as Extract<
      Effect,
      { kind: 'publish' }
    >;
    const myReveal = (await signPacket(w.me, 'reveal', revealFx.body as never)) as Packet<'reveal'>;
    h.packet(myReveal, T0 + 1_150);
    const reveals = [
      myReveal,
      ...(await Promise.all([1, 2].map((i) => signedReveal(w.keys[i]!, w.request, T0 + 1_200)))),
    ];
    const result = decide(
      { id: packetId(w.requestPacket), packet: w.requestPacket },
      [mine, ...others.map((o) => o.commit)].map((p) => ({ id: packetId(p), packet: p })),
      { id: packetId(seal), packet: seal },
      reveals.map((p) => ({ id: packetId(p), packet: p })),
    );
    const body = {
      requestId: w.request.requestId,
      verdict: result.verdict,
      verdictDigest: result.digest,
      transcriptRoot: result.transcriptRoot,
      createdAt: T0 + 1_300,
    };
    return { w, h, reveals, body };
  }

  test('recomputes the verdict, attests it and is done', async () => {
    const { w, h, reveals, body } = await revealed();
    // The verdict may come before the last reveals: it is checked once they are in.
    const verdict = await signPacket(w.ck, 'verdict', body);
    const first = h.packet(verdict, T0 + 1_300);
    expect(first).toContainEqual({
      kind: 'verdict',
      verdict: body.verdict,
      digest: body.verdictDigest,
      transcriptRoot: body.transcriptRoot,
      check: 'digest',
    });
    expect(h.packet(reveals[1]!, T0 + 1_301)).toEqual([]);
    const fx = h.packet(reveals[2]!, T0 + 1_302);
    // the last reveal completes the transcript: the verdict is reported again, now recomputed
    expect(kinds(fx)).toEqual(['verdict', 'publish:attestation', 'cancel-timer', 'done']);
    expect(fx[0]).toMatchObject({ kind: 'verdict', check: 'recomputed' });
    expect(fx[1]).toMatchObject({
      body: { verdictDigest: body.verdictDigest, transcriptRoot: body.transcriptRoot, createdAt: T0 + 1_302 },
    });
    expect(fx.at(-1)).toEqual({ kind: 'done', reason: 'verified' });
  });

  test('a verdict whose digest does not match its body is evidence against the coordinator', async () => {
    const { w, h, body } = await revealed();
    const verdict = await signPacket(w.ck, 'verdict', { ...body, verdictDigest: 'ee'.repeat(32) });
    const fx = h.packet(verdict, T0 + 1_300);
    expect(fx[0]).toEqual({
      kind: 'evidence',
      evidence: { kind: 'invalid-verdict', nodeId: w.ck.nodeId, reason: 'digest', packets: [verdict] },
    });
    expect(codes(fx)).toEqual(['VERDICT_INVALID']);
  });

  test('a verdict the transcript does not reproduce is evidence, with the transcript', async () => {
    const { w, h, reveals, body } = await revealed();
    for (const r of reveals.slice(1)) h.packet(r, T0 + 1_250);
    const forged = { ...body.verdict, status: 'no-consensus' as const, accepted: [], winner: null };
    const verdict = await signPacket(w.ck, 'verdict', {
      ...body,
      verdict: forged,
      verdictDigest: verdictDigest(forged),
    });
    const fx = h.packet(verdict, T0 + 1_300);
    const evidence = fx.find((e) => e.kind === 'evidence');
    expect(evidence).toMatchObject({
      evidence: { kind: 'invalid-verdict', reason: 'recomputed', nodeId: w.ck.nodeId },
    });
    expect(codes(fx)).toEqual(['VERDICT_MISMATCH']);
    expect(fx.at(-1)).toEqual({ kind: 'done', reason: 'verdict-mismatch' });
  });
});
