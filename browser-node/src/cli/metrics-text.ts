import { ERROR_CODES, NODE_SKIP_REASONS, PACKET_TYPES, REJECT_CODES } from '@synod/shared';
import type { NodeMetrics } from '../node/synod-node.ts';
import type { RejectReason } from '../p2p/intake.ts';

/** Why the intake rejects a message: a `SynodError` code, or one of its own. */
/** Codes of opening a sealed key file, which no packet can be rejected with. */
const KEY_FILE_CODES: ReadonlySet<string> = new Set(['KEY_WRONG_PASSPHRASE', 'KEYSTORE_MALFORMED']);
const INTAKE_REJECT_REASONS: readonly RejectReason[] = [
  ...ERROR_CODES.filter((c) => !KEY_FILE_CODES.has(c)),
  'TOPIC_MISMATCH',
  'INTERNAL',
];

/**
 * A counter's rows by one label: every known value, at 0 until counted (a series born at its first
 * increment hides that increment from `increase()` and `rate()`), then any value counted that is not
 * known. The values are the code's own, so the series are bounded.
 */
function byLabel(
  label: string,
  known: readonly string[],
  counts: Partial<Record<string, number>>,
): Array<[Record<string, string>, number]> {
  const rows: Array<[Record<string, string>, number]> = known.map((v) => [{ [label]: v }, counts[v] ?? 0]);
  for (const [v, n] of Object.entries(counts)) if (!known.includes(v)) rows.push([{ [label]: v }, n ?? 0]);
  return rows;
}

