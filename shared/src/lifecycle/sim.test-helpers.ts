/**
 * Test double of a lifecycle driver (never imported by production code): a deterministic, seeded,
 * single-threaded network of machines with a virtual clock. It does what a real driver does with the
 * effects (signs publishes with real Ed25519 keys, verifies every delivered packet with verifyPacket,
 * feeds own packets back, arms timers, runs a fake inference engine) and records everything each
 * machine saw and did, so tests can assert on orders and outcomes. Delivery latency comes from a
 * seeded PRNG: the same seed gives the same run.
 */
import { computeCommitment } from '../commitment/commitment.ts';
import { compareStrings, toHex, utf8 } from '../encoding/bytes.ts';
import { sha256, sha256Hex } from '../encoding/hash.ts';
import type { EmbeddingModelRef, Frame } from '../frame/frame.ts';
import { NodeKey } from '../identity/node-key.ts';
import { packetId, signPacket, verifyPacket } from '../packets/envelope.ts';
import { deriveRequestId } from '../packets/request-id.ts';
import type { AnyPacket, ModelRef, Packet, RequestBody } from '../packets/schemas.ts';
import { seededRandom } from '../seeded-random.ts';
import {
  type CoordinatorConfig,
  type CoordinatorState,
  startCoordinator,
  stepCoordinator,
} from './coordinator.ts';
import { type FollowerConfig, type FollowerState, initFollower, stepFollower } from './follower.ts';
import { initNode, type NodeConfig, type NodeState, stepNode } from './node.ts';
import { restoreState, serializeState } from './state.ts';
import type { Effect, LifecycleEvent, NodeEvent, PublishEffect, TimerName } from './types.ts';

export const T0 = 1_700_000_000_000;
export const EMBEDDER: EmbeddingModelRef = {
  id: 'test-embedder',
  fileHash: sha256Hex(utf8('test-embedder weights')),
  bits: 64,
};
export const MODEL: ModelRef = { id: 'stories260K', fileHash: sha256Hex(utf8('stories260K weights')) };
export const ANSWER = 'Once upon a time there was a little robot.';

const keyCache = new Map<string, Promise<NodeKey>>();
/** The key whose seed is sha256("synod-lifecycle-test/" + label): same label, same key, every run. */
export function testKey(label: string): Promise<NodeKey> {
  let k = keyCache.get(label);
  if (k === undefined) {
    k = NodeKey.fromSeed(sha256(utf8(`synod-lifecycle-test/${label}`)));
    keyCache.set(label, k);
  }
  return k;
}

/** Packed bits of a fake embedding: the first bits/8 bytes of sha256(output), so equal outputs agree. */
export function fakeEmbedding(output: string, bits = EMBEDDER.bits): string {
  return toHex(sha256(utf8(`embed/${output}`)).slice(0, bits / 8));
}

export function makeRequest(opts: {
  createdAt?: number;
  frame?: Partial<Omit<Frame, 'embeddingModel'>>;
  label?: string;
}): RequestBody {
  const frame: Frame = {
    quorum: 3,
    maxCommits: 5,
    secDistance: 0.15,
    secPercentage: 0.6,
    maxTimeMs: 10_000,
    revealWindowMs: 5_000,
    embeddingModel: EMBEDDER,
    ...opts.frame,
  };
  const body: Omit<RequestBody, 'requestId'> = {
    nonce: sha256Hex(utf8(`nonce/${opts.label ?? 'default'}`)).slice(0, 32),
    prompt: 'Tell me a story.',
    acceptedModels: [MODEL.id],
    params: { temperature: 0, maxTokens: 64, seed: 7 },
    frame,
    origin: { kind: 'http' },
    createdAt: opts.createdAt ?? T0,
  };
  return { ...body, requestId: deriveRequestId(body) };
}

/** A seeded PRNG: deterministic and good enough to shuffle deliveries. */
export const prng = seededRandom;

