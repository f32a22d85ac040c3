import type { PacketType } from '@synod/shared';

/**
 * Synod content topics: the one place topic names are made.
 *
 *   /synod/1/<kind>/proto
 *
 * - `synod` is the application and `1` the protocol version (RFC 51 content-topic form
 *   `/{application}/{version}/{topic-name}/{encoding}`, generation omitted);
 * - `<kind>` is the plural of the packet type the topic carries: requests, commits, seals, reveals,
 *   verdicts, attestations, heartbeats, declines (one packet type per topic, so a subscriber takes only what it
 *   needs and intake can rank a topic's traffic before it parses a byte);
 * - `proto` names the payload encoding as Waku content topics do. The payload is the canonical JSON
 *   packet envelope of `@synod/shared` (`encodePacket`), whatever the transport.
 *
 * Every transport uses these names: the in-memory network and Gun use them as they are (Gun as the soul
 * of the topic node), Waku relay carries them as the WakuMessage `contentTopic` and derives its pubsub
 * topic (shard) from them by autosharding (see waku-relay.ts).
 */
export const TOPIC_KINDS = [
  'requests',
  'commits',
  'seals',
  'reveals',
  'verdicts',
  'attestations',
  'heartbeats',
  'declines',
] as const;
export type TopicKind = (typeof TOPIC_KINDS)[number];

/** A content topic string, `/synod/1/<kind>/proto`. */
export type ContentTopic = `/synod/1/${TopicKind}/proto`;

export const TOPIC_APPLICATION = 'synod';
export const TOPIC_VERSION = '1';
export const TOPIC_ENCODING = 'proto';

const KIND_OF_TYPE: Record<PacketType, TopicKind> = {
  request: 'requests',
  commit: 'commits',
  seal: 'seals',
  reveal: 'reveals',
  verdict: 'verdicts',
  attestation: 'attestations',
  heartbeat: 'heartbeats',
  decline: 'declines',
};

const TYPE_OF_KIND = Object.fromEntries(Object.entries(KIND_OF_TYPE).map(([t, k]) => [k, t])) as Record<
  TopicKind,
  PacketType
>;

export function contentTopic(kind: TopicKind): ContentTopic {
  return `/${TOPIC_APPLICATION}/${TOPIC_VERSION}/${kind}/${TOPIC_ENCODING}`;
}

/** The topic a packet of this type is published on. */
export function topicOfPacketType(type: PacketType): ContentTopic {
  return contentTopic(KIND_OF_TYPE[type]);
}

/** The packet type a topic carries, or undefined for a string that is not a Synod content topic. */
export function packetTypeOfTopic(topic: string): PacketType | undefined {
  const kind = topicKind(topic);
  return kind === undefined ? undefined : TYPE_OF_KIND[kind];
}

/** The kind of a Synod content topic, or undefined for any other string. */
export function topicKind(topic: string): TopicKind | undefined {
  const parts = topic.split('/');
  if (parts.length !== 5 || parts[0] !== '') return undefined;
  if (parts[1] !== TOPIC_APPLICATION || parts[2] !== TOPIC_VERSION || parts[4] !== TOPIC_ENCODING) {
    return undefined;
  }
  const kind = parts[3] as TopicKind;
  return (TOPIC_KINDS as readonly string[]).includes(kind) ? kind : undefined;
}

export function isContentTopic(topic: string): topic is ContentTopic {
  return topicKind(topic) !== undefined;
}

/** Every Synod content topic, in TOPIC_KINDS order. */
export const ALL_TOPICS: readonly ContentTopic[] = TOPIC_KINDS.map(contentTopic);
