/**
 * A relay that restarts restores its coordinator machines as they were last saved; packets its history
 * stored after that (the history stores a packet before the machine takes it, and a save can fail) were
 * missing from them: a request whose commits were all in the history expired QUORUM_NOT_MET. Each
 * restored machine is now given the commits and reveals the history holds for it (`storedPackets`,
 * through `SynodNodeOptions.restoreWith`) before it resumes, so a seal deadline that passed while the
 * relay was down is judged on them too.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryMachineStore, MemoryNetwork, SynodNode, topicOfPacketType } from '@synod/browser-node';
import { NodeKey, packetId, signPacket } from '@synod/shared';
import { testRequest } from '../../../browser-node/src/node/test-request.ts';
import type { HistoryStore } from '../store/history-store.ts';
import { openHistory } from '../store/open-history.ts';
import { storeRequest } from '../store/test-requests.ts';
import { InProcessRelayNetwork } from './in-process.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-recover-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };

/**
 * A relay that coordinates `body` and stops with its machine saved as it started; the history then
 * stores commits from two members that the machine never took (a crash between the two); after
 * `downMs`, the relay starts again over the same stores, its machine given what the history kept.
 */
async function restartedWithCommits(o: {
  db: string;
  seed: number;
  frame: NonNullable<Parameters<typeof testRequest>[0]['frame']>;
  downMs: number;
  /** Declines stored instead of commits. */
  declines?: boolean;
}) {
  const h = await openHistory(`file:${join(dir, o.db)}`);
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(o.seed));
  const members = await Promise.all([1, 2].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(o.seed + i))));
  const machines = new MemoryMachineStore();
  const net = new MemoryNetwork();
  // A node on the network all along: the restarted relay has a peer to publish to at once.
  net.join('node-1');
  const body = testRequest({ embedder, nonce: o.seed, frame: o.frame });
  // The first run: the request is stored and coordinated; its machine is saved as it starts.
  const first = new SynodNode({ key, role: 'relay', transports: [net.join('relay-1')], store: machines });
  await first.start();
  const { id, packet } = await first.submit(body);
  await storeRequest(h.store, { id, packet }, Date.now());
  await first.settled();
  await first.close();
  if (o.declines) await recordDeclines(h.store, members, body.requestId, id);
  else await recordCommits(h.store, members, body.requestId);
  await Bun.sleep(o.downMs);
  // The restart: the machine is restored from its store, given what the history kept, then recovered.
  let network: InProcessRelayNetwork | undefined;
  const second = new SynodNode({
    key,
    role: 'relay',
    transports: [net.join('relay-2')],
    store: machines,
    restoreWith: async (requestId) => (network ? network.storedPackets(requestId) : []),
  });
  network = new InProcessRelayNetwork(key, second, h.store, Date.now, ['m']);
  await second.start();
  const recovered = await network.recover();
  await second.settled();
  const phase = second.status(body.requestId)?.phase;
  const outcome = second.status(body.requestId)?.outcome ?? null;
  await second.close();
  h.client.close();
  return { body, recovered, phase, outcome };
}

describe('InProcessRelayNetwork.recover', () => {
  test('a restored coordinator machine is given the commits the history stored after its last save: it seals', async () => {
    const { body, recovered, phase } = await restartedWithCommits({
      db: 'relay.db',
      seed: 150,
      frame: { quorum: 2, maxCommits: 2, maxTimeMs: 60_000, revealWindowMs: 10_000 },
      downMs: 0,
    });
    expect(recovered).toEqual({ resumed: [], expired: [], restored: [body.requestId] });
    // Both commits were the machine's: maxCommits reached, it sealed them.
    expect(phase).toBe('sealed');
  });

  test('a restored coordinator machine is given the declines the history stored after its last save: it ends DECLINED', async () => {
    const { recovered, outcome, body } = await restartedWithCommits({
      db: 'relay-declined.db',
      seed: 180,
      frame: { quorum: 2, maxCommits: 2, maxTimeMs: 60_000, revealWindowMs: 10_000 },
      downMs: 0,
      declines: true,
    });
    expect(recovered).toEqual({ resumed: [], expired: [], restored: [body.requestId] });
    // The nodes that declined are done with the request: without the history's copies it would wait
    // for its deadline.
    expect(outcome).toMatchObject({ kind: 'expired', reason: 'declined' });
  });

  test('a coordinator restarted just after its seal deadline (within the grace its nodes wait) seals the commits its history kept', async () => {
    const { phase } = await restartedWithCommits({
      db: 'relay-late.db',
      seed: 160,
      // Sealed at the deadline with what came (quorum 2; up to 3): the early close cannot do it.
      frame: { quorum: 2, maxCommits: 3, maxTimeMs: 1_000, revealWindowMs: 10_000 },
      // Down past the seal deadline (1 s), back within the 5 s its nodes still wait for a seal.
      downMs: 1_300,
    });
    // Its overdue deadline fired on the commits the history kept: sealed, not expired QUORUM_NOT_MET.
    expect(phase).toBe('sealed');
  });
});

