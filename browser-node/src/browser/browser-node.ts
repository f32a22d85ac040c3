import type { AnyPacket, EmbeddingModelRef, ModelRef, VerdictEffect } from '@synod/shared';
import type { LoadProgress } from '../inference/engine.ts';
import { InferenceQueue, type InferenceQueueOptions } from '../inference/queue.ts';
import { coordinatorTrust } from '../node/coordinator-trust.ts';
import type { MachineStore } from '../node/machine-store.ts';
import { type NodeMetrics, SynodNode } from '../node/synod-node.ts';
import type { GossipsubUpkeepStats } from '../p2p/gossipsub-upkeep.ts';
import {
  type BootstrapFailureLine,
  createWakuRelayTransport,
  type WakuRelayTransport,
} from '../p2p/waku-relay.ts';
import { FollowerStoreView, inFlightNodeWork } from './in-flight.ts';
import { KEY_STORAGE_ITEM, loadOrCreateBrowserKey, storedNodeId } from './key-store.ts';
import { openTabStore } from './reopening-store.ts';
import { acquireTabLock, type TabLock, tabLockHeld } from './tab-lock.ts';
import { WorkerInference } from './worker-inference.ts';
import { type TimerPlacement, WorkerScheduler } from './worker-scheduler.ts';

/**
 * A Synod node in a browser tab: the same `SynodNode` driver as headless nodes, with browser adapters.
 *
 *   identity     sealed Ed25519 key in localStorage (key-store.ts), opened with the contributor's passphrase;
 *                run by one tab at a time (tab-lock.ts: two tabs serving one key would equivocate)
 *   transport    Waku relay (libp2p gossipsub) dialing headless nodes' WebSocket multiaddrs
 *   inference    one Web Worker running wllama (the GGUF) and USE Lite (the embedder) (inference-worker.ts)
 *   queue        the node's deadline-ordered `InferenceQueue`, with a pause gate for the serve toggle
 *   store        lifecycle machines in IndexedDB (machine-store-idb.ts, reopened if the browser closes it:
 *                reopening-store.ts)
 *   timers       heartbeats, resume delays, the watchdog, the machines' deadlines, the bootstrap redial
 *                and gossipsub's own heartbeat and score decay (p2p/gossipsub-upkeep.ts) in a small
 *                dedicated worker of their own (worker-scheduler.ts), which a hidden tab's timer
 *                throttling does not slow; on the page's own timers where no worker starts
 *                (`status().timers` says why)
 *
 * Serving is opt-in: after `unlock()` the node follows the network (role `follower`); `setServing(true)`
 * loads the models (with progress), measures throughput and restarts the driver in role `node`;
 * `setServing(false)` pauses pick-up (in-flight requests finish; the heartbeat advertises no room).
 * Everything a UI or a test needs is in `status()`; `onChange` tells when it changed.
 */
export interface BrowserNodeConfig {
  /** Multiaddrs (`…/ws/p2p/<peer id>`) of headless nodes to dial. */
  bootstrap: string[];
  /**
   * Node ids of the relays whose requests this node serves (node/coordinator-trust.ts): another key's
   * copy of a request is refused. Absent or empty: any author.
   */
  coordinators?: string[];
  /** The GGUF to serve: protocol id, expected sha256, URL on this origin. */
  model: { id: string; fileHash: string; url: string };
  /** URL of wllama's `wllama.wasm`. */
  wllamaWasmUrl: string;
  /** USE Lite: base URL of model.json, shards and vocab.json; base URL of tfjs's WASM files. */
  useLite: { baseUrl: string; wasmPaths: string; bits?: number };
  /** URL of the bundled inference worker (inference-worker.js). */
  workerUrl: string;
  /** Heartbeat interval. Default 10 s. */
  heartbeatMs?: number;
  /** Inference jobs waiting at most. Default 4. */
  maxQueued?: number;
  /** IndexedDB database of the machine store. Default `synod-node`. */
  dbName?: string;
  /** localStorage item of the sealed key. Default `synod.node-key.v1`. */
  keyItem?: string;
  /** scrypt cost of a newly sealed key (default 2^15). */
  scryptN?: number;
  /** Which addresses the transport may dial. Default `loopback` (a public deployment says `any`). */
  dialPolicy?: 'loopback' | 'any';
  software?: string;
}

/**
 * `locked`: no key open (before the first unlock, after Lock, and after an unlock that failed: `error`
 * says why); `starting`: an unlock under way; `locking`: Lock was asked for, the tab takes no new request
 * and finishes those it committed to; `stopped`: the page is going away.
 */
