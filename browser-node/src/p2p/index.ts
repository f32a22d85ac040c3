/**
 * Synod layer 1 (P2P): transports behind one small interface, Synod content topics, and the intake
 * that gates everything inbound before the protocol core sees it.
 *
 * This face is safe to bundle for a browser. Headless-only pieces (TCP and WebSocket listeners for
 * Waku relay, the Gun relay server) are in `./headless.ts`.
 */
export {
  GUN_BOUNDS_DEFAULTS,
  GUN_DEFAULT_TOPICS,
  GUN_SAFE_OPTIONS,
  type GunBoundsOptions,
  type GunDedupBoundsOptions,
  type GunDedupStats,
  type GunGraphStats,
  GunTransport,
  type GunTransportOptions,
  gunKeyOf,
  MAX_GUN_DEDUP_IDS,
  soulOf,
} from './gun.ts';
export {
  Intake,
  type IntakeMetrics,
  type IntakeOptions,
  type IntakePacket,
  type OfferResult,
  type PeerRef,
  type PeerStats,
  type RejectReason,
  TtlSet,
} from './intake.ts';
export {
  type MemoryClock,
  MemoryNetwork,
  type MemoryNetworkOptions,
  type MemoryNetworkStats,
  MemoryTransport,
} from './memory.ts';
export {
  ALL_TOPICS,
  type ContentTopic,
  contentTopic,
  isContentTopic,
  packetTypeOfTopic,
  TOPIC_KINDS,
  type TopicKind,
  topicKind,
  topicOfPacketType,
} from './topics.ts';
export {
  type MessageHandler,
  type MessageMeta,
  type PublishOptions,
  TopicHandlers,
  type Transport,
  TransportClosedError,
  TransportMessageTooLargeError,
  type Unsubscribe,
} from './transport.ts';
export {
  BOOTSTRAP_DIAL_FAILED_HINT,
  BOOTSTRAP_PEER_MISMATCH_HINT,
  type BootstrapFailureLine,
  type BootstrapReachedLine,
  createWakuRelayTransport,
  DEFAULT_CLUSTER_ID,
  DEFAULT_SHARDS_IN_CLUSTER,
  type DialPolicy,
  decodeWakuMessage,
  encodeWakuMessage,
  isLoopbackAddress,
  MAX_WAKU_MESSAGE_BYTES,
  maxWakuMessageBytesOf,
  pubsubTopicOf,
  THE_WAKU_NETWORK_CLUSTER_ID,
  THE_WAKU_NETWORK_MAX_MESSAGE_BYTES,
  WAKU_RELAY_CODEC,
  type WakuRelayLogLine,
  type WakuRelayOptions,
  type WakuRelayStats,
  WakuRelayTransport,
} from './waku-relay.ts';
