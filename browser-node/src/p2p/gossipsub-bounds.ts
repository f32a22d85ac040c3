import type { GossipSub } from '@chainsafe/libp2p-gossipsub';

/**
 * A bound on the two per-message records gossipsub keeps for every message it takes in, kept or not.
 *
 * @chainsafe/libp2p-gossipsub remembers each message id it has seen in its seen cache (for `seenTTL`,
 * 2 minutes for Waku) and the peer score keeps a delivery record per id (a record, a `Set` of peers
 * and a queue entry, for a fixed 2 minutes). Both are bounded in time only: their size is the rate
 * messages arrive at times 2 minutes, whatever the intake then does with the messages. A peer sending
 * validly signed junk (stale commits, commits for no request) as fast as the relay can read had
 * gossipsub hold 530,000 of each after 45 s from 4 peers on a 2-core machine (~450 bytes of heap a
 * message; RSS from 130 MB to 820 MB, 420 MB still two minutes later), and a faster relay holds
 * proportionally more, up to rate x 120 s.
 *
 * Here both are held to `maxIds` (the oldest forgotten first). Forgetting a message id early is safe:
 * a late copy of it is handed to the topic validator again, where the intake's own dedup (by digest
 * and by packet id) answers `ignore`, so it is neither delivered twice nor forwarded. A forgotten
 * delivery record only loses score bookkeeping for late duplicates (mesh delivery counts, which
 * Waku's parameters do not score; a penalty for forwarding an invalid message already judged).
 *
 * How: the instances' `put` (seen cache) and `ensureRecord` (delivery records) are wrapped to drop the
 * oldest entries past the bound; both keep entries in insertion order, which is age order, so the
 * oldest is the first. Written for @chainsafe/libp2p-gossipsub 14: throws if the internals it needs are
 * not there, rather than leave them unbounded unnoticed.
 */

/**
 * Most message ids gossipsub remembers as seen, and most delivery records its score keeps: 2^17, room
 * for the whole 2-minute window at up to ~1,000 messages a second (far above an honest network's rate:
 * a request brings a few dozen packets, a node a heartbeat every few seconds); at ~450 bytes a message,
 * ~60 MB at most. Twice the intake's digest dedup (65,536 entries), which catches what is forgotten here.
 */
export const MAX_GOSSIP_MESSAGE_IDS = 131_072;

/** The gossipsub internals bounded here (present at run time in version 14). */
interface GossipSubRecords {
  seenCache: {
    entries: Map<string, unknown>;
    put(key: string, value?: unknown): boolean;
  };
  score: {
    deliveryRecords: {
      records: Map<string, unknown>;
      queue: { length: number; shift(): { msgId: string } | undefined };
      ensureRecord(msgIdStr: string): unknown;
    };
  };
}

function recordsOf(pubsub: GossipSub): GossipSubRecords {
  const inner = pubsub as unknown as Partial<GossipSubRecords>;
  const records = inner.score?.deliveryRecords;
  if (
    !(inner.seenCache?.entries instanceof Map) ||
    typeof inner.seenCache.put !== 'function' ||
    !(records?.records instanceof Map) ||
    typeof records.queue?.shift !== 'function' ||
    typeof records.ensureRecord !== 'function'
  ) {
    throw new Error(
      'this gossipsub has no seenCache.put or score.deliveryRecords.ensureRecord (written for version 14)',
    );
  }
  return inner as GossipSubRecords;
}

/** How many entries the bounded records hold now (for tests and diagnostics). */
export interface GossipRecordSizes {
  /** Message ids in gossipsub's seen cache. */
  seen: number;
  /** Delivery records in its peer score. */
  deliveryRecords: number;
}

/** Hold gossipsub's seen cache and delivery records to `maxIds` entries each. Returns their sizes' reader. */
export function boundGossipRecords(
  pubsub: GossipSub,
  maxIds: number = MAX_GOSSIP_MESSAGE_IDS,
): () => GossipRecordSizes {
  if (!(Number.isInteger(maxIds) && maxIds >= 1)) throw new RangeError('maxIds must be a positive integer');
  const { seenCache, score } = recordsOf(pubsub);
  const put = seenCache.put.bind(seenCache);
  seenCache.put = (key, value) => {
    const collided = put(key, value);
    for (const oldest of seenCache.entries.keys()) {
      if (seenCache.entries.size <= maxIds) break;
      seenCache.entries.delete(oldest);
    }
    return collided;
  };
  const deliveries = score.deliveryRecords;
  const ensureRecord = deliveries.ensureRecord.bind(deliveries);
  deliveries.ensureRecord = (msgIdStr) => {
    const record = ensureRecord(msgIdStr);
    // The queue holds one entry per record, oldest first (gossipsub's gc takes both off together).
    while (deliveries.records.size > maxIds && deliveries.queue.length > 0) {
      const oldest = deliveries.queue.shift();
      if (oldest !== undefined) deliveries.records.delete(oldest.msgId);
    }
    return record;
  };
  return () => ({ seen: seenCache.entries.size, deliveryRecords: deliveries.records.size });
}
