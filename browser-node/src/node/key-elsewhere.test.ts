import { describe, expect, test } from 'bun:test';
import { encodePacket, NodeKey, type Packet, type RequestBody, signPacket } from '@synod/shared';
import { nodeHealth } from '../cli/node-health.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { topicOfPacketType } from '../p2p/topics.ts';
import { realScheduler, type Scheduler } from './scheduler.ts';
import { KEY_ELSEWHERE_MS, SynodNode } from './synod-node.ts';
import { loadTestServing, relayAndNode, type TestServing } from './test-helpers.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const HEARTBEAT = {
  intervalMs: 3_600_000,
  software: 'synod-node/test',
  tokensPerSecond: 200,
  embeddingsPerSecond: 20,
  engine: 'llama-cpp',
};

function request(serving: TestServing, n: number, createdAt: number): RequestBody {
  return testRequest({
    embedder: serving.embedder,
    nonce: n,
    prompt: 'Once upon a time',
    acceptedModels: ['stories260K'],
    params: { temperature: 0, maxTokens: 8 },
    createdAt,
  });
}

describe('SynodNode: its key in use by another process', () => {
  test('takes no request while it hears another copy of its key, says so once with where it is, and serves again once the copy is silent', async () => {
    const serving = await loadTestServing();
    // One clock for every process here, moved forward to let a minute pass.
    let shift = 0;
    const scheduler: Scheduler = { now: () => Date.now() + shift, after: realScheduler.after };
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(170));
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(171));
    const relay = new SynodNode({
      key: relayKey,
      role: 'relay',
      transports: [net.join(relayKey.nodeId)],
      scheduler,
    });
    const lines: Record<string, unknown>[] = [];
    const commits: Packet<'commit'>[] = [];
    const ownBeats: Packet<'heartbeat'>[] = [];
    const node = new SynodNode({
      key,
      role: 'node',
      transports: [net.join(key.nodeId)],
      serving,
      scheduler,
      heartbeat: { ...HEARTBEAT, addresses: ['/ip4/127.0.0.1/tcp/1/ws'] },
      log: (line) => lines.push(line),
      onPacket: ({ packet, own }) => {
        if (own && packet.type === 'commit') commits.push(packet as Packet<'commit'>);
        if (own && packet.type === 'heartbeat') ownBeats.push(packet as Packet<'heartbeat'>);
      },
    });
    // The other copy: the same key, another process (here a follower on a transport of its own).
    const copy = new SynodNode({
      key,
      role: 'follower',
      transports: [net.join('copy-of-the-key')],
      scheduler,
      heartbeat: { ...HEARTBEAT, software: 'synod-node/elsewhere', addresses: ['/ip4/192.0.2.7/tcp/9/ws'] },
    });
    const outsider = net.join('outsider');
    const said = () => lines.filter((l) => l['code'] === 'KEY_IN_USE_ELSEWHERE');
    const health = () => nodeHealth(node.metrics(), { bootstrap: [], db: 'state.db' });
    await relay.start();
    await node.start();
    try {
      // Its own heartbeats handed back (as a Gun relay does), and one of a previous run of it (made
      // before it started, as gossip or a Gun relay may hand out), say nothing.
      await node.publishHeartbeat();
      const mine = ownBeats.at(-1);
      if (!mine) throw new Error('no heartbeat of its own');
      await outsider.publish(topicOfPacketType('heartbeat'), encodePacket(mine));
      // Replayed long after, spelled otherwise (new bytes, the same packet), a dozen heartbeats later.
      for (let i = 0; i < 12; i++) await node.publishHeartbeat();
      const respelled = new TextDecoder().decode(encodePacket(mine)).replace('{', '{ ');
      await outsider.publish(topicOfPacketType('heartbeat'), new TextEncoder().encode(respelled));
      const earlier = await signPacket(key, 'heartbeat', {
        role: 'node',
        software: 'synod-node/test',
        models: [],
        embedders: [],
        capacity: { queued: 0, maxQueue: 4 },
        addresses: [],
        createdAt: scheduler.now() - 30_000,
      });
      await outsider.publish(topicOfPacketType('heartbeat'), encodePacket(earlier));
      const first = request(serving, 1, scheduler.now());
      await relay.submit(first);
      await until(() => commits.some((c) => c.body.requestId === first.requestId));
      expect(node.metrics().keyElsewhere).toBeNull();
      expect(health().status).toBe(200);

      // The copy starts and sends its heartbeat: heard, said once, with where it says it is.
      await copy.start();
      await copy.publishHeartbeat();
      await until(() => node.metrics().keyElsewhere?.active === true);
      expect(node.metrics().keyElsewhere).toMatchObject({
        addresses: ['/ip4/192.0.2.7/tcp/9/ws'],
        software: 'synod-node/elsewhere',
        refused: 0,
      });
      expect(said()).toHaveLength(1);
      expect(said()[0]).toMatchObject({ level: 'error', addresses: ['/ip4/192.0.2.7/tcp/9/ws'] });
      expect(String(said()[0]?.['hint'])).toContain('stop one');
      const h = health();
      expect(h.status).toBe(503);
      expect(h.body).toMatchObject({ reason: 'KEY_IN_USE_ELSEWHERE' });
      expect(String(h.body['hint'])).toContain('/ip4/192.0.2.7/tcp/9/ws');
      // Its own entry in the nodes it knows is its own heartbeat, not the copy's.
      expect(node.knownNodes().find((n) => n.nodeId === key.nodeId)?.body.software).toBe('synod-node/test');

      // Meanwhile it takes no request (the copy could commit to it too) and advertises no room.
      const second = request(serving, 2, scheduler.now());
      await relay.submit(second);
      await until(() => node.metrics().keyElsewhere?.refused === 1);
      expect(node.status(second.requestId)).toBeNull();
      await node.publishHeartbeat();
      expect(node.knownNodes().find((n) => n.nodeId === key.nodeId)?.body.capacity.maxQueue).toBe(0);
      // The copy's next heartbeat is the same episode: not said again.
      await copy.publishHeartbeat();
      await Bun.sleep(100);
      expect(said()).toHaveLength(1);

      // The copy stops; a minute later this one serves again, and says so once, with how long it paused.
      await copy.close();
      shift += KEY_ELSEWHERE_MS + 1_000;
      expect(node.metrics().keyElsewhere?.active).toBe(false);
      const over = () =>
        lines.filter((l) => l['msg'] === 'key no longer in use elsewhere: taking requests again');
      expect(over()).toHaveLength(1);
      expect(over()[0]).toMatchObject({ level: 'info', refused: 1 });
      expect(Number(over()[0]?.['lastedMs'])).toBeGreaterThanOrEqual(KEY_ELSEWHERE_MS);
      expect(node.metrics().keyElsewhere?.active).toBe(false);
      expect(over()).toHaveLength(1);
      expect(health().status).toBe(200);
      const third = request(serving, 3, scheduler.now());
      await relay.submit(third);
      await until(() => commits.some((c) => c.body.requestId === third.requestId));
      await node.publishHeartbeat();
      expect(node.knownNodes().find((n) => n.nodeId === key.nodeId)?.body.capacity.maxQueue).toBe(4);
      expect(commits.map((c) => c.body.requestId)).not.toContain(second.requestId);
      expect(said()).toHaveLength(1);
    } finally {
      await copy.close();
      await node.close();
      await relay.close();
      await serving.close();
    }
  }, 60_000);

  test('two conflicting commits of its key for one request (a copy whose heartbeats do not reach it) pause it too, named by the evidence', async () => {
    const serving = await loadTestServing();
    const { net, relay, node, key, lines, published, close } = await relayAndNode([172, 173], serving);
    const commits = () => published.filter((p): p is Packet<'commit'> => p.type === 'commit');
    const outsider = net.join('outsider');
    try {
      // A quorum of 2 with one node: the request stays open after this node's commit.
      const open = testRequest({
        embedder: serving.embedder,
        nonce: 1,
        prompt: 'Once upon a time',
        acceptedModels: ['stories260K'],
        frame: { quorum: 2 },
      });
      await relay.submit(open);
      await until(() => commits().length === 1);
      const ours = commits()[0] as Packet<'commit'>;
      // The copy's commit for the same request: the same key, another commitment.
      const theirs = await signPacket(key, 'commit', {
        requestId: open.requestId,
        commitment: 'ee'.repeat(32),
        createdAt: ours.body.createdAt + 5,
      });
      await outsider.publish(topicOfPacketType('commit'), encodePacket(theirs));
      await until(() => node.metrics().keyElsewhere?.active === true);
      expect(node.metrics().keyElsewhere).toMatchObject({ addresses: [], software: null });
      const said = lines.filter((l) => l['code'] === 'KEY_IN_USE_ELSEWHERE');
      expect(said).toHaveLength(1);
      expect(said[0]).toMatchObject({ foundBy: 'double-commit', requestId: open.requestId });
      const evidence = lines.find((l) => l['msg'] === 'evidence');
      expect(evidence).toMatchObject({ kind: 'double-commit', against: key.nodeId });
      expect(String(evidence?.['hint'])).toContain('KEY_IN_USE_ELSEWHERE');
      const h = nodeHealth(node.metrics(), { bootstrap: [], db: 'state.db' });
      expect(h.body).toMatchObject({ reason: 'KEY_IN_USE_ELSEWHERE' });
      expect(String(h.body['hint'])).toContain('found by two conflicting packets it signed');
      // The next request is not taken.
      const next = testRequest({
        embedder: serving.embedder,
        nonce: 2,
        prompt: 'Once upon a time',
        acceptedModels: ['stories260K'],
      });
      await relay.submit(next);
      await until(() => node.metrics().keyElsewhere?.refused === 1);
      expect(node.status(next.requestId)).toBeNull();
    } finally {
      await close();
      await serving.close();
    }
  }, 60_000);

  test('the end of a spell is said when it comes, with nothing asking (its own timer)', async () => {
    let shift = 0;
    // Timers of a minute or more wait for the test to fire them, as the minute passes.
    const due: Array<() => void> = [];
    const scheduler: Scheduler = {
      now: () => Date.now() + shift,
      after: (ms, fn) => {
        if (ms < KEY_ELSEWHERE_MS) return realScheduler.after(ms, fn);
        due.push(fn);
        return () => due.splice(due.indexOf(fn) >>> 0, 1);
      },
    };
    const net = new MemoryNetwork();
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(174));
    const lines: Record<string, unknown>[] = [];
    const node = new SynodNode({
      key,
      role: 'follower',
      transports: [net.join(key.nodeId)],
      scheduler,
      log: (line) => lines.push(line),
    });
    const copy = new SynodNode({
      key,
      role: 'follower',
      transports: [net.join('copy-of-the-key')],
      scheduler,
      heartbeat: { ...HEARTBEAT, addresses: [] },
    });
    await node.start();
    await copy.start();
    try {
      await copy.publishHeartbeat();
      await until(() => lines.some((l) => l['code'] === 'KEY_IN_USE_ELSEWHERE'));
      await copy.close();
      shift += KEY_ELSEWHERE_MS + 1_000;
      for (const fire of due.splice(0)) fire();
      const over = lines.filter((l) => l['msg'] === 'key no longer in use elsewhere: taking requests again');
      expect(over).toHaveLength(1);
      expect(Number(over[0]?.['lastedMs'])).toBeGreaterThanOrEqual(KEY_ELSEWHERE_MS);
    } finally {
      await copy.close();
      await node.close();
    }
  });
});
