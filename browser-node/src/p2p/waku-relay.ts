/**
 * Waku relay transport: libp2p gossipsub speaking Waku's relay protocol (RFC 11/WAKU2-RELAY), so Synod
 * nodes form (and could join) a Waku network. This file imports nothing Node-only and bundles for a
 * browser; headless nodes add TCP and a WebSocket listener through `waku-relay-headless.ts`.
 *
 * On the wire
 * -----------
 *  libp2p        noise encryption, yamux muxing, identify; transports injected (browsers: WebSocket
 *                dialing only; headless: TCP and WebSocket, listening).
 *  protocol id   gossipsub v1.1 on the stream protocol `/vac/waku/relay/2.0.0` (`WAKU_RELAY_CODEC`),
 *                the multicodec Waku relays speak instead of `/meshsub/1.1.0`.
 *  signing       gossipsub `StrictNoSign`, as Waku: no `from`, `seqno`, `signature` or `key` in the RPC
 *                message (Synod packets carry their own Ed25519 signature inside the payload).
 *  pubsub topic  `/waku/2/rs/<clusterId>/<shard>` (RFC 51 static form); the shard of a content topic
 *                comes from autosharding: sha256(application ‖ version) of the content topic, its last
 *                8 bytes as a big-endian u64, mod `numShardsInCluster` (`contentTopicToPubsubTopic` of
 *                @waku/utils). Every Synod topic has application `synod` and version `1`, so all of
 *                them share one shard; the WakuMessage `contentTopic` tells them apart.
 *  data          a WakuMessage protobuf (RFC 14, version 0): `payload` = the canonical packet bytes
 *                (`encodePacket`), `contentTopic` = `/synod/1/<kind>/proto`, `version` = 0,
 *                `timestamp` = the packet's own signed `createdAt` in nanoseconds (the publisher's
 *                clock when the bytes carry no time), `ephemeral` = as configured (true tells Waku
 *                store nodes not to keep it). No `meta`, no `rateLimitProof` (no RLN).
 *  message id    sha256 of the gossipsub `data`, i.e. of the encoded WakuMessage, as js-waku does; the
 *                gossipsub seen-cache dedups on it. As the timestamp is the packet's, every publication
 *                of one packet (its author's, a restart's, a node passing on what Gun brought) is one
 *                message to gossip; the intake's packet-id dedup still makes delivery at-most-once.
 *                A copy gossip took in but did not forward (the intake ignored it: shed under load, a
 *                clock) would make our own later publication of it a duplicate, and the peers behind
 *                this node would never get it: `publish` takes such an id out of the seen cache first.
 *                The seen cache and the score's delivery records keep at most `MAX_GOSSIP_MESSAGE_IDS`
 *                ids each, the oldest forgotten first (gossipsub-bounds.ts): a flood cannot grow them.
 *  validation    a topic validator rejects (no forwarding, peer score penalty) data that is not a
 *                well-formed WakuMessage (protobuf, a content topic, `meta` of at most 64 bytes) within
 *                the cluster's largest message (see size); well-formed messages of other content
 *                topics or other versions (other apps' encrypted payloads) are relayed as any Waku
 *                relay would, but not handed up; Synod packets go through the intake, whose verdict is gossip's.
 *  scoring       gossipsub v1.1 peer scoring with Waku's parameters (nwaku's, RFC 29) on every shard a
 *                Synod topic maps to: a rejected message costs its sender 100 times the square of its
 *                count (halving every 12 s), so a peer forwarding junk drops below the gossip (-100),
 *                publish (-1,000) and graylist (-10,000) thresholds in turn. Mesh degrees, heartbeat,
 *                history and seen-cache lifetimes are RFC 29's too. One deliberate difference: no IP
 *                colocation penalty (nwaku docks peers sharing an address with 5 others), as browser
 *                tabs behind one NAT (an office, a campus) would lose our publications for it; a
 *                Synod packet's worth rests on its signature and its sender's record, not its address.
 *  size          the largest WakuMessage (the whole encoded message, as gossipsub's `data`) depends on
 *                the cluster: on The Waku Network (cluster 1) 150 KiB, 153,600 bytes
 *                (`THE_WAKU_NETWORK_MAX_MESSAGE_BYTES`: RFC 64's cap, nwaku's `MaxWakuMessageSize`),
 *                which its relays enforce; on any other cluster, Synod's own (42) by default,
 *                `MAX_WAKU_MESSAGE_BYTES` (Synod's 256 KiB packets and 1 KiB of envelope). Option
 *                `maxMessageBytes` sets a deployment's own. Larger data is rejected by the validator,
 *                and `publish` refuses a packet whose WakuMessage would be larger with a
 *                `TransportMessageTooLargeError` (code `TRANSPORT_MESSAGE_TOO_LARGE`) instead of
 *                sending what the peers drop: on cluster 1, packets of more than ~150 KiB are not sent.
 *
 * Discovery and dialing
 * ---------------------
 * There is no default bootstrap list: only `bootstrap` from the config (multiaddrs with `/p2p/<id>`),
 * found through @libp2p/bootstrap; identify exchanges addresses and protocols; gossipsub peer exchange
 * (PX on PRUNE) is on when `peerExchange` is set. Disconnected bootstrap peers are redialled with
 * exponential backoff (`reconnect`), forever. Every outbound dial (bootstrap, PX, anything libp2p
 * would dial by itself) passes the connection gater's `dialPolicy`, which by default allows loopback
 * addresses only: a deployment sets `dialPolicy: 'any'` (or a predicate) deliberately. A peer hung up
 * on with `disconnect` (one the intake banned) is refused by the same gater, both ways, for the ban.
 * A multiaddr's `/p2p/<id>` is held to: libp2p (2.8) does not hand the id a dial names to the Noise
 * handshake, so whatever listens at a dialled address would be taken for that peer. The gater closes an
 * outbound connection whose remote peer (as Noise proved it) is not the one its multiaddr names, before
 * any stream is opened on it; at a bootstrap address that is logged once a spell with code
 * `BOOTSTRAP_PEER_MISMATCH` (`log`), and the address is dialled again with the backoff, so the peer it
 * names is reached once it listens there. A redial of a bootstrap address that fails otherwise (nothing
 * listens there, the dial policy refuses it, the network is down) is logged too, with code
 * `BOOTSTRAP_DIAL_FAILED`. Either is logged once a spell of failures at that address (bootstrap-spell.ts):
 * at its first failure; a change of kind within it (refused, then answered by another peer) at most once
 * a minute, the rest counted; and its end, once the peer is reached, with its length and counts.
 * `onBootstrapFailure` is told every change of kind as it happens, for a status line (a browser tab's).
 */

