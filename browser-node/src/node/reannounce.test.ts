import { describe, expect, test } from 'bun:test';
import { encodePacket, NodeKey, signPacket, type VerdictEffect } from '@synod/shared';
import { MemoryNetwork, type MemoryTransport } from '../p2p/memory.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { MemoryMachineStore } from './machine-store.ts';
import type { ReannounceOptions } from './reannouncer.ts';
import { SynodNode, type SynodNodeOptions } from './synod-node.ts';
import { fixedQueue } from './test-queue.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
/** What a member serves: a queue of its own (each answers its first request alike). */
const serving = () => ({
  queue: fixedQueue() as never,
  models: [{ id: 'm', fileHash: '22'.repeat(32) }],
  embedder,
});

/** A queue whose inference takes `ms` (or until the node is closed): a member slower than the others. */
function slowQueue(ms: number) {
  const fast = fixedQueue();
  return {
    ...fast,
    submit: async (...args: Parameters<typeof fast.submit>) => {
      await Bun.sleep(ms);
      return fast.submit(...args);
    },
  };
}
const FRAME = { quorum: 3, maxCommits: 3, maxTimeMs: 10_000, revealWindowMs: 3_000 };
/** How long a node waits past a deadline before it gives up (the observer's default grace). */
const NODE_GRACE_MS = 5_000;
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
  /** Each member's transport, the latest. */
  const transports: MemoryTransport[] = [];
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
    transports[i] = transport;
    const node = new SynodNode({
      key,
      role: 'node',
      transports: [transport],
      store: stores[i] as MemoryMachineStore,
      lingerMs: 50,
      reannounce: options(reannounce.nodes),
      serving: serving(),
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
    join: (nodeId: string) => net.join(nodeId),
    /** Member `i` is killed: off the network at once, and closed (its store kept). */
    async kill(i: number, node: SynodNode) {
      await transports[i]?.close();
      await node.close();
    },
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

  for (const on of [true, false]) {
    test(`a member stopped while it inferred and started again after the request was judged ${on ? 'learns at its commit that it was left out' : 'waits for its deadline'}`, async () => {
      const n = await network(200 + (on ? 0 : 10), on ? {} : { relay: false });
      const relay = n.relay();
      // Member 0 infers slowly: the others' commits fill the seal (2 of 2) first, after it was killed.
      const slow = n.member(0, undefined, { serving: { ...serving(), queue: slowQueue(60_000) as never } });
      const others = [1, 2].map((i) =>
        n.member(i, undefined, { serving: { ...serving(), queue: slowQueue(500) as never } }),
      );
      try {
        await relay.start();
        for (const m of [slow, ...others]) await m.start();
        const frame = { quorum: 2, maxCommits: 2, maxTimeMs: 5_000, revealWindowMs: 3_000 };
        const body = testRequest({ embedder, nonce: on ? 0x81 : 0x82, frame });
        await relay.submit(body);
        const id = body.requestId;
        // Stopped while it infers (killed: its state says inferring), before the seal...
        await until(() => slow.metrics().inferences.started === 1, 5_000);
        await n.kill(0, slow);
        expect(relay.status(id)?.sealSize).toBeNull();
        // ...while the request is sealed without it, judged and attested: the relay's machine is
        // finished (it lingers).
        await until(() => relay.status(id)?.finished === true, 10_000);
        // Back over its stored state, still inferring: it infers again (at once now) and commits.
        const back = n.member(0);
        await back.start();
        await until(() => (back.metrics().published.commit ?? 0) === 1, 5_000);
        if (on) {
          await until(() => back.status(id)?.finished === true, 10_000);
          const status = back.status(id);
          // Sealed without it (not a member: the seal and the verdict only, none of the members'
          // packets), it holds the verdict by its digest and ends unverified a grace later, before the
          // deadline it would otherwise wait for (5 s after the request, and grace).
          expect(status?.outcome).toMatchObject({ kind: 'done', reason: 'unverified' });
          expect(status?.verdict?.check).toBe('digest');
          expect(status?.verdict?.digest).toBe(relay.status(id)?.verdict?.digest as string);
          expect(status?.outcome?.at).toBeLessThan(body.createdAt + frame.maxTimeMs + NODE_GRACE_MS);
          expect(relay.metrics()).toMatchObject({ lateAnswers: 0, lateAnswersToNonMembers: 1 });
          expect(relay.metrics().reannounced.byReason['late-packet']).toBe(2);
          const byType = relay.metrics().reannounced.byType;
          expect(byType).toMatchObject({ seal: 1, verdict: 1 });
          expect([byType.commit, byType.reveal]).toEqual([undefined, undefined]);
        } else {
          // Nothing tells it: it waits for the seal until its deadline (5 s after the request, and grace).
          await Bun.sleep(1_500);
          expect(back.status(id)?.finished).toBe(false);
          expect(relay.metrics().lateAnswers).toBe(0);
          await until(() => back.status(id)?.finished === true, 15_000);
          expect(back.status(id)?.outcome).toMatchObject({ kind: 'expired', reason: 'not-sealed' });
        }
      } finally {
        await n.closeAll();
      }
    }, 40_000);
  }

  test('late answers to members are bounded: once a request in a gap, and a cap on them all', async () => {
    // At most 2 answers in a minute, in all; member 0 commits again (its sealed commitment, a fresh
    // packet each time) to each of 3 finished requests five times.
    await withFinished(220, { max: 2, windowMs: 60_000 }, 3, async ({ relay, ids, lateCommit }) => {
      for (const id of ids) for (let i = 0; i < 5; i++) await lateCommit('member', id);
      await until(() => relay.metrics().lateAnswersDropped >= 1, 5_000);
      await Bun.sleep(300);
      // One answer for each of the first two requests (the other four commits each within the gap),
      // none for the third: each of its five is over the cap.
      expect(relay.metrics()).toMatchObject({ lateAnswers: 2, lateAnswersDropped: 5 });
      // Each: the seal, member 1's commit and reveal, the verdict.
      expect(relay.metrics().reannounced.byReason['late-packet']).toBe(2 * 4);
    });
  }, 30_000);

  test("a key the seal does not list gets the seal and the verdict only, none of the members' packets", async () => {
    await withFinished(225, {}, 1, async ({ relay, ids, lateCommit }) => {
      await lateCommit('non-member', ids[0] as string);
      await until(() => relay.metrics().lateAnswersToNonMembers === 1, 5_000);
      await Bun.sleep(100);
      expect(relay.metrics().reannounced.byType).toEqual({ seal: 1, verdict: 1 });
      expect(relay.metrics().lateAnswers).toBe(0);
    });
  }, 30_000);

  test("a flood of non-members' commits does not use up the members' late answers", async () => {
    // Room for one answer to members and two to non-members in a minute; fresh keys' commits (free to
    // make) to each of 3 finished requests, five times each, then member 0's late commit.
    await withFinished(
      227,
      { max: 1, windowMs: 60_000, nonMembers: { max: 2 } },
      3,
      async ({ relay, ids, lateCommit }) => {
        for (const id of ids) for (let i = 0; i < 5; i++) await lateCommit('non-member', id);
        await until(() => relay.metrics().lateAnswersToNonMembersDropped >= 5, 5_000);
        expect(relay.metrics()).toMatchObject({ lateAnswersToNonMembers: 2, lateAnswers: 0 });
        // The member is answered all the same, in full.
        await lateCommit('member', ids[2] as string);
        await until(() => relay.metrics().lateAnswers === 1, 5_000);
        await Bun.sleep(100);
        expect(relay.metrics()).toMatchObject({ lateAnswersDropped: 0, lateAnswersToNonMembersDropped: 5 });
        expect(relay.metrics().reannounced.byType).toMatchObject({ commit: 1, reveal: 1 });
      },
    );
  }, 30_000);

  test("late answers forward members' packets within a byte budget for each answer; the seal and verdict always go", async () => {
    // Nothing forwarded in one answer.
    await withFinished(230, { forwardBytes: 0 }, 2, async ({ relay, ids, lateCommit }) => {
      for (const id of ids) await lateCommit('member', id);
      await until(() => relay.metrics().lateAnswers === 2, 5_000);
      // Both answered with the seal and the verdict alone: no commit or reveal forwarded.
      expect(relay.metrics().reannounced.byType).toEqual({ seal: 2, verdict: 2 });
    });
  }, 30_000);

  test('late answers over the byte budget of the window are dropped; the seal and verdict count in it', async () => {
    // One answer to a member (the seal, a commit, a reveal, the verdict: about 3.7 KB, of which 1.1 KB
    // forwarded) fits, two do not (counting the forwarded packets alone, four would).
    await withFinished(240, { bytesPerWindow: 5_000 }, 2, async ({ relay, ids, lateCommit }) => {
      for (const id of ids) await lateCommit('member', id);
      await until(() => relay.metrics().lateAnswers + relay.metrics().lateAnswersDropped === 2, 5_000);
      expect(relay.metrics()).toMatchObject({ lateAnswers: 1, lateAnswersDropped: 1 });
    });
    // Answers to non-members forward nothing: their seal and verdict alone are over a budget of 1 byte.
    await withFinished(245, { nonMembers: { bytesPerWindow: 1 } }, 1, async ({ relay, ids, lateCommit }) => {
      await lateCommit('non-member', ids[0] as string);
      await until(() => relay.metrics().lateAnswersToNonMembersDropped === 1, 5_000);
      expect(relay.metrics().lateAnswersToNonMembers).toBe(0);
    });
  }, 30_000);
});