export type BrowserNodePhase = 'locked' | 'starting' | 'running' | 'locking' | 'stopped';

/**
 * How long Lock waits for the requests the tab committed to (their reveals) before it leaves the network
 * anyway; what is left then stays in the tab's IndexedDB and is finished by the next unlock, as after a
 * reload.
 */
export const LOCK_DRAIN_MS = 60_000;

export interface LoadState {
  phase: LoadProgress['phase'] | 'idle' | 'error';
  loaded: number;
  total: number;
  ms: number | null;
  ref: ModelRef | EmbeddingModelRef | null;
  error: string | null;
}

export interface VerdictRecord {
  requestId: string;
  status: 'accepted' | 'no-consensus';
  accepted: string[];
  winner: string | null;
  output: string | null;
  servedHere: boolean;
  agreedHere: boolean;
  check: VerdictEffect['check'];
  at: number;
}

export interface RevealRecord {
  requestId: string;
  output: string;
  bEmbedding: string;
  model: ModelRef;
  at: number;
}

/**
 * The transport's latest warning, with its code: why a bootstrap peer was not reached
 * (`BOOTSTRAP_PEER_MISMATCH`: another peer answers at its address; `BOOTSTRAP_DIAL_FAILED`: the dial
 * failed). Kept until a peer connects (or the tab locks).
 */
export interface TransportWarning {
  code: BootstrapFailureLine['code'];
  /** What happened, with the address and peer ids. */
  message: string;
  /** What to do. */
  hint: string;
  at: number;
}

/** A transport's log line as the page says it. */
export function transportWarningOf(line: BootstrapFailureLine, at = Date.now()): TransportWarning {
  const message =
    line.code === 'BOOTSTRAP_PEER_MISMATCH'
      ? `the bootstrap address ${line.address} is answered by peer ${line.actual}, expected ${line.expected}: not connected`
      : `the bootstrap address ${line.address} could not be dialled (${line.error}): not connected`;
  return { code: line.code, message, hint: line.hint, at };
}

export interface BrowserNodeStatus {
  phase: BrowserNodePhase;
  error: string | null;
  /** The transport's latest warning while no peer is connected (see TransportWarning), else null. */
  transportWarning: TransportWarning | null;
  /** Node id of the stored key (known before unlock), then of the opened key. */
  nodeId: string | null;
  keyCreated: boolean;
  /**
   * Whether requests in flight survive a reload (kept in IndexedDB) or not (memory only: the browser
   * gives the page no IndexedDB); null before unlock.
   */
  persistent: boolean | null;
  role: 'node' | 'follower' | null;
  serving: boolean;
  peerId: string | null;
  peers: string[];
  knownNodes: Array<{ nodeId: string; role: string; models: string[]; at: number }>;
  engine: LoadState;
  embedder: LoadState;
  engineId: string | null;
  capability: { tokensPerSecond: number; embeddingsPerSecond: number } | null;
  served: number;
  /** Requests this tab committed to and has not finished (`SynodNode.openCommitments`). */
  openCommitments: number;
  reveals: RevealRecord[];
  verdicts: VerdictRecord[];
  metrics: NodeMetrics | null;
  /** Where the node's timers run: in their worker, or on the page (throttled in a hidden tab) and why. */
  timers: TimerPlacement;
  /** Gossipsub heartbeats and score decays run on those timers so far (null before the transport starts). */
  gossipUpkeep: GossipsubUpkeepStats | null;
}

const KEEP = 50;

function idleLoad(): LoadState {
  return { phase: 'idle', loaded: 0, total: 0, ms: null, ref: null, error: null };
}

/** The node's queue with the contributor's pause switch: paused, it takes no new request. */
class GatedQueue extends InferenceQueue {
  paused = false;

  constructor(options: InferenceQueueOptions) {
    super(options);
  }

  override get accepting(): boolean {
    return !this.paused && super.accepting;
  }

  override get capacity(): { queued: number; maxQueue: number } {
    const c = super.capacity;
    return this.paused ? { queued: c.queued, maxQueue: 0 } : c;
  }
}

