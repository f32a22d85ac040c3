import { describe, expect, test } from 'bun:test';
import { NodeKey, type VerdictEffect } from '@synod/shared';
import { MemoryNetwork, type MemoryTransport } from '../p2p/memory.ts';
import { MemoryMachineStore } from './machine-store.ts';
import type { ReannounceOptions } from './reannouncer.ts';
import { SynodNode, type SynodNodeOptions } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
const FRAME = { quorum: 3, maxCommits: 3, maxTimeMs: 10_000, revealWindowMs: 3_000 };
/**
 * With re-announcing the verdict comes as soon as every member revealed: a wide window costs nothing and
 * keeps a loaded machine from closing it first. Without, the test waits the window out: a short one.
 */
const frameFor = (on: boolean) => (on ? { ...FRAME, revealWindowMs: 15_000 } : FRAME);

/**
 * A relay (coordinator) and three serving nodes on an in-memory network, each with a store of its own
 * (a restart is a new `SynodNode` over the same key and store, on a new transport).
 */
async function network(seed: number, reannounce: { relay?: false; nodes?: false } = {}) {
  const net = new MemoryNetwork();
  const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
  const keys = await Promise.all([1, 2, 3].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(seed + i))));
  const relayStore = new MemoryMachineStore();
  const stores = keys.map(() => new MemoryMachineStore());
  const verdicts: VerdictEffect[] = [];
  const open: SynodNode[] = [];
  const options = (off: false | undefined): ReannounceOptions | false => off ?? { joinDelayMs: 50 };
  const relay = (onSeal?: (t: MemoryTransport) => void, extra: Partial<SynodNodeOptions> = {}) => {
    const transport = net.join(relayKey.nodeId);
    const node = new SynodNode({
      ...extra,
      key: relayKey,
      role: 'relay',
      transports: [transport],
      store: relayStore,
      reannounce: options(reannounce.relay),
      onVerdict: (_id, v) => verdicts.push(v),
      onPacket: ({ packet, own }) => {
        if (own && packet.type === 'seal') onSeal?.(transport);
      },
    });
    open.push(node);
    return node;
  };
  const member = (
    i: number,
    onCommit?: (t: MemoryTransport) => void,
    extra: Partial<SynodNodeOptions> = {},
  ) => {
    const key = keys[i] as NodeKey;
    const transport = net.join(key.nodeId);
    const node = new SynodNode({
      key,
      role: 'node',
      transports: [transport],
      store: stores[i] as MemoryMachineStore,
      lingerMs: 50,
      reannounce: options(reannounce.nodes),
      serving: { queue: fixedQueue() as never, models: [{ id: 'm', fileHash: '22'.repeat(32) }], embedder },
      onPacket: ({ packet, own }) => {
        if (own && packet.type === 'commit') onCommit?.(transport);
      },
      ...extra,
    });
    open.push(node);
    return node;
  };
  return {
    keys,
    verdicts,
    relay,
    member,
    async closeAll() {
      await Promise.all(open.map((n) => n.close()));
    },
  };
}

function outcomes(v: VerdictEffect | undefined) {
  return {
    status: v?.verdict.status,
    accepted: v?.verdict.accepted.length,
    rejected: v?.verdict.rejected.map((r) => r.reason),
  };
}

