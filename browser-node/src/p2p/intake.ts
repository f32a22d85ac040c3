import {
  type AnyPacket,
  decodePacket,
  type Ed25519Backend,
  type ErrorCode,
  isSynodError,
  LIMITS,
  type PacketType,
  sha256Hex,
} from '@synod/shared';
import { ALL_TOPICS, type ContentTopic, packetTypeOfTopic } from './topics.ts';
import type { ForwardVerdict, MessageMeta, Transport, Unsubscribe } from './transport.ts';

/**
 * The intake: the one gate between every transport and the protocol core. For each inbound message,
 * from any transport:
 *
 *  1. drop it at once if its peer is banned, or if it is over the size limit (counted as rejected);
 *  2. drop byte-identical copies of a message already seen (from any transport) without parsing them
 *     again; a copy of bytes already judged invalid counts as invalid again;
 *  3. queue it, ranked by the topic it came on; the queue is bounded, one peer may hold a quarter of
 *     it at most, and when it is full the lowest-ranked message goes (heartbeats first, then requests,
 *     attestations, and last the messages of requests in flight: commits, seals, reveals, verdicts);
 *     among messages of one rank the peer holding the most gives up its newest, when it holds more than
 *     the sender would (a few peers' floods, together filling the queue, cannot crowd out what another
 *     peer sends: each peer keeps a fair share);
 *  4. verify it with `decodePacket` (size, JSON, schema with unknown fields rejected, clock skew
 *     against the injected `now()`, Ed25519 signature), a bounded number at a time, highest rank first;
 *  5. check it came on the topic of its packet type;
 *  6. drop it if its packet id was already accepted (the packet id is the digest of the signed
 *     content, so the same packet re-encoded or brought by another transport is caught here);
 *  7. hand `{id, packet, transport, peer}` to the consumer, awaiting it (a slow consumer holds
 *     verification slots, the queue fills, and low-ranked traffic is shed: backpressure).
 *
 * Relaying across transports: every gossip transport (one that forwards, such as Waku relay) gets each
 * accepted packet on its topics exactly once. When the packet came over that transport, gossip forwards
 * it itself once the intake answers `accept`; when it came another way (Gun, say), the intake publishes
 * it there (`bridge`). A gossip copy that arrives while another copy of the same bytes is still being
 * verified waits for that verdict, and is the one forwarded if the packet holds: answered `ignore`
 * (as a duplicate used to be), it would stay in gossip's seen cache, the bridged publication of the same
 * bytes would then be refused as a duplicate, and the peers behind this node would never get it.
 *
 * Every rejection is counted globally and per peer by its `SynodError` code; a peer whose invalid
 * count reaches `banThreshold` is banned for `banMs` and `onBan` is called (to hang up on it, say).
 * What is no fault of the forwarding peer (a genuine packet stale here or from the future, our own
 * error; a forgery dated outside the window is a bad signature) is not held against it and is answered
 * `ignore`, so honest peers never ban each other over clocks and transit time; a shared space (Gun's
 * graph, `attributable: false`) is counted but never banned; a topic mismatch is not remembered against the bytes, so a copy on the wrong topic cannot poison the
 * genuine one.
 * Every structure is bounded: the queue, both dedup sets (entries and time to live) and the peer
 * table, so a flood cannot grow memory without limit.
 */
export interface IntakeOptions {
  /** The receiver's clock (ms since the epoch), read when a packet is verified. */
  now: () => number;
  /** Gets every verified, first-seen packet. Awaited: while it runs, its slot is busy. */
  deliver: (packet: IntakePacket) => void | Promise<void>;
  /** Clock-skew window for `createdAt`. Default `LIMITS.defaultSkewMs`. */
  skewMs?: number;
  /** Largest message in bytes. Default `LIMITS.maxPacketBytes`. */
  maxBytes?: number;
  /** Most messages waiting for verification. Default 1024. */
  maxQueue?: number;
  /**
   * Most of them from one peer. Default a quarter of `maxQueue`: one peer's flood cannot fill the
   * queue, so what honest peers send still gets a place (a message shed is not asked for again).
   */
  maxQueuePerPeer?: number;
  /** Most verifications (and deliveries) under way at once. Default 8. */
  concurrency?: number;
  /**
   * Publish on the attached gossip transports each packet accepted from another transport (see the
   * class comment). Default true.
   */
  bridge?: boolean;
  /** Most packet ids (and message digests) remembered for dedup. Default 65,536 each. */
  dedupEntries?: number;
  /**
   * How long a packet id is remembered. Default twice the skew window plus a minute: after that a
   * replay is rejected as stale anyway.
   */
  dedupTtlMs?: number;
  /** Invalid messages from one peer before it is banned. Default 64. */
  banThreshold?: number;
  /** How long a ban lasts. Default 10 minutes. */
  banMs?: number;
  /** Most peers with counters kept (least recently seen forgotten first). Default 4096. */
  maxTrackedPeers?: number;
  /** Called once when a peer is banned. */
  onBan?: (peer: PeerRef, stats: PeerStats) => void;
  /** Ed25519 implementation for signature checks (default: the runtime's). */
  backend?: Ed25519Backend;
}

