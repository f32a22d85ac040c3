import { computeCommitment } from '../commitment/commitment.ts';
import type { EmbeddingModelRef } from '../frame/frame.ts';
import {
  DeclineBodySchema,
  type ModelRef,
  type RequestBody,
  RevealBodySchema,
  RevealUsageSchema,
} from '../packets/schemas.ts';
import { onClaims } from './attest.ts';
import {
  cancelTimer,
  checkNow,
  checkState,
  driverError,
  finishDone,
  finishExpired,
  newBaseState,
  publish,
  reject,
  setTimer,
  takeTimer,
} from './common.ts';
import {
  copyObserverFields,
  emptyObserverFields,
  type ObserverConfig,
  type ObserverHooks,
  type ObserverState,
  observerPacket,
  observerRestored,
  observerTimer,
  startObserver,
} from './observer.ts';
import type {
  DoneReason,
  Effect,
  InferenceDecline,
  InferenceDoneEvent,
  InferenceInput,
  NodeEvent,
  TimerName,
  Transition,
} from './types.ts';

/**
 * The node (miner): picks up a request it can serve, runs inference through the driver, commits,
 * reveals after (and only after) a seal that includes its commitment, then verifies the verdict like a
 * follower and attests it.
 */
export interface NodeConfig extends ObserverConfig {
  /** Models served, with the hash of their weights; the first of request.acceptedModels served is used. */
  models: readonly ModelRef[];
  /** The embedder this node runs; it must equal the frame's embeddingModel (id, file hash and bits). */
  embedder: EmbeddingModelRef;
  /** Whether there is room for one more inference (the driver's queue). Absent: always. */
  hasCapacity?: (request: RequestBody) => boolean;
  /** Expected inference time in ms (e.g. maxTokens / measured tokens per second). Absent: 0. */
  estimateInferenceMs?: (request: RequestBody, model: ModelRef) => number;
  /** Safety margin before the commit deadline (request.createdAt + maxTimeMs). Default 1000 ms. */
  deadlineMarginMs?: number;
}

export const DEFAULT_DEADLINE_MARGIN_MS = 1_000;

/** Why a node skips a request (its machine ends `done` with one of these, having computed nothing). */
export const NODE_SKIP_REASONS = [
  'not-served',
  'embedder-mismatch',
  'not-eligible',
  'no-capacity',
  'cannot-meet-deadline',
  'already-sealed',
  'untrusted-coordinator',
] as const satisfies readonly DoneReason[];
export type NodeSkipReason = (typeof NODE_SKIP_REASONS)[number];

export type WorkPhase =
  /** no decision yet (the request has not arrived) */
  | 'idle'
  | 'inferring'
  /** committed; holding the reveal material until the seal */
  | 'committed'
  /** sealed with this node's commitment; reveal published */
  | 'revealed'
  /** the seal left this node out (or came first); material dropped, still verifying the verdict */
  | 'excluded'
  /** the request was not taken, or the inference was abandoned */
  | 'none';

/** What a commit binds, kept until the seal; dropped after the reveal or when left out. */
export interface RevealMaterial {
  model: ModelRef;
  output: string;
  bEmbedding: string;
  salt: string;
  commitment: string;
  /**
   * Set only when the output was cut at maxTokens (states stored before it existed have none); revealed
   * as is, it is not part of the commitment.
   */
  finishReason?: 'length';
  /** The engine's token counts, revealed as is (not part of the commitment); absent when not given. */
  usage?: { promptTokens: number; completionTokens: number };
}

export interface NodeWork {
  phase: WorkPhase;
  /** The model chosen for the request. */
  model: ModelRef | null;
  /** The deadline given to the engine (commit deadline minus the margin). */
  inferenceDeadline: number | null;
  material: RevealMaterial | null;
}

export interface NodeState extends ObserverState {
  role: 'node';
  work: NodeWork;
}

