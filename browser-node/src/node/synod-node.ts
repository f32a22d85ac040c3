import {
  type AnyPacket,
  type ClaimsEvent,
  type CoordinatorConfig,
  type CoordinatorState,
  durableState,
  type Effect,
  type EmbedClaimsEffect,
  type EmbeddingModelRef,
  type Evidence,
  encodePacket,
  expireState,
  type FollowerState,
  fromHex,
  type HeartbeatBody,
  type InferenceDecline,
  initFollower,
  initNode,
  KeyedListeners,
  type LateAnswerPacket,
  LIMITS,
  type LifecycleEvent,
  type LifecycleState,
  type LifecycleStatus,
  lateAnswer,
  lifecycleStatus,
  type ModelRef,
  NODE_SKIP_REASONS,
  type NodeConfig,
  type NodeKey,
  type NodeSkipReason,
  type NodeState,
  type ObserverConfig,
  type Outgoing,
  type Packet,
  type PacketType,
  packetId,
  type RejectCode,
  type RejectReason,
  type RequestBody,
  restoreState,
  serializeState,
  signPacket,
  startCoordinator,
  stepCoordinator,
  stepFollower,
  stepNode,
  type TimerName,
  type Transition,
  toHex,
  truncateBits,
  type Verdict,
  type VerdictEffect,
} from '@synod/shared';
import { isInferenceError } from '../inference/errors.ts';
import type { InferenceQueue } from '../inference/queue.ts';
import {
  Intake,
  type IntakeMetrics,
  type IntakeOptions,
  type IntakePacket,
  type PeerRef,
  type PeerStats,
  TtlSet,
} from '../p2p/intake.ts';
import { ALL_TOPICS, topicOfPacketType } from '../p2p/topics.ts';
import type { Transport } from '../p2p/transport.ts';
import { type ClaimCheckConfig, ClaimEmbeddings, claimCheckOf } from './claim-embeddings.ts';
import { EarlyPackets } from './early-packets.ts';
import { LateAnswerBudget, type LateAnswerOptions } from './late-answer-budget.ts';
import { LineLimit } from './line-limit.ts';
import { type MachineStore, MemoryMachineStore } from './machine-store.ts';
import { NodeError } from './node-errors.ts';
import { type ReannounceOptions, type ReannounceReason, Reannouncer } from './reannouncer.ts';
import { ReembedQueue, textToReembed } from './reembed-queue.ts';
import { realScheduler, type Scheduler } from './scheduler.ts';

/** The reasons a node machine ends `done` without computing anything (counted in `skipped`). */
const SKIPS: ReadonlySet<string> = new Set(NODE_SKIP_REASONS);

/**
 * The node driver: one implementation of the network's layers 1-3 for every place a Synod node runs
 * (a browser tab, a headless Bun process, the relay's in-process node, tests). It owns I/O; the pure
 * lifecycle machines of `@synod/shared` own every protocol decision.
 *
 *   transports ──▶ intake (verify, dedup, backpressure) ──▶ per-request machine ──▶ effects
 *                                                                 ▲                     │
 *                                       timers, inference results ┘   publish, persist, ┘
 *                                                                     start-inference, verdict…
 *
 * - One machine per request, by role: `coordinator` for requests this node submits, `node` for
 *   requests it serves (when it has an inference queue), `follower` for requests it watches.
 * - Events of one request are applied one at a time (a per-request chain); effects run in order, a
 *   `persist` effect is a write-ahead barrier (the state is stored before the effects after it), and a
 *   published packet is fed back to its machine (loopback), as the lifecycle expects.
 * - Inference runs in the `InferenceQueue` (a Worker under Bun and in browsers), never on the intake
 *   path; its results come back as events.
 * - Packets for requests not yet seen wait in a small bounded buffer and are replayed when the request
 *   arrives; nothing a peer sends can grow memory without bound.
 * - Machine state is saved after every step that changed it (a step that changed nothing, such as a
 *   packet the machine refuses, writes nothing, and a finished machine is deleted once; what is saved is
 *   `durableState`, so a step that only took in a reveal from outside the seal writes nothing either); `start()`
 *   restores saved machines and feeds `restored`, so in-flight requests resume (or expire cleanly)
 *   after a restart. A finished `node` machine (one that may have signed a commitment) is kept in the
 *   store, finished, for `REPLAY_WINDOW_MS` before it is deleted, so a restarted node still knows the
 *   requests it served and ignores their request packets if they come again.
 * - A write of a machine's state that fails (`SQLITE_BUSY`, a server outage) is tried again a few
 *   times (`writeRetriesMs`) before its step gives up; a step that gave up leaves the effects after its
 *   `persist` undone (a seal not published, its reveal deadline not armed), so the machine is resumed
 *   from its state as after a restart (`resumeAfterMs`: written, then fed `restored`), and a watchdog
 *   expires any machine that nothing can step again once its request's reveal window is well past.
 * - What a machine published and still waits on (`unanswered`: a request, seal or verdict of its own, a
 *   commit or reveal) is published again when a peer joins, when the machine is restored, and on a
 *   doubling schedule (`reannounce`, reannouncer.ts): gossip sends a message once, and a peer that was
 *   away (a relay started again, a node back on the network) would never get it.
 * - A coordinator answers a packet that shows its sender missed the seal or the verdict (`lateAnswer`:
 *   a commit well after the seal, a node started again that inferred and committed after the request
 *   was judged; a reveal well after the verdict) with what it missed: the seal, the members' commits and
 *   reveals, and the verdict (a key the seal does not list: the seal and the verdict only), within a
 *   budget (`LateAnswerBudget`: once a request every `LATE_ANSWER_GAP_MS`, a count and bytes in each
 *   `LATE_ANSWER_WINDOW_MS`, members and non-members each in a window of their own); that node then ends
 *   the request as it ended instead of waiting for its deadline (`not-sealed`).
 */
export type NodeRole = 'node' | 'relay' | 'follower';

export interface ServingConfig {
  queue: InferenceQueue;
  /** Models served (the engine's loaded model), with their weight hashes. */
  models: ModelRef[];
  /** The embedder the queue embeds with; requests whose frame pins another are skipped. */
  embedder: EmbeddingModelRef;
}

/**
 * A coordinator's own embedder (`SynodNodeOptions.reembed`): it embeds the output of every sealed member's
 * reveal of a request whose frame pins this embedder (same id and file hash, at most its bits: a shorter
 * frame takes the prefix), and feeds the bits with the reveal (`PacketEvent.reembedded`). The verdict
 * then rejects a reveal whose bits are not its text's (`EMBEDDING_DISAGREES`, with the claim in the
 * verdict; tolerance: `coordinator.noiseToleranceBits`, default 0). Requests pinning another embedder
 * are coordinated as without it. One embedding runs at a time, the shortest text first across requests,
 * and a reveal the verdict rejects before it looks at bits is taken at once (reembed-queue.ts).
 */
export interface ReembedConfig {
  /** The embedder as frames pin it; `bits` is how many it gives. */
  embedder: EmbeddingModelRef;
  /** Packed sign bits of `text`'s embedding (`embedder.bits` of them, or hex of them). */
  embed(text: string): Promise<Uint8Array | string>;
  /**
   * How many bits a member's revealed embedding may differ from this one before it is rejected
   * (`EMBEDDING_DISAGREES`); default 0. Overrides `coordinator.noiseToleranceBits`.
   */
  noiseToleranceBits?: number;
}

export interface HeartbeatConfig {
  intervalMs: number;
  software: string;
  addresses: string[];
  /** Measured throughput (capability self-assessment) for the advertised models and embedder. */
  tokensPerSecond: number;
  embeddingsPerSecond: number;
  engine: string;
  /**
   * The coordinators the node serves only (its `--coordinators`), advertised so that other relays do not
   * count it among the nodes that could answer their requests; empty or absent: any author. More than
   * `LIMITS.maxHeartbeatCoordinators` are not advertised (relays then count the node for all).
   */
  coordinators?: readonly string[];
}

export interface SynodNodeOptions {
  key: NodeKey;
  role: NodeRole;
  transports: Transport[];
  serving?: ServingConfig;
  store?: MachineStore;
  scheduler?: Scheduler;
  random?: (n: number) => Uint8Array;
  coordinator?: CoordinatorConfig;
  /** role 'relay': re-embed the reveals of the requests this node coordinates (see `ReembedConfig`). */
  reembed?: ReembedConfig;
  /**
   * role 'node': the embedder a sealed member checks the re-embedding claims of a verdict with before it
   * attests it (`ClaimCheckConfig`; the lifecycle's attest.ts decides). Default: the embedder of
   * `serving.queue`, the one the node commits with, when it has one. `false`, or a frame pinning another
   * embedder: the claims are taken as given, as before (the node cannot judge them).
   */
  claimCheck?: ClaimCheckConfig | false;
  observer?: ObserverConfig;
  /**
   * Packets kept elsewhere for a request whose machine `start` restores (a relay's history: the commits
   * and reveals it stored after the machine's last save: a state is saved at its write-ahead barriers),
   * given to the machine before it resumes; those it holds already are duplicates it ignores, and none
   * is passed to `onPacket` again. A deadline that passed while the process was down is then judged on
   * everything that came for it, not on what the last save held (a coordinator expired QUORUM_NOT_MET
   * with its commits in the history). A read that fails fails `start`.
   */
  restoreWith?: (requestId: string) => Promise<readonly AnyPacket[]>;
  /** Follow every request seen (followers and relays that mirror history); default: only watched ones. */
  followAll?: boolean;
  heartbeat?: HeartbeatConfig;
  /**
   * Heartbeats heard (and verified) by an earlier node of this process over the same transport, as its
   * `knownNodes()` gave them: a node restarted in another role (a tab's Serve ticked) knows the network
   * at once, instead of an empty list until the next round of heartbeats. Its own is left out.
   */
  knownNodes?: readonly { nodeId: string; body: HeartbeatBody; at: number }[];
  intake?: Partial<Omit<IntakeOptions, 'now' | 'deliver'>>;
  /** Every verified packet (from the network, and the node's own) — e.g. the relay's history writer. */
  onPacket?: (p: { id: string; packet: AnyPacket; own: boolean }) => void | Promise<void>;
  onVerdict?: (requestId: string, v: VerdictEffect) => void;
  onEvidence?: (requestId: string, e: Evidence) => void;
  /** A machine finished (done or expired). */
  onFinished?: (requestId: string, outcome: { kind: 'done' | 'expired'; reason: string }) => void;
  log?: (entry: Record<string, unknown>) => void;
  /**
   * Log, at info level, each step of a request this node took up (a `node` machine that started its
   * inference): `committed` (its model, the inference and embedding time, tokens), `revealed` (the seal's
   * size), `verdict` (once: the verdict's status, this node's outcome in it, `accepted`, `rejected` with
   * the verdict's reason or `not-sealed`, and whether its output is the winner) or `request expired`
   * (why). Requests it skipped, and packets it hears, log nothing. Default true.
   */
  requestLog?: boolean;
  /** Most machines alive at once (oldest finished ones are dropped first). Default 4096. */
  maxMachines?: number;
  /** How long a finished machine lingers to absorb late packets. Default 60 s. */
  lingerMs?: number;
  /**
   * After a write to the store failed (a full disk), how often the node tries a small write to find
   * when writes work again; until one does, a `node` picks up no request (it could not commit to it: its
   * commitment must be stored before it is published) and advertises no room. Default 5 s.
   */
  storeRetryMs?: number;
  /**
   * Pauses between the attempts of one write of a machine's state (a `persist` barrier, the save after a
   * step): a write refused for a moment (`SQLITE_BUSY`, a server restarting) is tried again before the
   * step gives up. Default 50, 250, 1000 ms (four attempts).
   */
  writeRetriesMs?: readonly number[];
  /**
   * After a step failed (its write failed past its retries; the effects after a failed `persist` never
   * ran, e.g. the seal's publish and its reveal deadline), the machine is resumed from its state: its
   * state is written, then it is fed `restored`, as after a restart (outstanding publishes go out again,
   * its timers are armed again, overdue ones fire). First after this many ms, doubling up to 30 s while
   * it fails. Default 1 s.
   */
  resumeAfterMs?: number;
  /**
   * Every `everyMs` (default 10 s), a machine still open past the end of its request's reveal window
   * (`createdAt + maxTimeMs + revealWindowMs`) and `marginMs` (default 60 s), with no timer armed and no
   * inference running, can never finish by itself: it is expired (`no-verdict`).
   */
  watchdog?: { everyMs?: number; marginMs?: number };
  /**
   * Publishing again what the machines published and still wait on (`unanswered`): everything at once
   * when a peer joins (a relay started again, a node back on the network) and when a machine is restored,
   * and each on a doubling schedule (see `ReannounceOptions`). `false`: never (a machine then counts on
   * gossip alone: what a peer missed while it was away, it never gets), and no late answers (see the
   * class's comment). Default on.
   */
  reannounce?: ReannounceOptions | false;
  /**
   * A coordinator's late answers, bounded (`LateAnswerOptions`): one a request every `gapMs`, `max`
   * answers and `bytesPerWindow` bytes to members in `windowMs`, `forwardBytes` of members' packets in
   * one answer, and `nonMembers`' own count and bytes for answers to keys the seal does not list.
   */
  lateAnswers?: LateAnswerOptions;
}