export interface IntakePacket {
  id: string;
  packet: AnyPacket;
  /** Size of the canonical encoding. */
  size: number;
  transport: string;
  peer: string;
  topic: ContentTopic;
}

/** Why a message was rejected: a `SynodError` code, or one of the intake's own. */
export type RejectReason =
  | ErrorCode
  /** The packet's type is not the one its topic carries. */
  | 'TOPIC_MISMATCH'
  /** Verification threw something that is not a SynodError (a bug, not the sender's fault). */
  | 'INTERNAL';

export interface PeerRef {
  transport: string;
  peer: string;
}

export interface PeerStats {
  accepted: number;
  duplicates: number;
  invalid: number;
  invalidByCode: Partial<Record<RejectReason, number>>;
  /** Ban expiry (ms since the epoch), when banned. */
  bannedUntil?: number;
}

export interface IntakeMetrics {
  /** Messages handed to `offer`. */
  offered: number;
  /** When a transport last handed one over (`now()`, ms); null before the first. */
  lastOfferedAt: number | null;
  /** Packets delivered to the consumer. */
  accepted: number;
  /** Copies of a message or packet already seen (any transport). */
  duplicates: number;
  /** Rejections by reason. */
  rejected: Partial<Record<RejectReason, number>>;
  rejectedTotal: number;
  /** Messages shed because the queue was full. */
  dropped: number;
  /** Messages ignored because their peer was banned. */
  fromBanned: number;
  /** Peers banned so far. */
  bans: number;
  /** Deliveries whose consumer threw. */
  consumerErrors: number;
  /** Packets accepted from one transport and published on a gossip transport (see `bridge`). */
  bridged: number;
  /** Of those, publications that failed. */
  bridgeErrors: number;
  queueDepth: number;
  /** The deepest the queue has been. */
  maxQueueDepth: number;
  inFlight: number;
  trackedPeers: number;
}

/** See `Intake.sizes`. */
export interface IntakeSizes {
  digests: number;
  ids: number;
  waitingDigests: number;
  waitingCopies: number;
  queuedPeers: number;
  trackedPeers: number;
  /** Messages shed from the middle of the queue, not reached yet (at most `maxQueue`). */
  shedInQueue: number;
}

export type OfferResult =
  | 'queued'
  | 'duplicate'
  | 'rejected'
  /** Refused for a reason that is not the sender's fault (a clock, transit time): not counted against it. */
  | 'ignored'
  | 'dropped'
  | 'banned'
  | 'closed';

/** Rank of a message by the topic it arrived on: the lowest is shed first when the queue is full. */
const RANK: Record<PacketType, number> = {
  heartbeat: 0,
  request: 1,
  attestation: 2,
  // A decline stands in for a commit: it can end its request early, as a commit can seal it.
  decline: 3,
  commit: 3,
  seal: 3,
  reveal: 3,
  verdict: 3,
};
const RANKS = 4;
/**
 * Rejections that may not hold for the same bytes another time: a clock behind the sender's, or the
 * topic the bytes came on (the same packet is valid on its own topic); they are not remembered.
 */
const TRANSIENT: ReadonlySet<RejectReason> = new Set<RejectReason>([
  'PACKET_FROM_FUTURE',
  'TOPIC_MISMATCH',
  'INTERNAL',
]);
/**
 * Rejections that are no fault of the neighbour that forwarded the bytes: they depend on our clock and
 * on transit time (a packet near the end of the skew window is fresh where it was sent, stale here), or
 * on us. Not counted against it, and answered `ignore` to gossip, so honest peers never ban each other
 * over them.
 */
