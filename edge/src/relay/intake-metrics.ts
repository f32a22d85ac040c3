import type { IntakeMetrics, RejectReason, Transport } from '@synod/browser-node';
import { ERROR_CODES } from '@synod/shared';
import type { Metrics } from '../metrics.ts';

/** Codes of opening a sealed key file, which no packet can be rejected with. */
const KEY_FILE_CODES: ReadonlySet<string> = new Set(['KEY_WRONG_PASSPHRASE', 'KEYSTORE_MALFORMED']);
/**
 * Every reason the intake rejects a message for, each series there at 0 from the start (a series born at
 * its first increment hides that increment from `increase()`): the node's own list
 * (browser-node/src/cli/metrics-text.ts, which the relay cannot import without the node's CLI).
 */
const INTAKE_REJECT_REASONS: readonly RejectReason[] = [
  ...ERROR_CODES.filter((c) => !KEY_FILE_CODES.has(c)),
  'TOPIC_MISMATCH',
  'INTERNAL',
];

/**
 * The relay's node's P2P intake into the relay's `/metrics` (a `Metrics.onScrape` collector): the series
 * the node exports, by the same names and labels (`synod_packets_*_total`, rejections by `reason`), plus
 * what the node's /metrics lacks: messages offered, those from banned peers, bans, and the envelopes a
 * transport refused before the intake saw them (Waku relay's `invalidEnvelopes`, by `transport`).
 */
export function exportIntakeMetrics(
  metrics: Metrics,
  intake: IntakeMetrics,
  transports: readonly Transport[] = [],
): void {
  metrics.set('synod_intake_queue_depth', 'Packets waiting for verification', intake.queueDepth);
  metrics.setTotal(
    'synod_packets_offered_total',
    'Messages offered to the intake by any transport',
    intake.offered,
  );
  metrics.setTotal('synod_packets_accepted_total', 'Verified packets accepted', intake.accepted);
  metrics.setTotal('synod_packets_duplicate_total', 'Duplicate packets dropped', intake.duplicates);
  metrics.setTotal('synod_packets_dropped_total', 'Packets shed under backpressure', intake.dropped);
  metrics.setTotal(
    'synod_packets_from_banned_total',
    'Messages ignored because their peer was banned',
    intake.fromBanned,
  );
  metrics.setTotal('synod_peer_bans_total', 'Peers banned for invalid messages', intake.bans);
  const rejected: Partial<Record<string, number>> = intake.rejected;
  for (const reason of INTAKE_REJECT_REASONS) {
    metrics.setTotal('synod_packets_rejected_total', 'Packets rejected, by reason', rejected[reason] ?? 0, {
      reason,
    });
  }
  for (const [reason, n] of Object.entries(rejected)) {
    if (!INTAKE_REJECT_REASONS.includes(reason as RejectReason)) {
      metrics.setTotal('synod_packets_rejected_total', 'Packets rejected, by reason', n ?? 0, { reason });
    }
  }
  for (const t of transports) {
    const stats = (
      t as { stats?: () => { invalidEnvelopes?: unknown; gossipRecords?: Record<string, unknown> } }
    ).stats?.();
    if (typeof stats?.invalidEnvelopes === 'number') {
      metrics.setTotal(
        'synod_invalid_envelopes_total',
        'Messages a transport refused before the intake (not a valid envelope on a Synod topic), by transport',
        stats.invalidEnvelopes,
        { transport: t.name },
      );
    }
    // Gossipsub's per-message records (Waku relay), each held to MAX_GOSSIP_MESSAGE_IDS: at the bound
    // during a flood, near the message rate times 2 minutes otherwise.
    for (const [kind, n] of Object.entries(stats?.gossipRecords ?? {})) {
      if (typeof n !== 'number') continue;
      metrics.set(
        'synod_gossip_records',
        'Message ids gossipsub keeps (seen cache, score delivery records), by transport and kind; bounded',
        n,
        { transport: t.name, kind },
      );
    }
  }
}

/**
 * The relay's answers to packets that showed their senders missed a seal or a verdict (`SynodNode`'s
 * late answers: a node started again after its request was judged), and those not sent, over the cap:
 * to sealed members (`sent`, `dropped`), and to keys the seal does not list, each answered with the
 * seal and the verdict only, from a budget of their own (`sent-to-non-member`, `dropped-to-non-member`).
 */
export function exportLateAnswerMetrics(
  metrics: Metrics,
  node: {
    lateAnswers: number;
    lateAnswersDropped: number;
    lateAnswersToNonMembers: number;
    lateAnswersToNonMembersDropped: number;
  },
): void {
  const help =
    'Answers to packets whose senders missed the seal or the verdict, sent or dropped over the cap, to members and to non-members';
  metrics.setTotal('synod_late_answers_total', help, node.lateAnswers, { outcome: 'sent' });
  metrics.setTotal('synod_late_answers_total', help, node.lateAnswersDropped, { outcome: 'dropped' });
  metrics.setTotal('synod_late_answers_total', help, node.lateAnswersToNonMembers, {
    outcome: 'sent-to-non-member',
  });
  metrics.setTotal('synod_late_answers_total', help, node.lateAnswersToNonMembersDropped, {
    outcome: 'dropped-to-non-member',
  });
}

/**
 * The relay's re-embeddings of the reveals it coordinates (`SynodNode`'s `reembed`): texts embedded and
 * embeddings that failed (those reveals counted with the bits they claim), whether the latest failed, and
 * the texts waiting for their embedding (the one running included) with their characters: one embedding
 * runs at a time, the shortest text first, so a long queue delays the verdicts of long answers first;
 * with `restarts` (`RelayOptions.reembedRestarts`), its embedder's workers started again after one died,
 * those whose model loaded and those whose load failed.
 */
export function exportReembedMetrics(
  metrics: Metrics,
  reembed: { embedded: number; failed: number; failing: unknown; queued: number; queuedChars: number },
  restarts?: { restarted: number; failed: number },
): void {
  const help = 'Reveal texts the relay embedded again, and embeddings that failed';
  metrics.setTotal('synod_reembed_total', help, reembed.embedded, { outcome: 'embedded' });
  metrics.setTotal('synod_reembed_total', help, reembed.failed, { outcome: 'failed' });
  metrics.set(
    'synod_reembed_failing',
    "1 while the relay's latest re-embedding failed",
    reembed.failing ? 1 : 0,
  );
  metrics.set(
    'synod_reembed_queued',
    'Reveal texts waiting for the relay to embed them again, the one being embedded included',
    reembed.queued,
  );
  metrics.set(
    'synod_reembed_queued_chars',
    'Characters of the reveal texts waiting for the relay to embed them again (synod_reembed_queued)',
    reembed.queuedChars,
  );
  if (restarts === undefined) return;
  const restartHelp =
    "The relay's embedder started again after its worker died: restarted (the model loaded in a new worker) or failed (tried again after a longer wait)";
  metrics.setTotal('synod_reembed_restarts_total', restartHelp, restarts.restarted, {
    outcome: 'restarted',
  });
  metrics.setTotal('synod_reembed_restarts_total', restartHelp, restarts.failed, { outcome: 'failed' });
}