/**
 * A relay with `limits` for its late answers and two members; `requests` requests judged and finished;
 * then `check` runs (`lateCommit` sends a commit for a finished request: member 0's sealed commitment
 * in a fresh packet, or a fresh key's), and the network is closed.
 */
async function withFinished(
  seed: number,
  limits: NonNullable<SynodNodeOptions['lateAnswers']>,
  requests: number,
  check: (o: {
    relay: SynodNode;
    ids: string[];
    lateCommit: (from: 'member' | 'non-member', requestId: string) => Promise<void>;
  }) => Promise<void>,
): Promise<void> {
  const n = await network(seed);
  const relay = n.relay(undefined, { lateAnswers: limits });
  /** Member 0's commitment to each request. */
  const commitments = new Map<string, string>();
  const members = [0, 1].map((i) =>
    n.member(i, undefined, {
      onPacket: ({ packet, own }) => {
        if (i === 0 && own && packet.type === 'commit') {
          commitments.set(packet.body.requestId, packet.body.commitment);
        }
      },
    }),
  );
  const memberKey = n.keys[0] as NodeKey;
  const transport = n.join('late-committer');
  let fresh = 0;
  try {
    await relay.start();
    for (const m of members) await m.start();
    const frame = { quorum: 2, maxCommits: 2, maxTimeMs: 8_000, revealWindowMs: 3_000 };
    const ids: string[] = [];
    for (let r = 0; r < requests; r++) {
      const body = testRequest({ embedder, nonce: seed * 16 + r, frame });
      await relay.submit(body);
      ids.push(body.requestId);
    }
    await until(() => ids.every((id) => relay.status(id)?.finished === true), 10_000);
    const lateCommit = async (from: 'member' | 'non-member', requestId: string) => {
      fresh++;
      const key =
        from === 'member'
          ? memberKey
          : await NodeKey.fromSeed(new Uint8Array(32).fill(seed).fill(fresh, 0, 2));
      const commitment =
        from === 'member' ? commitments.get(requestId) : fresh.toString(16).padStart(64, '0');
      if (commitment === undefined) throw new Error('member 0 did not commit to the request');
      // A fresh createdAt each time: a new packet (the same bytes would be dropped as a duplicate).
      const commit = await signPacket(key, 'commit', {
        requestId,
        commitment,
        createdAt: Date.now() + fresh,
      });
      await transport.publish(topicOfPacketType('commit'), encodePacket(commit));
    };
    await check({ relay, ids, lateCommit });
  } finally {
    await transport.close();
    await n.closeAll();
  }
}