const NOT_THE_PEERS_FAULT: ReadonlySet<RejectReason> = new Set<RejectReason>([
  'PACKET_STALE',
  'PACKET_FROM_FUTURE',
  'INTERNAL',
  // Nodes older than this check pass such bytes on in good faith (the value they keep is the signed
  // one): refusing them must not get honest old peers banned while a network upgrades.
  'PACKET_DUPLICATE_MEMBER',
]);

/** Rejections for a `createdAt` outside the window: excused only for a genuine packet (see `#outOfWindow`). */
const OUT_OF_WINDOW: ReadonlySet<RejectReason> = new Set<RejectReason>([
  'PACKET_STALE',
  'PACKET_FROM_FUTURE',
]);

interface Item {
  bytes: Uint8Array;
  digest: string;
  meta: MessageMeta;
  type: PacketType | undefined;
  /** Set when a gossip transport waits for the verdict before forwarding the message. */
  settle?: (verdict: ForwardVerdict) => void;
  /** Shed from the middle of its rank's queue (a fair share, see `#shedFromHog`): skipped when reached. */
  shed?: true;
}

/** How an immediate offer result answers a gossip transport's forward question. */
const FORWARD_VERDICT: Record<Exclude<OfferResult, 'queued'>, ForwardVerdict> = {
  duplicate: 'ignore',
  ignored: 'ignore',
  dropped: 'ignore',
  closed: 'ignore',
  rejected: 'reject',
  banned: 'reject',
};

/** `#admit`'s result inside the intake: an `OfferResult`, or a gossip copy waiting on its twin's verdict. */
type AdmitResult = OfferResult | 'awaiting';

/**
 * Most gossip copies of one message that wait for its verdict, per content topic they came on: one per
 * gossip transport is all that is ever forwarded, and copies in other envelopes (another timestamp) are
 * otherwise free to send. So at most 4 × the 7 Synod topics per message, each a gossip validation the
 * transport holds anyway.
 */
const WAITERS_PER_DIGEST = 4;

/** A gossip copy of bytes already being verified, waiting for their verdict (see the class comment). */
interface Waiter {
  bytes: Uint8Array;
  meta: MessageMeta;
  settle: (verdict: ForwardVerdict) => void;
}

/** What is known of a message digest: still queued, or judged (accepted, or a reject reason). */
type DigestState = 'pending' | 'accepted' | RejectReason;