/** How a simulated node's fake engine behaves. */
export interface Behaviour {
  output?: string;
  /** Inference time in ms. Default 1000. */
  inferenceMs?: number;
  /** Never publish its reveal (a withholder). */
  withhold?: boolean;
  /** The engine fails instead of answering. */
  fail?: boolean;
}

type Machine =
  | { kind: 'coordinator'; config: CoordinatorConfig; state: CoordinatorState }
  | { kind: 'node'; config: NodeConfig; state: NodeState }
  | { kind: 'follower'; config: FollowerConfig; state: FollowerState };

/** One line of an actor's journal: an event it took, or an effect it produced. */
export type JournalEntry = { at: number; event: LifecycleEvent } | { at: number; effect: Effect };

export interface Actor {
  name: string;
  key: NodeKey;
  machine: Machine;
  behaviour: Behaviour;
  journal: JournalEntry[];
  /** Packets this actor published, in order. */
  published: AnyPacket[];
  /** State persisted at the last `persist` barrier or step (what a restart would load). */
  stored: string;
}

type JobSpec =
  | { at: number; to: string; kind: 'deliver'; packet: AnyPacket }
  | { at: number; to: string; kind: 'timer'; name: TimerName; gen: number }
  | { at: number; to: string; kind: 'inference'; gen: number };
type Job = JobSpec & { seq: number };

export interface SimOptions {
  seed: number;
  /** Delivery latency range in ms. Default [1, 200]. */
  latency?: [number, number];
  /** Probability that a delivery is duplicated. Default 0. */
  duplicateRate?: number;
  /**
   * How late a timer may fire, in ms, drawn per timer (an event loop blocked for a while). Default
   * [0, 0]: on time.
   */
  timerLateness?: [number, number];
  /** A delivery (other than a publisher's loopback) that is lost, e.g. to a peer cut off for a while. */
  lost?: (to: string, packet: AnyPacket, at: number) => boolean;
}

/** The simulated network and driver. */
export class Sim {
  now = T0;
  readonly actors = new Map<string, Actor>();
  private readonly rand: () => number;
  private readonly jobs: Job[] = [];
  private seq = 0;
  private readonly timerGen = new Map<string, number>();
  private readonly inferenceGen = new Map<string, number>();
  private readonly latency: [number, number];
  private readonly duplicateRate: number;
  private readonly timerLateness: [number, number];
  private readonly lost: NonNullable<SimOptions['lost']>;
  /** Every packet published, with its time: the global order of the run. */
  readonly wire: { at: number; by: string; packet: AnyPacket }[] = [];

  constructor(options: SimOptions) {
    this.rand = prng(options.seed);
    this.latency = options.latency ?? [1, 200];
    this.duplicateRate = options.duplicateRate ?? 0;
    this.timerLateness = options.timerLateness ?? [0, 0];
    this.lost = options.lost ?? (() => false);
  }

  random(): number {
    return this.rand();
  }

  async addCoordinator(name: string, config: CoordinatorConfig, request: RequestBody): Promise<Actor> {
    const key = await testKey(name);
    const t = startCoordinator(config, { now: this.now, self: key.nodeId, request });
    const actor = this.register(name, key, { kind: 'coordinator', config, state: t.state }, {});
    await this.apply(actor, t.effects);
    return actor;
  }

  async addNode(
    name: string,
    config: NodeConfig,
    requestId: string,
    behaviour: Behaviour = {},
  ): Promise<Actor> {
    const key = await testKey(name);
    const t = initNode(config, { now: this.now, self: key.nodeId, requestId });
    const actor = this.register(name, key, { kind: 'node', config, state: t.state }, behaviour);
    await this.apply(actor, t.effects);
    return actor;
  }

  async addFollower(name: string, config: FollowerConfig, requestId: string): Promise<Actor> {
    const key = await testKey(name);
    const t = initFollower(config, { now: this.now, self: key.nodeId, requestId });
    const actor = this.register(name, key, { kind: 'follower', config, state: t.state }, {});
    await this.apply(actor, t.effects);
    return actor;
  }