import { type GossipSub, type GossipsubOpts, gossipsub } from '@chainsafe/libp2p-gossipsub';
import type {
  PeerScoreParams,
  PeerScoreThresholds,
  TopicScoreParams,
} from '@chainsafe/libp2p-gossipsub/score';
import { noise, pureJsCrypto } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { bootstrap as bootstrapDiscovery } from '@libp2p/bootstrap';
import { identify } from '@libp2p/identify';
import { webSockets } from '@libp2p/websockets';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import { LIMITS, sha256 } from '@synod/shared';
import { proto_message } from '@waku/proto';
import { contentTopicToPubsubTopic } from '@waku/utils';
import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p';
import { realScheduler, type Scheduler } from '../node/scheduler.ts';
import { AddressBans, type AddressBansOptions, hostOf } from './address-bans.ts';
import {
  type BootstrapFailureKind,
  BootstrapFailureSpell,
  type BootstrapSpellCounts,
} from './bootstrap-spell.ts';
import { isLoopbackAddress } from './dial-policy.ts';
import { boundGossipRecords, type GossipRecordSizes } from './gossipsub-bounds.ts';
import { type GossipsubUpkeep, type GossipsubUpkeepStats, takeOverUpkeep } from './gossipsub-upkeep.ts';
import { TtlSet } from './intake.ts';
import { ALL_TOPICS, type ContentTopic, isContentTopic } from './topics.ts';
import {
  type ForwardValidator,
  type MessageHandler,
  type PublishOptions,
  TopicHandlers,
  type Transport,
  TransportClosedError,
  TransportMessageTooLargeError,
  type Unsubscribe,
} from './transport.ts';
import { checkClusterId, DEFAULT_CLUSTER_ID, THE_WAKU_NETWORK_CLUSTER_ID } from './waku-cluster-id.ts';

export {
  DEFAULT_CLUSTER_ID,
  MAX_CLUSTER_ID,
  parseWakuClusterId,
  THE_WAKU_NETWORK_CLUSTER_ID,
  WakuClusterIdError,
} from './waku-cluster-id.ts';

/** Largest gossipsub RPC frame taken from a peer (see `maxInboundDataLength` below). */
export const MAX_INBOUND_FRAME_BYTES = 4 * 1024 * 1024;
/**
 * Most bytes gossipsub queues for one peer that does not read them (a stalled or slow link): 16 MiB, 64
 * of the largest messages or thousands of the usual ones. Past it, what is sent to that peer is dropped
 * (it may still get it from another mesh peer, or by IWANT while it is recent), as go-libp2p-pubsub
 * drops past its per-peer queue, instead of growing the sender's memory with every message for as long
 * as the peer stalls.
 */
export const MAX_OUTBOUND_BUFFER_BYTES = 16 * 1024 * 1024;
/** Largest WakuMessage relayed off The Waku Network: the largest Synod packet and room for its envelope. */
export const MAX_WAKU_MESSAGE_BYTES = LIMITS.maxPacketBytes + 1024;
/**
 * Largest WakuMessage on The Waku Network: 150 KiB of the whole protobuf-encoded message (RFC 64,
 * "Message size"; nwaku's `MaxWakuMessageSize` = 150 * 1024). Its relays drop anything larger.
 */
export const THE_WAKU_NETWORK_MAX_MESSAGE_BYTES = 150 * 1024;
/** RFC 14: a WakuMessage's `meta` holds at most 64 bytes. */
export const WAKU_MAX_META_BYTES = 64;

/** The stream protocol Waku relays speak: gossipsub under Waku's name. */
export const WAKU_RELAY_CODEC = '/vac/waku/relay/2.0.0';
/** Shards per cluster for autosharding, as on The Waku Network. */
export const DEFAULT_SHARDS_IN_CLUSTER = 8;
/** How long `disconnect` refuses a peer's connections by default: the intake's default ban. */
export const DEFAULT_BAN_MS = 600_000;
/** Most peers banned at once; past it the ban ending first is lifted early. */
export const MAX_BANNED_PEERS = 4096;

export type DialPolicy = 'loopback' | 'any' | ((address: Multiaddr) => boolean);

export interface WakuRelayOptions {
  /**
   * Bans by address (address-bans.ts): an address from which `afterPeers` (3) distinct banned peer ids
   * connected is refused before any handshake for a ban's length. Loopback is exempt unless
   * `exemptLoopback: false`.
   */
  addressBans?: AddressBansOptions;
  /**
   * The Waku cluster (RFC 51, a uint16): nodes relay only on their cluster's shards, so nodes of two
   * clusters never hear each other. Default `DEFAULT_CLUSTER_ID` (42, Synod's own); 1 is The Waku Network.
   */
  clusterId?: number;
  numShardsInCluster?: number;
  /** Multiaddrs to listen on (headless only), e.g. `/ip4/127.0.0.1/tcp/0/ws`. Default none. */
  listen?: string[];
  /** Bootstrap peers, full multiaddrs with `/p2p/<peer id>`. No default. */
  bootstrap?: string[];
  /** libp2p transports. Default: WebSocket dialing only (what a browser has). */
  transports?: Libp2pOptions['transports'];
  /** The libp2p identity; a fresh one when absent. Not the node's Synod key. */
  privateKey?: Libp2pOptions['privateKey'];
  /** Which addresses may be dialled. Default `'loopback'`. */
  dialPolicy?: DialPolicy;
  /** Send and accept gossipsub peer exchange on PRUNE. Default false. */
  peerExchange?: boolean;
  /** Mark published WakuMessages ephemeral (not kept by Waku store nodes). Default false. */
  ephemeral?: boolean;
  /**
   * Bootstrap redial backoff: first delay, doubling up to the cap. Default 1 s and 5 s: a relay killed
   * and started again (its nodes dial it; it may not dial them) has them back within 5 s, while what they
   * re-announce to it can still count (a reveal window is 10 s by default). `after` runs the redial timers
   * (default `setTimeout`): a browser tab passes its timer worker's, so a hidden tab still redials a
   * dropped peer on time.
   */
  reconnect?: RedialOptions;
  /**
   * Where gossipsub's heartbeat and peer-score decay run (gossipsub-upkeep.ts). Default: gossipsub's
   * own loops on the host's timers. A browser tab passes its timer worker's scheduler, so a hidden tab
   * keeps its mesh repaired and its gossip cache turning at their pace.
   */
  upkeep?: Scheduler;
  /** Clock for WakuMessage timestamps. Default Date.now. */
  now?: () => number;
  /**
   * Largest encoded WakuMessage relayed or published, in bytes. Default by cluster
   * (`maxWakuMessageBytesOf`): 150 KiB on The Waku Network (cluster 1), `MAX_WAKU_MESSAGE_BYTES`
   * elsewhere. At most `MAX_INBOUND_FRAME_BYTES`.
   */
  maxMessageBytes?: number;
  /** Where the transport's lines for the node's log go (`WakuRelayLogLine`). Default: nowhere. */
  log?: (line: WakuRelayLogLine) => void;
  /**
   * Every change of kind of a bootstrap address's failure (a spell's first failure too), as it happens,
   * logged or not: for a status line that shows the latest (a browser tab's). Default: nowhere.
   */
  onBootstrapFailure?: (line: BootstrapFailureLine) => void;
}

