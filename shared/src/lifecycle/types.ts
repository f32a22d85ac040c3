import type { EmbeddingModelRef } from '../frame/frame.ts';
import type {
  AnyPacket,
  BodyOf,
  ChatMessage,
  DeclineReason,
  InferenceParams,
  ModelRef,
  Packet,
  PacketType,
  Verdict,
} from '../packets/schemas.ts';

/** Version of the serialized machine state; bumped when its shape changes incompatibly. */
export const STATE_VERSION = 1 as const;

export type Role = 'coordinator' | 'node' | 'follower';

/** A verified packet and its id (`packetId(packet)`), as kept in machine state. Never mutated. */
export interface Received<T extends PacketType = PacketType> {
  id: string;
  packet: Packet<T>;
}
export type AnyReceived = { [T in PacketType]: Received<T> }[PacketType];

// ---------------------------------------------------------------------------------------------------
// Timers. The driver owns the clocks: it arms `set-timer` effects (keyed by requestId and name; a
// second `set-timer` with the same name replaces the first) and feeds `{kind: 'timer'}` back when due.
// A timer event for a timer the machine has not armed (a cancelled one racing its cancellation) is
// ignored, so drivers need no exact cancellation.

export const TIMER_NAMES = [
  /** coordinator: request.createdAt + maxTimeMs; seal with what is held, or expire. */
  'seal-deadline',
  /** coordinator: seal.createdAt + revealWindowMs; compute the verdict with the reveals held. */
  'reveal-deadline',
  /** coordinator: end of attestation collection. */
  'attest-deadline',
  /** node, follower: created before the request was seen; give up if it never comes. */
  'request-wait',
  /** node: request.createdAt + maxTimeMs; an unfinished inference can no longer be committed. */
  'commit-deadline',
  /** node, follower: request.createdAt + maxTimeMs + grace; no seal came. */
  'seal-wait',
  /** node, follower: seal.createdAt + revealWindowMs + grace; no verdict came. */
  'verdict-wait',
  /** node, follower: the verdict came but its transcript is incomplete; stop waiting for packets. */
  'verify-wait',
] as const;
export type TimerName = (typeof TIMER_NAMES)[number];

// ---------------------------------------------------------------------------------------------------
// Events: everything that happens to a machine. Each carries the driver's `now` (ms since the epoch).

/**
 * A packet for this request that the driver has verified (`decodePacket`/`verifyPacket`: schema,
 * signature, clock skew). The driver also feeds back every packet it signed for a `publish` effect of
 * this machine (loopback); duplicates (same packet id) are ignored.
 */
export interface PacketEvent {
  kind: 'packet';
  now: number;
  packet: AnyPacket;
  /**
   * coordinator, reveal packets only: the driver's embedding of the reveal's `output` under the
   * request's frame.embeddingModel (packed sign bits, lowercase hex, exactly its bits). The core never
   * embeds: these bits are its input to the verdict's EMBEDDING_DISAGREES check. Absent: the reveal is
   * not re-checked. Other machines and packet types ignore it.
   */
  reembedded?: string;
}

export interface TimerEvent {
  kind: 'timer';
  now: number;
  name: TimerName;
}

/** The machine was loaded from storage after a restart: timers and inferences of the old process are gone. */
export interface RestoredEvent {
  kind: 'restored';
  now: number;
}

/** node: the engine finished a `start-inference`. `salt` is 32 fresh random bytes (hex) from the driver. */
export interface InferenceDoneEvent {
  kind: 'inference-done';
  now: number;
  requestId: string;
  model: ModelRef;
  output: string;
  /** Packed sign bits of the output's embedding under frame.embeddingModel, lowercase hex. */
  bEmbedding: string;
  /** 32 random bytes, lowercase hex. The core has no randomness of its own. */
  salt: string;
  /**
   * `length` when the output was cut at params.maxTokens; absent or `stop` when the model ended it.
   * Revealed (signed, not committed to) as the reveal's `finishReason`, only when `length`.
   */
  finishReason?: 'stop' | 'length';
  /** The engine's token counts, when it gives them: revealed (signed, not committed to) as `usage`. */
  usage?: { promptTokens: number; completionTokens: number };
}