  private register(name: string, key: NodeKey, machine: Machine, behaviour: Behaviour): Actor {
    const actor: Actor = {
      name,
      key,
      machine,
      behaviour,
      journal: [],
      published: [],
      stored: serializeState(machine.state),
    };
    this.actors.set(name, actor);
    return actor;
  }

  actor(name: string): Actor {
    const a = this.actors.get(name);
    if (a === undefined) throw new Error(`no actor ${name}`);
    return a;
  }

  /** Feed one event to an actor's machine and carry out its effects. */
  async feed(actor: Actor, event: LifecycleEvent): Promise<Effect[]> {
    actor.journal.push({ at: this.now, event });
    const m = actor.machine;
    let effects: Effect[];
    if (m.kind === 'coordinator') {
      const t = stepCoordinator(m.config, m.state, event as Parameters<typeof stepCoordinator>[2]);
      m.state = t.state;
      effects = t.effects;
    } else if (m.kind === 'node') {
      const t = stepNode(m.config, m.state, event as NodeEvent);
      m.state = t.state;
      effects = t.effects;
    } else {
      const t = stepFollower(m.config, m.state, event as Parameters<typeof stepFollower>[2]);
      m.state = t.state;
      effects = t.effects;
    }
    actor.stored = serializeState(m.state);
    await this.apply(actor, effects);
    return effects;
  }

  private push(job: JobSpec): void {
    this.jobs.push({ ...job, seq: this.seq++ });
  }

  private async apply(actor: Actor, effects: readonly Effect[]): Promise<void> {
    for (const effect of effects) {
      actor.journal.push({ at: this.now, effect });
      switch (effect.kind) {
        case 'publish':
          await this.publish(actor, effect);
          break;
        case 'set-timer': {
          const k = `${actor.name}/${effect.name}`;
          const gen = (this.timerGen.get(k) ?? 0) + 1;
          this.timerGen.set(k, gen);
          const [lo, hi] = this.timerLateness;
          const late = hi > 0 ? lo + Math.floor(this.rand() * (hi - lo + 1)) : 0;
          this.push({
            at: Math.max(effect.at, this.now) + late,
            to: actor.name,
            kind: 'timer',
            name: effect.name,
            gen,
          });
          break;
        }
        case 'cancel-timer': {
          const k = `${actor.name}/${effect.name}`;
          this.timerGen.set(k, (this.timerGen.get(k) ?? 0) + 1);
          break;
        }
        case 'start-inference': {
          const gen = (this.inferenceGen.get(actor.name) ?? 0) + 1;
          this.inferenceGen.set(actor.name, gen);
          const delay = actor.behaviour.inferenceMs ?? 1_000;
          this.push({ at: this.now + delay, to: actor.name, kind: 'inference', gen });
          break;
        }
        case 'cancel-inference':
          this.inferenceGen.set(actor.name, (this.inferenceGen.get(actor.name) ?? 0) + 1);
          break;
        default:
          break;
      }
    }
  }

  private async publish(actor: Actor, effect: PublishEffect): Promise<void> {
    if (effect.packetType === 'reveal' && actor.behaviour.withhold) return;
    const packet = (await signPacket(actor.key, effect.packetType, effect.body as never)) as AnyPacket;
    if (packetId(packet) !== effect.id) throw new Error(`publish id mismatch for ${effect.packetType}`);
    actor.published.push(packet);
    this.wire.push({ at: this.now, by: actor.name, packet });
    // Loopback first, at once; then everyone else after a random latency.
    this.push({ at: this.now, to: actor.name, kind: 'deliver', packet });
    for (const other of this.actors.values()) {
      if (other === actor || this.lost(other.name, packet, this.now)) continue;
      this.deliverLater(other.name, packet);
    }
  }