interface Hosted {
  state: LifecycleState;
  tail: Promise<void>;
  timers: Map<TimerName, () => void>;
  inference: AbortController | null;
  /** This node is embedding the texts its verdict's claims name (`embed-claims`). */
  checkingClaims?: boolean;
  finishedAt: number | null;
  /** What the store holds for this machine: the state last written, null once deleted, undefined unknown. */
  stored?: string | null;
  /** When this node took the machine up (its own clock). */
  hostedAt: number;
  /** A step failed: the resume due (its cancel), and how many resumes in a row failed. */
  resume: { cancel: (() => void) | null; failures: number };
  /**
   * For the request log: this node's inference of the request (generation and embedding, as the queue
   * timed it; null before it ends, or when it ran before a restart), and whether its verdict was logged.
   */
  inferred: { inferenceMs: number; tokens: number } | null;
  verdictLogged: boolean;
}

export interface NodeMetrics {
  role: NodeRole;
  nodeId: string;
  peers: number;
  /** Of `peers`, those on our topics (`SynodNode.topicPeers`). */
  topicPeers: number;
  /** Machines held, by role: those ended are kept a while (for late packets) and counted here too. */
  machines: Record<'coordinator' | 'node' | 'follower', number>;
  /** Of `machines`, those not ended yet: the requests under way. */
  openMachines: Record<'coordinator' | 'node' | 'follower', number>;
  published: Partial<Record<PacketType, number>>;
  publishErrors: number;
  lifecycleRejected: Partial<Record<RejectCode, number>>;
  verdicts: number;
  evidence: number;
  expired: number;
  /**
   * Requests this node skipped, by why (`NODE_SKIP_REASONS`): `no-capacity` (its queue full) and
   * `cannot-meet-deadline` (it could not have finished in time) say it turns work away.
   */
  skipped: Partial<Record<NodeSkipReason, number>>;
  /** Request packets of requests this node already finished, taken again (a replay) and ignored. */
  replaysIgnored: number;
  /**
   * Reveals this coordinator embedded again (`SynodNodeOptions.reembed`): texts embedded (a text seen
   * again is not), embeddings that failed (those reveals count unchecked), the last one's time, and
   * while the latest failed, since when and why (null once one works again); `queued` texts waiting for
   * their embedding (the one running included) and their `queuedChars` (see `ReembedQueue`).
   */
  reembed: {
    embedded: number;
    failed: number;
    lastMs: number | null;
    failing: { since: number; error: string } | null;
    queued: number;
    queuedChars: number;
  };
  /**
   * Verdicts whose re-embedding claims about other members this member checked before attesting
   * (`SynodNodeOptions.claimCheck`), by outcome: every claim held (attested), one was false
   * (REEMBED_CLAIM_FALSE: not attested), or the claimed texts could not be embedded (not attested); and
   * the texts it embedded for them (a text seen again is not).
   */
  claimChecks: { held: number; false: number; failed: number; embedded: number };
  /** Packets published again (`SynodNodeOptions.reannounce`), by type, and why. */
  reannounced: {
    byType: Partial<Record<PacketType, number>>;
    byReason: Partial<Record<ReannounceReason, number>>;
  };
  /**
   * A coordinator's answers to packets that showed their senders missed the seal or the verdict, and
   * those not sent as over their window's budget (see `SynodNode`): to sealed members, and to keys the
   * seal does not list (the seal and the verdict only).
   */
  lateAnswers: number;
  lateAnswersDropped: number;
  lateAnswersToNonMembers: number;
  lateAnswersToNonMembersDropped: number;
  inferences: {
    started: number;
    done: number;
    failed: number;
    /** Requests the model cannot run (a prompt longer than its context), declined: not failures. */
    declined: number;
    /**
     * Started, then given up before its result was used: its request ended without this node (sealed
     * without it, expired `not-sealed`, a verdict reached) or a stop gave it up. With `done`, `failed` and
     * `declined`, every started inference that settled.
     */
    dropped: number;
    tokens: number;
    lastTokensPerSecond: number;
  };
  queue: { queued: number; maxQueue: number; running: boolean } | null;
  /**
   * The serving embedder's worker is dead and being started again (`RestartingEmbedder`): since when,
   * why, restarts tried; null otherwise. Meanwhile the node takes no request (it could not embed its
   * output: a generation for nothing; skipped `no-capacity`) and advertises no room.
   */
  embedderDown: { since: number; error: string; attempts: number } | null;
  /**
   * The serving engine's worker died (`WorkerEngine.failed`): why. It is not started again, so the node
   * takes no request and advertises no room until it is restarted; null while the engine works.
   */
  engineFailed: string | null;
  intake: IntakeMetrics;
  knownNodes: number;
  /** Requests followed because they were asked for (`watch`) whose machine has not finished yet. */
  watched: number;
  /** Packets held for requests not seen yet (see `EarlyPackets`): how many requests, their bytes. */
  early: { requests: number; bytes: number };
  /**
   * Writes to the machine store that failed; `failing` from a failed write until one works again (a
   * write of a machine's state, or the node's own probe every `storeRetryMs` meanwhile), while a node
   * picks up no request; the last error, and the requests refused.
   */
  store: { errors: number; failing: boolean; lastError: string | null; refused: number };
  /**
   * This node's clock against its peers': of each peer heard from within the last minute, its last
   * heartbeat's offset (local time at receipt - its `createdAt`: heartbeats are signed and sent at once,
   * so that is the clocks' offset plus milliseconds of transit), the one nearest zero: this clock is at
   * least that far off every peer (positive: ahead). One peer whose clock is off moves nothing; this
   * clock off moves it. null before any heartbeat; `peers` is how many it is taken over.
   */
  clock: { offsetMs: number | null; peers: number };
  /**
   * The authors of the requests this node refused lately because it serves other coordinators only
   * (`lifecycleRejected.NOT_COORDINATOR`), at most `REFUSED_COORDINATORS_KEPT`, the most recent last.
   */
  refusedCoordinators: string[];
  /**
   * Another process signing with this node's key, heard by its heartbeats (ones this node did not send,
   * made since it started) or found by two conflicting packets of the key (a double commit): the last
   * time, the addresses and software its heartbeat advertised (none, null, when only evidence found it), and
   * whether it was heard within `KEY_ELSEWHERE_MS` (`active`: the node then takes no request, see
   * `SynodNode`), and the request packets it did not take meanwhile. null when none was heard.
   */
  keyElsewhere: {
    lastHeardAt: number;
    addresses: string[];
    software: string | null;
    active: boolean;
    refused: number;
  } | null;
}

/** Authors of refused requests `NodeMetrics.refusedCoordinators` names at most. */
export const REFUSED_COORDINATORS_KEPT = 8;

/**
 * How long after the last heartbeat of another process signing with this node's key the node takes no
 * request (six heartbeat intervals: the other copy is gone once it has been silent that long).
 */
export const KEY_ELSEWHERE_MS = 60_000;
/**
 * How long this node recognises its own heartbeats when they come back (a Gun relay hands them back, a
 * peer replays one): past any packet's skew window (`LIMITS.defaultSkewMs`, 2 min), after which a copy
 * is refused as stale anyway. Kept by their packet ids, which do not change with the bytes' spelling.
 */
const OWN_HEARTBEATS_KEPT_MS = 10 * 60_000;
/** Most nodes whose last heartbeat is kept; the one heard least recently goes first. */
const KNOWN_NODES = 10_000;
/**
 * How long a request this node finished is remembered (in memory, and across a restart in the store):
 * past it a replay of its request packet would be refused as stale anyway (twice the skew window and a
 * minute).
 */
const REPLAY_WINDOW_MS = 2 * LIMITS.defaultSkewMs + 60_000;
/** Peers' heartbeats older than this are left out of the clock offset. */
const CLOCK_FRESH_MS = 60_000;
const WRITE_RETRIES_MS: readonly number[] = [50, 250, 1_000];
/** The probe row's key (`#probeStore`): no request id has this form, so it is no machine's. */
export const STORE_PROBE_ID = '.store-probe';
/** The probe row: about a machine's state in size, so a disk with room for it has room for them. */
export const STORE_PROBE_BYTES = 8 * 1024;
const STORE_PROBE_STATE = '0'.repeat(STORE_PROBE_BYTES);
/** Packets kept signed for re-announcing: about the machines in flight at once, and 16 MiB in all. */
const RESIGNED_KEPT = 4_096;
const RESIGNED_BYTES = 16 * 1024 * 1024;
const RESUME_MAX_MS = 30_000;
/** Evidence against other keys, and failed re-embeddings, are logged a line a minute for each kind. */
export const EVIDENCE_LINE_EVERY_MS = 60_000;
/** Keys heard in heartbeats whose first evidence line of a kind is remembered as logged. */
const EVIDENCE_KNOWN_KEPT = 1_024;
/** Why the watchdog expires a stranded machine (it has no verdict, and never will). */
const STRANDED_REASON = 'no-verdict' as const;
/** What the lines of a member's claim checks are about (`#claimLines`). */
type ClaimLine = 'false' | 'failed';

