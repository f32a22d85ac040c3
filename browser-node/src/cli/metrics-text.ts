import type { NodeMetrics } from '../node/synod-node.ts';

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
    Object.entries(m.intake.rejected).map(([reason, n]) => [{ reason }, n ?? 0]),
  );
  metric(
    'synod_packets_published_total',
    'counter',
    'Packets this node signed and published, by type',
    Object.entries(m.published).map(([type, n]) => [{ type }, n ?? 0]),
  );
  metric(
    'synod_lifecycle_rejected_total',
    'counter',
    'Events the lifecycle ignored, by code',
    Object.entries(m.lifecycleRejected).map(([code, n]) => [{ code }, n ?? 0]),
  );
  metric('synod_store_errors_total', 'counter', 'Writes of machine state that failed (e.g. a full disk)', [
    [{}, m.store.errors],
  ]);
  metric('synod_store_failing', 'gauge', '1 while requests are not picked up after a failed write', [
    [{}, m.store.failing ? 1 : 0],
  ]);
  metric('synod_store_refused_total', 'counter', 'Requests not picked up while writes failed', [
    [{}, m.store.refused],
  ]);
  metric(
    'synod_clock_offset_seconds',
    'gauge',
    "How far this clock is off every peer's at least, by their heartbeats (0 before any)",
    [[{}, (m.clock.offsetMs ?? 0) / 1000]],
  );
  metric('synod_verdicts_total', 'counter', 'Verdicts computed or checked', [[{}, m.verdicts]]);
  metric('synod_evidence_total', 'counter', 'Evidence of misbehaviour seen', [[{}, m.evidence]]);
  metric('synod_inferences_total', 'counter', 'Inferences by outcome', [
    [{ outcome: 'started' }, m.inferences.started],
    [{ outcome: 'done' }, m.inferences.done],
    [{ outcome: 'failed' }, m.inferences.failed],
  ]);
  metric('synod_tokens_generated_total', 'counter', 'Tokens generated', [[{}, m.inferences.tokens]]);
  metric('synod_tokens_per_second', 'gauge', 'Tokens per second of the last inference', [
    [{}, m.inferences.lastTokensPerSecond],
  ]);
  return `${lines.join('\n')}\n`;
}