/** A node machine for `requestId`, created when the request (or any packet of it) is first seen. */
export function initNode(
  config: NodeConfig,
  input: { now: number; self: string; requestId: string },
): Transition<NodeState> {
  checkNow(input.now);
  const s: NodeState = {
    ...newBaseState('node', input.self, input.requestId),
    ...emptyObserverFields(),
    work: { phase: 'idle', model: null, inferenceDeadline: null, material: null },
  };
  const fx: Effect[] = [];
  startObserver(s, fx, withDefaults(config), input.now);
  return { state: s, effects: fx };
}

export function stepNode(config: NodeConfig, state: NodeState, event: NodeEvent): Transition<NodeState> {
  checkState(state, 'node');
  checkNow(event.now);
  const cfg = withDefaults(config);
  const s = copyObserverFields(state);
  s.work = { ...s.work };
  const fx: Effect[] = [];
  const hooks = nodeHooks(cfg);
  switch (event.kind) {
    case 'packet':
      observerPacket(cfg, hooks, s, fx, event.packet, event.now);
      break;
    case 'timer':
      if (s.outcome === null && takeTimer(s, event.name)) onTimer(s, fx, event.name, event.now);
      break;
    case 'restored':
      observerRestored(cfg, s, fx, event.now, (name) => onTimer(s, fx, name, event.now));
      if (s.outcome === null && s.work.phase === 'inferring') restartInference(cfg, s, fx, event.now);
      break;
    case 'inference-done':
      onInferenceDone(s, fx, event);
      break;
    case 'inference-failed':
      checkRequestId(s, event.requestId);
      if (s.outcome !== null) reject(fx, 'FINISHED', `this node has ${s.outcome.kind}`, null);
      else if (s.work.phase !== 'inferring') reject(fx, 'WRONG_PHASE', 'no inference is running', null);
      else {
        s.work = { ...s.work, phase: 'none' }; // the engine has stopped: nothing to cancel
        if (event.decline === undefined || !publishDecline(s, fx, event.decline, event.now)) {
          finishExpired(s, fx, 'inference-failed', event.now);
        }
      }
      break;
    case 'claims-embedded':
    case 'claims-not-embedded':
      onClaims(cfg, s, fx, event);
      break;
    default:
      driverError(`a node does not take "${(event as { kind: string }).kind}" events`);
  }
  // Whatever ended the machine, an inference still running is no longer wanted.
  if (s.outcome !== null && s.work.phase === 'inferring') {
    fx.push({ kind: 'cancel-inference', requestId: s.requestId });
    s.work = { ...s.work, phase: 'none' };
  }
  return { state: s, effects: fx };
}

function withDefaults(config: NodeConfig): NodeConfig {
  return config.attest === undefined ? { ...config, attest: true } : config;
}

function checkRequestId(s: NodeState, requestId: string): void {
  if (requestId !== s.requestId) {
    driverError('an inference event for another request was routed to this machine', {
      requestId,
      machine: s.requestId,
    });
  }
}

function onTimer(s: NodeState, fx: Effect[], name: TimerName, now: number): void {
  if (name === 'commit-deadline') {
    if (s.work.phase === 'inferring') finishExpired(s, fx, 'deadline-passed', now);
    return;
  }
  observerTimer(s, fx, name, now);
}

function nodeHooks(config: NodeConfig): ObserverHooks<NodeState> {
  return {
    onRequest: (s, fx, now) => pickUp(config, s, fx, now),
    onSeal: (s, fx, now) => onSealed(s, fx, now),
  };
}

function skip(s: NodeState, fx: Effect[], reason: NodeSkipReason, now: number): void {
  s.work = { ...s.work, phase: 'none' };
  finishDone(s, fx, reason, now);
}