/** The hint of `BOOTSTRAP_PEER_MISMATCH`. */
export const BOOTSTRAP_PEER_MISMATCH_HINT =
  'the --bootstrap multiaddr names another peer id than the one listening there: copy the multiaddr the peer prints at start';

/** The hint of `BOOTSTRAP_DIAL_FAILED`. */
export const BOOTSTRAP_DIAL_FAILED_HINT =
  'check that the peer runs and listens at that address (a browser dials its /ws address only), and that the dial policy allows it; it is dialled again by itself';

/**
 * A failure at a bootstrap address, logged at the start of a spell of them (and at a change of its kind
 * within the spell, at most once a minute: then with the spell's `sinceMs`, `attempts` and `kindChanges`).
 *
 *   BOOTSTRAP_PEER_MISMATCH  the peer answering at a bootstrap address is not the one its `/p2p/` names
 *                            (`expected`), but `actual`; the connection was closed
 *   BOOTSTRAP_DIAL_FAILED    a redial of a bootstrap address failed otherwise (`error`: libp2p's message)
 */
export type BootstrapFailureLine = (
  | {
      level: 'warn';
      msg: string;
      code: 'BOOTSTRAP_PEER_MISMATCH';
      address: string;
      expected: string;
      actual: string;
      hint: string;
    }
  | {
      level: 'warn';
      msg: string;
      code: 'BOOTSTRAP_DIAL_FAILED';
      address: string;
      expected: string;
      error: string;
      hint: string;
    }
) &
  Partial<Pick<BootstrapSpellCounts, 'sinceMs' | 'attempts' | 'kindChanges'>>;

/**
 * The end of a spell of failures at a bootstrap address: the peer it names is reached. `lastedMs`: from
 * its first failure; `attempts` failed, `dialFailures` and `mismatches` of them; `kindChanges`.
 */
export type BootstrapReachedLine = Omit<BootstrapSpellCounts, 'sinceMs'> & {
  level: 'info';
  msg: string;
  address: string;
  expected: string;
  lastedMs: number;
};

/** A line for the node's log: a spell of failures at a bootstrap address, and its end. */
export type WakuRelayLogLine = BootstrapFailureLine | BootstrapReachedLine;

export interface WakuRelayStats {
  /** Messages judged by the forward validator (before gossipsub forwards or dispatches them). */
  validated: number;
  published: number;
  /** Messages received on subscribed shards (valid or not), counted once each. */
  received: number;
  /** Messages for Synod topics dispatched to handlers. */
  dispatched: number;
  /** Data rejected by the topic validator. */
  invalidEnvelopes: number;
  /** Bootstrap redials made. */
  redials: number;
  /**
   * Outbound connections closed at the gate because the peer answering was not the one the dialled
   * multiaddr names (at a bootstrap address also logged: `BOOTSTRAP_PEER_MISMATCH`).
   */
  peerMismatches: number;
  /** Peers refused at the connection gate now (see `disconnect`). */
  banned: number;
  /** Addresses refused at the connection gate now, banned peers having come back from them (address-bans.ts). */
  bannedAddresses: number;
  /**
   * Publications of a message gossip had taken in but not forwarded (a copy the intake ignored: shed
   * under load, one copy too many waiting, a clock), sent anyway instead of dropped as a duplicate.
   */
  republished: number;
  /** Deliberate second publications (`PublishOptions.again`: re-announcements of what a peer missed). */
  reannounced: number;
  /** Gossipsub heartbeats and score decays run on `WakuRelayOptions.upkeep`; null on the host's timers. */
  upkeep: GossipsubUpkeepStats | null;
  /** Gossipsub's per-message records, each held to `MAX_GOSSIP_MESSAGE_IDS` (gossipsub-bounds.ts). */
  gossipRecords: GossipRecordSizes;
}

type Services = { identify: ReturnType<ReturnType<typeof identify>>; pubsub: GossipSub };
type ValidatorResult = Awaited<ReturnType<Parameters<GossipSub['topicValidators']['set']>[1]>>;
const VALIDATION = { accept: 'accept', ignore: 'ignore', reject: 'reject' } as unknown as Record<
  'accept' | 'ignore' | 'reject',
  ValidatorResult
>;
const NS_PER_MS = 1_000_000n;

/** How long `close` waits for dials in flight to end before it stops libp2p (see `close`). */
const CLOSE_DIAL_WAIT_MS = 1_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Most message ids remembered as forwarded or published (see `WakuRelayTransport.publish`). */
const MAX_FORWARDED_IDS = 65_536;

/**
 * The gossipsub internals `publish` reaches into (@chainsafe/libp2p-gossipsub 14: private in its types,
 * present at run time): its seen cache, a `SimpleTimeCache` whose `entries` map holds every message id
 * it took in or published, and the function that names a message id in it.
 */
interface GossipSubSeen {
  seenCache: { entries: Map<string, unknown> };
  msgIdToStrFn: (id: Uint8Array) => string;
}

function gossipSubSeen(pubsub: GossipSub): GossipSubSeen {
  const inner = pubsub as unknown as Partial<GossipSubSeen>;
  if (!(inner.seenCache?.entries instanceof Map) || typeof inner.msgIdToStrFn !== 'function') {
    throw new Error('this gossipsub has no seenCache.entries map or msgIdToStrFn (written for version 14)');
  }
  return inner as GossipSubSeen;
}

function dialAllowed(policy: DialPolicy): (address: Multiaddr) => boolean {
  if (policy === 'any') return () => true;
  if (policy === 'loopback') return isLoopbackAddress;
  return policy;
}

export { isLoopbackAddress };

/** The Waku pubsub topic (shard) a content topic is relayed on. */
export function pubsubTopicOf(
  topic: ContentTopic,
  clusterId = DEFAULT_CLUSTER_ID,
  numShardsInCluster = DEFAULT_SHARDS_IN_CLUSTER,
): string {
  return contentTopicToPubsubTopic(topic, clusterId, numShardsInCluster);
}

/**
 * Peer scoring on a Waku shard, as nwaku sets it (RFC 29, `TopicParameters` of waku_relay): time in
 * mesh and first deliveries earn a little, mesh delivery rates are not scored (a quiet network would
 * punish honest peers), and each invalid message costs 100 times the square of their count.
 */
export const WAKU_TOPIC_SCORE_PARAMS: TopicScoreParams = {
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1_000,
  timeInMeshCap: 10,
  firstMessageDeliveriesWeight: 1,
  firstMessageDeliveriesDecay: 0.5,
  firstMessageDeliveriesCap: 10,
  meshMessageDeliveriesWeight: 0,
  meshMessageDeliveriesDecay: 0.5,
  meshMessageDeliveriesCap: 0,
  meshMessageDeliveriesThreshold: 0,
  meshMessageDeliveriesWindow: 0,
  meshMessageDeliveriesActivation: 0,
  meshFailurePenaltyWeight: 0,
  meshFailurePenaltyDecay: 0.5,
  invalidMessageDeliveriesWeight: -100,
  invalidMessageDeliveriesDecay: 0.5,
};