export class Intake {
  readonly #o: Required<Omit<IntakeOptions, 'onBan' | 'backend'>> & {
    onBan: IntakeOptions['onBan'] | undefined;
    backend: Ed25519Backend | undefined;
  };
  readonly #queues: Array<Deque<Item>> = Array.from({ length: RANKS }, () => new Deque<Item>());
  readonly #digests: TtlSet<DigestState>;
  readonly #ids: TtlSet<true>;
  readonly #peers = new Map<string, PeerStats>();
  /** Messages queued per peer key (`peerKey`), for `maxQueuePerPeer`. */
  readonly #queuedBy = new Map<string, number>();
  /** The same messages by peer key, one list a rank, oldest first (for shedding a peer's newest). */
  readonly #itemsBy = new Map<string, Item[][]>();
  /** Messages queued, by rank (the rank queues also hold shed messages not reached yet). */
  readonly #live: number[] = Array.from({ length: RANKS }, () => 0);
  /** Shed messages still in the rank queues: compacted away once there are more than `maxQueue`. */
  #tombstones = 0;
  readonly #detach = new Set<Unsubscribe>();
  /** Attached gossip transports and the topics attached on each. */
  readonly #gossip = new Map<Transport, ReadonlySet<ContentTopic>>();
  /** Gossip copies waiting, by digest, for the verdict on the copy being verified. */
  readonly #waiters = new Map<string, Waiter[]>();
  #queued = 0;
  #inFlight = 0;
  #closed = false;
  #idleWaiters: Array<() => void> = [];
  readonly #m = {
    offered: 0,
    accepted: 0,
    duplicates: 0,
    rejectedTotal: 0,
    dropped: 0,
    fromBanned: 0,
    bans: 0,
    consumerErrors: 0,
    bridged: 0,
    bridgeErrors: 0,
    maxQueueDepth: 0,
    lastOfferedAt: null as number | null,
  };
  readonly #rejected: Partial<Record<RejectReason, number>> = {};

  constructor(options: IntakeOptions) {
    const skewMs = options.skewMs ?? LIMITS.defaultSkewMs;
    this.#o = {
      now: options.now,
      deliver: options.deliver,
      skewMs,
      maxBytes: options.maxBytes ?? LIMITS.maxPacketBytes,
      maxQueue: options.maxQueue ?? 1024,
      maxQueuePerPeer: options.maxQueuePerPeer ?? Math.max(1, Math.floor((options.maxQueue ?? 1024) / 4)),
      concurrency: options.concurrency ?? 8,
      bridge: options.bridge ?? true,
      dedupEntries: options.dedupEntries ?? 65_536,
      dedupTtlMs: options.dedupTtlMs ?? 2 * skewMs + 60_000,
      banThreshold: options.banThreshold ?? 64,
      banMs: options.banMs ?? 600_000,
      maxTrackedPeers: options.maxTrackedPeers ?? 4096,
      onBan: options.onBan,
      backend: options.backend,
    };
    for (const k of [
      'maxQueue',
      'maxQueuePerPeer',
      'concurrency',
      'dedupEntries',
      'banThreshold',
      'maxTrackedPeers',
    ] as const) {
      if (!(Number.isInteger(this.#o[k]) && this.#o[k] >= 1))
        throw new RangeError(`${k} must be a positive integer`);
    }
    this.#digests = new TtlSet(this.#o.dedupEntries, this.#o.dedupTtlMs);
    this.#ids = new TtlSet(this.#o.dedupEntries, this.#o.dedupTtlMs);
  }

  /** Feed every Synod topic (or the given ones) of a transport into the intake. Returns a detacher. */
  attach(
    transport: Transport,
    topics: readonly ContentTopic[] = transport.topics ?? ALL_TOPICS,
  ): Unsubscribe {
    // A gossip transport asks the intake before forwarding: messages then enter here (judge), and what
    // the transport dispatches afterwards has already been taken, so its handler only keeps the
    // subscription alive. Other transports feed `offer` from their handler.
    const gated = transport.setForwardValidator !== undefined;
    if (gated) {
      transport.setForwardValidator?.((bytes, meta) => this.judge(bytes, meta));
      this.#gossip.set(transport, new Set(topics));
    }
    const offs = topics.map((topic) =>
      transport.subscribe(topic, gated ? () => undefined : (bytes, meta) => this.offer(bytes, meta)),
    );
    const detach = () => {
      if (!this.#detach.delete(detach)) return;
      if (gated) {
        transport.setForwardValidator?.(null);
        this.#gossip.delete(transport);
      }
      for (const off of offs) off();
    };
    this.#detach.add(detach);
    return detach;
  }

  /** Take one inbound message. Synchronous and cheap: verification happens later, off this call. */
  offer(bytes: Uint8Array, meta: MessageMeta): OfferResult {
    return this.#admit(bytes, meta, undefined) as OfferResult;
  }

  /**
   * Take one inbound message for a gossip transport and say whether it may be forwarded: `accept` once
   * it verified (its delivery to the consumer goes on without holding the transport), `reject` when it
   * is invalid (its sender, the message's first hop, is counted and may be banned), `ignore` for a
   * duplicate, a message shed under load, or a transient failure such as a clock ahead of ours. A copy
   * of bytes still being verified waits for their verdict: `accept` if they hold and no copy was
   * forwarded on this transport yet, `ignore` otherwise.
   */
  judge(bytes: Uint8Array, meta: MessageMeta): Promise<ForwardVerdict> {
    return new Promise((resolve) => {
      const r = this.#admit(bytes, meta, resolve);
      if (r !== 'queued' && r !== 'awaiting') resolve(FORWARD_VERDICT[r]);
    });
  }

  #admit(bytes: Uint8Array, meta: MessageMeta, settle: Item['settle']): AdmitResult {
    if (this.#closed) return 'closed';
    this.#m.offered++;
    const now = this.#o.now();
    this.#m.lastOfferedAt = now;
    const peer = this.#peer(meta, now);
    if (peer.bannedUntil !== undefined) {
      this.#m.fromBanned++;
      return 'banned';
    }
    if (bytes.length > this.#o.maxBytes) {
      this.#reject(meta, peer, 'PACKET_TOO_LARGE', now);
      return 'rejected';
    }
    const digest = sha256Hex(bytes);
    const known = this.#digests.get(digest, now);
    if (known === 'pending' || known === 'accepted') {
      this.#m.duplicates++;
      peer.duplicates++;
      const waiting = this.#waiters.get(digest);
      // Counted per topic: copies on a wrong topic (never forwarded) cannot crowd out the right one.
      const onTopic = waiting?.filter((w) => w.meta.topic === meta.topic).length ?? 0;
      if (known === 'pending' && settle !== undefined && onTopic < WAITERS_PER_DIGEST) {
        const waiter = { bytes, meta, settle };
        if (waiting === undefined) this.#waiters.set(digest, [waiter]);
        else waiting.push(waiter);
        return 'awaiting';
      }
      return 'duplicate';
    }
    if (known !== undefined) {
      return this.#reject(meta, peer, known, now) ? 'rejected' : 'ignored';
    }
    const type = packetTypeOfTopic(meta.topic);
    const rank = type === undefined ? 0 : RANK[type];
    const key = peerKey(meta);
    if ((this.#queuedBy.get(key) ?? 0) >= this.#o.maxQueuePerPeer) {
      this.#m.dropped++;
      return 'dropped';
    }
    if (this.#queued >= this.#o.maxQueue) {
      const lowest = this.#live.findIndex((n) => n > 0);
      if (lowest !== -1 && lowest < rank) {
        // Shed the oldest message of the lowest rank to make room for a higher-ranked one.
        this.#shed(this.#shiftLive(lowest)!);
      } else if (!this.#shedFromHog(rank, key)) {
        this.#m.dropped++;
        return 'dropped';
      }
    }
    this.#digests.set(digest, 'pending', now);
    const item: Item = { bytes, digest, meta, type, ...(settle ? { settle } : {}) };
    this.#queues[rank]!.push(item);
    this.#live[rank]!++;
    this.#queued++;
    this.#queuedBy.set(key, (this.#queuedBy.get(key) ?? 0) + 1);
    let lists = this.#itemsBy.get(key);
    if (lists === undefined) {
      lists = Array.from({ length: RANKS }, () => []);
      this.#itemsBy.set(key, lists);
    }
    lists[rank]!.push(item);
    if (this.#queued > this.#m.maxQueueDepth) this.#m.maxQueueDepth = this.#queued;
    this.#pump();
    return 'queued';
  }

  metrics(): IntakeMetrics {
    return {
      ...this.#m,
      rejected: { ...this.#rejected },
      queueDepth: this.#queued,
      inFlight: this.#inFlight,
      trackedPeers: this.#peers.size,
    };
  }

  /**
   * How many entries each of the intake's bounded structures holds now: the digest and packet-id dedup
   * sets (at most `dedupEntries` each), the digests with gossip copies waiting and the copies waiting,
   * the peers with messages queued (at most `maxQueue`), the peers tracked (at most
   * `maxTrackedPeers`) and the messages shed from the middle of the queue that it still holds (at most
   * `maxQueue`). For tests and diagnostics.
   */
  sizes(): IntakeSizes {
    let waitingCopies = 0;
    for (const w of this.#waiters.values()) waitingCopies += w.length;
    return {
      digests: this.#digests.size,
      ids: this.#ids.size,
      waitingDigests: this.#waiters.size,
      waitingCopies,
      queuedPeers: this.#queuedBy.size,
      trackedPeers: this.#peers.size,
      shedInQueue: this.#tombstones,
    };
  }

  peerStats(ref: PeerRef): PeerStats | undefined {
    const s = this.#peers.get(peerKey(ref));
    return s === undefined ? undefined : { ...s, invalidByCode: { ...s.invalidByCode } };
  }

  /** Resolves when nothing is queued or being verified or delivered. */
  idle(): Promise<void> {
    if (this.#queued === 0 && this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Detach from every transport, discard the queue and wait for verifications under way. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const detach of [...this.#detach]) detach();
      for (const q of this.#queues) {
        for (let item = q.shift(); item !== undefined; item = q.shift()) {
          if (item.shed === undefined) item.settle?.('ignore');
        }
      }
      for (const digest of [...this.#waiters.keys()]) this.#release(digest);
      this.#queued = 0;
      this.#queuedBy.clear();
      this.#itemsBy.clear();
      this.#live.fill(0);
      this.#tombstones = 0;
    }
    await this.idle();
  }

  /** The oldest message of a rank still queued (shed ones passed over), taken off the queue. */
  #shiftLive(rank: number): Item | undefined {
    const q = this.#queues[rank]!;
    for (let item = q.shift(); item !== undefined; item = q.shift()) {
      if (item.shed === undefined) {
        this.#live[rank]!--;
        this.#queued--;
        this.#dequeued(item, rank);
        return item;
      }
      this.#tombstones--;
    }
    return undefined;
  }

  /** A message taken off the queue to make room: dropped, its gossip copies answered `ignore`. */
  #shed(item: Item): void {
    this.#digests.delete(item.digest);
    this.#m.dropped++;
    item.settle?.('ignore');
    this.#release(item.digest);
  }

  /**
   * The queue is full and holds nothing ranked below `rank`: make room for a message of `rank` from
   * `sender` by shedding the newest message of that rank from the peer holding the most messages, if it
   * holds more than the sender would with this one. Returns false when no peer does (the sender already
   * has its fair share, and its message is the one dropped).
   */
  #shedFromHog(rank: number, sender: string): boolean {
    const mine = (this.#queuedBy.get(sender) ?? 0) + 1;
    let hog: Item[] | undefined;
    let most = mine;
    for (const [key, n] of this.#queuedBy) {
      if (n <= most) continue;
      const list = this.#itemsBy.get(key)?.[rank];
      if (list === undefined || list.length === 0) continue;
      hog = list;
      most = n;
    }
    const item = hog?.pop();
    if (item === undefined) return false;
    item.shed = true;
    this.#tombstones++;
    this.#live[rank]!--;
    this.#queued--;
    this.#dequeued(item, rank, false);
    this.#shed(item);
    if (this.#tombstones > this.#o.maxQueue) {
      for (const q of this.#queues) q.retain((i) => i.shed === undefined);
      this.#tombstones = 0;
    }
    return true;
  }

  #pump(): void {
    while (this.#inFlight < this.#o.concurrency && this.#queued > 0) {
      let item: Item | undefined;
      for (let r = RANKS - 1; r >= 0 && item === undefined; r--) item = this.#shiftLive(r);
      if (item === undefined) break;
      this.#inFlight++;
      void this.#verify(item).finally(() => {
        this.#inFlight--;
        if (!this.#closed) this.#pump();
        if (this.#queued === 0 && this.#inFlight === 0) {
          const waiters = this.#idleWaiters;
          this.#idleWaiters = [];
          for (const w of waiters) w();
        }
      });
    }
  }

  async #verify(item: Item): Promise<void> {
    const { meta } = item;
    let verified: Awaited<ReturnType<typeof decodePacket>>;
    try {
      verified = await decodePacket(item.bytes, {
        now: this.#o.now(),
        skewMs: this.#o.skewMs,
        maxBytes: this.#o.maxBytes,
        ...(this.#o.backend ? { backend: this.#o.backend } : {}),
      });
    } catch (e) {
      const reason: RejectReason = isSynodError(e) ? e.code : 'INTERNAL';
      this.#judged(item, OUT_OF_WINDOW.has(reason) ? await this.#outOfWindow(item, e, reason) : reason);
      return;
    }
    if (item.type !== undefined && verified.packet.type !== item.type) {
      this.#judged(item, 'TOPIC_MISMATCH');
      return;
    }
    const now = this.#o.now();
    this.#digests.set(item.digest, 'accepted', now);
    const peer = this.#peer(meta, now);
    if (this.#ids.get(verified.id, now) !== undefined) {
      this.#m.duplicates++;
      peer.duplicates++;
      item.settle?.('ignore');
      this.#release(item.digest);
      return;
    }
    this.#ids.set(verified.id, true, now);
    this.#m.accepted++;
    peer.accepted++;
    item.settle?.('accept');
    this.#relay(item, verified.packet.body.createdAt);
    try {
      await this.#o.deliver({
        id: verified.id,
        packet: verified.packet,
        size: verified.size,
        transport: meta.transport,
        peer: meta.peer,
        topic: meta.topic,
      });
    } catch {
      this.#m.consumerErrors++;
    }
  }

  /**
   * A packet outside the clock window is excused (stale here, fresh where it was sent) only if it is
   * genuine: the clock is checked before the signature, so check the signature too, at the packet's
   * own time. A forgery never passes an honest node, so its sender is its author, whatever date it bears.
   */
  async #outOfWindow(item: Item, e: unknown, reason: RejectReason): Promise<RejectReason> {
    const createdAt = isSynodError(e) ? e.details['createdAt'] : undefined;
    if (typeof createdAt !== 'number') return reason;
    try {
      await decodePacket(item.bytes, {
        now: createdAt,
        skewMs: this.#o.skewMs,
        maxBytes: this.#o.maxBytes,
        ...(this.#o.backend ? { backend: this.#o.backend } : {}),
      });
      return reason;
    } catch (again) {
      return isSynodError(again) && again.code === 'PACKET_BAD_SIGNATURE' ? again.code : reason;
    }
  }

  /**
   * One message left the queue (to be verified, or shed): its peer's share is freed. It is the oldest of
   * its peer's messages of its rank (the rank queues are first in, first out), unless `fromList` is false
   * (`#shedFromHog` has already taken it off the peer's list).
   */
  #dequeued(item: Item, rank: number, fromList = true): void {
    const key = peerKey(item.meta);
    const n = (this.#queuedBy.get(key) ?? 1) - 1;
    if (n > 0) this.#queuedBy.set(key, n);
    else this.#queuedBy.delete(key);
    const lists = this.#itemsBy.get(key);
    if (lists === undefined) return;
    if (fromList) {
      const list = lists[rank]!;
      if (list[0] === item) list.shift();
      else list.splice(list.indexOf(item), 1);
    }
    if (n <= 0) this.#itemsBy.delete(key);
  }

  #judged(item: Item, reason: RejectReason): void {
    const now = this.#o.now();
    if (TRANSIENT.has(reason)) this.#digests.delete(item.digest);
    else this.#digests.set(item.digest, reason, now);
    const blamed = this.#reject(item.meta, this.#peer(item.meta, now), reason, now);
    item.settle?.(blamed ? 'reject' : 'ignore');
    this.#release(item.digest, reason);
  }

  /**
   * The copy being verified was not accepted: answer the gossip copies that waited for it. Without a
   * reason (a duplicate packet, shed, closing) they are ignored; a copy of bytes judged invalid is held
   * against its sender as a later copy would be; after a rejection that is not held against the bytes
   * (a topic mismatch, a clock), each copy is judged on its own, so a copy on the wrong topic cannot
   * sink the genuine one waiting behind it.
   */
  #release(digest: string, reason?: RejectReason): void {
    const waiting = this.#waiters.get(digest);
    if (waiting === undefined) return;
    this.#waiters.delete(digest);
    for (const w of waiting) {
      if (reason === undefined) {
        w.settle('ignore');
      } else if (TRANSIENT.has(reason)) {
        const r = this.#admit(w.bytes, w.meta, w.settle);
        if (r !== 'queued' && r !== 'awaiting') w.settle(FORWARD_VERDICT[r]);
      } else {
        const now = this.#o.now();
        w.settle(this.#reject(w.meta, this.#peer(w.meta, now), reason, now) ? 'reject' : 'ignore');
      }
    }
  }

  /**
   * An accepted packet goes on every attached gossip transport carrying its topic, once: forwarded by
   * that transport's gossip if it came over it (or a copy of it on the same topic waits there), else
   * published by us. A copy that waited on another topic is rejected as a topic mismatch.
   */
  #relay(item: Item, createdAt: number): void {
    const served = new Set<string>();
    if (item.settle !== undefined) served.add(item.meta.transport);
    const waiting = this.#waiters.get(item.digest);
    if (waiting !== undefined) {
      this.#waiters.delete(item.digest);
      for (const w of waiting) {
        if (w.meta.topic !== item.meta.topic) {
          // The packet's bytes on another type's topic: forwarded, every honest neighbour would reject
          // them (and score this node for it), and the packet would not go out on its own topic.
          const now = this.#o.now();
          w.settle(
            this.#reject(w.meta, this.#peer(w.meta, now), 'TOPIC_MISMATCH', now) ? 'reject' : 'ignore',
          );
          continue;
        }
        if (served.has(w.meta.transport)) {
          w.settle('ignore');
          continue;
        }
        served.add(w.meta.transport);
        w.settle('accept');
      }
    }
    if (!this.#o.bridge) return;
    for (const [transport, topics] of this.#gossip) {
      if (served.has(transport.name) || !topics.has(item.meta.topic)) continue;
      this.#m.bridged++;
      transport.publish(item.meta.topic, item.bytes, { createdAt }).catch(() => {
        this.#m.bridgeErrors++;
      });
    }
  }

  /**
   * Count a rejection; against the peer too (and ban it at the threshold) unless the reason is no fault
   * of its own or the peer is a shared space. Returns whether the peer was blamed.
   */
  #reject(meta: MessageMeta, peer: PeerStats, reason: RejectReason, now: number): boolean {
    this.#m.rejectedTotal++;
    this.#rejected[reason] = (this.#rejected[reason] ?? 0) + 1;
    if (NOT_THE_PEERS_FAULT.has(reason)) return false;
    peer.invalid++;
    peer.invalidByCode[reason] = (peer.invalidByCode[reason] ?? 0) + 1;
    if (meta.attributable === false) return true;
    if (peer.invalid >= this.#o.banThreshold && peer.bannedUntil === undefined) {
      peer.bannedUntil = now + this.#o.banMs;
      this.#m.bans++;
      this.#o.onBan?.(
        { transport: meta.transport, peer: meta.peer },
        { ...peer, invalidByCode: { ...peer.invalidByCode } },
      );
    }
    return true;
  }

  /** The peer's counters, most recently used last; an expired ban is lifted with its counters. */
  #peer(meta: MessageMeta, now: number): PeerStats {
    const key = peerKey(meta);
    let s = this.#peers.get(key);
    if (s !== undefined) {
      this.#peers.delete(key);
      if (s.bannedUntil !== undefined && s.bannedUntil <= now) {
        s = { accepted: s.accepted, duplicates: s.duplicates, invalid: 0, invalidByCode: {} };
      }
    } else {
      s = { accepted: 0, duplicates: 0, invalid: 0, invalidByCode: {} };
      if (this.#peers.size >= this.#o.maxTrackedPeers) {
        const oldest = this.#peers.keys().next().value;
        if (oldest !== undefined) this.#peers.delete(oldest);
      }
    }
    this.#peers.set(key, s);
    return s;
  }
}