/** Pick-up: take the request if this node serves it, is eligible, has room and can finish in time. */
function pickUp(config: NodeConfig, s: NodeState, fx: Effect[], now: number): void {
  const request = s.request?.packet.body;
  if (request === undefined || s.work.phase !== 'idle') return;
  const e = request.frame.embeddingModel;
  const mine = config.embedder;
  if (e.id !== mine.id || e.fileHash !== mine.fileHash || e.bits !== mine.bits) {
    skip(s, fx, 'embedder-mismatch', now);
    return;
  }
  const model = firstServed(config, request);
  if (model === null) {
    skip(s, fx, 'not-served', now);
    return;
  }
  if (config.isEligible && !config.isEligible(s.requestId, s.self)) {
    skip(s, fx, 'not-eligible', now);
    return;
  }
  if (s.seal !== null) {
    skip(s, fx, 'already-sealed', now);
    return;
  }
  if (config.hasCapacity && !config.hasCapacity(request)) {
    skip(s, fx, 'no-capacity', now);
    return;
  }
  const commitDeadline = request.createdAt + request.frame.maxTimeMs;
  const inferenceDeadline = commitDeadline - (config.deadlineMarginMs ?? DEFAULT_DEADLINE_MARGIN_MS);
  if (now + (config.estimateInferenceMs?.(request, model) ?? 0) > inferenceDeadline) {
    skip(s, fx, 'cannot-meet-deadline', now);
    return;
  }
  s.work = { phase: 'inferring', model, inferenceDeadline, material: null };
  setTimer(s, fx, 'commit-deadline', commitDeadline);
  fx.push(startInference(s, request, model, inferenceDeadline));
}

function firstServed(config: NodeConfig, request: RequestBody): ModelRef | null {
  for (const id of request.acceptedModels) {
    const m = config.models.find((x) => x.id === id);
    if (m) return { id: m.id, fileHash: m.fileHash };
  }
  return null;
}

function startInference(s: NodeState, request: RequestBody, model: ModelRef, deadline: number): Effect {
  const input: InferenceInput =
    request.messages !== undefined
      ? { kind: 'messages', messages: request.messages }
      : { kind: 'prompt', prompt: request.prompt ?? '' };
  return {
    kind: 'start-inference',
    requestId: s.requestId,
    model,
    embeddingModel: request.frame.embeddingModel,
    input,
    params: request.params,
    deadline,
  };
}

/** After a restart the engine's work is gone: start again if there is still time, else give up. */
function restartInference(config: NodeConfig, s: NodeState, fx: Effect[], now: number): void {
  const request = s.request?.packet.body;
  const { model, inferenceDeadline } = s.work;
  if (request === undefined || model === null || inferenceDeadline === null) {
    driverError('an inferring node state without its request or model');
  }
  if (now + (config.estimateInferenceMs?.(request, model) ?? 0) > inferenceDeadline) {
    finishExpired(s, fx, 'deadline-passed', now);
    return;
  }
  fx.push(startInference(s, request, model, inferenceDeadline));
}

function onInferenceDone(s: NodeState, fx: Effect[], event: InferenceDoneEvent): void {
  checkRequestId(s, event.requestId);
  if (s.outcome !== null) {
    reject(fx, 'FINISHED', `this node has ${s.outcome.kind}`, null);
    return;
  }
  if (s.work.phase !== 'inferring') {
    reject(fx, 'WRONG_PHASE', `an inference result while ${s.work.phase}: dropped`, null);
    return;
  }
  const request = s.request?.packet.body;
  const model = s.work.model;
  if (request === undefined || model === null) driverError('an inferring node state without its request');
  if (event.model.id !== model.id || event.model.fileHash !== model.fileHash) {
    driverError('the inference result names a different model than start-inference', {
      expected: model,
      got: event.model,
    });
  }
  const bits = request.frame.embeddingModel.bits;
  const shape = RevealBodySchema.safeParse({
    requestId: s.requestId,
    output: event.output,
    bEmbedding: event.bEmbedding,
    model,
    salt: event.salt,
    createdAt: event.now,
  });
  if (!shape.success || event.bEmbedding.length !== bits / 4) {
    driverError(
      'the inference result cannot be revealed',
      {
        issues: shape.success
          ? [`bEmbedding must be ${bits} bits`]
          : shape.error.issues.map((i) => i.message),
      },
      'output within LIMITS.maxOutputChars, bEmbedding as frame.embeddingModel.bits packed bits in hex, salt 32 random bytes in hex',
    );
  }
  if (event.now >= request.createdAt + request.frame.maxTimeMs) {
    s.work = { ...s.work, phase: 'none' };
    finishExpired(s, fx, 'deadline-passed', event.now);
    return;
  }
  const material: RevealMaterial = {
    model,
    output: event.output,
    bEmbedding: event.bEmbedding,
    salt: event.salt,
    commitment: computeCommitment({
      requestId: s.requestId,
      nodeId: s.self,
      model,
      output: event.output,
      bEmbedding: event.bEmbedding,
      salt: event.salt,
    }),
    // Only when cut: the state stays plain JSON (no undefined) and the reveal has no member otherwise.
    ...(event.finishReason === 'length' ? { finishReason: 'length' as const } : {}),
    // Informational: counts the schema would refuse (an engine's odd numbers) are left out, never let
    // to stop the reveal.
    ...(event.usage !== undefined && RevealUsageSchema.safeParse(event.usage).success
      ? { usage: { promptTokens: event.usage.promptTokens, completionTokens: event.usage.completionTokens } }
      : {}),
  };
  cancelTimer(s, fx, 'commit-deadline');
  s.work = { ...s.work, phase: 'committed', material };
  // The material must be durable before the commit is out: a lost one would count as withheld.
  fx.push({ kind: 'persist', reason: 'commit' });
  publish(s, fx, 'commit', { requestId: s.requestId, commitment: material.commitment, createdAt: event.now });
}