/** node: the engine could not finish a `start-inference`. */
export interface InferenceFailedEvent {
  kind: 'inference-failed';
  now: number;
  requestId: string;
  reason: string;
  /**
   * Set when the engine found the request cannot be run with this model, as every node serving the same
   * model file would (`DECLINE_REASONS`): the node publishes a signed `decline` with it and ends
   * `declined`, instead of failing silently. Absent: a failure of this node's own (ends `inference-failed`).
   */
  decline?: InferenceDecline;
}

/** What a node's engine measured when a request does not fit its model (a `decline` packet's fields). */
export interface InferenceDecline {
  reason: DeclineReason;
  promptTokens: number;
  contextTokens: number;
}

/**
 * node (a follower too, when configured so): the driver's answer to an `embed-claims` effect: for each
 * reveal it listed, the packed sign bits of its output under the effect's `embeddingModel` (lowercase hex,
 * exactly the frame's bits), keyed by reveal packet id. The core compares them with the claims itself.
 */
export interface ClaimsEmbeddedEvent {
  kind: 'claims-embedded';
  now: number;
  requestId: string;
  /** The digest of the verdict whose claims these are (the effect's). */
  verdictDigest: string;
  bits: Record<string, string>;
}

/**
 * The driver's answer to an `embed-claims` effect when its embedder failed (an error, a worker that
 * died): the claims stay unchecked, and the machine does not attest the verdict.
 */
export interface ClaimsNotEmbeddedEvent {
  kind: 'claims-not-embedded';
  now: number;
  requestId: string;
  verdictDigest: string;
  reason: string;
}

export type ClaimsEvent = ClaimsEmbeddedEvent | ClaimsNotEmbeddedEvent;
export type CoordinatorEvent = PacketEvent | TimerEvent | RestoredEvent;
export type FollowerEvent = PacketEvent | TimerEvent | RestoredEvent | ClaimsEvent;
export type NodeEvent =
  | PacketEvent
  | TimerEvent
  | RestoredEvent
  | InferenceDoneEvent
  | InferenceFailedEvent
  | ClaimsEvent;
export type LifecycleEvent = CoordinatorEvent | NodeEvent;

// ---------------------------------------------------------------------------------------------------
// Effects: what the driver must do, in order.

/** Packet types a lifecycle machine publishes. */
export type PublishedType = Exclude<PacketType, 'heartbeat'>;

/**
 * Sign `body` as `packetType` with the machine's key, publish it, and feed the signed packet back as a
 * `packet` event. `id` is the packet id the signed packet will have (packet ids do not cover the
 * signature, so the machine knows it before signing).
 */
export type PublishEffect = {
  [T in PublishedType]: { kind: 'publish'; packetType: T; body: BodyOf[T]; id: string };
}[PublishedType];

/** A publish not yet seen back signed; re-published after a restart (publishing is idempotent). */
export type Outgoing = Omit<PublishEffect, 'kind'>;

export interface SetTimerEffect {
  kind: 'set-timer';
  name: TimerName;
  at: number;
}

export interface CancelTimerEffect {
  kind: 'cancel-timer';
  name: TimerName;
}

export type InferenceInput =
  | { kind: 'prompt'; prompt: string }
  | { kind: 'messages'; messages: ChatMessage[] };

/** node: run the model, embed the output with `embeddingModel`, answer with `inference-done`. */
export interface StartInferenceEffect {
  kind: 'start-inference';
  requestId: string;
  model: ModelRef;
  embeddingModel: EmbeddingModelRef;
  input: InferenceInput;
  params: InferenceParams;
  /** Finish by this time (ms since the epoch) or the result can no longer be committed. */
  deadline: number;
}

/** node: the result is no longer wanted (the request sealed without this node, or expired). */
export interface CancelInferenceEffect {
  kind: 'cancel-inference';
  requestId: string;
}

export const PERSIST_REASONS = ['request', 'commit', 'seal', 'reveal', 'verdict'] as const;
export type PersistReason = (typeof PERSIST_REASONS)[number];

/**
 * Write-ahead barrier: store the state this step returned (`serializeState`) durably before performing
 * the effects after this one. Emitted before every publish that must survive a crash (a coordinator must
 * never seal twice; a node must never lose the material of a commit it published).
 */
export interface PersistEffect {
  kind: 'persist';
  reason: PersistReason;
}