/** RFC 29's score thresholds: no gossip below -100, no own publications below -1,000, graylist below -10,000. */
export const WAKU_SCORE_THRESHOLDS: Partial<PeerScoreThresholds> = {
  gossipThreshold: -100,
  publishThreshold: -1_000,
  graylistThreshold: -10_000,
  opportunisticGraftThreshold: 0,
};

/**
 * RFC 29's peer score parameters, with `topics` set for the given pubsub topics (shards), but without
 * the IP colocation penalty (see the file comment).
 */
export function wakuPeerScoreParams(shards: Iterable<string>): Partial<PeerScoreParams> {
  const topics: Record<string, TopicScoreParams> = {};
  for (const shard of shards) topics[shard] = { ...WAKU_TOPIC_SCORE_PARAMS };
  return {
    topics,
    appSpecificWeight: 0,
    IPColocationFactorWeight: 0,
    behaviourPenaltyWeight: -10,
    behaviourPenaltyDecay: 0.986,
    decayInterval: 12_000,
    decayToZero: 0.01,
    retainScore: 600_000,
  };
}

/** RFC 29's gossipsub parameters (nwaku's `GossipsubParameters`). */
const WAKU_GOSSIP_PARAMS: Partial<GossipsubOpts> = {
  D: 6,
  Dlo: 4,
  Dhi: 8,
  Dscore: 6,
  Dout: 3,
  Dlazy: 6,
  heartbeatInterval: 1_000,
  mcacheLength: 6,
  mcacheGossip: 3,
  fanoutTTL: 60_000,
  seenTTL: 120_000,
  pruneBackoff: 60_000,
  unsubcribeBackoff: 5_000,
  floodPublish: true,
  gossipFactor: 0.25,
};

/** The largest WakuMessage a cluster's relays pass on: 150 KiB on The Waku Network, ours elsewhere. */
export function maxWakuMessageBytesOf(clusterId: number): number {
  return clusterId === THE_WAKU_NETWORK_CLUSTER_ID
    ? THE_WAKU_NETWORK_MAX_MESSAGE_BYTES
    : MAX_WAKU_MESSAGE_BYTES;
}

/** The largest WakuMessage a transport with these options relays and publishes. */
function maxMessageBytesOf(options: WakuRelayOptions): number {
  const max = options.maxMessageBytes ?? maxWakuMessageBytesOf(options.clusterId ?? DEFAULT_CLUSTER_ID);
  if (!(Number.isInteger(max) && max > 0 && max <= MAX_INBOUND_FRAME_BYTES)) {
    throw new RangeError(`maxMessageBytes must be an integer from 1 to ${MAX_INBOUND_FRAME_BYTES}`);
  }
  return max;
}

/** Encode a payload as a version-0 WakuMessage. */
export function encodeWakuMessage(
  topic: ContentTopic,
  payload: Uint8Array,
  timestampMs: number,
  ephemeral = false,
): Uint8Array {
  return proto_message.WakuMessage.encode({
    payload,
    contentTopic: topic,
    version: 0,
    timestamp: BigInt(Math.trunc(timestampMs)) * NS_PER_MS,
    ephemeral,
  });
}

/** Why data is not a WakuMessage a relay may pass on. */
export type WakuMessageFault = 'too-large' | 'malformed' | 'no-content-topic' | 'meta-too-long';

/**
 * Check data as a WakuMessage any Waku relay would pass on (RFC 14), whatever its version: within
 * `maxBytes` (the cluster's largest message; default `MAX_WAKU_MESSAGE_BYTES`), a protobuf WakuMessage
 * with a content topic and at most 64 bytes of `meta`.
 */
export function checkWakuMessage(
  data: Uint8Array,
  maxBytes: number = MAX_WAKU_MESSAGE_BYTES,
): { message: proto_message.WakuMessage } | { fault: WakuMessageFault } {
  if (data.length > maxBytes) return { fault: 'too-large' };
  let message: proto_message.WakuMessage;
  try {
    message = proto_message.WakuMessage.decode(data);
  } catch {
    return { fault: 'malformed' };
  }
  if (message.contentTopic === '') return { fault: 'no-content-topic' };
  if ((message.meta?.length ?? 0) > WAKU_MAX_META_BYTES) return { fault: 'meta-too-long' };
  return { message };
}

/**
 * Decode a WakuMessage that may hold a Synod packet: well-formed (`checkWakuMessage`), version 0 (an
 * unencrypted payload) and a payload within `LIMITS.maxPacketBytes`; undefined otherwise.
 */
export function decodeWakuMessage(
  data: Uint8Array,
  maxBytes: number = MAX_WAKU_MESSAGE_BYTES,
): proto_message.WakuMessage | undefined {
  const checked = checkWakuMessage(data, maxBytes);
  if (!('message' in checked)) return undefined;
  const { message } = checked;
  if ((message.version ?? 0) !== 0 || message.payload.length > LIMITS.maxPacketBytes) return undefined;
  return message;
}

/**
 * Noise's default crypto under Node encrypts frames of 1200 bytes and more with node:crypto's
 * chacha20-poly1305, which Bun does not implement ("Unknown cipher"): under Bun every gossipsub frame
 * over ~1.2 KB failed and took the connection down with it (seals, reveals and verdicts never arrived).
 * Under Bun use noise's pure-JS crypto (@noble) for everything; elsewhere keep the default.
 */
function noiseInit(): Parameters<typeof noise>[0] {
  return typeof (globalThis as { Bun?: unknown }).Bun !== 'undefined' ? { crypto: pureJsCrypto } : {};
}