  /** Deliver a packet to an actor after a random latency (and maybe twice). */
  deliverLater(to: string, packet: AnyPacket): void {
    const [lo, hi] = this.latency;
    this.push({ at: this.now + lo + Math.floor(this.rand() * (hi - lo + 1)), to, kind: 'deliver', packet });
    if (this.rand() < this.duplicateRate) {
      this.push({ at: this.now + lo + Math.floor(this.rand() * (hi - lo + 1)), to, kind: 'deliver', packet });
    }
  }

  /** Run jobs in time order (ties by insertion) until none is left or `until` is reached. */
  async run(until = Number.POSITIVE_INFINITY, maxJobs = 100_000): Promise<void> {
    for (let n = 0; n < maxJobs; n++) {
      if (this.jobs.length === 0) return;
      let best = 0;
      for (let i = 1; i < this.jobs.length; i++) {
        const a = this.jobs[i] as Job;
        const b = this.jobs[best] as Job;
        if (a.at < b.at || (a.at === b.at && a.seq < b.seq)) best = i;
      }
      const job = this.jobs[best] as Job;
      if (job.at > until) return;
      this.jobs.splice(best, 1);
      this.now = Math.max(this.now, job.at);
      const actor = this.actors.get(job.to);
      if (actor === undefined) continue;
      await this.runJob(actor, job);
    }
    throw new Error('simulation did not settle');
  }

  private async runJob(actor: Actor, job: Job): Promise<void> {
    if (job.kind === 'deliver') {
      // A real driver verifies every packet before the core sees it.
      const verified = await verifyPacket(JSON.parse(JSON.stringify(job.packet)), { now: this.now });
      await this.feed(actor, { kind: 'packet', now: this.now, packet: verified.packet });
      return;
    }
    if (job.kind === 'timer') {
      if (this.timerGen.get(`${actor.name}/${job.name}`) !== job.gen) return;
      await this.feed(actor, { kind: 'timer', now: this.now, name: job.name });
      return;
    }
    if (this.inferenceGen.get(actor.name) !== job.gen) return;
    const requestId = (actor.machine.state as NodeState).requestId;
    if (actor.behaviour.fail) {
      await this.feed(actor, { kind: 'inference-failed', now: this.now, requestId, reason: 'engine failed' });
      return;
    }
    const output = actor.behaviour.output ?? ANSWER;
    const salt = toHex(Uint8Array.from({ length: 32 }, () => Math.floor(this.rand() * 256)));
    await this.feed(actor, {
      kind: 'inference-done',
      now: this.now,
      requestId,
      model: MODEL,
      output,
      bEmbedding: fakeEmbedding(output),
      salt,
    });
  }

  /**
   * Crash and restart an actor: its pending timers and inference are lost; its machine is reloaded
   * from what it last stored and fed `restored`.
   */
  async restart(name: string): Promise<Effect[]> {
    const actor = this.actor(name);
    for (const k of this.timerGen.keys()) {
      if (k.startsWith(`${name}/`)) this.timerGen.set(k, (this.timerGen.get(k) ?? 0) + 1);
    }
    this.inferenceGen.set(name, (this.inferenceGen.get(name) ?? 0) + 1);
    actor.machine.state = restoreState(actor.stored) as never;
    return this.feed(actor, { kind: 'restored', now: this.now });
  }

  /** Effects of one kind an actor produced, in order. */
  effects<K extends Effect['kind']>(name: string, kind: K): Extract<Effect, { kind: K }>[] {
    const out: Extract<Effect, { kind: K }>[] = [];
    for (const e of this.actor(name).journal) {
      if ('effect' in e && e.effect.kind === kind) out.push(e.effect as Extract<Effect, { kind: K }>);
    }
    return out;
  }

  /** The time of an actor's first effect of one kind (matching `pred`), or null. */
  timeOf(name: string, pred: (e: Effect) => boolean): number | null {
    for (const e of this.actor(name).journal) if ('effect' in e && pred(e.effect)) return e.at;
    return null;
  }
}

export function nodeConfig(extra: Partial<NodeConfig> = {}): NodeConfig {
  return { models: [MODEL], embedder: EMBEDDER, ...extra };
}