function peerKey(ref: PeerRef): string {
  return `${ref.transport}\u0000${ref.peer}`;
}

/**
 * A map bounded in entries and age: entries expire `ttlMs` after they were first set, and the oldest
 * entry goes when a new key would exceed `max`. Insertion order is age order (a Map keeps it).
 */
export class TtlSet<V> {
  readonly #entries = new Map<string, { value: V; expires: number }>();
  readonly #max: number;
  readonly #ttlMs: number;

  constructor(max: number, ttlMs: number) {
    this.#max = max;
    this.#ttlMs = ttlMs;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string, now: number): V | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    if (e.expires <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  /** Set a value; a key already present keeps its age (and expiry). */
  set(key: string, value: V, now: number): void {
    const e = this.#entries.get(key);
    if (e !== undefined && e.expires > now) {
      e.value = value;
      return;
    }
    if (e !== undefined) this.#entries.delete(key);
    this.#sweep(now);
    while (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
    this.#entries.set(key, { value, expires: now + this.#ttlMs });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  /** Drop expired entries from the old end (bounded work per call). */
  #sweep(now: number): void {
    let budget = 64;
    for (const [key, e] of this.#entries) {
      if (e.expires > now || budget-- === 0) break;
      this.#entries.delete(key);
    }
  }
}

/** A FIFO with O(1) push and shift. */
class Deque<T> {
  #items: Array<T | undefined> = [];
  #head = 0;

  get size(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }

  /** Keep only the items `keep` accepts, in order. */
  retain(keep: (item: T) => boolean): void {
    const kept: T[] = [];
    for (let i = this.#head; i < this.#items.length; i++) {
      const item = this.#items[i];
      if (item !== undefined && keep(item)) kept.push(item);
    }
    this.#items = kept;
    this.#head = 0;
  }
}