export async function createWakuRelayTransport(options: WakuRelayOptions = {}): Promise<WakuRelayTransport> {
  const allow = dialAllowed(options.dialPolicy ?? 'loopback');
  maxMessageBytesOf(options); // a bad cap throws before anything starts
  const clusterId = checkClusterId(options.clusterId ?? DEFAULT_CLUSTER_ID);
  const bootstrapList = options.bootstrap ?? [];
  for (const address of bootstrapList) {
    if (multiaddr(address).getPeerId() === null) {
      throw new Error(`bootstrap address ${address} has no /p2p/<peer id>`);
    }
  }
  const numShards = options.numShardsInCluster ?? DEFAULT_SHARDS_IN_CLUSTER;
  const shards = new Set(ALL_TOPICS.map((t) => pubsubTopicOf(t, clusterId, numShards)));
  const pubsubInit: Partial<GossipsubOpts> = {
    ...WAKU_GOSSIP_PARAMS,
    scoreParams: wakuPeerScoreParams(shards),
    scoreThresholds: WAKU_SCORE_THRESHOLDS,
    globalSignaturePolicy: 'StrictNoSign' as NonNullable<GossipsubOpts['globalSignaturePolicy']>,
    msgIdFn: (message) => sha256(message.data),
    fallbackToFloodsub: false,
    allowPublishToZeroTopicPeers: true,
    ignoreDuplicatePublishError: true,
    emitSelf: false,
    doPX: options.peerExchange ?? false,
    // The bound applies to a whole RPC frame, and gossipsub answers an IWANT with every message asked
    // for in one frame: room for about 15 of the largest packets (or thousands of the usual ones), where
    // one packet's worth made two large messages asked for together break the link.
    maxInboundDataLength: MAX_INBOUND_FRAME_BYTES,
    maxOutboundBufferSize: MAX_OUTBOUND_BUFFER_BYTES,
  };
  const bans = new PeerBans(Date.now);
  const addressBans = new AddressBans(Date.now, options.addressBans);
  const mismatches = new PeerMismatches();
  let upkeep: GossipsubUpkeep | null = null;
  let records: (() => GossipRecordSizes) | undefined;
  const node = await createLibp2p<Services>({
    ...(options.privateKey ? { privateKey: options.privateKey } : {}),
    addresses: { listen: options.listen ?? [] },
    transports: options.transports ?? [webSockets()],
    connectionEncrypters: [noise(noiseInit())],
    streamMuxers: [yamux()],
    connectionGater: {
      denyDialMultiaddr: async (address) => !allow(address),
      // A banned peer (`disconnect`) is neither dialled nor let back in, whichever side dials.
      denyDialPeer: async (peer) => bans.has(peer.toString()),
      // An address that banned peers kept coming back from under new peer ids: before any handshake.
      denyInboundConnection: async (maConn) => {
        const host = hostOf(maConn.remoteAddr);
        return host !== null && addressBans.has(host);
      },
      denyInboundEncryptedConnection: async (peer) => bans.has(peer.toString()),
      // Noise has proved who answered: the peer the dialled multiaddr names, or the connection goes.
      denyOutboundEncryptedConnection: async (peer, maConn) =>
        mismatches.deny(peer.toString(), maConn.remoteAddr) || bans.has(peer.toString()),
    },
    peerDiscovery: bootstrapList.length > 0 ? [bootstrapDiscovery({ list: bootstrapList, timeout: 0 })] : [],
    services: {
      identify: identify(),
      pubsub: (components) => {
        const pubsub = gossipsub(pubsubInit)(components) as GossipSub;
        pubsub.multicodecs = [WAKU_RELAY_CODEC];
        // Its seen cache and delivery records are bounded by time only: a flood would grow them with its rate.
        records = boundGossipRecords(pubsub);
        if (options.upkeep) {
          upkeep = takeOverUpkeep(pubsub, options.upkeep, (msg, err) =>
            components.logger.forComponent('synod:waku-relay').error('%s: %e', msg, err),
          );
        }
        return pubsub;
      },
    },
  });
  // createLibp2p has started gossipsub: its loops go on the scheduler from here.
  (upkeep as GossipsubUpkeep | null)?.start();
  // Set by the pubsub factory above, which createLibp2p has run.
  const gossipRecords = records as (() => GossipRecordSizes) | undefined;
  if (gossipRecords === undefined) throw new Error('createLibp2p did not create gossipsub');
  return new WakuRelayTransport(node, options, bans, gossipRecords, upkeep, mismatches, addressBans);
}

/**
 * The gate's check of an outbound connection against the peer id its multiaddr names (libp2p does not
 * make it: see the file comment), and the count of connections it closed.
 */
export class PeerMismatches {
  count = 0;
  /** Told of each connection closed: the transport's bootstrap redialer, which logs its own addresses. */
  onMismatch: (address: Multiaddr, expected: string, actual: string) => void = () => {};

  /** True (deny) when `remoteAddr` names a peer id and the peer Noise proved (`peer`) is another. */
  deny(peer: string, remoteAddr: Multiaddr | undefined): boolean {
    const expected = remoteAddr?.getPeerId();
    if (remoteAddr === undefined || expected == null || expected === peer) return false;
    this.count++;
    this.onMismatch(remoteAddr, expected, peer);
    return true;
  }
}

/**
 * Peers refused at the connection gate until a time (ms since the epoch),
 * bounded to `MAX_BANNED_PEERS`: expired bans are swept as new ones come, and when full the ban ending
 * first is lifted.
 */
