import type { ContentTopic } from './topics.ts';

/**
 * A transport moves opaque bytes on Synod content topics between nodes. It knows nothing of packets:
 * every inbound message goes through the intake (intake.ts) before the core sees it, whichever
 * transport brought it, and nothing a transport says about a message (peer, topic) is trusted beyond
 * accounting and ranking.
 */
export interface Transport {
  /** Short stable name, e.g. `memory`, `waku-relay`, `gun`; reported with every inbound message. */
  readonly name: string;
  /** The topics this transport carries, when it carries only some (Gun: requests and verdicts). */
  readonly topics?: readonly ContentTopic[];
  /** Hand bytes to the network on a topic. Resolves once handed over, not once delivered. */
  publish(topic: ContentTopic, bytes: Uint8Array, options?: PublishOptions): Promise<void>;
  /** Receive what others publish on a topic. A node does not receive its own publications. */
  subscribe(topic: ContentTopic, handler: MessageHandler): Unsubscribe;
  /** Ids of the peers this node is connected to now (transport-specific form). */
  peers(): string[];
  /** Stop everything the transport started. Idempotent; the transport is unusable afterwards. */
  close(): Promise<void>;
  /**
   * Gossip transports (which forward what they receive to other peers) let the intake judge every
   * inbound message before it is forwarded or dispatched. With a validator installed, only messages it
   * `accept`s are relayed on and handed to subscribers: junk never travels past the first honest node,
   * so whoever sent an invalid message is its author, and may be penalised for it.
   */
  setForwardValidator?(validator: ForwardValidator | null): void;
  /**
   * Hang up on a peer (one the intake banned), where the transport has connections of its own, and
   * refuse its connections for `banMs` (a transport-specific default, the intake's default ban for Waku
   * relay; 0 only hangs up).
   */
  disconnect?(peer: string, banMs?: number): Promise<void>;
  /**
   * Call `listener` when a peer starts listening on one of this transport's topics: it connected, or
   * connected again (a relay killed and started again, a node back from a lost connection). What was
   * published while it could not hear never reaches it otherwise: gossip sends a message once.
   */
  onPeerJoined?(listener: (peer: string) => void): Unsubscribe;
  /**
   * The connected peers listening on at least one of this transport's topics, where the transport can
   * tell (Waku relay: subscribed to one of our shards). A peer connected but on none (another
   * `--waku-cluster`) hears nothing we publish, and we nothing of it.
   */
  topicPeers?(): string[];
}

export interface PublishOptions {
  /**
   * The creation time (ms since the epoch) the bytes themselves carry, a packet's signed `createdAt`.
   * A transport that stamps its own envelope with a time (Waku) uses it instead of its clock, so every
   * publication of one packet, by its author or by a node passing it on from another transport, is the
   * same message on the wire and gossip's own duplicate check catches the copies.
   */
  createdAt?: number;
  /**
   * A deliberate second publication of bytes this node published before (a re-announcement, see
   * `unanswered` in the lifecycle): sent to the peers it has now although gossip remembers sending it.
   * Peers that had it drop the copy as a duplicate; one that was away takes it as new.
   */
  again?: boolean;
}

/** `accept`: forward and dispatch; `reject`: drop and penalise the sender; `ignore`: drop quietly. */
export type ForwardVerdict = 'accept' | 'reject' | 'ignore';
export type ForwardValidator = (bytes: Uint8Array, meta: MessageMeta) => Promise<ForwardVerdict>;

export interface MessageMeta {
  /** The neighbour the bytes came from (not necessarily their author: packets name their `from`). */
  peer: string;
  /** The transport's name. */
  transport: string;
  /** The content topic the bytes arrived on. */
  topic: ContentTopic;
  /**
   * False when `peer` names no one sender but a shared space many write to (Gun's graph): its
   * messages are counted, but it is never banned, since one writer's junk would cut off everyone's.
   */
  attributable?: false;
}

export type MessageHandler = (bytes: Uint8Array, meta: MessageMeta) => void;
export type Unsubscribe = () => void;

/** Handlers of one transport, keyed by topic; shared by the adapters. */
export class TopicHandlers {
  readonly #byTopic = new Map<ContentTopic, Set<MessageHandler>>();

  add(topic: ContentTopic, handler: MessageHandler): { first: boolean; remove: () => boolean } {
    let set = this.#byTopic.get(topic);
    const first = set === undefined;
    if (!set) {
      set = new Set();
      this.#byTopic.set(topic, set);
    }
    // Wrap so one handler can be subscribed twice and removed once per subscription.
    const entry: MessageHandler = (bytes, meta) => handler(bytes, meta);
    set.add(entry);
    let removed = false;
    return {
      first,
      /** Returns true when this was the topic's last handler. */
      remove: () => {
        if (removed) return false;
        removed = true;
        const current = this.#byTopic.get(topic);
        if (!current) return false;
        current.delete(entry);
        if (current.size > 0) return false;
        this.#byTopic.delete(topic);
        return true;
      },
    };
  }

  has(topic: ContentTopic): boolean {
    return this.#byTopic.has(topic);
  }

  topics(): ContentTopic[] {
    return [...this.#byTopic.keys()];
  }

  /** Call every handler of the topic; a throwing handler does not stop the others. */
  dispatch(
    topic: ContentTopic,
    bytes: Uint8Array,
    meta: MessageMeta,
    onError?: (e: unknown) => void,
  ): number {
    const set = this.#byTopic.get(topic);
    if (!set) return 0;
    for (const handler of [...set]) {
      try {
        handler(bytes, meta);
      } catch (e) {
        onError?.(e);
      }
    }
    return set.size;
  }

  clear(): void {
    this.#byTopic.clear();
  }
}

/**
 * Thrown by `publish` when the message a transport would put on the wire is larger than its network
 * relays (a Waku cluster's cap on WakuMessages): its peers would drop it, so it is not sent. The code is
 * stable (`TRANSPORT_MESSAGE_TOO_LARGE`); `details` says how large it was and the most allowed.
 */
export class TransportMessageTooLargeError extends Error {
  override readonly name = 'TransportMessageTooLargeError';
  readonly code = 'TRANSPORT_MESSAGE_TOO_LARGE';
  readonly details: { transport: string; bytes: number; maxBytes: number };
  readonly hint: string;

  constructor(transport: string, bytes: number, maxBytes: number, hint: string) {
    super(`the ${transport} transport carries messages of at most ${maxBytes} bytes; this one is ${bytes}`);
    this.details = { transport, bytes, maxBytes };
    this.hint = hint;
  }
}

/** Thrown by a transport used after `close()`. */
export class TransportClosedError extends Error {
  override readonly name = 'TransportClosedError';
  constructor(transport: string) {
    super(`the ${transport} transport is closed`);
  }
}