export class BrowserNode {
  readonly config: BrowserNodeConfig;
  #phase: BrowserNodePhase = 'locked';
  #error: string | null = null;
  #transportWarning: TransportWarning | null = null;
  #keyCreated = false;
  #key: Awaited<ReturnType<typeof loadOrCreateBrowserKey>>['key'] | null = null;
  #lock: TabLock | null = null;
  #transport: WakuRelayTransport | null = null;
  #store: MachineStore | null = null;
  #storePersistent: boolean | null = null;
  #node: SynodNode | null = null;
  #inference: WorkerInference | null = null;
  #queue: GatedQueue | null = null;
  #engine: LoadState = idleLoad();
  #embedder: LoadState = idleLoad();
  #capability: { tokensPerSecond: number; embeddingsPerSecond: number } | null = null;
  #serving = false;
  #servingChange: Promise<void> = Promise.resolve();
  #served = 0;
  #reveals: RevealRecord[] = [];
  #verdicts: VerdictRecord[] = [];
  readonly #listeners = new Set<() => void>();
  #changeTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #timers: WorkerScheduler;

  constructor(config: BrowserNodeConfig) {
    this.config = config;
    this.#timers = new WorkerScheduler({
      onFallback: (e) => {
        console.warn(
          `[synod] the node's timers run on the page, slowed while the tab is hidden: ${e.code}`,
          e,
        );
        this.#changed();
      },
    });
  }

  /** Be told (at most every 100 ms) that `status()` changed. Returns an unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Before unlock: how many requests this browser's stored key committed to (in a tab since reloaded or
   * closed) and has not finished while their reveals may still be due, read from this site's IndexedDB.
   * 0 once unlocked (`status().openCommitments` says it then), without a stored key or an IndexedDB.
   */
  async committedBeforeUnlock(): Promise<number> {
    const nodeId = safeStoredNodeId(this.config.keyItem);
    if (nodeId === null || this.#key !== null) return 0;
    const { store, persistent } = await openTabStore(this.config.dbName, nodeId);
    try {
      return persistent ? await inFlightNodeWork(store, nodeId, Date.now()) : 0;
    } finally {
      await store.close();
    }
  }

  /** Whether another tab of this browser runs this node key now (its Web Lock is held, not by this tab). */
  async keyInUseElsewhere(): Promise<boolean> {
    if (this.#lock !== null) return false;
    return tabLockHeld(this.config.keyItem ?? KEY_STORAGE_ITEM).catch(() => false);
  }

  /**
   * Open (or create) the node key, join the network and follow it; or, when requests this tab took
   * before a reload are still in flight, load the models and join as a node that finishes them (serving
   * stays off: it takes no new request).
   */
  async unlock(passphrase: string): Promise<void> {
    if (this.#phase !== 'locked') return;
    this.#phase = 'starting';
    this.#error = null;
    this.#changed();
    try {
      this.#lock = await acquireTabLock(this.config.keyItem ?? KEY_STORAGE_ITEM);
      const opened = await loadOrCreateBrowserKey(passphrase, {
        ...(this.config.keyItem === undefined ? {} : { item: this.config.keyItem }),
        ...(this.config.scryptN === undefined ? {} : { scryptN: this.config.scryptN }),
      });
      this.#key = opened.key;
      this.#keyCreated = opened.created;
      const tabStore = await openTabStore(this.config.dbName, opened.key.nodeId);
      this.#store = tabStore.store;
      this.#storePersistent = tabStore.persistent;
      // Reloaded (or crashed) in the middle of requests this tab took: only a serving driver can finish
      // them (reveal after the seal), so the models load first and the node joins as one, taking
      // nothing new until serving is asked for. Should they fail to load, it follows, and those are lost.
      const inFlight = await inFlightNodeWork(this.#store, opened.key.nodeId, Date.now());
      const resume =
        inFlight > 0 &&
        (await this.#loadModels().then(
          () => true,
          (e: unknown) => {
            console.warn('[synod] the models did not load: requests in flight before the reload are lost', e);
            return false;
          },
        ));
      if (resume) (this.#queue as GatedQueue).paused = true;
      this.#transport = await createWakuRelayTransport({
        bootstrap: this.config.bootstrap,
        dialPolicy: this.config.dialPolicy ?? 'loopback',
        // In the timer worker too: a hidden tab redials a dropped peer on time.
        reconnect: { initialMs: 500, maxMs: 5_000, after: (ms, fn) => this.#timers.after(ms, fn) },
        // Gossipsub's heartbeat and score decay too: a hidden tab keeps its mesh repaired on time.
        upkeep: this.#timers,
        // A spell of failures at a bootstrap address, and its end, in the console as in a node's log.
        log: (line) => {
          if (line.level === 'info') console.info('[synod]', line.msg, line);
          else console.warn('[synod]', line.msg, line);
        },
        // BOOTSTRAP_PEER_MISMATCH (a bootstrap address answered by another peer than it names) and
        // BOOTSTRAP_DIAL_FAILED: said in the status too, as the page cannot read the console; at every
        // change of kind, which the console says at most once a minute.
        onBootstrapFailure: (line) => {
          this.#transportWarning = transportWarningOf(line);
          this.#changed();
        },
      });
      this.#transport.node.addEventListener('peer:connect', () => {
        this.#transportWarning = null;
        this.#changed();
      });
      this.#transport.node.addEventListener('peer:disconnect', () => this.#changed());
      await this.#startDriver(resume ? 'node' : 'follower');
      this.#phase = 'running';
    } catch (e) {
      this.#error = errorText(e);
      // Models loaded for requests in flight, then the join failed: none of it is kept. The tab is
      // locked again (a passphrase typed wrong is typed again), and `error` says why.
      await this.#leave();
      // (Unless the page stopped the node meanwhile.)
      if ((this.#phase as BrowserNodePhase) === 'starting') this.#phase = 'locked';
      throw e;
    } finally {
      this.#changed();
    }
  }

  /**
   * Forget the last unlock's error while locked (the key it was about was replaced or forgotten): it is
   * not shown against the next key.
   */
  clearError(): void {
    if (this.#phase !== 'locked' || this.#error === null) return;
    this.#error = null;
    this.#changed();
  }

  /**
   * Lock the tab without a reload: take no new request, finish those the tab committed to (up to
   * `LOCK_DRAIN_MS`), then leave the network, unload the models and drop the opened key (the sealed key
   * stays stored; unlock opens it again). The requests served and the verdicts seen are kept: they count
   * since the page opened. Resolves with how many committed requests were left unfinished
   * (kept in IndexedDB, finished by the next unlock). Does nothing unless the tab runs.
   */
  async lock(): Promise<number> {
    if (this.#phase !== 'running') return 0;
    this.#phase = 'locking';
    this.#changed();
    // A serving change asked for before the lock is applied first (one asked for after it is refused).
    await this.#servingChange;
    if (this.#queue !== null) this.#queue.paused = true;
    this.#serving = false;
    this.#changed();
    const left = (await this.#node?.drain(LOCK_DRAIN_MS).catch(() => 0)) ?? 0;
    // Stopped meanwhile (the page is going away): the stop has closed everything.
    if ((this.#phase as BrowserNodePhase) !== 'locking') return left;
    await this.#leave();
    // What the tab served and the verdicts it saw stay: the page counts them since it opened.
    this.#phase = 'locked';
    this.#changed();
    return left;
  }

  /** Close what an unlock opened (the node, transport, store, models, tab lock) and drop the key. */
  async #leave(): Promise<void> {
    this.#key = null;
    this.#transportWarning = null;
    this.#keyCreated = false;
    await this.#node?.close().catch(() => {});
    this.#node = null;
    await this.#transport?.close().catch(() => {});
    this.#transport = null;
    await this.#store?.close().catch(() => {});
    this.#store = null;
    this.#storePersistent = null;
    this.#queue?.close();
    this.#queue = null;
    this.#serving = false;
    if (this.#inference !== null) {
      this.#inference.terminate();
      this.#inference = null;
      this.#engine = idleLoad();
      this.#embedder = idleLoad();
      this.#capability = null;
    }
    this.#lock?.release();
    this.#lock = null;
  }

  /** Serve models (load them first if needed) or stop taking requests. Calls are applied in order. */
  setServing(on: boolean): Promise<void> {
    const next = this.#servingChange.then(() => this.#applyServing(on));
    this.#servingChange = next.catch(() => {});
    return next;
  }

  async #applyServing(on: boolean): Promise<void> {
    if (this.#phase !== 'running') throw new Error('unlock the node before serving');
    if (!on) {
      if (this.#queue) this.#queue.paused = true;
      this.#serving = false;
      this.#changed();
      return;
    }
    if (this.#queue === null) await this.#loadModels();
    const queue = this.#queue as GatedQueue;
    queue.paused = false;
    if (this.#node?.role !== 'node') await this.#startDriver('node');
    this.#serving = true;
    this.#changed();
  }

  async #loadModels(): Promise<void> {
    const inference = new WorkerInference(this.config.workerUrl);
    this.#inference = inference;
    const track = (state: LoadState) => (p: LoadProgress) => {
      state.phase = p.phase;
      state.loaded = p.loaded;
      state.total = p.total;
      this.#changed();
    };
    try {
      let t = performance.now();
      this.#engine = { ...idleLoad(), phase: 'fetch' };
      // CPU only (gpuLayers 0): wllama's WebGPU backend needs shader-f16, and its output on a GPU has not
      // been checked against the headless nodes' (see WllamaOptions.gpuLayers).
      inference.engine.configure({
        kind: 'wllama',
        options: { wasmUrl: absolute(this.config.wllamaWasmUrl), threads: 1, gpuLayers: 0 },
      });
      await inference.engine.load(
        {
          id: this.config.model.id,
          fileHash: this.config.model.fileHash,
          url: absolute(this.config.model.url),
        },
        track(this.#engine),
      );
      this.#engine.ms = performance.now() - t;
      this.#engine.ref = inference.engine.model;
      this.#engine.phase = 'ready';
      this.#changed();

      t = performance.now();
      this.#embedder = { ...idleLoad(), phase: 'fetch' };
      inference.embedder.configure({
        kind: 'use-lite',
        options: {
          baseUrl: absolute(this.config.useLite.baseUrl),
          wasmPaths: absolute(this.config.useLite.wasmPaths),
          ...(this.config.useLite.bits === undefined ? {} : { bits: this.config.useLite.bits }),
        },
      });
      await inference.embedder.load(track(this.#embedder));
      this.#embedder.ms = performance.now() - t;
      this.#embedder.ref = inference.embedder.ref;
      this.#embedder.phase = 'ready';
      this.#changed();

      this.#capability = await selfAssess(inference);
      this.#queue = new GatedQueue({
        engine: inference.engine,
        embedder: inference.embedder,
        maxQueued: this.config.maxQueued ?? 4,
        ...this.#capability,
      });
    } catch (e) {
      const failed = this.#engine.phase !== 'ready' ? this.#engine : this.#embedder;
      failed.phase = 'error';
      failed.error = errorText(e);
      inference.terminate();
      this.#inference = null;
      this.#changed();
      throw e;
    }
  }

  /** (Re)start the driver in a role, over the same key, transport and store. */
  async #startDriver(role: 'node' | 'follower'): Promise<void> {
    const key = this.#key;
    const transport = this.#transport;
    const store = this.#store;
    if (key === null || transport === null || store === null) throw new Error('the node is not unlocked');
    // What the node in its last role heard: the network table stays full across a role change.
    const knownNodes = this.#node?.knownNodes() ?? [];
    await this.#node?.close();
    const queue = this.#queue;
    const inference = this.#inference;
    const serving =
      role === 'node' && queue !== null && inference !== null
        ? {
            queue,
            models: [inference.engine.model as ModelRef],
            embedder: inference.embedder.ref,
          }
        : undefined;
    if (role === 'node' && serving === undefined) throw new Error('load the models before serving');
    const node = new SynodNode({
      key,
      role,
      transports: [transport],
      store: role === 'node' ? store : new FollowerStoreView(store),
      scheduler: this.#timers,
      knownNodes,
      ...(serving === undefined ? {} : { serving }),
      observer: coordinatorTrust(this.config.coordinators ?? []),
      heartbeat: {
        intervalMs: this.config.heartbeatMs ?? 10_000,
        software: this.config.software ?? 'synod-browser-node/0.1.0',
        addresses: [],
        tokensPerSecond: this.#capability?.tokensPerSecond ?? 0,
        embeddingsPerSecond: this.#capability?.embeddingsPerSecond ?? 0,
        engine: inference?.engine.id ?? 'none',
        coordinators: this.config.coordinators ?? [],
      },
      onPacket: ({ packet, own }) => this.#onPacket(packet, own),
      onVerdict: (requestId, v) => this.#onVerdict(requestId, v),
      onFinished: () => this.#changed(),
      log: (entry) => {
        if (entry['level'] === 'warn' || entry['level'] === 'error') console.warn('[synod]', entry);
      },
    });
    this.#node = node;
    await node.start();
    this.#changed();
  }

  #onPacket(packet: AnyPacket, own: boolean): void {
    if (own && packet.type === 'reveal') {
      const b = packet.body;
      this.#served++;
      this.#reveals = [
        {
          requestId: b.requestId,
          output: b.output,
          bEmbedding: b.bEmbedding,
          model: b.model,
          at: Date.now(),
        },
        ...this.#reveals,
      ].slice(0, KEEP);
    }
    this.#changed();
  }

  #onVerdict(requestId: string, v: VerdictEffect): void {
    const self = this.#key?.nodeId;
    const record: VerdictRecord = {
      requestId,
      status: v.verdict.status,
      accepted: v.verdict.accepted.map((m) => m.nodeId),
      winner: v.verdict.winner?.nodeId ?? null,
      output: v.verdict.winner?.output ?? null,
      servedHere: this.#reveals.some((r) => r.requestId === requestId),
      agreedHere: v.verdict.accepted.some((m) => m.nodeId === self),
      check: v.check,
      at: Date.now(),
    };
    this.#verdicts = [record, ...this.#verdicts.filter((r) => r.requestId !== requestId)].slice(0, KEEP);
    this.#changed();
  }

  status(): BrowserNodeStatus {
    const node = this.#node;
    const peers = this.#transport?.peers() ?? [];
    return {
      phase: this.#phase,
      error: this.#error,
      // Said while no peer is connected only: another bootstrap address failing beside a connected peer
      // is not why the tab has none.
      transportWarning: peers.length === 0 ? this.#transportWarning : null,
      nodeId: this.#key?.nodeId ?? safeStoredNodeId(this.config.keyItem),
      keyCreated: this.#keyCreated,
      persistent: this.#storePersistent,
      role: node === null ? null : (node.role as 'node' | 'follower'),
      serving: this.#serving,
      peerId: this.#transport?.peerId ?? null,
      peers,
      knownNodes: (node?.knownNodes() ?? []).map((n) => ({
        nodeId: n.nodeId,
        role: n.body.role,
        models: n.body.models.map((m) => m.id),
        at: n.at,
      })),
      engine: { ...this.#engine },
      embedder: { ...this.#embedder },
      engineId: this.#inference?.engine.model ? this.#inference.engine.id : null,
      capability: this.#capability,
      served: this.#served,
      openCommitments: node?.openCommitments() ?? 0,
      reveals: [...this.#reveals],
      verdicts: [...this.#verdicts],
      metrics: node?.metrics() ?? null,
      timers: this.#timers.placement(),
      gossipUpkeep: this.#transport?.stats().upkeep ?? null,
    };
  }

  /** Run one greedy generation and embedding in the worker (the UI's "try it" and tests). */
  async generate(prompt: string, maxTokens = 32) {
    const inference = this.#inference;
    if (inference === null || inference.engine.model === null) throw new Error('no model loaded');
    const result = await inference.engine.generate({ prompt, params: { temperature: 0, maxTokens } });
    const bits = await inference.embedder.embedBits(result.text);
    return { ...result, bEmbedding: [...bits].map((b) => b.toString(16).padStart(2, '0')).join('') };
  }

  async stop(): Promise<void> {
    if (this.#phase === 'stopped') return;
    this.#phase = 'stopped';
    await this.#node?.close();
    this.#node = null;
    this.#queue?.close();
    await this.#transport?.close().catch(() => {});
    this.#transport = null;
    this.#inference?.terminate();
    this.#inference = null;
    await this.#store?.close();
    this.#store = null;
    this.#timers.close();
    this.#lock?.release();
    this.#lock = null;
    this.#changed();
  }

  #changed(): void {
    if (this.#changeTimer !== null) return;
    this.#changeTimer = setTimeout(() => {
      this.#changeTimer = null;
      for (const l of this.#listeners) {
        try {
          l();
        } catch (e) {
          console.warn('[synod] status listener threw', e);
        }
      }
    }, 100);
  }
}

/** The fixed capability workload (tokens/s greedy, embeddings/s one at a time), run in the worker. */
async function selfAssess(
  inference: WorkerInference,
): Promise<{ tokensPerSecond: number; embeddingsPerSecond: number }> {
  await inference.engine.generate({ prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 4 } });
  const gen = await inference.engine.generate({
    prompt: 'Once upon a time',
    params: { temperature: 0, maxTokens: 64 },
  });
  const texts = ['A cat sat on the mat.', 'The sun was shining.', 'Tim found a red ball.', 'She was happy.'];
  await inference.embedder.embedBits(texts[0] as string);
  const start = performance.now();
  for (const t of texts) await inference.embedder.embedBits(t);
  const embeddingsPerSecond = texts.length / (Math.max(performance.now() - start, 1) / 1000);
  return { tokensPerSecond: gen.tokensPerSecond, embeddingsPerSecond };
}

function absolute(url: string): string {
  return new URL(url, globalThis.location?.href).href;
}

function errorText(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}

function safeStoredNodeId(item: string | undefined): string | null {
  try {
    return storedNodeId(globalThis.localStorage, item);
  } catch {
    return null;
  }
}