export class PeerBans {
  readonly #until = new Map<string, number>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  /** Bans in force. */
  get size(): number {
    const now = this.#now();
    for (const [p, u] of this.#until) if (u <= now) this.#until.delete(p);
    return this.#until.size;
  }

  has(peer: string): boolean {
    const until = this.#until.get(peer);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#until.delete(peer);
    return false;
  }

  ban(peer: string, forMs: number): void {
    const now = this.#now();
    const until = Math.max(this.#until.get(peer) ?? 0, now + forMs);
    this.#until.delete(peer);
    for (const [p, u] of this.#until) if (u <= now) this.#until.delete(p);
    while (this.#until.size >= MAX_BANNED_PEERS) {
      let first: [string, number] | undefined;
      for (const entry of this.#until) if (first === undefined || entry[1] < first[1]) first = entry;
      if (first === undefined) break;
      this.#until.delete(first[0]);
    }
    this.#until.set(peer, until);
  }
}

export class WakuRelayTransport implements Transport {
  readonly name = 'waku-relay';
  readonly node: Libp2p<Services>;
  readonly clusterId: number;
  readonly numShardsInCluster: number;
  /** Largest encoded WakuMessage this node relays or publishes (see the file comment, size). */
  readonly maxMessageBytes: number;
  readonly #handlers = new TopicHandlers();
  /** Subscribers per pubsub topic (several content topics share one shard). */
  readonly #shardRefs = new Map<string, number>();
  readonly #ephemeral: boolean;
  readonly #now: () => number;
  readonly #redial: BootstrapRedialer;
  readonly #bans: PeerBans;
  readonly #addressBans: AddressBans;
  readonly #mismatches: PeerMismatches;
  #forwardValidator: ForwardValidator | null = null;
  readonly #seen: GossipSubSeen;
  /** Ids of the messages gossip forwarded (accepted) or this node published, for `WAKU_GOSSIP_PARAMS.seenTTL`. */
  readonly #forwarded: TtlSet<true>;
  readonly #stats: Omit<
    WakuRelayStats,
    'banned' | 'bannedAddresses' | 'peerMismatches' | 'upkeep' | 'gossipRecords'
  > = {
    validated: 0,
    published: 0,
    received: 0,
    dispatched: 0,
    invalidEnvelopes: 0,
    redials: 0,
    republished: 0,
    reannounced: 0,
  };
  readonly #joined = new Set<(peer: string) => void>();
  /** The shards of ours each connected peer is subscribed to, to tell a join from a subscription repeated. */
  readonly #peerShards = new Map<string, Set<string>>();
  readonly #onPeerGone = (event: CustomEvent<{ toString(): string }>) => {
    this.#peerShards.delete(event.detail.toString());
  };
  #closed = false;

  readonly #upkeep: GossipsubUpkeep | null;
  readonly #records: () => GossipRecordSizes;

  constructor(
    node: Libp2p<Services>,
    options: WakuRelayOptions,
    bans: PeerBans,
    records: () => GossipRecordSizes,
    upkeep: GossipsubUpkeep | null = null,
    mismatches: PeerMismatches = new PeerMismatches(),
    addressBans: AddressBans = new AddressBans(Date.now, options.addressBans),
  ) {
    this.node = node;
    this.#bans = bans;
    this.#addressBans = addressBans;
    this.#mismatches = mismatches;
    this.#records = records;
    this.#upkeep = upkeep;
    this.clusterId = options.clusterId ?? DEFAULT_CLUSTER_ID;
    this.numShardsInCluster = options.numShardsInCluster ?? DEFAULT_SHARDS_IN_CLUSTER;
    this.maxMessageBytes = maxMessageBytesOf(options);
    this.#ephemeral = options.ephemeral ?? false;
    this.#now = options.now ?? Date.now;
    const pubsub = node.services.pubsub;
    this.#seen = gossipSubSeen(pubsub);
    this.#forwarded = new TtlSet(MAX_FORWARDED_IDS, WAKU_GOSSIP_PARAMS.seenTTL ?? 120_000);
    pubsub.addEventListener('gossipsub:message', (event) => {
      const { msg, msgId, propagationSource } = event.detail;
      this.#forwarded.set(msgId, true, Date.now());
      this.#onMessage(msg.topic, msg.data, propagationSource.toString());
    });
    // A peer's subscription to a shard this node is on: it can hear our publications from now on. Only a
    // peer not subscribed to that shard before is a join: gossipsub tells every subscription message, and
    // a peer sending its subscription again (or again and again) is no news.
    pubsub.addEventListener('subscription-change', (event) => {
      if (this.#closed) return;
      const { peerId, subscriptions } = event.detail;
      const peer = peerId.toString();
      let joined = false;
      for (const sub of subscriptions) {
        if (!this.#shardRefs.has(sub.topic)) continue;
        const shards = this.#peerShards.get(peer);
        if (!sub.subscribe) {
          shards?.delete(sub.topic);
          if (shards?.size === 0) this.#peerShards.delete(peer);
        } else if (shards === undefined) {
          this.#peerShards.set(peer, new Set([sub.topic]));
          joined = true;
        } else if (!shards.has(sub.topic)) {
          shards.add(sub.topic);
          joined = true;
        }
      }
      if (joined) for (const listener of this.#joined) listener(peer);
    });
    node.addEventListener('peer:disconnect', this.#onPeerGone);
    const log = options.log ?? (() => {});
    // A failure at a bootstrap address: told to the status line at each change of kind, logged as its
    // spell says (its first failure; a change of kind at most once a minute, with the spell's counts).
    const failed = (line: BootstrapFailureLine, said: SpellSaid) => {
      if (this.#closed) return;
      if (said.changed) options.onBootstrapFailure?.(line);
      if (!said.log) return;
      if (said.counts === null) log(line);
      else {
        const { sinceMs, attempts, kindChanges } = said.counts;
        log({ ...line, sinceMs, attempts, kindChanges });
      }
    };
    this.#redial = new BootstrapRedialer(node, options.bootstrap ?? [], options.reconnect ?? {}, {
      onRedial: () => {
        this.#stats.redials++;
      },
      onDialFailed: (address, expected, error, said) =>
        failed(
          {
            level: 'warn',
            msg: 'a bootstrap address could not be dialled: not connected',
            code: 'BOOTSTRAP_DIAL_FAILED',
            address: address.toString(),
            expected,
            error: dialErrorText(error),
            hint: BOOTSTRAP_DIAL_FAILED_HINT,
          },
          said,
        ),
      onReached: (address, expected, counts) => {
        if (this.#closed) return;
        const { sinceMs, ...rest } = counts;
        log({
          level: 'info',
          msg: 'a bootstrap address is reached: its spell of failures ends',
          address: address.toString(),
          expected,
          lastedMs: sinceMs,
          ...rest,
        });
      },
    });
    mismatches.onMismatch = (address, expected, actual) => {
      if (this.#closed) return;
      const said = this.#redial.mismatch(address, expected);
      if (said === null) return;
      failed(
        {
          level: 'warn',
          msg: 'a bootstrap address is answered by another peer than the one it names: not connected',
          code: 'BOOTSTRAP_PEER_MISMATCH',
          address: address.toString(),
          expected,
          actual,
          hint: BOOTSTRAP_PEER_MISMATCH_HINT,
        },
        said,
      );
    };
  }

  /** The pubsub topic (shard) a content topic travels on in this cluster. */
  pubsubTopic(topic: ContentTopic): string {
    return pubsubTopicOf(topic, this.clusterId, this.numShardsInCluster);
  }

  /**
   * Publish on the topic's shard. Gossip drops a publication whose message id is in its seen cache; that
   * is right for a message it forwarded or we published (every peer has it already), wrong for a copy it
   * took in and the intake ignored (shed under load, over the waiters' cap, a clock): that copy went no
   * further, so the peers reachable only through this node have not got it. Such an id is taken out of
   * the seen cache first, and the message goes out as a first publication.
   *
   * A packet whose WakuMessage is larger than `maxMessageBytes` (150 KiB on The Waku Network) is not
   * sent, since every relay would drop it: `TransportMessageTooLargeError`.
   */
  async publish(topic: ContentTopic, bytes: Uint8Array, options?: PublishOptions): Promise<void> {
    if (this.#closed) throw new TransportClosedError(this.name);
    const data = encodeWakuMessage(topic, bytes, options?.createdAt ?? this.#now(), this.#ephemeral);
    if (data.length > this.maxMessageBytes) {
      throw new TransportMessageTooLargeError(
        this.name,
        data.length,
        this.maxMessageBytes,
        this.clusterId === THE_WAKU_NETWORK_CLUSTER_ID
          ? 'The Waku Network (cluster 1) drops WakuMessages over 150 KiB: send smaller packets there'
          : 'send smaller packets, or raise maxMessageBytes on every node of the cluster',
      );
    }
    const id = this.#seen.msgIdToStrFn(sha256(data));
    const now = Date.now();
    if (options?.again === true) {
      // Sent again on purpose: gossip would refuse it as one it has sent.
      this.#seen.seenCache.entries.delete(id);
      this.#forwarded.set(id, true, now);
      this.#stats.reannounced++;
    } else if (this.#forwarded.get(id, now) === undefined) {
      if (this.#seen.seenCache.entries.delete(id)) this.#stats.republished++;
      this.#forwarded.set(id, true, now);
    }
    await this.node.services.pubsub.publish(this.pubsubTopic(topic), data);
    this.#stats.published++;
  }

  /** Peers that subscribe to a shard this node is subscribed to (see `Transport.onPeerJoined`). */
  onPeerJoined(listener: (peer: string) => void): Unsubscribe {
    this.#joined.add(listener);
    return () => {
      this.#joined.delete(listener);
    };
  }

  subscribe(topic: ContentTopic, handler: MessageHandler): Unsubscribe {
    if (this.#closed) throw new TransportClosedError(this.name);
    const sub = this.#handlers.add(topic, handler);
    const shard = this.pubsubTopic(topic);
    const refs = this.#shardRefs.get(shard) ?? 0;
    this.#shardRefs.set(shard, refs + 1);
    if (refs === 0) {
      this.node.services.pubsub.topicValidators.set(shard, async (peer, message) => {
        // Every message gossipsub takes in on a subscribed shard passes here exactly once.
        this.#stats.received++;
        const checked = checkWakuMessage(message.data, this.maxMessageBytes);
        if (!('message' in checked)) {
          this.#stats.invalidEnvelopes++;
          return VALIDATION.reject;
        }
        const decoded = checked.message;
        const validate = this.#forwardValidator;
        const topic = decoded.contentTopic;
        // Another application's message, or another version (an encrypted payload): relayed, not ours.
        if (validate === null || !isContentTopic(topic) || (decoded.version ?? 0) !== 0) {
          return VALIDATION.accept;
        }
        if (decoded.payload.length > LIMITS.maxPacketBytes) {
          this.#stats.invalidEnvelopes++;
          return VALIDATION.reject;
        }
        this.#stats.validated++;
        const verdict = await validate(decoded.payload, {
          peer: peer.toString(),
          transport: this.name,
          topic,
        });
        return VALIDATION[verdict];
      });
      this.node.services.pubsub.subscribe(shard);
      this.#takeKnownSubscribers(shard);
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      sub.remove();
      const left = (this.#shardRefs.get(shard) ?? 1) - 1;
      if (left > 0) {
        this.#shardRefs.set(shard, left);
        return;
      }
      this.#shardRefs.delete(shard);
      if (this.#closed) return;
      this.node.services.pubsub.unsubscribe(shard);
      this.node.services.pubsub.topicValidators.delete(shard);
    };
  }

  /**
   * Peers that told their subscription to `shard` before this node was on it: gossipsub handed that on
   * while the shard was none of ours (passed over by the `subscription-change` listener) and does not tell
   * it again, so they are taken from what gossipsub knows as this node joins the shard. Without this, a
   * relay whose nodes connected and subscribed before its own node did (a slow start) never counted them
   * as peers on its topics.
   */
  #takeKnownSubscribers(shard: string): void {
    const joined: string[] = [];
    for (const id of this.node.services.pubsub.getSubscribers(shard)) {
      const peer = id.toString();
      const shards = this.#peerShards.get(peer);
      if (shards === undefined) this.#peerShards.set(peer, new Set([shard]));
      else if (!shards.has(shard)) shards.add(shard);
      else continue;
      joined.push(peer);
    }
    for (const peer of joined) for (const listener of this.#joined) listener(peer);
  }

  peers(): string[] {
    return this.node.getPeers().map(String);
  }

  topicPeers(): string[] {
    return [...this.#peerShards.keys()];
  }

  setForwardValidator(validator: ForwardValidator | null): void {
    this.#forwardValidator = validator;
  }

  /** Peers in this node's gossipsub mesh for a content topic's shard. */
  meshPeers(topic: ContentTopic): string[] {
    return this.node.services.pubsub.getMeshPeers(this.pubsubTopic(topic)).map(String);
  }

  /** Addresses this node listens on, with its peer id: what others put in their bootstrap list. */
  addresses(): string[] {
    return this.node.getMultiaddrs().map(String);
  }

  get peerId(): string {
    return this.node.peerId.toString();
  }

  /**
   * Hang up on a peer the intake banned, and refuse its connections for `banMs` (default the intake's
   * default ban, 10 minutes; 0 only hangs up): it is not dialled (bootstrap, PX) and its own dials are
   * turned away once its identity is known. Gossipsub forgets the score of a peer that leaves with a
   * positive one, so without this a banned peer would come straight back with a clean score.
   */
  async disconnect(peer: string, banMs = DEFAULT_BAN_MS): Promise<void> {
    if (!(banMs >= 0 && Number.isFinite(banMs))) throw new RangeError('banMs must be a finite number >= 0');
    if (banMs > 0) this.#bans.ban(peer, banMs);
    const all = this.node.getConnections();
    const connections = all.filter((c) => c.remotePeer.toString() === peer);
    // Its address, once it has had enough banned peer ids: every connection from there goes too.
    const hosts = new Set<string>();
    for (const c of connections) {
      const host = hostOf(c.remoteAddr);
      if (banMs > 0 && host !== null && this.#addressBans.record(host, peer, banMs)) hosts.add(host);
    }
    const closing = all.filter(
      (c) => c.remotePeer.toString() === peer || hosts.has(hostOf(c.remoteAddr) ?? ''),
    );
    await Promise.all(closing.map((c) => c.close()));
  }

  stats(): WakuRelayStats {
    return {
      ...this.#stats,
      banned: this.#bans.size,
      bannedAddresses: this.#addressBans.size,
      peerMismatches: this.#mismatches.count,
      upkeep: this.#upkeep?.stats() ?? null,
      gossipRecords: this.#records(),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#redial.stop();
    this.#upkeep?.stop();
    this.#handlers.clear();
    this.#joined.clear();
    this.#peerShards.clear();
    this.node.removeEventListener('peer:disconnect', this.#onPeerGone);
    // Dials still in flight end first (a refused one at once), up to a second: libp2p's stop aborts
    // them, and an aborted TCP dial can have its socket emit that abort with no listener left
    // (libp2p's own removed as it rejects), an unhandled error while the node closes.
    const until = Date.now() + CLOSE_DIAL_WAIT_MS;
    while (this.node.getDialQueue().length > 0 && Date.now() < until) await sleep(20);
    await this.node.stop();
  }

  #onMessage(pubsubTopic: string, data: Uint8Array, peer: string): void {
    if (this.#closed || !this.#shardRefs.has(pubsubTopic)) return;
    const message = decodeWakuMessage(data, this.maxMessageBytes);
    if (message === undefined) return;
    const topic = message.contentTopic;
    if (!isContentTopic(topic) || this.pubsubTopic(topic) !== pubsubTopic) return;
    const n = this.#handlers.dispatch(topic, message.payload, { peer, transport: this.name, topic });
    if (n > 0) this.#stats.dispatched++;
  }
}

/** The bootstrap redial backoff's cap (see `WakuRelayOptions.reconnect`). */
export const DEFAULT_REDIAL_MAX_MS = 5_000;

/** The bootstrap redial backoff, and where its timers run (see `WakuRelayOptions.reconnect`). */
export interface RedialOptions {
  initialMs?: number;
  maxMs?: number;
  /** The clock of the spells of failures (their lengths, a change of kind's minute). Default Date.now. */
  now?: () => number;
  /** Run `fn` after `ms`; returns a cancel function. Default `realScheduler`'s (`setTimeout` here). */
  after?: Scheduler['after'];
}

/**
 * A bootstrap address the redialer keeps. `peer`: the id its `/p2p/` names; `cancel`: the pending
 * redial's, while one is armed; `spell`: the spell of failures there, until the peer is reached;
 * `answeredByAnother`: the dial under way was closed at the gate as a mismatch (counted as that, not as
 * a dial failure).
 */
interface BootstrapAddress {
  address: Multiaddr;
  peer: string;
  failures: number;
  cancel?: () => void;
  spell?: BootstrapFailureSpell;
  answeredByAnother?: true;
}

/**
 * What a failure at a bootstrap address is to its spell: `changed`, of another kind than the one before
 * (the spell's first too); `log`, to be logged; `counts`, the spell's, for a change of kind logged within
 * it (null for its first failure).
 */
interface SpellSaid {
  changed: boolean;
  log: boolean;
  counts: BootstrapSpellCounts | null;
}

/** What the redialer tells its transport. */
interface RedialEvents {
  onRedial(): void;
  /** A redial failed (not as a mismatch): what that is to the spell of failures at `address`. */
  onDialFailed(address: Multiaddr, expected: string, error: unknown, said: SpellSaid): void;
  /** The peer `address` names is reached: the end of the spell of failures there. */
  onReached(address: Multiaddr, expected: string, counts: BootstrapSpellCounts): void;
}

/** libp2p's dial error in a line: its message, and its inner errors' (an AggregateError of addresses). */
function dialErrorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const inner = error instanceof AggregateError ? error.errors.map((e) => dialErrorText(e)) : [];
  const text = error.message || error.name;
  return inner.length > 0 ? `${text} (${[...new Set(inner)].join('; ')})` : text;
}

/**
 * Keeps the node connected to its bootstrap peers: on start, and whenever one disconnects, dial its
 * address again after a delay that doubles with each failure (from `initialMs` up to `maxMs`), reset once
 * connected. A dial answered by another peer than the address names is a failure like any other (the
 * gate closes it), so the peer named is reached once it listens there. Stops with the node.
 */
class BootstrapRedialer {
  readonly #node: Libp2p<Services>;
  /** One per bootstrap address. */
  readonly #entries: BootstrapAddress[];
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #after: Scheduler['after'];
  readonly #now: () => number;
  readonly #events: RedialEvents;
  #stopped = false;
  readonly #onConnect = (event: CustomEvent<{ toString(): string }>) => {
    const id = event.detail.toString();
    for (const entry of this.#entries) {
      if (entry.peer !== id) continue;
      entry.failures = 0;
      if (entry.spell !== undefined && !this.#stopped) {
        this.#events.onReached(entry.address, entry.peer, entry.spell.counts(this.#now()));
      }
      delete entry.spell;
      delete entry.answeredByAnother;
      entry.cancel?.();
      delete entry.cancel;
    }
  };
  readonly #onDisconnect = (event: CustomEvent<{ toString(): string }>) => {
    const id = event.detail.toString();
    for (const entry of this.#entries) if (entry.peer === id) this.#schedule(entry);
  };

  constructor(node: Libp2p<Services>, bootstrap: string[], reconnect: RedialOptions, events: RedialEvents) {
    this.#node = node;
    this.#initialMs = reconnect.initialMs ?? 1000;
    this.#maxMs = reconnect.maxMs ?? DEFAULT_REDIAL_MAX_MS;
    this.#after = reconnect.after ?? realScheduler.after;
    this.#now = reconnect.now ?? Date.now;
    this.#events = events;
    const addresses = new Map(bootstrap.map((a) => [multiaddr(a).toString(), multiaddr(a)]));
    this.#entries = [...addresses.values()].map((address) => ({
      address,
      peer: address.getPeerId() as string,
      failures: 0,
    }));
    node.addEventListener('peer:connect', this.#onConnect);
    node.addEventListener('peer:disconnect', this.#onDisconnect);
    // @libp2p/bootstrap dials once at start; check back later in case that dial failed.
    for (const entry of this.#entries) this.#schedule(entry);
  }

  /**
   * The gate closed a connection to `address`, answered by another peer than `expected`: what that is to
   * the spell of failures at that bootstrap address (the one dialled, else one naming `expected`), or
   * null when it is none.
   */
  mismatch(address: Multiaddr, expected: string): SpellSaid | null {
    const entry =
      this.#entries.find((e) => e.peer === expected && e.address.equals(address)) ??
      this.#entries.find((e) => e.peer === expected);
    if (entry === undefined) return null;
    entry.answeredByAnother = true;
    return this.#failed(entry, 'mismatch');
  }

  /** A failure of `kind` at `entry`, counted in its spell (the first starts one). */
  #failed(entry: BootstrapAddress, kind: BootstrapFailureKind): SpellSaid {
    const now = this.#now();
    if (entry.spell === undefined) {
      entry.spell = new BootstrapFailureSpell(kind, now);
      return { changed: true, log: true, counts: null };
    }
    const { changed, log } = entry.spell.failed(kind, now);
    return { changed, log, counts: log ? entry.spell.counts(now) : null };
  }

  stop(): void {
    this.#stopped = true;
    this.#node.removeEventListener('peer:connect', this.#onConnect);
    this.#node.removeEventListener('peer:disconnect', this.#onDisconnect);
    for (const entry of this.#entries) entry.cancel?.();
  }

  #schedule(entry: BootstrapAddress): void {
    if (this.#stopped || entry.cancel !== undefined) return;
    const delay = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(entry.failures, 30));
    entry.cancel = this.#after(delay, () => {
      delete entry.cancel;
      if (this.#stopped) return;
      if (this.#node.getConnections().some((c) => c.remotePeer.toString() === entry.peer)) return;
      this.#events.onRedial();
      delete entry.answeredByAnother;
      this.#node.dial(entry.address).then(
        () => {
          entry.failures = 0;
        },
        (error: unknown) => {
          entry.failures++;
          // A mismatch was counted as such (by the gate): any other failure is a dial failure.
          if (entry.answeredByAnother) delete entry.answeredByAnother;
          else if (!this.#stopped) {
            this.#events.onDialFailed(entry.address, entry.peer, error, this.#failed(entry, 'dial'));
          }
          this.#schedule(entry);
        },
      );
    });
  }
}
