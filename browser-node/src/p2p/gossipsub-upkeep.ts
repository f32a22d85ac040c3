import type { GossipSub } from '@chainsafe/libp2p-gossipsub';
import type { Scheduler } from '../node/scheduler.ts';

/**
 * Gossipsub's periodic upkeep on a `Scheduler` of ours instead of the host's timers.
 *
 * @chainsafe/libp2p-gossipsub runs two loops on the global `setTimeout`/`setInterval`: the heartbeat
 * (every `heartbeatInterval`, 1 s for Waku: mesh grafts and prunes, fanout, IHAVE gossip, backoffs, the
 * message cache's shift) and the peer-score decay (every `decayInterval`, 12 s). On a page those are the
 * page's timers, which Chrome slows to about one wake-up a minute in a tab hidden for five minutes: the
 * node's mesh then goes unrepaired for a minute at a time, and the message cache, which gossip is
 * answered from, turns over sixty times slower. A browser node passes its timer worker's scheduler
 * (browser/worker-scheduler.ts), which a hidden tab does not slow, and both loops run there.
 *
 * How: before gossipsub starts, its heartbeat runner (`runHeartbeat`, private in its types, an own
 * property at run time) is replaced by one that does nothing, so the heartbeat `start()` arms on the
 * host's timers never runs; once it has started, the score's decay interval is cleared (its handle kept,
 * so that gossipsub's own `stop()` goes through as usual). Then `start()` here runs `heartbeat()` and the
 * score's `background()` at their intervals on the scheduler, each armed after the last one ended, until
 * `stop()` or gossipsub stops. Written for @chainsafe/libp2p-gossipsub 14: `takeOverUpkeep` throws if the
 * internals it needs are not there, rather than leave the loops on the host's timers unnoticed.
 */

/** The gossipsub internals this reaches into (present at run time in version 14). */
interface GossipSubLoops {
  runHeartbeat: () => void;
  heartbeat(): Promise<void>;
  isStarted(): boolean;
  opts: { heartbeatInterval: number };
  score: {
    params: { decayInterval: number };
    background(): void;
    _backgroundInterval?: ReturnType<typeof setInterval>;
  };
}

function loopsOf(pubsub: GossipSub): GossipSubLoops {
  const inner = pubsub as unknown as Partial<GossipSubLoops>;
  if (
    typeof inner.runHeartbeat !== 'function' ||
    typeof inner.heartbeat !== 'function' ||
    typeof inner.isStarted !== 'function' ||
    typeof inner.opts?.heartbeatInterval !== 'number' ||
    typeof inner.score?.background !== 'function' ||
    typeof inner.score.params?.decayInterval !== 'number'
  ) {
    throw new Error(
      'this gossipsub has no runHeartbeat, heartbeat, score.background or their intervals (written for version 14)',
    );
  }
  return inner as GossipSubLoops;
}

export interface GossipsubUpkeepStats {
  /** Heartbeats run on the scheduler. */
  heartbeats: number;
  /** Peer-score decays run on the scheduler. */
  decays: number;
}

export interface GossipsubUpkeep {
  /** Start both loops on the scheduler; call once gossipsub has started. */
  start(): void;
  /** Stop both loops (gossipsub stopping stops them too). */
  stop(): void;
  stats(): GossipsubUpkeepStats;
}

/**
 * Take gossipsub's upkeep off the host's timers: call on a gossipsub that has not started yet, then
 * `start()` the result once it has.
 */
export function takeOverUpkeep(
  pubsub: GossipSub,
  scheduler: Scheduler,
  log: (msg: string, err: unknown) => void = () => {},
): GossipsubUpkeep {
  const loops = loopsOf(pubsub);
  // `start()` arms `setTimeout(this.runHeartbeat, …)`: from now on that does nothing.
  loops.runHeartbeat = () => {};
  const stats: GossipsubUpkeepStats = { heartbeats: 0, decays: 0 };
  let stopped = false;
  let started = false;
  const cancels = { heartbeat: () => {}, decay: () => {} };

  const heartbeatMs = loops.opts.heartbeatInterval;
  const beat = () => {
    if (stopped || !loops.isStarted()) return;
    stats.heartbeats++;
    loops
      .heartbeat()
      .catch((e: unknown) => log('gossipsub heartbeat failed', e))
      .finally(() => {
        if (!stopped) cancels.heartbeat = scheduler.after(heartbeatMs, beat);
      });
  };
  const decayMs = loops.score.params.decayInterval;
  const decay = () => {
    if (stopped || !loops.isStarted()) return;
    stats.decays++;
    try {
      loops.score.background();
    } catch (e) {
      log('gossipsub score decay failed', e);
    }
    cancels.decay = scheduler.after(decayMs, decay);
  };

  return {
    start() {
      if (started || stopped) return;
      started = true;
      // The score's own interval, armed by gossipsub's start(): cleared, its handle left in place.
      if (loops.score._backgroundInterval !== undefined) clearInterval(loops.score._backgroundInterval);
      cancels.heartbeat = scheduler.after(heartbeatMs, beat);
      cancels.decay = scheduler.after(decayMs, decay);
    },
    stop() {
      stopped = true;
      cancels.heartbeat();
      cancels.decay();
    },
    stats: () => ({ ...stats }),
  };
}
