import type { AnyPacket } from '@synod/shared';
import type { HistoryStore } from '../store/history-store.ts';

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
    case 'seal':
      await store.recordSeal({ id, packet }, now);
      return true;
    case 'reveal':
      await store.recordReveal({ id, packet });
      return true;
    case 'verdict':
      await store.recordVerdict({ id, packet }, now);
      return true;
    case 'attestation':
      await store.recordAttestation({ id, packet });
      return true;
  }
}
