import type { AnyPacket, Packet } from '@synod/shared';
import { advertisedKey } from '../store/heartbeat-writes.ts';
import type { HistoryStore } from '../store/history-store.ts';

/** The commits with these ids that the relay's node holds for a request (`SynodNode.heldCommits`). */
export type HeldCommits = (
  requestId: string,
  ids: ReadonlySet<string>,
) => { id: string; packet: Packet<'commit'> }[];

/**
 * Writes what the relay's node sees into the quorum history: every packet of a request the history
 * holds (commits, declines, seal, reveals, verdict, attestations) and heartbeats (the node registry: a node's at
 * most once per `HEARTBEAT_WRITE_INTERVAL_MS` unless what it advertises changed).
 * Inserts are idempotent, so the same packet from several transports, or from several relays over one
 * database, is stored once. Returns whether the request's stored view changed; for a heartbeat, whether
 * it was written (one not due yet is skipped without touching the database).
 */
export async function recordPacket(
  store: HistoryStore,
  packet: AnyPacket,
  id: string,
  now: number,
  o: {
    /** The commits the relay's node holds, stored with a seal (see `HistoryStore.recordSeal`). */
    heldCommits?: HeldCommits;
    /** Which nodes are proven or trusted now, for the vouched agreements of a verdict. */
    vouches?: (nodeId: string) => boolean;
    /** The relay's own node id: a verdict of its own the history does not take is logged (`log`). */
    self?: string;
    log?: (entry: Record<string, unknown>) => void;
  } = {},
): Promise<boolean> {
  switch (packet.type) {
    case 'heartbeat': {
      // A node's heartbeat is written once per `HEARTBEAT_WRITE_INTERVAL_MS` unless what it advertises
      // changed (the relay remembers what it wrote, for a bounded number of nodes); a node whose row a
      // flood of new keys pushed out (`MAX_IDLE_NODES`) is written again at its next heartbeat.
      const writes = store.heartbeatWrites;
      const advertised = advertisedKey(packet.body);
      if (!writes.due(packet.from, advertised, now)) return false;
      writes.wrote(packet.from, advertised, now);
      try {
        for (const gone of await store.recordHeartbeat({ id, packet }, now)) writes.forget(gone);
      } catch (e) {
        writes.forget(packet.from);
        throw e;
      }
      return true;
    }
    case 'request':
      // Requests enter the history through the relay that accepts them (`accept`), never from the
      // network: a peer cannot fill the database by publishing requests.
      return false;
    case 'commit':
      await store.recordCommit({ id, packet });
      return true;
    case 'seal': {
      // With the members' commits the relay's node holds (its coordinator's, for its own requests).
      const ids = new Set(packet.body.members.map((m) => m.commitId));
      await store.recordSeal({ id, packet }, now, o.heldCommits?.(packet.body.requestId, ids) ?? []);
      return true;
    }
    case 'reveal':
      await store.recordReveal({ id, packet });
      return true;
    case 'verdict': {
      const taken = await store.recordVerdict({ id, packet }, now, o.vouches);
      // The relay's own verdict, not taken and not there already: its request's history does not hold
      // the seal it names open (a seal made again after a failed step, say), and the request would stay
      // sealed for good in the history while the network heard its verdict. Said, never silent.
      if (!taken && packet.from === o.self) {
        const why = await store.verdictRefusal(packet.body.requestId);
        if (why !== null) {
          o.log?.({
            level: 'error',
            msg: 'verdict not stored',
            code: 'VERDICT_NOT_STORED',
            requestId: packet.body.requestId,
            sealId: packet.body.verdict.sealId,
            ...why,
            hint: "the history does not hold this verdict's seal for an open request of this coordinator: GET /v1/inference/:id shows what it holds",
          });
        }
      }
      return true;
    }
    case 'attestation':
      await store.recordAttestation({ id, packet });
      return true;
    case 'decline':
      await store.recordDecline({ id, packet });
      return true;
  }
}