/**
 * The engine found the request cannot be run with this node's model (`InferenceFailedEvent.decline`):
 * say so, signed, so that the coordinator can end the request instead of waiting for its deadline, and
 * end `declined`. False, and nothing published, when the measure does not make a valid decline (e.g. a
 * prompt that fits after all): the caller ends `inference-failed` then.
 */
function publishDecline(s: NodeState, fx: Effect[], decline: InferenceDecline, now: number): boolean {
  const request = s.request;
  const model = s.work.model;
  if (request === null || model === null) driverError('an inferring node state without its request');
  const body = DeclineBodySchema.safeParse({
    requestId: s.requestId,
    requestPacketId: request.id,
    model,
    reason: decline.reason,
    promptTokens: decline.promptTokens,
    contextTokens: decline.contextTokens,
    createdAt: now,
  });
  if (!body.success) return false;
  cancelTimer(s, fx, 'commit-deadline');
  publish(s, fx, 'decline', body.data);
  finishDone(s, fx, 'declined', now);
  return true;
}

/** The seal is in: reveal if it holds this node's commitment (never before), otherwise drop. */
function onSealed(s: NodeState, fx: Effect[], now: number): void {
  const seal = s.seal?.packet.body;
  if (seal === undefined) return;
  if (s.work.phase === 'inferring') {
    cancelTimer(s, fx, 'commit-deadline');
    fx.push({ kind: 'cancel-inference', requestId: s.requestId });
    s.work = { ...s.work, phase: 'excluded' };
    return;
  }
  if (s.work.phase !== 'committed') return;
  const material = s.work.material as RevealMaterial;
  const member = seal.members.find((m) => m.nodeId === s.self);
  if (member === undefined) {
    s.work = { ...s.work, phase: 'excluded', material: null };
    return;
  }
  if (member.commitment !== material.commitment) {
    s.work = { ...s.work, phase: 'excluded', material: null };
    reject(
      fx,
      'SEAL_COMMITMENT_MISMATCH',
      'the seal lists this node with a commitment it did not make',
      s.seal?.id ?? null,
    );
    return;
  }
  s.work = { ...s.work, phase: 'revealed', material: null };
  fx.push({ kind: 'persist', reason: 'reveal' });
  publish(s, fx, 'reveal', {
    requestId: s.requestId,
    output: material.output,
    bEmbedding: material.bEmbedding,
    model: material.model,
    salt: material.salt,
    createdAt: now,
    ...(material.finishReason === 'length' ? { finishReason: 'length' as const } : {}),
    ...(material.usage === undefined
      ? {}
      : {
          usage: {
            completionTokens: material.usage.completionTokens,
            promptTokens: material.usage.promptTokens,
          },
        }),
  });
}