/**
 * A relay killed and started again has no peer for a moment (it dials its bootstrap nodes as it starts).
 * Its restored coordinator machines resumed at once: one whose commits were all in the history sealed at
 * once, and the seal went to no one (Waku drops a publish without peers, and will not send the same
 * message again for two minutes), so its members never revealed and the request ended `no-consensus`
 * with every honest member NOT_REVEALED (found by killing the real relay after its nodes committed). The
 * same for a request `recover()` starts again. Both now wait for a first peer, a bounded time.
 */
describe('a restarted relay publishes nothing before it has a peer', () => {
  /** Packets of `type` for `requestId` heard by a node that joins `net` after `joinAfterMs`. */
  function lateListener(
    net: MemoryNetwork,
    type: 'seal' | 'request',
    requestId: string,
    joinAfterMs: number,
  ) {
    const heard: string[] = [];
    const timer = setTimeout(() => {
      const t = net.join('late-node');
      t.subscribe(topicOfPacketType(type), (bytes) => {
        const text = new TextDecoder().decode(bytes);
        if (text.includes(requestId)) heard.push(text);
      });
    }, joinAfterMs);
    return { heard, stop: () => clearTimeout(timer) };
  }

  test('a restored machine that seals at once waits for a peer: the seal reaches the node that comes', async () => {
    const h = await openHistory(`file:${join(dir, 'relay-peerless.db')}`);
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(170));
    const members = await Promise.all([1, 2].map((i) => NodeKey.fromSeed(new Uint8Array(32).fill(170 + i))));
    const machines = new MemoryMachineStore();
    const net = new MemoryNetwork();
    const body = testRequest({
      embedder,
      nonce: 170,
      frame: { quorum: 2, maxCommits: 2, maxTimeMs: 60_000, revealWindowMs: 10_000 },
    });
    const firstTransport = net.join('relay-1');
    const first = new SynodNode({ key, role: 'relay', transports: [firstTransport], store: machines });
    await first.start();
    const { id, packet } = await first.submit(body);
    await storeRequest(h.store, { id, packet }, Date.now());
    await first.settled();
    await first.close();
    // The killed relay is gone from the network.
    await firstTransport.close();
    // Both commits reached the history; the machine was saved before them (killed in between).
    await recordCommits(h.store, members, body.requestId);
    // The restart: alone on the network; a node comes 300 ms later.
    const late = lateListener(net, 'seal', body.requestId, 300);
    let network: InProcessRelayNetwork | undefined;
    const second = new SynodNode({
      key,
      role: 'relay',
      transports: [net.join('relay-2')],
      store: machines,
      restoreWith: async (requestId) => (network ? network.storedPackets(requestId) : []),
    });
    network = new InProcessRelayNetwork(key, second, h.store, Date.now, ['m'], { peerSettleMs: 50 });
    try {
      await second.start();
      await network.recover();
      await second.settled();
      await net.settled();
      expect(second.status(body.requestId)?.phase).toBe('sealed');
      // The seal was published once the node was there: it heard it.
      expect(late.heard.length).toBe(1);
    } finally {
      late.stop();
      await second.close();
      h.client.close();
    }
  });

  test('a request recover() starts again is published once a peer is there', async () => {
    const h = await openHistory(`file:${join(dir, 'relay-peerless-resume.db')}`);
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(180));
    const net = new MemoryNetwork();
    const body = testRequest({ embedder, nonce: 180, frame: { quorum: 1, maxTimeMs: 60_000 } });
    // Stored, then killed before its machine's first save: nothing of it was published.
    const signed = await signPacket(key, 'request', body);
    await storeRequest(h.store, { id: packetId(signed), packet: signed }, Date.now());
    const late = lateListener(net, 'request', body.requestId, 300);
    const node = new SynodNode({ key, role: 'relay', transports: [net.join('relay-2')] });
    const network = new InProcessRelayNetwork(key, node, h.store, Date.now, ['m'], { peerSettleMs: 50 });
    try {
      await node.start();
      expect((await network.recover()).resumed).toEqual([body.requestId]);
      await net.settled();
      expect(late.heard.length).toBe(1);
    } finally {
      late.stop();
      await node.close();
      h.client.close();
    }
  });
});

/** A commit of each member for `requestId`, as the history records them while its relay is down. */
async function recordCommits(store: HistoryStore, members: readonly NodeKey[], requestId: string) {
  for (const [i, k] of members.entries()) {
    const commit = await signPacket(k, 'commit', {
      requestId,
      commitment: String(i + 1).repeat(64),
      createdAt: Date.now(),
    });
    await store.recordCommit({ id: packetId(commit), packet: commit });
  }
}

async function recordDeclines(
  store: HistoryStore,
  members: readonly NodeKey[],
  requestId: string,
  requestPacketId: string,
) {
  for (const k of members) {
    const decline = await signPacket(k, 'decline', {
      requestId,
      requestPacketId,
      model: { id: 'm', fileHash: 'ab'.repeat(32) },
      reason: 'context-exceeded',
      promptTokens: 9_000,
      contextTokens: 2_048,
      createdAt: Date.now(),
    });
    await store.recordDecline({ id: packetId(decline), packet: decline });
  }
}