/** Prometheus text exposition (0.0.4) of a node's metrics. */
export function renderNodeMetrics(m: NodeMetrics): string {
  const lines: string[] = [];
  const metric = (
    name: string,
    type: 'gauge' | 'counter',
    help: string,
    rows: Array<[Record<string, string>, number]>,
  ) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of rows) {
      const l = Object.entries(labels)
        .map(([k, x]) => `${k}="${x.replace(/["\\\n]/g, '_')}"`)
        .join(',');
      lines.push(`${name}${l ? `{${l}}` : ''} ${v}`);
    }
  };
  metric('synod_peers', 'gauge', 'Connected P2P peers', [[{}, m.peers]]);
  metric('synod_known_nodes', 'gauge', 'Nodes heard from by heartbeat', [[{}, m.knownNodes]]);
  metric(
    'synod_machines',
    'gauge',
    'Request lifecycle machines alive, by role',
    Object.entries(m.machines).map(([role, n]) => [{ role }, n]),
  );
  metric('synod_queue_depth', 'gauge', 'Inference jobs waiting', [[{}, m.queue?.queued ?? 0]]);
  metric('synod_queue_running', 'gauge', 'Inference job running (0 or 1)', [[{}, m.queue?.running ? 1 : 0]]);
  metric(
    'synod_queue_capacity',
    'gauge',
    'Inference jobs that may wait at most (--max-queue; 0 for a follower)',
    [[{}, m.queue?.maxQueue ?? 0]],
  );
  metric('synod_intake_queue_depth', 'gauge', 'Packets waiting for verification', [
    [{}, m.intake.queueDepth],
  ]);
  metric('synod_packets_accepted_total', 'counter', 'Verified packets accepted', [[{}, m.intake.accepted]]);
  metric('synod_packets_duplicate_total', 'counter', 'Duplicate packets dropped', [
    [{}, m.intake.duplicates],
  ]);
  metric('synod_packets_dropped_total', 'counter', 'Packets shed under backpressure', [
    [{}, m.intake.dropped],
  ]);
  metric('synod_packets_bridged_total', 'counter', 'Packets accepted from Gun and published on Waku', [
    [{}, m.intake.bridged],
  ]);
  metric('synod_packets_bridge_errors_total', 'counter', 'Of those, publications that failed', [
    [{}, m.intake.bridgeErrors],
  ]);
  metric(
    'synod_packets_rejected_total',
    'counter',
    'Packets rejected, by reason',
    byLabel('reason', INTAKE_REJECT_REASONS, m.intake.rejected),
  );
  metric(
    'synod_packets_published_total',
    'counter',
    'Packets this node signed and published, by type',
    byLabel('type', PACKET_TYPES, m.published),
  );
  metric(
    'synod_packets_reannounced_total',
    'counter',
    'Packets published again for peers that may have missed them, by type',
    byLabel('type', PACKET_TYPES, m.reannounced.byType),
  );
  metric('synod_publish_errors_total', 'counter', 'Publications of a packet on a transport that failed', [
    [{}, m.publishErrors],
  ]);
  metric(
    'synod_lifecycle_rejected_total',
    'counter',
    'Events the lifecycle ignored, by code',
    byLabel('code', REJECT_CODES, m.lifecycleRejected),
  );
  metric('synod_requests_expired_total', 'counter', 'Requests whose lifecycle machine expired on this node', [
    [{}, m.expired],
  ]);
  metric(
    'synod_requests_skipped_total',
    'counter',
    'Requests this node did not take up, by reason (no-capacity: its queue was full)',
    byLabel('reason', NODE_SKIP_REASONS, m.skipped),
  );
  metric('synod_store_errors_total', 'counter', 'Writes of machine state that failed (e.g. a full disk)', [
    [{}, m.store.errors],
  ]);
  metric(
    'synod_store_failing',
    'gauge',
    '1 from a failed write of the state file until a write works again',
    [[{}, m.store.failing ? 1 : 0]],
  );
  metric('synod_store_refused_total', 'counter', 'Requests not picked up while writes failed', [
    [{}, m.store.refused],
  ]);
  metric(
    'synod_key_in_use_elsewhere',
    'gauge',
    "1 while another process signing with this node's key was heard within a minute (no request is taken)",
    [[{}, m.keyElsewhere?.active ? 1 : 0]],
  );
  metric(
    'synod_key_elsewhere_refused_total',
    'counter',
    'Requests not picked up while another process signed with this key',
    [[{}, m.keyElsewhere?.refused ?? 0]],
  );
  metric(
    'synod_clock_offset_seconds',
    'gauge',
    "How far this clock is off every peer's at least, by their heartbeats (0 before any)",
    [[{}, (m.clock.offsetMs ?? 0) / 1000]],
  );
  metric(
    'synod_clock_peers',
    'gauge',
    'Peers heard from within a minute that the clock offset is taken over',
    [[{}, m.clock.peers]],
  );
  metric('synod_verdicts_total', 'counter', 'Verdicts computed or checked', [[{}, m.verdicts]]);
  metric('synod_evidence_total', 'counter', 'Evidence of misbehaviour seen', [[{}, m.evidence]]);
  metric(
    'synod_reembed_claim_checks_total',
    'counter',
    'Verdicts whose re-embedding claims this member checked before attesting, by outcome (false: REEMBED_CLAIM_FALSE, and failed: the texts could not be embedded, are not attested)',
    [
      [{ outcome: 'held' }, m.claimChecks.held],
      [{ outcome: 'false' }, m.claimChecks.false],
      [{ outcome: 'failed' }, m.claimChecks.failed],
    ],
  );
  metric('synod_inferences_total', 'counter', 'Inferences by outcome', [
    [{ outcome: 'started' }, m.inferences.started],
    [{ outcome: 'done' }, m.inferences.done],
    [{ outcome: 'failed' }, m.inferences.failed],
    [{ outcome: 'declined' }, m.inferences.declined],
    [{ outcome: 'dropped' }, m.inferences.dropped],
  ]);
  metric('synod_tokens_generated_total', 'counter', 'Tokens generated', [[{}, m.inferences.tokens]]);
  metric('synod_tokens_per_second', 'gauge', 'Tokens per second of the last inference', [
    [{}, m.inferences.lastTokensPerSecond],
  ]);
  return `${lines.join('\n')}\n`;
}