export interface ScenarioOptions extends SimOptions {
  /** One behaviour per node (node0, node1, ...). */
  nodes: Behaviour[];
  frame?: Partial<Omit<Frame, 'embeddingModel'>>;
  followers?: number;
  coordinator?: CoordinatorConfig;
  node?: Partial<NodeConfig>;
  follower?: FollowerConfig;
  label?: string;
}

/**
 * A coordinator, `nodes.length` nodes and some followers on one request created at T0. Nodes and
 * followers are registered first, so the request reaches them like any other packet.
 */
export async function scenario(opts: ScenarioOptions): Promise<{ sim: Sim; request: RequestBody }> {
  const sim = new Sim(opts);
  const request = makeRequest({
    createdAt: T0,
    ...(opts.frame ? { frame: opts.frame } : {}),
    label: opts.label ?? 'scenario',
  });
  for (let i = 0; i < opts.nodes.length; i++) {
    await sim.addNode(`node${i}`, nodeConfig(opts.node), request.requestId, opts.nodes[i]);
  }
  for (let i = 0; i < (opts.followers ?? 0); i++) {
    await sim.addFollower(`follower${i}`, opts.follower ?? {}, request.requestId);
  }
  await sim.addCoordinator('coordinator', opts.coordinator ?? {}, request);
  return { sim, request };
}

/** What an honest node with `key` would commit and later reveal for `output`. */
export function material(key: NodeKey, request: RequestBody, output = ANSWER, saltLabel = 'salt') {
  const salt = sha256Hex(utf8(`salt/${key.nodeId}/${saltLabel}`));
  const bEmbedding = fakeEmbedding(output);
  const commitment = computeCommitment({
    requestId: request.requestId,
    nodeId: key.nodeId,
    model: MODEL,
    output,
    bEmbedding,
    salt,
  });
  return { output, bEmbedding, salt, commitment, model: MODEL };
}

export async function signedCommit(
  key: NodeKey,
  request: RequestBody,
  at: number,
  output = ANSWER,
  saltLabel = 'salt',
) {
  const m = material(key, request, output, saltLabel);
  return signPacket(key, 'commit', { requestId: request.requestId, commitment: m.commitment, createdAt: at });
}

export async function signedReveal(
  key: NodeKey,
  request: RequestBody,
  at: number,
  output = ANSWER,
  saltLabel = 'salt',
) {
  const m = material(key, request, output, saltLabel);
  return signPacket(key, 'reveal', {
    requestId: request.requestId,
    output: m.output,
    bEmbedding: m.bEmbedding,
    model: m.model,
    salt: m.salt,
    createdAt: at,
  });
}

/**
 * The coordinator's (`ck`) seal of `request` (its signed packet, `requestPacket`) naming the nodes of
 * `commits` as members, in node-id order, dated `at`.
 */
export async function signedSeal(
  ck: NodeKey,
  requestPacket: Packet<'request'>,
  commits: readonly Packet<'commit'>[],
  at: number,
) {
  const members = commits
    .map((c) => ({ nodeId: c.from, commitment: c.body.commitment, commitId: packetId(c) }))
    .sort((a, b) => compareStrings(a.nodeId, b.nodeId));
  return signPacket(ck, 'seal', {
    requestId: requestPacket.body.requestId,
    requestPacketId: packetId(requestPacket),
    members,
    createdAt: at,
  });
}

/** Sign every publish effect of a transition with `key` (what a driver does), in order. */
export async function signPublishes(key: NodeKey, effects: readonly Effect[]): Promise<AnyPacket[]> {
  const out: AnyPacket[] = [];
  for (const e of effects) {
    if (e.kind === 'publish') out.push((await signPacket(key, e.packetType, e.body as never)) as AnyPacket);
  }
  return out;
}

export function kinds(effects: readonly Effect[]): string[] {
  return effects.map((e) => (e.kind === 'publish' ? `publish:${e.packetType}` : e.kind));
}
