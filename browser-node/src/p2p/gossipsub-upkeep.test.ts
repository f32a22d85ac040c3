import { describe, expect, test } from 'bun:test';
import type { Scheduler } from '../node/scheduler.ts';
import { ALL_TOPICS, type ContentTopic } from './topics.ts';
import { createHeadlessWakuRelay } from './waku-relay-headless.ts';
import { addressOf, closedAfterEach } from './waku-test-transports.ts';

const track = closedAfterEach();

/**
 * A hand-driven scheduler (test double): its timers are recorded and run only when the test says, so a
 * test tells the loops it runs from gossipsub's own (which run on the host's timers).
 */
class ManualScheduler implements Scheduler {
  readonly timers: Array<{ ms: number; fn: () => void; cancelled: boolean }> = [];

  now(): number {
    return Date.now();
  }

  after(ms: number, fn: () => void): () => void {
    const timer = { ms, fn, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  /** Timers armed and not cancelled, by delay. */
  armed(): number[] {
    return this.timers.filter((t) => !t.cancelled).map((t) => t.ms);
  }

  /** Run the armed timers with this delay (each once). */
  run(ms: number): void {
    const due = this.timers.filter((t) => !t.cancelled && t.ms === ms);
    for (const t of due) this.timers.splice(this.timers.indexOf(t), 1);
    for (const t of due) t.fn();
  }
}

/** Count the heartbeats a transport's gossipsub ends (its `gossipsub:heartbeat` event). */
function heartbeats(t: Awaited<ReturnType<typeof createHeadlessWakuRelay>>): { count: number } {
  const seen = { count: 0 };
  t.node.services.pubsub.addEventListener('gossipsub:heartbeat', () => seen.count++);
  return seen;
}

describe("gossipsub's upkeep on a scheduler of ours", () => {
  test('with `upkeep`, heartbeats and score decays run only on it, at their intervals; without, on the host timers', async () => {
    const scheduler = new ManualScheduler();
    const own = track(await createHeadlessWakuRelay({ upkeep: scheduler }));
    const host = track(await createHeadlessWakuRelay({ bootstrap: [addressOf(own, false)] }));
    const ownBeats = heartbeats(own);
    const hostBeats = heartbeats(host);
    // Armed on the scheduler: the heartbeat (1 s, Waku's) and the score decay (12 s).
    expect(scheduler.armed().sort((a, b) => a - b)).toEqual([1_000, 12_000]);

    // Over 2.5 s of real time, gossipsub's own heartbeat (100 ms, then every second) ran on the other
    // transport, and never on this one: the host's timers no longer drive it.
    await Bun.sleep(2_500);
    expect(hostBeats.count).toBeGreaterThanOrEqual(2);
    expect(ownBeats.count).toBe(0);
    expect(own.stats().upkeep).toEqual({ heartbeats: 0, decays: 0 });
    expect(host.stats().upkeep).toBeNull();

    // Each firing of the scheduler's heartbeat timer runs one heartbeat and arms the next.
    for (let i = 1; i <= 3; i++) {
      scheduler.run(1_000);
      await Bun.sleep(20); // the heartbeat is async; the next is armed when it ends
      expect(ownBeats.count).toBe(i);
      expect(scheduler.armed().filter((ms) => ms === 1_000)).toHaveLength(1);
    }
    scheduler.run(12_000);
    expect(own.stats().upkeep).toEqual({ heartbeats: 3, decays: 1 });
    expect(scheduler.armed().filter((ms) => ms === 12_000)).toHaveLength(1);

    // The heartbeat it runs is gossipsub's own: the two transports end up in each other's mesh.
    const topic = ALL_TOPICS[0] as ContentTopic;
    const shard = own.pubsubTopic(topic);
    own.subscribe(topic, () => {});
    host.subscribe(topic, () => {});
    const meshed = async () => own.node.services.pubsub.getMeshPeers(shard).includes(host.peerId);
    for (let i = 0; i < 20 && !(await meshed()); i++) {
      scheduler.run(1_000);
      await Bun.sleep(100);
    }
    expect(await meshed()).toBe(true);

    // Closed: nothing left armed, and a timer that fires late runs nothing.
    const before = own.stats().upkeep;
    await own.close();
    expect(scheduler.armed()).toEqual([]);
    for (const t of scheduler.timers) t.fn();
    expect(own.stats().upkeep).toEqual(before);
  }, 30_000);
});
