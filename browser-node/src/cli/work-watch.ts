import type { NodeMetrics } from '../node/synod-node.ts';
import { clockSkew, networkSilence, networkSilentHint } from './node-health.ts';

/**
 * Requests a node weighed: those it started inferring, and those it skipped for a reason of its own
 * (its queue full, a deadline it could not meet). A request of a coordinator it does not serve is in
 * neither.
 */
function weighed(m: NodeMetrics): number {
  return m.inferences.started + Object.values(m.skipped).reduce((a, b) => a + (b ?? 0), 0);
}

/**
 * Log what keeps a connected node from doing any work, where /healthz and /metrics alone would say it
 * only to whoever looks: every `intervalMs`,
 * - its clock off its peers' (`CLOCK_SKEW`, as /healthz has it): a clock ahead skips every request as
 *   already late, one far behind commits after the seal; a warning once a spell, an info line when the
 *   clock agrees again;
 * - connected, and nothing heard for `NETWORK_SILENT_MS` (`NETWORK_SILENT`, as /healthz has it): cut off
 *   whatever its connections say; a warning once a spell, an info line when the network is heard again;
 * - requests heard, none taken, every one refused because its coordinator is not among `coordinators`
 *   (`NOT_COORDINATOR`, with the authors refused): a `--coordinators` that names no relay of the
 *   network; a warning once a spell, which a request taken ends.
 * Returns how to stop watching.
 */
export function watchWork(o: WorkWatchOptions & { intervalMs: number }): () => void {
  const timer = setInterval(workLooks(o), o.intervalMs);
  (timer as { unref?: () => void }).unref?.();
  return () => clearInterval(timer);
}

export interface WorkWatchOptions {
  metrics: () => NodeMetrics;
  /** The clock, and when the node started (a node that has heard nothing yet is silent since then). */
  now?: () => number;
  startedAt?: number;
  /** The node's `--coordinators` (empty: it serves any coordinator, and refuses none). */
  coordinators: readonly string[];
  log: (e: Record<string, unknown>) => void;
  /**
   * The time between looks. A look more than twice as late as that comes from a process that was not
   * running (stopped, a machine asleep): what it missed is only being handed over now, so its silence is
   * not judged at that look.
   */
  intervalMs?: number;
}

/** `watchWork`'s look, each call one (from the metrics at the call before, or at this call's making). */
export function workLooks(o: WorkWatchOptions): () => void {
  let clockWarned = false;
  let silenceWarned = false;
  const now = o.now ?? Date.now;
  const startedAt = o.startedAt ?? now();
  let refusedWarned = false;
  let last = o.metrics();
  let lastLookAt = now();
  const look = () => {
    const m = o.metrics();
    const t = now();
    const woke = o.intervalMs !== undefined && t - lastLookAt > 2 * o.intervalMs;
    lastLookAt = t;
    const skew = clockSkew(m);
    if (skew !== null && !clockWarned) {
      o.log({
        level: 'warn',
        msg: "this node's clock is off its peers': it skips requests as late, or commits after the seal",
        code: 'CLOCK_SKEW',
        detail: skew,
        offsetMs: m.clock.offsetMs,
        hint: 'synchronize the clock (NTP); /healthz says the same while it lasts',
      });
      clockWarned = true;
    } else if (skew === null && clockWarned) {
      o.log({
        level: 'info',
        msg: "this node's clock agrees with its peers' again",
        offsetMs: m.clock.offsetMs,
      });
      clockWarned = false;
    }
    const silent = networkSilence(m, t, startedAt);
    if (woke) {
      // Its own pause, not the network's silence: judged at the next look.
    } else if (silent !== null && !silenceWarned) {
      o.log({
        level: 'warn',
        msg: 'connected, and nothing heard from the network: this node hears no request',
        code: 'NETWORK_SILENT',
        peers: m.peers,
        silentMs: silent,
        hint: networkSilentHint(silent),
      });
      silenceWarned = true;
    } else if (silent === null && silenceWarned) {
      o.log({ level: 'info', msg: 'the network is heard again', peers: m.peers });
      silenceWarned = false;
    }
    const refused =
      (m.lifecycleRejected.NOT_COORDINATOR ?? 0) - (last.lifecycleRejected.NOT_COORDINATOR ?? 0);
    const taken = weighed(m) - weighed(last);
    if (o.coordinators.length > 0 && refused > 0 && taken === 0 && !refusedWarned) {
      o.log({
        level: 'warn',
        msg: 'every request heard came from a coordinator this node does not serve: it takes none',
        code: 'NOT_COORDINATOR',
        refused,
        from: m.refusedCoordinators,
        coordinators: o.coordinators,
        hint: 'check --coordinators: it takes the "coordinator" id a relay logs in its "relay started" line',
      });
      refusedWarned = true;
    } else if (taken > 0 && refusedWarned) {
      o.log({ level: 'info', msg: 'requests of the --coordinators taken again', taken });
      refusedWarned = false;
    }
    last = m;
  };
  return look;
}