export class SynodNode {
  readonly nodeId: string;
  readonly role: NodeRole;
  readonly #o: SynodNodeOptions;
  readonly #scheduler: Scheduler;
  readonly #store: MachineStore;
  readonly #random: (n: number) => Uint8Array;
  readonly #machines = new Map<string, Hosted>();
  /**
   * Requests whose `node` machine finished after it may have signed, remembered until a replay of their
   * request packet would be stale anyway (twice the skew window and a minute), though the machine itself
   * lingers only `lingerMs`: a request replayed in between (the intake's dedup set can be flushed by a
   * flood) would start a new machine, and a node would infer again and sign a second commitment,
   * evidence against itself. Bounded by what the node can serve in that window, far below its size.
   */
  readonly #finished = new TtlSet<true>(65_536, REPLAY_WINDOW_MS);
  /** What late answers may still publish (`#answerLate`). */
  readonly #late: LateAnswerBudget;
  /** `coordinator`, with `reembed`'s tolerance when it gives one. */
  readonly #coordinatorConfig: CoordinatorConfig;
  /** The last evidence line logged for each kind, and how many of that kind were not logged since. */
  readonly #evidenceLines = new LineLimit<Evidence['kind']>(EVIDENCE_LINE_EVERY_MS);
  /** Evidence lines logged against keys heard in heartbeats, by kind and key (the first of each). */
  readonly #evidenceKnownLogged = new Set<string>();
  /** Lines of a spell of failed re-embeddings: one a minute. */
  readonly #reembedLines = new LineLimit<'reembed'>(EVIDENCE_LINE_EVERY_MS);
  /** A member's embeddings of the texts verdicts' claims name (`SynodNodeOptions.claimCheck`), or null. */
  readonly #claims: ClaimEmbeddings | null;
  /** Lines of false claims found, and of claimed texts that could not be embedded: one a minute each. */
  readonly #claimLines = new LineLimit<ClaimLine>(EVIDENCE_LINE_EVERY_MS);
  /** Deletions of finished `node` machines from the store, due at the end of their replay window. */
  readonly #forget = new Map<string, () => void>();
  /** Packets of requests not seen yet, replayed when the request comes. */
  readonly #early = new EarlyPackets();
  /** Authors of the requests refused as NOT_COORDINATOR lately, the most recent last. */
  readonly #refusedFrom = new Set<string>();
  /** Requests whose saved machine `start` is restoring and has not hosted yet. */
  readonly #restoring = new Set<string>();
  /** Requests asked for (`watch`), each until its machine finishes. */
  readonly #watched = new Set<string>();
  readonly #listeners = new KeyedListeners<LifecycleStatus>();
  readonly #heartbeats = new Map<string, { body: HeartbeatBody; at: number }>();
  /** Errors of state writes that failed past their retries, told apart from bugs in the step's log. */
  readonly #storeFailures = new WeakSet<object>();
  readonly #intake: Intake;
  readonly #detach: Array<() => void> = [];
  /** Pauses between write attempts under way: each ends its wait (close() ends them all). */
  readonly #pauses = new Set<() => void>();
  readonly #reannouncer: Reannouncer | null;
  /** Packets signed again for re-announcing, by id (`#signedAgain`), oldest first, and their bytes. */
  readonly #resigned = new Map<string, { packet: AnyPacket; bytes: number }>();
  /** The re-embeddings (`#reembed`): one at a time, the shortest text first; null without `reembed`. */
  readonly #reembedQueue: ReembedQueue | null;
  #resignedBytes = 0;
  #heartbeatCancel: (() => void) | null = null;
  #watchdogCancel: (() => void) | null = null;
  #closed = false;
  #storeFailedAt: number | null = null;
  #storeErrors = 0;
  #storeLastError: string | null = null;
  /**
   * A spell of failing state writes (a full disk): its first retry and its first failed step are logged,
   * the rest only counted, and one line says when writes work again. Every machine retries its writes
   * and resumes on a backoff, so one line each made a flood (about a hundred lines in 17 s for two
   * requests on a full disk).
   */
  #storeSpell: { since: number; retries: number; failedSteps: number } | null = null;
  /** The next probe write while a spell lasts (`#probeStore`). */
  #probeCancel: (() => void) | null = null;
  #storeRefused = 0;
  /** When `start` began: a heartbeat signed with this key and made before it is a previous run's. */
  #startedAt: number | null = null;
  /** The ids of this node's heartbeats of the last `OWN_HEARTBEATS_KEPT_MS`, with when they were made. */
  readonly #ownHeartbeats = new Map<string, number>();
  /** The last heartbeat of another process signing with this key (see `NodeMetrics.keyElsewhere`). */
  #keyElsewhere: { heardAt: number; addresses: string[]; software: string | null } | null = null;
  /** Request packets not taken while the key was in use elsewhere. */
  #keyElsewhereRefused = 0;
  /** When the spell of another process signing with this key began (said), null outside one. */
  #keyElsewhereSince: number | null = null;
  /** `#keyElsewhereRefused` when that spell began: the spell's own refusals are the difference. */
  #keyElsewhereRefusedBefore = 0;
  /** The timer that says the end of that spell, `KEY_ELSEWHERE_MS` after the copy was last heard. */
  #keyElsewhereCancel: (() => void) | null = null;
  /** Set by `drain`: the node is stopping, and takes no new request. */
  #draining = false;
  #started = false;
  readonly #m = {
    published: {} as Partial<Record<PacketType, number>>,
    publishErrors: 0,
    lifecycleRejected: {} as Partial<Record<RejectCode, number>>,
    verdicts: 0,
    evidence: 0,
    expired: 0,
    skipped: {} as Partial<Record<NodeSkipReason, number>>,
    replaysIgnored: 0,
    reembed: {
      embedded: 0,
      failed: 0,
      lastMs: null as number | null,
      failing: null as { since: number; error: string } | null,
    },
    claimChecks: { held: 0, false: 0, failed: 0 },
    reannounced: {
      byType: {} as Partial<Record<PacketType, number>>,
      byReason: {} as Partial<Record<ReannounceReason, number>>,
    },
    lateAnswers: 0,
    lateAnswersDropped: 0,
    lateAnswersToNonMembers: 0,
    lateAnswersToNonMembersDropped: 0,
    inferences: {
      started: 0,
      done: 0,
      failed: 0,
      declined: 0,
      dropped: 0,
      tokens: 0,
      lastTokensPerSecond: 0,
    },
  };

  constructor(options: SynodNodeOptions) {
    if (options.role === 'node' && !options.serving) {
      throw new TypeError('a node in role "node" needs a serving config (inference queue, models, embedder)');
    }
    this.#o = options;
    this.nodeId = options.key.nodeId;
    this.role = options.role;
    this.#scheduler = options.scheduler ?? realScheduler;
    // In the order they were heard (the map drops its oldest first), the newest KNOWN_NODES.
    const known = [...(options.knownNodes ?? [])].sort((a, b) => a.at - b.at).slice(-KNOWN_NODES);
    for (const { nodeId, body, at } of known) {
      if (nodeId !== this.nodeId) this.#heartbeats.set(nodeId, { body, at });
    }
    this.#store = options.store ?? new MemoryMachineStore();
    const claimCheck = options.role === 'node' ? claimCheckOf(options.claimCheck, options.serving) : null;
    this.#claims = claimCheck === null ? null : new ClaimEmbeddings(claimCheck);
    this.#random = options.random ?? ((n) => crypto.getRandomValues(new Uint8Array(n)));
    const tolerance = options.reembed?.noiseToleranceBits;
    this.#coordinatorConfig =
      tolerance === undefined
        ? (options.coordinator ?? {})
        : { ...options.coordinator, noiseToleranceBits: tolerance };
    const reembed = options.reembed;
    this.#reembedQueue = reembed
      ? new ReembedQueue({ embed: (text, requestId) => this.#embedOnce(reembed, text, requestId) })
      : null;
    this.#late = new LateAnswerBudget(options.lateAnswers);
    this.#reannouncer =
      options.reannounce === false
        ? null
        : new Reannouncer(
            {
              scheduler: this.#scheduler,
              machines: () => this.#hostedStates(),
              send: (state, outgoing, reason) => this.#reannounce(state, outgoing, reason),
              onJoinPass: ({ peers, packets }) => {
                if (packets > 0) {
                  this.#log({ level: 'info', msg: 're-announced to peers that joined', peers, packets });
                }
              },
            },
            options.reannounce,
          );
    this.#intake = new Intake({
      ...options.intake,
      now: () => this.#scheduler.now(),
      deliver: (p) => this.#deliver(p),
      // A banned peer is hung up on, and refused by its transport for what is left of the ban, where the
      // transport can (it would otherwise keep its place in the mesh, its every message refused for the
      // length of the ban); then the caller's hook.
      onBan: (ref, stats) => {
        const transport = options.transports.find((t) => t.name === ref.transport);
        const banMs = Math.max(0, (stats.bannedUntil ?? 0) - this.#scheduler.now());
        transport?.disconnect?.(ref.peer, banMs).catch((e: unknown) =>
          this.#log({
            level: 'warn',
            msg: 'hanging up on a banned peer failed',
            peer: ref.peer,
            err: String(e),
          }),
        );
        this.#log({
          level: 'warn',
          msg: 'peer banned',
          code: 'PEER_BANNED',
          transport: ref.transport,
          peer: ref.peer,
          invalid: stats.invalid,
          // What it sent, by rejection reason, and when the ban ends (ms since the epoch).
          rejected: stats.invalidByCode,
          bannedUntil: stats.bannedUntil,
        });
        options.intake?.onBan?.(ref, stats);
      },
    });
  }

  /** Attach the transports, restore saved machines, start heartbeats. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#startedAt = this.#now();
    const saved = await this.#store.load(this.nodeId);
    // Sorted in one pass, with no wait, before the transports are attached: a request this node finished
    // or resumes that reached it during the rest of the start (a peer re-announcing it as this node joins,
    // a Gun relay handing out what it holds) would otherwise start a fresh machine, which would infer
    // again and sign a second commitment, evidence against this node. Packets of a request being
    // restored are held (`#restoring`) and given to its machine before it resumes.
    const unreadable: string[] = [];
    const done: string[] = [];
    const resume: { row: (typeof saved)[number]; state: LifecycleState }[] = [];
    for (const row of saved) {
      // A probe's row left by a stop between its write and its delete: not a machine.
      if (row.requestId === STORE_PROBE_ID) {
        unreadable.push(row.requestId);
        continue;
      }
      let state: LifecycleState;
      try {
        state = restoreState(row.state);
      } catch (e) {
        this.#log({
          level: 'warn',
          msg: 'dropping unreadable machine state',
          requestId: row.requestId,
          err: String(e),
        });
        unreadable.push(row.requestId);
        continue;
      }
      if (state.self === this.nodeId && state.outcome !== null && mayHaveSigned(state)) {
        // Served before the restart: a replay of its request within the window must not start a new
        // machine, which would infer again and sign a second commitment (evidence against this node).
        const until = state.outcome.at + REPLAY_WINDOW_MS;
        if (until > this.#now()) {
          this.#finished.set(state.requestId, true, state.outcome.at);
          this.#forgetAt(state.requestId, until);
          continue;
        }
      }
      if (state.self !== this.nodeId || state.outcome !== null) {
        done.push(row.requestId);
        continue;
      }
      resume.push({ row, state });
      this.#restoring.add(state.requestId);
    }
    for (const t of this.#o.transports) this.#detach.push(this.#intake.attach(t));
    const reannouncer = this.#reannouncer;
    if (reannouncer !== null) {
      for (const t of this.#o.transports) {
        const off = t.onPeerJoined?.((peer) => reannouncer.peerJoined(peer));
        if (off) this.#detach.push(off);
      }
    }
    for (const requestId of [...unreadable, ...done]) await this.#store.delete(this.nodeId, requestId);
    for (const { row, state } of resume) {
      // Read before the machine is hosted: one that cannot be given what was kept for it must not resume
      // on its last save alone (its overdue deadline would fire on that), so a failed read fails the start.
      const kept = this.#o.restoreWith ? await this.#o.restoreWith(state.requestId) : [];
      // Said in the log: the operator of a restarted node sees which requests it goes on with.
      this.#log({
        level: 'info',
        msg: 'resumed request',
        requestId: state.requestId,
        role: state.role,
        phase: state.role === 'node' ? state.work.phase : state.role === 'coordinator' ? state.phase : null,
      });
      const hosted = this.#host(state);
      hosted.stored = row.state;
      this.#restoring.delete(state.requestId);
      this.#enqueue(state.requestId, hosted, async () => {
        // A coordinator stored before it re-embedded (or whose embedding failed) gets its held reveals'
        // bits now: fed again, they are duplicates that bring only their bits (see `#reembed`). First,
        // before what its history kept: one of those may complete the reveals and close them.
        if (hosted.state.role === 'coordinator' && this.#o.reembed !== undefined) {
          for (const r of hosted.state.reveals) {
            await this.#apply(hosted, { kind: 'packet', now: this.#now(), packet: r.packet });
          }
        }
        for (const packet of kept) await this.#apply(hosted, { kind: 'packet', now: this.#now(), packet });
        // And what came for it while it was being restored (held by `#deliver`), a peer re-announcing
        // what this node missed among them.
        await this.#replayEarly(state.requestId, hosted);
        await this.#apply(hosted, { kind: 'restored', now: this.#now() });
        this.#reannouncer?.restored(hosted.state);
      });
    }
    this.#armWatchdog();
    this.#reannouncer?.start();
    if (this.#o.heartbeat) {
      const beat = () => {
        if (this.#closed) return;
        void this.publishHeartbeat().catch((e) =>
          this.#log({ level: 'warn', msg: 'heartbeat failed', err: String(e) }),
        );
        this.#heartbeatCancel = this.#scheduler.after(this.#o.heartbeat?.intervalMs ?? 10_000, beat);
      };
      beat();
    }
  }

  /**
   * Coordinate a request: start a coordinator machine, which publishes the request packet, seals,
   * computes and publishes the verdict. Resolves with the signed request packet once published.
   */
  async submit(body: RequestBody): Promise<{ id: string; packet: Packet<'request'> }> {
    this.#assertOpen();
    const existing = this.#machines.get(body.requestId);
    if (existing) {
      const s = existing.state as CoordinatorState;
      if (s.role === 'coordinator' && s.request.packet) return { id: s.request.id, packet: s.request.packet };
      throw new NodeError('REQUEST_ALREADY_KNOWN', `request ${body.requestId} is already known to this node`);
    }
    const now = this.#now();
    const t = startCoordinator(this.#coordinatorConfig, { now, self: this.nodeId, request: body });
    const hosted = this.#host(t.state);
    await this.#enqueue(body.requestId, hosted, () => this.#run(hosted, t));
    const s = hosted.state as CoordinatorState;
    if (!s.request.packet) {
      // The first step failed (its write, past its retries): the caller is told the request was not
      // published, so nothing of it may go on running (a resume would publish and serve it later).
      this.#drop(body.requestId, hosted);
      throw new NodeError('REQUEST_NOT_PUBLISHED', 'the request was not published');
    }
    return { id: s.request.id, packet: s.request.packet };
  }

  /**
   * Stop and forget a machine: its resume, timers and inference cancelled, it is no longer hosted, and
   * its stored state is deleted (best effort: a row left behind is restored, and expires, at a restart).
   */
  #drop(requestId: string, hosted: Hosted): void {
    hosted.resume.cancel?.();
    hosted.resume.cancel = null;
    for (const cancel of hosted.timers.values()) cancel();
    hosted.timers.clear();
    hosted.inference?.abort();
    hosted.inference = null;
    if (this.#machines.get(requestId) !== hosted) return;
    this.#machines.delete(requestId);
    this.#store
      .delete(this.nodeId, requestId)
      .catch((e: unknown) =>
        this.#log({ level: 'warn', msg: 'deleting a dropped machine failed', requestId, err: String(e) }),
      );
  }

  /**
   * Follow a request (as a follower machine) to report its status; no-op if already hosted. The request
   * stays wanted (a request packet replayed later starts a machine for it) until its machine finishes.
   */
  watch(requestId: string): void {
    if (this.#machines.has(requestId)) return;
    this.#watched.add(requestId);
    const t = initFollower(this.#observerConfig(), { now: this.#now(), self: this.nodeId, requestId });
    const hosted = this.#host(t.state);
    this.#enqueue(requestId, hosted, async () => {
      await this.#run(hosted, t);
      await this.#replayEarly(requestId, hosted);
    });
  }

  status(requestId: string): LifecycleStatus | null {
    const h = this.#machines.get(requestId);
    return h ? lifecycleStatus(h.state) : null;
  }

  /**
   * The commits with these packet ids that this node's machine for a request holds (a seal's members'
   * commits, say): what its coordinator sealed, as received. The relay's history stores them with the
   * seal, so that a seal is stored whatever commits the history itself could take before it (it bounds
   * them, and any key can send commits).
   */
  heldCommits(requestId: string, ids: ReadonlySet<string>): { id: string; packet: Packet<'commit'> }[] {
    const commits = this.#machines.get(requestId)?.state.commits ?? [];
    return commits.filter((c) => ids.has(c.id)).map((c) => ({ id: c.id, packet: c.packet }));
  }

  /** Be told of every status change of a request; returns an unsubscribe. */
  onStatus(requestId: string, listener: (s: LifecycleStatus) => void): () => void {
    return this.#listeners.add(requestId, listener);
  }

  /** Node ids that sent a heartbeat within `withinMs`, with what they advertised. */
  knownNodes(withinMs = 60_000): { nodeId: string; body: HeartbeatBody; at: number }[] {
    const since = this.#now() - withinMs;
    return [...this.#heartbeats]
      .filter(([, h]) => h.at >= since)
      .map(([nodeId, h]) => ({ nodeId, ...h }))
      .sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
  }

  /** Intake counters of one neighbour (accepted, duplicates, invalid by code, ban). */
  peerStats(ref: PeerRef): PeerStats | undefined {
    return this.#intake.peerStats(ref);
  }

  peers(): number {
    const all = new Set<string>();
    for (const t of this.#o.transports) for (const p of t.peers()) all.add(`${t.name}:${p}`);
    return all.size;
  }

  /**
   * Of `peers`, those known to listen on one of our topics (a transport that cannot tell counts all its
   * peers): connected peers none of which is on our topics are on another network (another
   * `--waku-cluster`), and this node hears none of their requests.
   */
  topicPeers(): number {
    const all = new Set<string>();
    for (const t of this.#o.transports) {
      for (const p of t.topicPeers ? t.topicPeers() : t.peers()) all.add(`${t.name}:${p}`);
    }
    return all.size;
  }

  /**
   * Of `topicPeers`, those on transports that carry every Synod topic: the peers through which a request
   * can be answered (its commits, seal and reveals go over them). Gun carries requests and verdicts only,
   * and a relay's own Gun client is connected to its own Gun relay: neither makes a quorum reachable.
   */
  protocolPeers(): number {
    const all = new Set<string>();
    for (const t of this.#o.transports) {
      if (t.topics !== undefined && !ALL_TOPICS.every((topic) => t.topics?.includes(topic))) continue;
      for (const p of t.topicPeers ? t.topicPeers() : t.peers()) all.add(`${t.name}:${p}`);
    }
    return all.size;
  }

  /**
   * Requests this node has committed to (or may have: its commitment signed) and not finished: leaving
   * now withholds their reveals, which the relay records against it (NOT_REVEALED).
   */
  openCommitments(): number {
    let open = 0;
    for (const h of this.#machines.values()) {
      if (h.state.self === this.nodeId && h.state.outcome === null && mayHaveSigned(h.state)) open++;
    }
    return open;
  }

  metrics(): NodeMetrics {
    const machines = { coordinator: 0, node: 0, follower: 0 };
    const openMachines = { coordinator: 0, node: 0, follower: 0 };
    for (const h of this.#machines.values()) {
      machines[h.state.role]++;
      if (h.state.outcome === null) openMachines[h.state.role]++;
    }
    const q = this.#o.serving?.queue;
    return {
      role: this.role,
      nodeId: this.nodeId,
      peers: this.peers(),
      topicPeers: this.topicPeers(),
      machines,
      openMachines,
      published: { ...this.#m.published },
      publishErrors: this.#m.publishErrors,
      lifecycleRejected: { ...this.#m.lifecycleRejected },
      verdicts: this.#m.verdicts,
      evidence: this.#m.evidence,
      expired: this.#m.expired,
      skipped: { ...this.#m.skipped },
      replaysIgnored: this.#m.replaysIgnored,
      reembed: {
        ...this.#m.reembed,
        failing: this.#m.reembed.failing && { ...this.#m.reembed.failing },
        queued: this.#reembedQueue?.depth().texts ?? 0,
        queuedChars: this.#reembedQueue?.depth().chars ?? 0,
      },
      claimChecks: { ...this.#m.claimChecks, embedded: this.#claims?.embedded ?? 0 },
      reannounced: {
        byType: { ...this.#m.reannounced.byType },
        byReason: { ...this.#m.reannounced.byReason },
      },
      lateAnswers: this.#m.lateAnswers,
      lateAnswersDropped: this.#m.lateAnswersDropped,
      lateAnswersToNonMembers: this.#m.lateAnswersToNonMembers,
      lateAnswersToNonMembersDropped: this.#m.lateAnswersToNonMembersDropped,
      inferences: { ...this.#m.inferences },
      queue: q ? { ...q.capacity, running: q.running } : null,
      embedderDown: this.#embedderDown(),
      engineFailed: this.#engineFailed(),
      intake: this.#intake.metrics(),
      knownNodes: this.#heartbeats.size,
      watched: this.#watched.size,
      early: this.#early.sizes(),
      store: {
        errors: this.#storeErrors,
        failing: this.#storeFailing(),
        lastError: this.#storeLastError,
        refused: this.#storeRefused,
      },
      clock: this.#clockOffset(),
      refusedCoordinators: [...this.#refusedFrom],
      keyElsewhere: this.#keyElsewhere
        ? {
            lastHeardAt: this.#keyElsewhere.heardAt,
            addresses: [...this.#keyElsewhere.addresses],
            software: this.#keyElsewhere.software,
            active: this.#keyInUseElsewhere(),
            refused: this.#keyElsewhereRefused,
          }
        : null,
    };
  }

  /** See `NodeMetrics.clock`. */
  #clockOffset(): NodeMetrics['clock'] {
    const since = this.#now() - CLOCK_FRESH_MS;
    let nearest: number | null = null;
    let peers = 0;
    for (const [nodeId, h] of this.#heartbeats) {
      if (nodeId === this.nodeId || h.at < since) continue;
      const offset = h.at - h.body.createdAt;
      peers++;
      if (nearest === null || Math.abs(offset) < Math.abs(nearest)) nearest = offset;
    }
    return { offsetMs: nearest, peers };
  }

  /** Sign and publish a heartbeat advertising this node's role, models, embedder and throughput. */
  async publishHeartbeat(): Promise<void> {
    const hb = this.#o.heartbeat;
    if (!hb) return;
    const serving = this.#o.serving;
    const body: HeartbeatBody = {
      role: this.role,
      software: hb.software.slice(0, 64),
      models: (serving?.models ?? []).map((m) => ({
        id: m.id,
        fileHash: m.fileHash,
        engine: hb.engine.slice(0, 32),
        tokensPerSecond: round(hb.tokensPerSecond),
      })),
      embedders: serving ? [{ ...serving.embedder, embeddingsPerSecond: round(hb.embeddingsPerSecond) }] : [],
      // No room advertised while the store fails, or while another process signs with this key: the node
      // picks up no request then.
      capacity: serving && !this.#refusesWork() ? serving.queue.capacity : { queued: 0, maxQueue: 0 },
      addresses: hb.addresses.slice(0, 16),
      createdAt: this.#now(),
      ...(hb.coordinators !== undefined &&
      hb.coordinators.length > 0 &&
      hb.coordinators.length <= LIMITS.maxHeartbeatCoordinators
        ? { coordinators: [...hb.coordinators] }
        : {}),
    };
    const packet = await signPacket(this.#o.key, 'heartbeat', body);
    this.#ownHeartbeats.set(packetId(packet), body.createdAt);
    // In the order they were made: the oldest first, dropped once past the window.
    for (const [id, at] of this.#ownHeartbeats) {
      if (body.createdAt - at <= OWN_HEARTBEATS_KEPT_MS) break;
      this.#ownHeartbeats.delete(id);
    }
    await this.#broadcast(packet);
    this.#m.published.heartbeat = (this.#m.published.heartbeat ?? 0) + 1;
    this.#heartbeats.delete(this.nodeId);
    this.#heartbeats.set(this.nodeId, { body, at: body.createdAt });
    await this.#o.onPacket?.({ id: packetId(packet), packet, own: true });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#heartbeatCancel?.();
    this.#watchdogCancel?.();
    this.#probeCancel?.();
    this.#keyElsewhereCancel?.();
    this.#reannouncer?.stop();
    for (const cancel of this.#forget.values()) cancel();
    this.#forget.clear();
    for (const end of [...this.#pauses]) end();
    for (const off of this.#detach) off();
    this.#intake.close();
    this.#reembedQueue?.close();
    for (const h of this.#machines.values()) {
      for (const cancel of h.timers.values()) cancel();
      h.resume.cancel?.();
      h.inference?.abort();
    }
    await Promise.allSettled([...this.#machines.values()].map((h) => h.tail));
    this.#machines.clear();
  }

  /** Wait until every queued event of every machine has been applied (tests, shutdown). */
  async settled(): Promise<void> {
    for (;;) {
      const tails = [...this.#machines.values()].map((h) => h.tail);
      await Promise.allSettled(tails);
      const again = [...this.#machines.values()].map((h) => h.tail);
      if (again.every((t, i) => t === tails[i])) return;
    }
  }

  // -------------------------------------------------------------------------------------------------

  #now(): number {
    return this.#scheduler.now();
  }

  #assertOpen(): void {
    if (this.#closed) throw new NodeError('NODE_CLOSED', 'the node is closed');
  }

  #log(entry: Record<string, unknown>): void {
    this.#o.log?.({ node: this.nodeId.slice(0, 12), ...entry });
  }

  /** Whether the request log covers this machine: a `node` machine that took its request up. */
  #logsRequest(s: LifecycleState): s is NodeState {
    return (this.#o.requestLog ?? true) && s.role === 'node' && s.work.model !== null;
  }

  /** The request log's line for this node's own commit or reveal, once published. */
  #logPublished(hosted: Hosted, fx: Extract<Effect, { kind: 'publish' }>): void {
    const s = hosted.state;
    if (!this.#logsRequest(s)) return;
    if (fx.packetType === 'commit') {
      // A commit published by a machine restored after a restart: its inference ran in the process
      // before, whose timings are gone; said as such rather than with empty timings.
      const timings = hosted.inferred
        ? { inferenceMs: hosted.inferred.inferenceMs, tokens: hosted.inferred.tokens }
        : { afterRestart: true };
      this.#log({
        level: 'info',
        msg: 'committed',
        requestId: s.requestId,
        model: s.work.model?.id,
        ...timings,
      });
    } else if (fx.packetType === 'reveal') {
      this.#log({
        level: 'info',
        msg: 'revealed',
        requestId: s.requestId,
        sealSize: s.seal?.packet.body.members.length ?? null,
      });
    }
  }

  /** The request log's line for the first verdict heard of a request this node took up. */
  #logVerdict(hosted: Hosted, fx: VerdictEffect): void {
    const s = hosted.state;
    if (!this.#logsRequest(s) || hosted.verdictLogged) return;
    hosted.verdictLogged = true;
    this.#log({
      level: 'info',
      msg: 'verdict',
      requestId: s.requestId,
      status: fx.verdict.status,
      ...outcomeOf(fx.verdict, this.nodeId),
      check: fx.check,
    });
  }

  #observerConfig(): ObserverConfig {
    return this.#o.observer ?? {};
  }

  #nodeConfig(): NodeConfig {
    const serving = this.#o.serving as ServingConfig;
    const claims = this.#claims?.config;
    // Only this node's own check (claimCheck) makes its machines ask for one: an observer setting naming
    // an embedder it has nothing to embed with would leave every verdict with claims unattested.
    const { claimsEmbedder: _given, claimToleranceBits: _tolerance, ...observer } = this.#observerConfig();
    return {
      ...observer,
      ...(claims === undefined
        ? {}
        : { claimsEmbedder: claims.embedder, claimToleranceBits: claims.noiseToleranceBits ?? 0 }),
      models: serving.models,
      embedder: serving.embedder,
      hasCapacity: () => serving.queue.accepting && !this.#refusesWork(),
      estimateInferenceMs: (request) =>
        serving.queue.estimateMs({
          request: { prompt: request.prompt ?? '', params: request.params },
          embed: true,
        }),
    };
  }

  #host(state: LifecycleState): Hosted {
    const hosted: Hosted = {
      state,
      tail: Promise.resolve(),
      timers: new Map(),
      inference: null,
      finishedAt: null,
      hostedAt: this.#now(),
      resume: { cancel: null, failures: 0 },
      inferred: null,
      verdictLogged: false,
    };
    this.#machines.set(state.requestId, hosted);
    this.#evictIfFull();
    return hosted;
  }

  #evictIfFull(): void {
    const max = this.#o.maxMachines ?? 4096;
    if (this.#machines.size <= max) return;
    const finished = [...this.#machines].filter(([, h]) => h.finishedAt !== null);
    finished.sort((a, b) => (a[1].finishedAt ?? 0) - (b[1].finishedAt ?? 0));
    for (const [id] of finished.slice(0, this.#machines.size - max)) this.#machines.delete(id);
  }

  /**
   * Apply `job` to a machine after the jobs before it. A job that fails (its state could not be
   * written: the effects after it did not all run) leaves the machine to be resumed (`#resumeLater`).
   */
  #enqueue(requestId: string, hosted: Hosted, job: () => Promise<void>): Promise<void> {
    const run = hosted.tail.then(job).catch((e) => {
      // A write of the state file that failed past its retries (a full disk, say) is the operator's to
      // fix, and the same for every step: one line with a code and what to do, no stack trace. Anything
      // else is a bug, logged with its stack.
      if (!this.#storeFailures.has(e)) {
        this.#log({
          level: 'error',
          msg: 'machine step failed',
          requestId,
          err: String(e),
          stack: (e as Error)?.stack,
        });
      } else if (this.#storeSpellOf().failedSteps++ === 0) {
        this.#log({
          level: 'error',
          msg: 'machine step failed',
          code: 'STORE_WRITE_FAILED',
          requestId,
          err: String(e),
          hint: 'the node state file could not be written (a full disk?); its requests are resumed once it can be (further failures are counted, and logged when writes work again)',
        });
      }
      this.#resumeLater(requestId, hosted);
    });
    hosted.tail = run;
    return run;
  }

  /**
   * Resume a machine whose step failed, as a restart would: write its state (the write-ahead barrier
   * the failed step did not pass), then feed it `restored`, which publishes again what is still
   * outstanding and arms its timers again from its state (overdue ones fire). A finished machine only
   * gets its write. After `resumeAfterMs`, doubling (to 30 s) while resuming fails; one resume due at a
   * time; none once the machine is gone or the node closed.
   */
  #resumeLater(requestId: string, hosted: Hosted): void {
    if (this.#closed || hosted.resume.cancel !== null || this.#machines.get(requestId) !== hosted) return;
    const first = this.#o.resumeAfterMs ?? 1_000;
    const delay = Math.min(first * 2 ** hosted.resume.failures, Math.max(first, RESUME_MAX_MS));
    hosted.resume.failures++;
    hosted.resume.cancel = this.#scheduler.after(delay, () => {
      hosted.resume.cancel = null;
      if (this.#closed || this.#machines.get(requestId) !== hosted) return;
      this.#enqueue(requestId, hosted, async () => {
        await this.#save(hosted);
        // Not while an inference runs: a `node` machine fed `restored` while inferring starts its
        // inference again (aborting the one running, or expiring it if its deadline looks too near);
        // the running one's result steps the machine on.
        if (hosted.state.outcome === null && hosted.inference === null) {
          await this.#apply(hosted, { kind: 'restored', now: this.#now() });
        }
        hosted.resume.failures = 0;
        this.#log({ level: 'info', msg: 'resumed a machine after a failed step', requestId });
      });
    });
  }

  /** Check for stranded machines every `watchdog.everyMs` (see `SynodNodeOptions.watchdog`). */
  #armWatchdog(): void {
    const every = this.#o.watchdog?.everyMs ?? 10_000;
    const sweep = () => {
      if (this.#closed) return;
      for (const [requestId, hosted] of this.#machines) {
        if (this.#stranded(hosted)) {
          this.#enqueue(requestId, hosted, () => this.#expireStranded(requestId, hosted));
        }
      }
      this.#watchdogCancel = this.#scheduler.after(every, sweep);
    };
    this.#watchdogCancel = this.#scheduler.after(every, sweep);
  }

  /**
   * Open, with no timer armed and no inference running (nothing will ever step it again), past the end
   * of its request's reveal window and the watchdog's margin (a request not known yet: the skew window
   * from when it was taken up).
   */
  #stranded(hosted: Hosted): boolean {
    const s = hosted.state;
    if (s.outcome !== null || hosted.timers.size > 0 || hosted.inference !== null) return false;
    // A check of its verdict's claims under way (bounded: CLAIM_CHECK_BUDGET_CHARS) will step it.
    if (hosted.checkingClaims) return false;
    const request = s.role === 'coordinator' ? s.request.body : s.request?.packet.body;
    const end = request
      ? request.createdAt + request.frame.maxTimeMs + request.frame.revealWindowMs
      : hosted.hostedAt + LIMITS.defaultSkewMs;
    return this.#now() > end + (this.#o.watchdog?.marginMs ?? 60_000);
  }

  /** Expire a stranded machine (checked again: a step may have moved it since the sweep). */
  async #expireStranded(requestId: string, hosted: Hosted): Promise<void> {
    if (this.#closed || !this.#stranded(hosted)) return;
    const s = hosted.state;
    this.#log({
      level: 'warn',
      msg: 'expired a stranded machine',
      requestId,
      role: s.role,
      phase: s.role === 'node' ? s.work.phase : s.role === 'coordinator' ? s.phase : null,
    });
    await this.#run(hosted, expireState(s, STRANDED_REASON, this.#now()));
  }

  async #deliver(p: IntakePacket): Promise<void> {
    if (this.#closed) return;
    const { packet } = p;
    await this.#o.onPacket?.({ id: p.id, packet, own: false });
    if (packet.type === 'heartbeat' && packet.from === this.nodeId) {
      this.#ownKeyHeard(p.id, packet.body);
      return;
    }
    if (packet.type === 'heartbeat') {
      // Re-inserted, so the map's order is the order nodes were last heard in: the first is the oldest
      // (a sort of the whole map at each new key cost 4.5 times the heartbeat past 10,000 nodes).
      this.#heartbeats.delete(packet.from);
      this.#heartbeats.set(packet.from, { body: packet.body, at: this.#now() });
      if (this.#heartbeats.size > KNOWN_NODES) {
        const oldest = this.#heartbeats.keys().next().value;
        if (oldest !== undefined) this.#heartbeats.delete(oldest);
      }
      return;
    }
    const requestId = packet.body.requestId;
    const hosted = this.#machines.get(requestId);
    if (hosted) {
      this.#enqueue(requestId, hosted, async () => {
        await this.#apply(hosted, { kind: 'packet', now: this.#now(), packet });
        await this.#answerLate(hosted.state, packet);
      });
      return;
    }
    if (this.#restoring.has(requestId)) {
      // Its machine is being restored (see `start`): held for it, its request packet too.
      this.#early.hold(requestId, packet, p.size, this.#now());
      return;
    }
    if (packet.type === 'request' && this.#finished.get(requestId, this.#now()) !== undefined) {
      this.#m.replaysIgnored++;
      return;
    }
    if (packet.type === 'request' && this.role === 'node' && this.#storeFailing()) {
      // It could not store its commitment (a full disk): no machine, no write, no inference for it.
      this.#storeRefused++;
      return;
    }
    if (packet.type === 'request' && this.role === 'node' && this.#draining) return; // stopping
    if (packet.type === 'request' && this.role === 'node' && this.#keyInUseElsewhere()) {
      // The other copy of the key may take it too: two commitments under one key are evidence against it.
      this.#keyElsewhereRefused++;
      return;
    }
    if (packet.type === 'request' && !this.#trusts(packet)) {
      // Another author's copy, refused by the machine's observer anyway (NOT_COORDINATOR): refused here,
      // before a machine is made for it, so copies under fresh ids cost no machine waiting for a trusted
      // copy that never comes (unfinished machines are never evicted).
      this.#m.lifecycleRejected.NOT_COORDINATOR = (this.#m.lifecycleRejected.NOT_COORDINATOR ?? 0) + 1;
      this.#refusedFrom.delete(packet.from);
      this.#refusedFrom.add(packet.from);
      if (this.#refusedFrom.size > REFUSED_COORDINATORS_KEPT) {
        const oldest = this.#refusedFrom.values().next().value;
        if (oldest !== undefined) this.#refusedFrom.delete(oldest);
      }
      return;
    }
    if (packet.type === 'request' && this.#wants(packet)) {
      const now = this.#now();
      const t =
        this.role === 'node'
          ? initNode(this.#nodeConfig(), { now, self: this.nodeId, requestId })
          : initFollower(this.#observerConfig(), { now, self: this.nodeId, requestId });
      const h = this.#host(t.state);
      this.#enqueue(requestId, h, async () => {
        await this.#run(h, t);
        await this.#apply(h, { kind: 'packet', now: this.#now(), packet });
        await this.#replayEarly(requestId, h);
      });
      return;
    }
    if (packet.type !== 'request') this.#early.hold(requestId, packet, p.size, this.#now());
  }

  /** Whether the node serves this request packet's author (`--coordinators`; no list: any author). */
  #trusts(request: Packet<'request'>): boolean {
    return this.#observerConfig().trustsCoordinator?.(request.from, request.body) ?? true;
  }

  #wants(request: Packet<'request'>): boolean {
    if (this.#watched.has(request.body.requestId) || this.#o.followAll) return true;
    return this.role === 'node';
  }

  async #replayEarly(requestId: string, hosted: Hosted): Promise<void> {
    for (const packet of this.#early.take(requestId)) {
      await this.#apply(hosted, { kind: 'packet', now: this.#now(), packet });
    }
  }

  #step(state: LifecycleState, event: LifecycleEvent): Transition<LifecycleState> {
    switch (state.role) {
      case 'coordinator':
        if (event.kind !== 'packet' && event.kind !== 'timer' && event.kind !== 'restored') {
          return { state, effects: [] };
        }
        return stepCoordinator(this.#coordinatorConfig, state, event);
      case 'node':
        return stepNode(this.#nodeConfig(), state as NodeState, event);
      case 'follower':
        if (event.kind === 'inference-done' || event.kind === 'inference-failed') {
          return { state, effects: [] };
        }
        return stepFollower(this.#observerConfig(), state as FollowerState, event);
    }
  }

  async #apply(hosted: Hosted, event: LifecycleEvent): Promise<void> {
    if (this.#closed) return;
    if (event.kind === 'packet' && event.packet.type === 'reveal' && hosted.state.role === 'coordinator') {
      const bits = await this.#reembed(hosted.state, event.packet);
      if (this.#closed) return;
      if (bits !== null) event = { ...event, reembedded: bits };
    }
    await this.#run(hosted, this.#step(hosted.state, event));
  }

  /**
   * This coordinator's bits for a reveal (`ReembedConfig`), or null: no embedder, or a reveal the machine
   * would not use bits for (`textToReembed`), stepped in without them at once, or an embedding that failed
   * (logged; the reveal then counts unchecked, as without an embedder). Embeddings wait their turn in
   * `#reembedQueue`, the shortest text first.
   */
  async #reembed(s: CoordinatorState, reveal: Packet<'reveal'>): Promise<string | null> {
    const config = this.#o.reembed;
    if (config === undefined || this.#reembedQueue === null) return null;
    const text = textToReembed(s, reveal, config.embedder);
    if (text === null) return null;
    let full: string;
    try {
      full = await this.#reembedQueue.bits(text, s.requestId);
    } catch {
      return null; // counted and logged by `#embedOnce`, or the node closed
    }
    const pinned = s.request.body.frame.embeddingModel.bits;
    return pinned === config.embedder.bits ? full : toHex(truncateBits(fromHex(full), pinned));
  }

  /** One embedding for `#reembedQueue`: full bits, hex; timed and counted, a failure logged and thrown. */
  async #embedOnce(config: ReembedConfig, text: string, requestId: string): Promise<string> {
    const started = performance.now();
    let full: string;
    try {
      const out = await config.embed(text);
      full = typeof out === 'string' ? out : toHex(out);
    } catch (e) {
      this.#reembedFailed(requestId, String(e));
      throw e;
    }
    if (full.length !== config.embedder.bits / 4) {
      const error = `the embedder gave ${full.length * 4} bits, not ${config.embedder.bits}`;
      this.#reembedFailed(requestId, error);
      throw new Error(error);
    }
    this.#reembedWorks();
    this.#m.reembed.embedded++;
    this.#m.reembed.lastMs = Math.round(performance.now() - started);
    return full;
  }

  /**
   * An embedding failed (the reveal counts unchecked). A spell of failures (a worker that died fails
   * every one) is one warning at its start, then one a minute with how many were not logged
   * (`alsoSinceLastLine`); `metrics().reembed.failing` says it meanwhile.
   */
  #reembedFailed(requestId: string, error: string): void {
    const now = this.#now();
    this.#m.reembed.failed++;
    const m = this.#m.reembed;
    if (m.failing === null) m.failing = { since: now, error };
    else m.failing.error = error;
    const unlogged = this.#reembedLines.take('reembed', now);
    if (unlogged === null) return;
    this.#log({
      level: 'warn',
      msg: 're-embedding a reveal failed: it counts with the bits it claims',
      code: 'REEMBED_FAILED',
      requestId,
      err: error,
      ...(unlogged > 0 ? { alsoSinceLastLine: unlogged } : {}),
    });
  }

  /** An embedding worked: a spell of failures is over (one line says so). */
  #reembedWorks(): void {
    const failing = this.#m.reembed.failing;
    if (failing === null) return;
    this.#m.reembed.failing = null;
    this.#reembedLines.forget('reembed');
    this.#log({
      level: 'info',
      msg: 're-embedding works again',
      failedForMs: this.#now() - failing.since,
    });
  }

  /** Adopt a transition's state and carry out its effects in order. */
  async #run(hosted: Hosted, t: Transition<LifecycleState>): Promise<void> {
    hosted.state = t.state;
    const requestId = t.state.requestId;
    let saved = false;
    for (const fx of t.effects) {
      if (this.#closed) return;
      await this.#effect(hosted, requestId, fx, () => {
        saved = true;
      });
    }
    if (!saved || t.effects.length === 0) await this.#save(hosted);
    this.#notify(requestId, hosted);
  }

  /**
   * Write the machine's state (or delete a finished one), unless the store already holds it. A write that
   * still fails after its retries (a full disk) is counted and rethrown; a successful one clears the
   * failure.
   */
  async #save(hosted: Hosted): Promise<void> {
    try {
      if (await this.#writeRetrying(hosted)) this.#writesWork();
    } catch (e) {
      // Rethrown: the effects after a `persist` barrier must not run when the state is not stored.
      if (typeof e === 'object' && e !== null) this.#storeFailures.add(e);
      this.#storeFailedAt = this.#now();
      this.#storeErrors++;
      this.#storeLastError = String(e);
      this.#storeSpellOf();
      this.#scheduleProbe();
      throw e;
    }
  }

  /** A write worked: a spell of failing writes is over (one line says so). */
  #writesWork(): void {
    this.#storeFailedAt = null;
    this.#probeCancel?.();
    this.#probeCancel = null;
    const spell = this.#storeSpell;
    if (spell === null) return;
    this.#storeSpell = null;
    this.#log({
      level: 'info',
      msg: 'state writes work again',
      failedForMs: this.#now() - spell.since,
      retries: spell.retries,
      failedSteps: spell.failedSteps,
    });
  }

  /** The next probe of the store, `storeRetryMs` from now, unless one is due already. */
  #scheduleProbe(): void {
    if (this.#probeCancel !== null || this.#closed) return;
    this.#probeCancel = this.#scheduler.after(this.#o.storeRetryMs ?? 5_000, () => {
      this.#probeCancel = null;
      void this.#probeStore();
    });
  }

  /**
   * While writes fail, a write of a row of `STORE_PROBE_BYTES` (deleted at once) every `storeRetryMs`:
   * one that works ends the spell, so `failing` (and `/healthz`) says when the disk has room again,
   * whether or not a request comes meanwhile, and stays failing until then (between requests it read as
   * healthy again 5 s after each failure).
   */
  async #probeStore(): Promise<void> {
    if (this.#closed || this.#storeFailedAt === null) return;
    try {
      await this.#store.save(this.nodeId, STORE_PROBE_ID, STORE_PROBE_STATE, this.#now());
      await this.#store.delete(this.nodeId, STORE_PROBE_ID);
    } catch (e) {
      this.#storeLastError = String(e);
      this.#scheduleProbe();
      return;
    }
    if (!this.#closed) this.#writesWork();
  }

  /** The spell of failing writes under way, begun now if there is none. */
  #storeSpellOf(): { since: number; retries: number; failedSteps: number } {
    this.#storeSpell ??= { since: this.#now(), retries: 0, failedSteps: 0 };
    return this.#storeSpell;
  }

  /** `#write`, tried again after each pause of `writeRetriesMs` while it fails (and the node is open). */
  async #writeRetrying(hosted: Hosted): Promise<boolean> {
    const pauses = this.#o.writeRetriesMs ?? WRITE_RETRIES_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#write(hosted);
      } catch (e) {
        const pause = pauses[attempt];
        if (pause === undefined || this.#closed) throw e;
        if (this.#storeSpellOf().retries++ === 0) {
          this.#log({
            level: 'warn',
            msg: 'machine state write failed, trying again',
            requestId: hosted.state.requestId,
            attempt: attempt + 1,
            err: String(e),
          });
        }
        await this.#pause(pause);
        if (this.#closed) throw e;
      }
    }
  }

  /** Wait `ms` on the scheduler; `close()` ends the wait at once. */
  #pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let cancel: (() => void) | null = null;
      let ended = false;
      const end = () => {
        ended = true;
        this.#pauses.delete(end);
        cancel?.();
        resolve();
      };
      this.#pauses.add(end);
      cancel = this.#scheduler.after(ms, end);
      // A scheduler may run `end` at once (ms <= 0): nothing is left to cancel then.
      if (ended) cancel();
    });
  }

  /**
   * Whether a write to the store failed and none has worked since: no request is picked up meanwhile,
   * and the heartbeat advertises no room (a request taken would fail at its first write, and the relay
   * counted the node as serving). The probe (`#probeStore`, every `storeRetryMs`) finds when writes
   * work again.
   */
  #storeFailing(): boolean {
    return this.#storeFailedAt !== null;
  }

  /**
   * Whether the node takes no new request now: its store fails, its key is in use elsewhere, or it is
   * stopping (`drain`).
   */
  #refusesWork(): boolean {
    return (
      this.#draining ||
      this.#storeFailing() ||
      this.#keyInUseElsewhere() ||
      this.#embedderDown() !== null ||
      this.#engineFailed() !== null
    );
  }

  /** See `NodeMetrics.engineFailed`. */
  #engineFailed(): string | null {
    // (`engine?.`: test doubles of the queue may carry none.)
    return this.#o.serving?.queue.engine?.failed?.message ?? null;
  }

  /** See `NodeMetrics.embedderDown`. */
  #embedderDown(): NodeMetrics['embedderDown'] {
    const down = this.#o.serving?.queue.embedder?.down ?? null;
    return down === null ? null : { ...down };
  }

  /**
   * The requests this node owes work to: computing an output, or committed to one and not yet revealed
   * (a member of the seal that does not reveal counts as having withheld it, against its reputation).
   */
  duties(): number {
    let n = 0;
    for (const { state: s } of this.#machines.values()) {
      if (
        s.role === 'node' &&
        s.outcome === null &&
        (s.work.phase === 'inferring' || s.work.phase === 'committed')
      )
        n++;
    }
    return n;
  }

  /**
   * Before a stop: take no new request (and advertise no room, at once), and wait, at most `timeoutMs`,
   * until the node owes no request work (`duties`): each computes, commits and reveals as it would, so a
   * stop costs the node no withheld reveal. A request still being computed whose reveal could be due
   * after that (a long `maxTimeMs`) is given up now, before it commits: uncommitted, it costs nothing,
   * while a commitment the stop then left unrevealed would count as withheld. Resolves, once what was
   * finished is published, with how many are left unfinished (0: none).
   */
  async drain(timeoutMs: number): Promise<number> {
    this.#draining = true;
    const end = this.#now() + timeoutMs;
    for (const hosted of this.#machines.values()) {
      const s = hosted.state;
      if (s.role !== 'node' || s.outcome !== null || s.work.phase !== 'inferring') continue;
      const request = s.request?.packet.body;
      if (request && request.createdAt + request.frame.maxTimeMs + request.frame.revealWindowMs > end) {
        this.#giveUpInference(hosted, 'NODE_STOPPING');
      }
    }
    if (this.#o.heartbeat) {
      await this.publishHeartbeat().catch((e: unknown) =>
        this.#log({ level: 'warn', msg: 'heartbeat failed', err: String(e) }),
      );
    }
    while (!this.#closed && this.duties() > 0 && this.#now() < end) {
      await new Promise<void>((resolve) => this.#scheduler.after(Math.min(100, end - this.#now()), resolve));
    }
    // A machine's state moves before its effects run (its reveal is persisted, then signed and sent): what
    // is under way is finished before a stop closes the node.
    await this.settled();
    return this.duties();
  }

  /** Stop a running inference and end its machine as failed (`reason`): it commits to nothing. */
  #giveUpInference(hosted: Hosted, reason: string): void {
    hosted.inference?.abort();
    hosted.inference = null;
    const requestId = hosted.state.requestId;
    this.#enqueue(requestId, hosted, () =>
      this.#apply(hosted, { kind: 'inference-failed', now: this.#now(), requestId, reason }),
    );
  }

  /**
   * Whether another process signing with this key was heard within `KEY_ELSEWHERE_MS`. The first look
   * past a spell (or its timer) says it is over.
   */
  #keyInUseElsewhere(): boolean {
    const active = this.#keyElsewhere !== null && this.#now() - this.#keyElsewhere.heardAt < KEY_ELSEWHERE_MS;
    if (!active && this.#keyElsewhereSince !== null) this.#keyElsewhereOver(this.#keyElsewhereSince);
    return active;
  }

  /** A spell of KEY_IN_USE_ELSEWHERE is over: one line says so, and how long this node took no request. */
  #keyElsewhereOver(since: number): void {
    this.#keyElsewhereSince = null;
    this.#keyElsewhereCancel?.();
    this.#keyElsewhereCancel = null;
    this.#log({
      level: 'info',
      msg: 'key no longer in use elsewhere: taking requests again',
      lastedMs: this.#now() - since,
      lastHeardAt: new Date(this.#keyElsewhere?.heardAt ?? since).toISOString(),
      refused: this.#keyElsewhereRefused - this.#keyElsewhereRefusedBefore,
    });
  }

  /**
   * A heartbeat signed with this node's key: its own coming back (a Gun relay hands packets back), one of
   * a previous run of it (made before this one started: gossip and Gun keep them a while), or one of
   * another process holding the key: two copies of one key each sign commitments for the same requests,
   * which the network takes as evidence against the key, so this copy takes no request until the other
   * has been silent for `KEY_ELSEWHERE_MS`, and says so (once each time it starts hearing it).
   */
  #ownKeyHeard(id: string, body: HeartbeatBody): void {
    if (this.#ownHeartbeats.has(id)) return;
    if (this.#startedAt === null || body.createdAt < this.#startedAt) return;
    this.#keyElsewhereFound({ addresses: body.addresses.slice(0, 4), software: body.software }, 'heartbeat');
  }

  /** Another process signs with this key, found by `how`: noted, and said once a spell. */
  #keyElsewhereFound(
    other: { addresses: string[]; software: string | null },
    how: 'heartbeat' | Evidence['kind'],
    requestId?: string,
  ): void {
    const already = this.#keyInUseElsewhere();
    const last = this.#keyElsewhere;
    // Evidence says nothing of where the copy is: what a heartbeat of it said is kept.
    this.#keyElsewhere =
      how === 'heartbeat' || last === null
        ? { heardAt: this.#now(), ...other }
        : { ...last, heardAt: this.#now() };
    // Its end is said when it comes, even if nothing asks (a margin past it, for the clock's rounding).
    this.#keyElsewhereCancel?.();
    this.#keyElsewhereCancel = this.#closed
      ? null
      : this.#scheduler.after(KEY_ELSEWHERE_MS + 100, () => {
          this.#keyElsewhereCancel = null;
          this.#keyInUseElsewhere();
        });
    if (already) return;
    this.#keyElsewhereSince = this.#now();
    this.#keyElsewhereRefusedBefore = this.#keyElsewhereRefused;
    this.#log({
      level: 'error',
      msg: "another process signs with this node's key",
      code: 'KEY_IN_USE_ELSEWHERE',
      foundBy: how,
      ...(requestId === undefined ? {} : { requestId }),
      addresses: this.#keyElsewhere.addresses,
      software: this.#keyElsewhere.software,
      hint: `two copies of one key commit twice to the same requests, evidence against the key: stop one (this one takes no request until it has heard none for ${KEY_ELSEWHERE_MS / 1000} s)`,
    });
  }

  /**
   * The write of `#save`; false when the store already held it. A finished `node` machine that may have
   * signed a commitment is written finished and deleted at the end of its replay window (see `start()`).
   * What is written is `durableState`: without the reveals of nodes outside the seal (or waiting for it),
   * which nothing needs to resume, so a step that only took such a reveal in writes nothing, and a flood
   * of them writes no more than the machine's other steps do (it used to rewrite every reveal held with
   * each new one: n reveals, n²/2 written).
   */
  async #write(hosted: Hosted): Promise<boolean> {
    const s = hosted.state;
    if (s.outcome !== null && mayHaveSigned(s)) {
      const text = serializeState(durableState(s));
      if (text === hosted.stored) return false;
      await this.#store.save(this.nodeId, s.requestId, text, this.#now());
      hosted.stored = text;
      this.#forgetAt(s.requestId, s.outcome.at + REPLAY_WINDOW_MS);
      return true;
    }
    if (s.outcome !== null) {
      if (hosted.stored === null) return false;
      await this.#store.delete(this.nodeId, s.requestId);
      hosted.stored = null;
      return true;
    }
    const text = serializeState(durableState(s));
    if (text === hosted.stored) return false;
    await this.#store.save(this.nodeId, s.requestId, text, this.#now());
    hosted.stored = text;
    return true;
  }

  /** Delete a finished machine from the store at `at` (once: a later call for it changes nothing). */
  #forgetAt(requestId: string, at: number): void {
    if (this.#forget.has(requestId)) return;
    const cancel = this.#scheduler.after(at - this.#now(), () => {
      this.#forget.delete(requestId);
      if (this.#closed) return;
      const hosted = this.#machines.get(requestId);
      if (hosted && hosted.state.outcome === null) return;
      if (hosted) hosted.stored = null;
      this.#store
        .delete(this.nodeId, requestId)
        .catch((e: unknown) =>
          this.#log({ level: 'warn', msg: 'deleting a finished machine failed', requestId, err: String(e) }),
        );
    });
    this.#forget.set(requestId, cancel);
  }

  #notify(requestId: string, hosted: Hosted): void {
    if (!this.#listeners.has(requestId)) return;
    this.#listeners.emit(requestId, lifecycleStatus(hosted.state), (e) =>
      this.#log({ level: 'warn', msg: 'status listener threw', err: String(e) }),
    );
  }

  async #effect(hosted: Hosted, requestId: string, fx: Effect, markSaved: () => void): Promise<void> {
    switch (fx.kind) {
      case 'persist':
        await this.#save(hosted);
        markSaved();
        return;
      case 'publish': {
        const packet = (await signPacket(this.#o.key, fx.packetType, fx.body as never)) as AnyPacket;
        await this.#broadcast(packet);
        this.#m.published[packet.type] = (this.#m.published[packet.type] ?? 0) + 1;
        this.#logPublished(hosted, fx);
        await this.#o.onPacket?.({ id: fx.id, packet, own: true });
        // Loopback: the machine expects to see its own signed packet.
        await this.#run(hosted, this.#step(hosted.state, { kind: 'packet', now: this.#now(), packet }));
        return;
      }
      case 'set-timer': {
        hosted.timers.get(fx.name)?.();
        const cancel = this.#scheduler.after(fx.at - this.#now(), () => {
          hosted.timers.delete(fx.name);
          this.#enqueue(requestId, hosted, () =>
            this.#apply(hosted, { kind: 'timer', now: this.#now(), name: fx.name }),
          );
        });
        hosted.timers.set(fx.name, cancel);
        return;
      }
      case 'cancel-timer':
        hosted.timers.get(fx.name)?.();
        hosted.timers.delete(fx.name);
        return;
      case 'start-inference':
        this.#startInference(hosted, fx);
        return;
      case 'embed-claims':
        this.#embedClaims(hosted, fx);
        return;
      case 'cancel-inference':
        hosted.inference?.abort();
        hosted.inference = null;
        return;
      case 'verdict':
        this.#m.verdicts++;
        this.#logVerdict(hosted, fx);
        this.#o.onVerdict?.(requestId, fx);
        return;
      case 'evidence': {
        this.#m.evidence++;
        const own = fx.evidence.nodeId === this.nodeId;
        // Against other keys: a line a minute for each kind, with how many were not logged since (any key
        // can sign two commits for every request it hears, and a line each flooded every node's log).
        const unlogged = own ? 0 : this.#evidenceLine(fx.evidence.kind, fx.evidence.nodeId);
        if (unlogged === null) {
          this.#o.onEvidence?.(requestId, fx.evidence);
          return;
        }
        this.#log({
          level: 'warn',
          msg: 'evidence',
          requestId,
          kind: fx.evidence.kind,
          against: fx.evidence.nodeId,
          ...(own
            ? { hint: "against this node's own key: a copy of it runs elsewhere (KEY_IN_USE_ELSEWHERE)" }
            : {}),
          ...(unlogged > 0 ? { alsoSinceLastLine: unlogged } : {}),
        });
        // Two packets of this node's key that conflict: another process holds the key (this one never
        // signs twice for a request, across restarts included), whether or not its heartbeats reach here.
        if (fx.evidence.nodeId === this.nodeId && fx.evidence.kind !== 'invalid-verdict') {
          this.#keyElsewhereFound({ addresses: [], software: null }, fx.evidence.kind, requestId);
        }
        this.#o.onEvidence?.(requestId, fx.evidence);
        return;
      }
      case 'rejected':
        this.#m.lifecycleRejected[fx.code] = (this.#m.lifecycleRejected[fx.code] ?? 0) + 1;
        if (fx.code === 'REEMBED_CLAIM_FALSE') this.#claimFalse(hosted, fx.reason);
        return;
      case 'done':
      case 'expired': {
        if (fx.kind === 'done' && SKIPS.has(fx.reason)) {
          const reason = fx.reason as NodeSkipReason;
          this.#m.skipped[reason] = (this.#m.skipped[reason] ?? 0) + 1;
        }
        if (fx.kind === 'expired') {
          this.#m.expired++;
          if (this.#logsRequest(hosted.state)) {
            // A node committed that never heard the seal cannot tell "not sealed" from "sealed while it
            // was away or cut off": if it was a member, the verdict counts its reveal as withheld.
            const unheard =
              fx.reason === 'not-sealed' &&
              hosted.state.role === 'node' &&
              hosted.state.work.phase === 'committed';
            this.#log({
              level: 'info',
              msg: 'request expired',
              requestId,
              reason: fx.reason,
              ...(unheard
                ? {
                    hint: 'committed, and no seal was heard by its deadline: it may have been sealed while this node was stopped or cut off, which counts its reveal as withheld (a stop finishes committed requests first)',
                  }
                : {}),
            });
          }
        }
        hosted.finishedAt = this.#now();
        // Watched until now: once finished, a replay of its request must not start another machine.
        this.#watched.delete(requestId);
        // Only a machine that may have signed: requests cost nothing to make, and a flood of them that
        // each finish at once would push out of this bounded set the requests this node served.
        if (mayHaveSigned(hosted.state)) this.#finished.set(requestId, true, hosted.finishedAt);
        for (const cancel of hosted.timers.values()) cancel();
        hosted.timers.clear();
        hosted.inference?.abort();
        hosted.inference = null;
        this.#o.onFinished?.(requestId, { kind: fx.kind, reason: fx.reason });
        const linger = this.#o.lingerMs ?? 60_000;
        this.#scheduler.after(linger, () => {
          if (this.#machines.get(requestId) === hosted) this.#machines.delete(requestId);
        });
        return;
      }
    }
  }

  /**
   * Embed the texts a verdict's claims name (`embed-claims`) beside the machine, as an inference runs:
   * its other events, and other requests, go on meanwhile; the answer is its next event. The machine
   * asks only with this node's embedder in its config; a node closed meanwhile answers nothing (a
   * restart asks again). An embedder that never answers leaves the machine open with no timer: the
   * watchdog expires it past its request's windows, unattested.
   */
  #embedClaims(hosted: Hosted, fx: EmbedClaimsEffect): void {
    const requestId = fx.requestId;
    const claims = this.#claims;
    const answer = (result: { ok: true; bits: Record<string, string> } | { ok: false; error: string }) => {
      if (this.#closed || this.#machines.get(requestId) !== hosted) return;
      if (!result.ok) this.#claimsNotEmbedded(requestId, result.error);
      this.#enqueue(requestId, hosted, async () => {
        const base = { now: this.#now(), requestId, verdictDigest: fx.verdictDigest };
        const event: ClaimsEvent = result.ok
          ? { kind: 'claims-embedded', ...base, bits: result.bits }
          : { kind: 'claims-not-embedded', ...base, reason: result.error };
        const before = hosted.state.outcome;
        await this.#apply(hosted, event);
        // Counted once, by the answer that ended the machine (a second one, after a resume asked again,
        // is refused and changes nothing).
        const reason = before === null ? hosted.state.outcome?.reason : undefined;
        const m = this.#m.claimChecks;
        if (reason === 'verified') m.held++;
        else if (reason === 'reembed-claim-false') m.false++;
        else if (reason === 'reembed-claims-unchecked') m.failed++;
      });
    };
    if (claims === null) {
      answer({ ok: false, error: 'this node has no embedder to check claims with' });
      return;
    }
    hosted.checkingClaims = true;
    void claims
      .embed(fx)
      .catch((e: unknown) => ({ ok: false as const, error: String(e) }))
      .then((result) => {
        hosted.checkingClaims = false;
        answer(result);
      });
  }

  /** A verdict's claim was found false (REEMBED_CLAIM_FALSE): a line a minute, the rest counted. */
  #claimFalse(hosted: Hosted, reason: string): void {
    const unlogged = this.#claimLines.take('false', this.#now());
    if (unlogged === null) return;
    const s = hosted.state;
    this.#log({
      level: 'warn',
      msg: "a verdict's re-embedding claim is not its text's embedding here: not attested",
      code: 'REEMBED_CLAIM_FALSE',
      requestId: s.requestId,
      coordinator: s.role === 'node' ? (s.request?.packet.from ?? null) : null,
      detail: reason,
      ...(unlogged > 0 ? { alsoSinceLastLine: unlogged } : {}),
    });
  }

  /** The texts a verdict's claims name could not be embedded: the verdict is not attested (a line a minute). */
  #claimsNotEmbedded(requestId: string, error: string): void {
    const unlogged = this.#claimLines.take('failed', this.#now());
    if (unlogged === null) return;
    this.#log({
      level: 'warn',
      msg: "embedding the texts of a verdict's re-embedding claims failed: the verdict is not attested",
      code: 'REEMBED_FAILED',
      requestId,
      err: error,
      ...(unlogged > 0 ? { alsoSinceLastLine: unlogged } : {}),
    });
  }

  #startInference(hosted: Hosted, fx: Extract<Effect, { kind: 'start-inference' }>): void {
    const serving = this.#o.serving;
    if (!serving) return;
    const abort = new AbortController();
    hosted.inference?.abort();
    hosted.inference = abort;
    this.#m.inferences.started++;
    const request =
      fx.input.kind === 'prompt'
        ? { prompt: fx.input.prompt, params: fx.params, signal: abort.signal }
        : { messages: fx.input.messages, params: fx.params, signal: abort.signal };
    serving.queue
      .submit({ requestId: fx.requestId, deadline: fx.deadline, request, embed: true })
      .then((r) => {
        if (abort.signal.aborted) {
          this.#m.inferences.dropped++;
          return;
        }
        hosted.inference = null;
        hosted.inferred = { inferenceMs: r.finishedAt - r.startedAt, tokens: r.tokens };
        this.#m.inferences.done++;
        this.#m.inferences.tokens += r.tokens;
        this.#m.inferences.lastTokensPerSecond = r.tokensPerSecond;
        if (!r.bEmbedding) throw new Error('the inference queue returned no embedding');
        const bEmbedding = toHex(r.bEmbedding);
        const salt = toHex(this.#random(32));
        const model = fx.model;
        this.#enqueue(fx.requestId, hosted, () =>
          this.#apply(hosted, {
            kind: 'inference-done',
            now: this.#now(),
            requestId: fx.requestId,
            model,
            output: r.text,
            bEmbedding,
            salt,
            finishReason: r.finishReason,
            ...(r.promptTokens === undefined
              ? {}
              : { usage: { promptTokens: r.promptTokens, completionTokens: r.tokens } }),
          }),
        );
      })
      .catch((e: unknown) => {
        if (abort.signal.aborted) {
          this.#m.inferences.dropped++;
          return;
        }
        hosted.inference = null;
        const reason = (e as { code?: string })?.code ?? String(e);
        const decline = declineOf(e);
        if (decline === undefined) this.#m.inferences.failed++;
        else this.#m.inferences.declined++;
        // The code goes into the machine; the log says why too. A request the model cannot run (a prompt
        // longer than its context) is declined, signed, rather than failed in silence.
        this.#log(
          decline === undefined
            ? {
                level: 'warn',
                msg: 'inference failed',
                requestId: fx.requestId,
                reason,
                err: e instanceof Error ? e.message : String(e),
              }
            : {
                level: 'info',
                msg: 'request declined: the prompt does not fit the model context',
                requestId: fx.requestId,
                model: fx.model.id,
                promptTokens: decline.promptTokens,
                contextTokens: decline.contextTokens,
              },
        );
        this.#enqueue(fx.requestId, hosted, () =>
          this.#apply(hosted, {
            kind: 'inference-failed',
            now: this.#now(),
            requestId: fx.requestId,
            reason,
            ...(decline === undefined ? {} : { decline }),
          }),
        );
      });
  }

  /**
   * The states of the machines hosted: open ones, and finished ones while they linger (`lingerMs`), as
   * a node that gave up on a verdict still offers its reveal (`unanswered`).
   */
  *#hostedStates(): Iterable<LifecycleState> {
    for (const h of this.#machines.values()) yield h.state;
  }

  /**
   * Publish again what a machine published before (`unanswered`): signed again (the same bytes: Ed25519
   * is deterministic), sent as a deliberate second publication; not fed back, not passed to `onPacket`
   * (both saw it the first time). Resolves with how many went out on at least one transport.
   */
  async #reannounce(state: LifecycleState, outgoing: Outgoing[], reason: ReannounceReason): Promise<number> {
    let sent = 0;
    for (const o of outgoing) {
      if (this.#closed) break;
      try {
        const packet = await this.#signedAgain(o);
        if (this.#closed) break;
        if (!(await this.#broadcast(packet, true))) continue;
        sent++;
        const m = this.#m.reannounced;
        m.byType[o.packetType] = (m.byType[o.packetType] ?? 0) + 1;
        m.byReason[reason] = (m.byReason[reason] ?? 0) + 1;
      } catch (e) {
        this.#log({ level: 'warn', msg: 're-announcing failed', requestId: state.requestId, err: String(e) });
      }
    }
    return sent;
  }

  /**
   * Whether a line is logged for evidence of `kind` against another key: null when not (one was logged
   * less than `EVIDENCE_LINE_EVERY_MS` ago; counted), otherwise how many were not logged since the last.
   * The first against a key this node has heard a heartbeat of (a node of the network, not a key made
   * for the packet) is logged whatever the minute: throwaway keys' evidence does not hide it.
   */
  #evidenceLine(kind: Evidence['kind'], against: string): number | null {
    const now = this.#now();
    const known = `${kind}:${against}`;
    if (this.#heartbeats.has(against) && !this.#evidenceKnownLogged.has(known)) {
      this.#evidenceKnownLogged.add(known);
      if (this.#evidenceKnownLogged.size > EVIDENCE_KNOWN_KEPT) {
        const oldest = this.#evidenceKnownLogged.values().next().value;
        if (oldest !== undefined) this.#evidenceKnownLogged.delete(oldest);
      }
      return 0;
    }
    return this.#evidenceLines.take(kind, now);
  }

  /**
   * A coordinator's answer to `packet` when it shows its sender missed the seal or the verdict
   * (`lateAnswer`), bounded (`LateAnswerBudget`, members and non-members apart): its own packets signed
   * again, the members' forwarded as they came, in order; none older than the clock window (peers refuse
   * them as stale), and nothing when the seal itself is.
   */
  async #answerLate(state: LifecycleState, packet: AnyPacket): Promise<void> {
    if (state.role !== 'coordinator' || this.#reannouncer === null || this.#closed) return;
    const now = this.#now();
    const answer = lateAnswer(state, packet, now);
    const to = state.seal?.body.members.some((m) => m.nodeId === packet.from) ? 'member' : 'non-member';
    if (answer.length === 0 || this.#late.answeredLately(state.requestId, to, now)) return;
    const oldest = now - this.#maxAnnounceAgeMs();
    const createdAt = (a: LateAnswerPacket) =>
      a.kind === 'again' ? a.outgoing.body.createdAt : a.packet.body.createdAt;
    const fresh = answer.filter((a) => createdAt(a) > oldest);
    const first = answer[0];
    if (fresh.length === 0) return;
    if (first?.kind === 'again' && first.outgoing.packetType === 'seal' && fresh[0] !== first) return;
    const count = (outcome: 'sent' | 'dropped') => {
      const m = this.#m;
      if (to === 'member') m[outcome === 'sent' ? 'lateAnswers' : 'lateAnswersDropped']++;
      else m[outcome === 'sent' ? 'lateAnswersToNonMembers' : 'lateAnswersToNonMembersDropped']++;
    };
    if (this.#late.full(to, now)) return count('dropped');
    // The members' packets forwarded up to LATE_ANSWER_FORWARD_BYTES (commits, then reveals, as they
    // come): a reveal past it is left out (its receiver then checks the verdict by digest only), so
    // members' long reveals do not make every late commit a broadcast of megabytes. Everything sent,
    // the seal and the verdict too, counts in the window's bytes.
    const sent: AnyPacket[] = [];
    let forwarded = 0;
    let bytes = 0;
    try {
      for (const a of fresh) {
        const p = a.kind === 'again' ? await this.#signedAgain(a.outgoing) : a.packet;
        const kept = a.kind === 'again' ? this.#resigned.get(a.outgoing.id) : undefined;
        const size = kept?.bytes ?? encodePacket(p).length;
        if (a.kind === 'forward') {
          if (forwarded + size > this.#late.forwardBytes) continue;
          forwarded += size;
        }
        sent.push(p);
        bytes += size;
      }
    } catch (e) {
      this.#log({ level: 'warn', msg: 're-announcing failed', requestId: state.requestId, err: String(e) });
      return;
    }
    if (!this.#late.take(state.requestId, to, bytes, now)) return count('dropped');
    count('sent');
    for (const p of sent) {
      if (this.#closed) return;
      if (await this.#broadcast(p, true)) {
        const m = this.#m.reannounced;
        m.byType[p.type] = (m.byType[p.type] ?? 0) + 1;
        m.byReason['late-packet'] = (m.byReason['late-packet'] ?? 0) + 1;
      }
    }
  }

  /** Packets older than this are published again by no one (`ReannounceOptions.maxAgeMs`). */
  #maxAnnounceAgeMs(): number {
    const o = this.#o.reannounce;
    return (o === false ? undefined : o?.maxAgeMs) ?? LIMITS.defaultSkewMs;
  }

  /**
   * `o` signed by this node's key: kept for the next time (a packet is published again several times,
   * every machine's at each peer's join), so a pass over thousands of machines signs each once.
   */
  async #signedAgain(o: Outgoing): Promise<AnyPacket> {
    const kept = this.#resigned.get(o.id);
    if (kept !== undefined) return kept.packet;
    const packet = (await signPacket(this.#o.key, o.packetType, o.body as never)) as AnyPacket;
    const bytes = encodePacket(packet).length;
    if (bytes > RESIGNED_BYTES) return packet;
    this.#resigned.set(o.id, { packet, bytes });
    this.#resignedBytes += bytes;
    while (this.#resigned.size > RESIGNED_KEPT || this.#resignedBytes > RESIGNED_BYTES) {
      const [oldest, entry] = this.#resigned.entries().next().value as [string, { bytes: number }];
      this.#resigned.delete(oldest);
      this.#resignedBytes -= entry.bytes;
    }
    return packet;
  }

  /** Publish on every transport that carries the packet's topic; true when one took it. */
  async #broadcast(packet: AnyPacket, again = false): Promise<boolean> {
    const bytes = encodePacket(packet);
    const topic = topicOfPacketType(packet.type);
    const carriers = this.#o.transports.filter((t) => t.topics === undefined || t.topics.includes(topic));
    const options = again
      ? { createdAt: packet.body.createdAt, again }
      : { createdAt: packet.body.createdAt };
    const results = await Promise.allSettled(carriers.map((t) => t.publish(topic, bytes, options)));
    for (const r of results) {
      if (r.status === 'rejected') {
        this.#m.publishErrors++;
        this.#log({ level: 'warn', msg: 'publish failed', type: packet.type, err: String(r.reason) });
      }
    }
    return results.some((r) => r.status === 'fulfilled');
  }
}

/**
 * A node's outcome in a verdict: `accepted` (its output is in the accepted cluster, the winner's),
 * `rejected` with the verdict's reason for it (a duplicate reveal aside), or `not-sealed` (the seal left
 * it out); and whether its output is the winner.
 */
function outcomeOf(
  v: Verdict,
  nodeId: string,
): { outcome: 'accepted' | 'rejected' | 'not-sealed'; reason: RejectReason | null; winner: boolean } {
  const winner = v.winner?.nodeId === nodeId;
  if (v.accepted.some((m) => m.nodeId === nodeId)) return { outcome: 'accepted', reason: null, winner };
  const rejected = v.rejected.find((r) => r.nodeId === nodeId && r.reason !== 'DUPLICATE_REVEAL');
  if (rejected === undefined || rejected.reason === 'NOT_SEALED') {
    return { outcome: 'not-sealed', reason: null, winner };
  }
  return { outcome: 'rejected', reason: rejected.reason, winner };
}

/**
 * The decline an engine's error makes: a prompt that fills the model's context (`PROMPT_TOO_LONG` with its
 * token counts). Anything else is the node's own failure: undefined.
 */
export function declineOf(e: unknown): InferenceDecline | undefined {
  if (!isInferenceError(e, 'PROMPT_TOO_LONG')) return undefined;
  const { promptTokens, contextSize } = e.details;
  if (typeof promptTokens !== 'number' || typeof contextSize !== 'number') return undefined;
  return { reason: 'context-exceeded', promptTokens, contextTokens: contextSize };
}

/** Whether a machine is a node's that went past picking up its request: it may have signed a commitment. */
function mayHaveSigned(s: LifecycleState): boolean {
  return s.role === 'node' && s.work.phase !== 'idle' && s.work.phase !== 'none';
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