describe('SynodNode: re-announcing what a peer missed', () => {
  for (const on of [true, false]) {
    test(`a relay killed after its seal and started again ${on ? 'gets' : 'never gets'} the reveals sent meanwhile`, async () => {
      const n = await network(150 + (on ? 0 : 10), on ? {} : { nodes: false });
      const first = n.relay((t) => {
        // Killed the moment its seal is out: the members' reveals go to no one.
        void t.close();
      });
      const members = [0, 1, 2].map((i) => n.member(i));
      try {
        await first.start();
        for (const m of members) await m.start();
        const body = testRequest({ embedder, nonce: on ? 0x51 : 0x52, frame: frameFor(on) });
        await first.submit(body);
        await until(() => members.every((m) => (m.metrics().published.reveal ?? 0) === 1), 10_000);
        await first.close();
        expect(n.verdicts).toHaveLength(0);
        const second = n.relay();
        await second.start();
        await until(() => n.verdicts.length === 1, 15_000);
        if (on) {
          expect(outcomes(n.verdicts[0])).toEqual({ status: 'accepted', accepted: 3, rejected: [] });
          const reannounced = members.map((m) => m.metrics().reannounced);
          for (const r of reannounced) {
            expect(r.byType.reveal).toBeGreaterThanOrEqual(1);
            expect(r.byReason['peer-joined']).toBeGreaterThanOrEqual(1);
          }
        } else {
          // What happened before: every honest member counted as a withholder.
          expect(outcomes(n.verdicts[0]).rejected).toEqual(['NOT_REVEALED', 'NOT_REVEALED', 'NOT_REVEALED']);
        }
      } finally {
        await n.closeAll();
      }
    }, 30_000);
  }

  for (const on of [true, false]) {
    test(`a member away when the seal went out and back after it ${on ? 'hears the seal again and reveals' : 'never reveals'}`, async () => {
      const n = await network(170 + (on ? 0 : 10), on ? {} : { relay: false });
      const relay = n.relay();
      // Member 0 drops off the network the moment its commit is out (the seal comes after it).
      const away = n.member(0, (t) => {
        void t.close();
      });
      const others = [1, 2].map((i) => n.member(i));
      try {
        await relay.start();
        for (const m of [away, ...others]) await m.start();
        const body = testRequest({ embedder, nonce: on ? 0x61 : 0x62, frame: frameFor(on) });
        await relay.submit(body);
        await until(() => others.every((m) => (m.metrics().published.reveal ?? 0) === 1), 10_000);
        await away.close();
        // Back, over its stored state: it committed, it holds no seal.
        const back = n.member(0);
        await back.start();
        await until(() => n.verdicts.length === 1, 15_000);
        if (on) {
          expect(outcomes(n.verdicts[0])).toEqual({ status: 'accepted', accepted: 3, rejected: [] });
          expect(back.metrics().published.reveal).toBe(1);
          expect(relay.metrics().reannounced.byType.seal).toBeGreaterThanOrEqual(1);
        } else {
          expect(outcomes(n.verdicts[0]).rejected).toEqual(['NOT_REVEALED']);
          expect(back.metrics().published.reveal).toBeUndefined();
        }
      } finally {
        await n.closeAll();
      }
    }, 30_000);
  }
  test('a relay down for longer than its members wait for a verdict still gets their reveals: they offer them after giving up', async () => {
    const n = await network(190);
    const first = n.relay((t) => {
      void t.close();
    });
    // Members that give up on the verdict 200 ms after the reveal window (1 s) closes; a finished machine
    // lingers (60 s by default) before it is dropped.
    const members = [0, 1, 2].map((i) =>
      n.member(i, undefined, { observer: { graceMs: 200 }, lingerMs: 60_000 }),
    );
    try {
      await first.start();
      for (const m of members) await m.start();
      const body = testRequest({ embedder, nonce: 0x71, frame: { ...FRAME, revealWindowMs: 1_000 } });
      await first.submit(body);
      // Killed before its reveal window closes (the members' reveals reached no one).
      await until(() => members.every((m) => (m.metrics().published.reveal ?? 0) === 1), 10_000);
      await first.close();
      expect(n.verdicts).toHaveLength(0);
      await until(() => members.every((m) => m.metrics().expired === 1), 10_000);
      // Started again after the members expired no-verdict; it reads its history before it resumes, as
      // the Bun relay does (`storedPackets`: here only a pause), and what comes meanwhile is held for it.
      const second = n.relay(undefined, {
        restoreWith: async () => {
          await Bun.sleep(500);
          return [];
        },
      });
      await second.start();
      await until(() => n.verdicts.length === 1, 10_000);
      expect(outcomes(n.verdicts[0])).toEqual({ status: 'accepted', accepted: 3, rejected: [] });
      for (const m of members) expect(m.metrics().reannounced.byType.reveal).toBeGreaterThanOrEqual(1);
    } finally {
      await n.closeAll();
    }
  }, 30_000);
});