/** How far a verdict has been checked by the machine that reports it. */
export type VerdictCheck =
  /** coordinator: computed from its own transcript. */
  | 'computed'
  /** node, follower: recomputed from the packets it holds; digest and transcript root match. */
  | 'recomputed'
  /** node, follower: signed by the coordinator, digest checked; the transcript is not complete yet. */
  | 'digest';

/**
 * node: before attesting a verdict whose re-embedding claims (rule 8) name other members' reveals, embed
 * each listed reveal's output with `embeddingModel` (its id and file hash; the frame's bits, a prefix of
 * the embedder's own when it gives more) and answer with `claims-embedded` (or `claims-not-embedded`).
 * The machine publishes no attestation until then: the core cannot embed, and an attestation co-signs
 * the claims. Embedding runs beside the machine (its other events go on); after a restart the effect is
 * emitted again.
 */
export interface EmbedClaimsEffect {
  kind: 'embed-claims';
  requestId: string;
  verdictDigest: string;
  embeddingModel: EmbeddingModelRef;
  /** One entry a claim (at most one a member and text), its reveal's packet id and output. */
  reveals: { revealId: string; output: string }[];
}

export interface VerdictEffect {
  kind: 'verdict';
  verdict: Verdict;
  digest: string;
  transcriptRoot: string;
  check: VerdictCheck;
}

/** Self-contained, signed proof of misbehaviour: anyone can check it from `packets` alone. */
export type Evidence =
  | { kind: 'double-commit'; nodeId: string; packets: [Packet<'commit'>, Packet<'commit'>] }
  | { kind: 'double-seal'; nodeId: string; packets: [Packet<'seal'>, Packet<'seal'>] }
  | { kind: 'double-verdict'; nodeId: string; packets: [Packet<'verdict'>, Packet<'verdict'>] }
  /**
   * A verdict whose digest does not match its body (packets: the verdict), or that differs from the
   * recomputation over the transcript it claims (packets: request, commits, seal, reveals, verdict).
   */
  | { kind: 'invalid-verdict'; nodeId: string; reason: 'digest' | 'recomputed'; packets: AnyPacket[] };

export interface EvidenceEffect {
  kind: 'evidence';
  evidence: Evidence;
}

/** Why an event was ignored. Stable strings; only ever added to. */
export const REJECT_CODES = [
  /** the packet's requestId is not this machine's */
  'REQUEST_MISMATCH',
  /** a packet type the lifecycle does not handle (heartbeat) */
  'UNEXPECTED_TYPE',
  /** a second, different request packet for this requestId */
  'DUPLICATE_REQUEST',
  /** a seal or verdict not signed by the request's author, or an author the config does not trust */
  'NOT_COORDINATOR',
  /** a commit from a node the eligibility predicate rules out */
  'NOT_ELIGIBLE',
  /** a commit from a node that signed two different commitments for this request */
  'EQUIVOCATOR',
  /** a second commit from a node, same commitment */
  'DUPLICATE_COMMIT',
  /** a second commit from a node, different commitment (evidence emitted) */
  'DOUBLE_COMMIT',
  /** a commit that arrived after the seal and is not sealed */
  'COMMIT_AFTER_SEAL',
  /** more commits or reveals than the protocol bounds allow to be held */
  'LIMIT',
  /** a reveal before the seal (coordinator: the revealer broke the protocol) */
  'REVEAL_BEFORE_SEAL',
  /** a reveal after the verdict was computed */
  'REVEAL_AFTER_VERDICT',
  /** a seal that does not close this request properly (wrong request packet, size, members) */
  'SEAL_INVALID',
  /** a second, different seal from the coordinator (evidence emitted) */
  'DOUBLE_SEAL',
  /** node: the seal lists this node with a commitment it did not make */
  'SEAL_COMMITMENT_MISMATCH',
  /** a verdict packet that is malformed for this request (seal id, digest) */
  'VERDICT_INVALID',
  /** a second, different verdict packet */
  'DOUBLE_VERDICT',
  /** the verdict differs from the recomputation over its transcript */
  'VERDICT_MISMATCH',
  /** an attestation of a different digest or transcript root */
  'ATTESTATION_MISMATCH',
  /** an attestation before the verdict (coordinator) */
  'ATTESTATION_BEFORE_VERDICT',
  /** a packet this machine cannot use yet and cannot hold, its buffer being full */
  'BUFFER_FULL',
  /** an event for a phase the machine is not in (e.g. `inference-done` after the seal) */
  'WRONG_PHASE',
  /** the machine is done or expired */
  'FINISHED',
  /** a commit from a node without a record when every seat the seat policy leaves such nodes is taken */
  'UNPROVEN_SEATS_FULL',
  /** a decline that does not fit this request (another request packet, a model it does not accept) */
  'DECLINE_INVALID',
  /** a decline after the seal, or from a node that committed; or a commit from a node that declined */
  'DECLINE_CONFLICT',
  /** a second decline from a node */
  'DUPLICATE_DECLINE',
  /**
   * node: a re-embedding claim of the verdict is farther than its tolerance from this node's embedding of
   * the claimed reveal's text: the coordinator rejected that reveal on bits that are not its text's, and
   * the node does not attest the verdict
   */
  'REEMBED_CLAIM_FALSE',
] as const;
export type RejectCode = (typeof REJECT_CODES)[number];

