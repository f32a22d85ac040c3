import type { AnyPacket, Packet } from '@synod/shared';
import type { HistoryStore } from '../store/history-store.ts';

/** The commits with these ids that the relay's node holds for a request (`SynodNode.heldCommits`). */
export type HeldCommits = (
  requestId: string,
  ids: ReadonlySet<string>,
) => { id: string; packet: Packet<'commit'> }[];

/**
 * Writes what the relay's node sees into the quorum history: every packet of a request the history
 * holds (commits, seal, reveals, verdict, attestations) and every heartbeat (the node registry).
 * Inserts are idempotent, so the same packet from several transports, or from several relays over one
 * database, is stored once. Returns whether the request's stored view changed.
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
  } = {},
): Promise<boolean> {
  switch (packet.type) {
    case 'heartbeat':
      await store.recordHeartbeat({ id, packet }, now);
      return false;
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
    case 'verdict':
      await store.recordVerdict({ id, packet }, now, o.vouches);
      return true;
    case 'attestation':
      await store.recordAttestation({ id, packet });
      return true;
  }
}