/** Diagnostic: the event was ignored. Never thrown: network input is untrusted. */
export interface RejectedEffect {
  kind: 'rejected';
  code: RejectCode;
  reason: string;
  /** Id of the rejected packet, or null for a non-packet event. */
  packetId: string | null;
}

export type DoneReason =
  /** coordinator: every sealed member attested the verdict */
  | 'all-attested'
  /** coordinator: the attestation window closed */
  | 'attestation-window-closed'
  /** node, follower: the verdict was recomputed and matched (and attested, if configured) */
  | 'verified'
  /** node, follower: the verdict came but its transcript never became complete */
  | 'unverified'
  /** node, follower: the verdict differs from the recomputation (evidence emitted) */
  | 'verdict-mismatch'
  /**
   * node: the verdict recomputed, but a re-embedding claim about another member's reveal is not that
   * text's embedding here (REEMBED_CLAIM_FALSE): not attested
   */
  | 'reembed-claim-false'
  /** node: the verdict recomputed, but embedding the claimed texts failed here: not attested */
  | 'reembed-claims-unchecked'
  /** node skipped the request: */
  | 'not-served'
  | 'embedder-mismatch'
  | 'not-eligible'
  | 'no-capacity'
  | 'cannot-meet-deadline'
  | 'already-sealed'
  | 'untrusted-coordinator'
  /** node: its engine found the request cannot be run with its model; it published a `decline` */
  | 'declined';

export type ExpireReason =
  /** coordinator: fewer than frame.quorum valid commits at maxTimeMs */
  | 'quorum-not-met'
  /**
   * coordinator: as many nodes declined the request (`decline` packets) as a seal would trust to answer
   * it, with fewer than frame.quorum commits held: no node can run it (e.g. a prompt longer than the
   * model's context window). Ends before maxTimeMs.
   */
  | 'declined'
  /** node, follower: the request packet never came */
  | 'request-missing'
  /** node, follower: no seal by maxTimeMs + grace */
  | 'not-sealed'
  /** node, follower: no verdict by the end of the reveal window + grace */
  | 'no-verdict'
  /** node: inference could not finish before the commit deadline */
  | 'deadline-passed'
  /** node: the engine failed */
  | 'inference-failed';

export interface DoneEffect {
  kind: 'done';
  reason: DoneReason;
}

export interface ExpiredEffect {
  kind: 'expired';
  reason: ExpireReason;
}

export type Effect =
  | PublishEffect
  | SetTimerEffect
  | CancelTimerEffect
  | StartInferenceEffect
  | CancelInferenceEffect
  | PersistEffect
  | VerdictEffect
  | EvidenceEffect
  | EmbedClaimsEffect
  | RejectedEffect
  | DoneEffect
  | ExpiredEffect;

export type Outcome =
  | { kind: 'done'; reason: DoneReason; at: number }
  | { kind: 'expired'; reason: ExpireReason; at: number };

/** The result of every transition. `state` is a new object; the input state is never mutated. */
export interface Transition<S> {
  state: S;
  effects: Effect[];
}

/** Fields every machine state has. All state is plain JSON data. */
export interface BaseState {
  v: typeof STATE_VERSION;
  role: Role;
  /** Node id of the key this machine's packets are signed with. */
  self: string;
  requestId: string;
  /** Armed timers, name -> due time; re-armed after a restart. */
  timers: Partial<Record<TimerName, number>>;
  /** Publishes not yet fed back signed. */
  outbox: Outgoing[];
  outcome: Outcome | null;
}
