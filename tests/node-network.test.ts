/**
 * Five real headless SynodNodes (each its own node-llama-cpp engine and USE Lite embedder) and one
 * coordinator (role relay), every one with its own Waku relay transport over TCP on 127.0.0.1,
 * bootstrapped to the coordinator's TCP multiaddr. Requests go through the whole protocol: pick-up,
 * inference, commit, seal, reveal, verdict, recomputation and attestation.
 *
 * Misbehaviour comes from named test doubles (tests/support/loopback-network.ts) wrapped around real
 * nodes: `GarbageInferenceQueue` (random output and bits, committed honestly), `tamperingReveals`
 * (reveal re-signed with a changed output), `copyingReveals` (another node's reveal under its own key),
 * `holdingPackets` (the coordinator's seal held back while a node restarts).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { decodePacket, encodePacket, NodeKey, signPacket, type Verdict } from '@synod/shared';
import { LibsqlMachineStore } from '../browser-node/src/node/machine-store-libsql.ts';
import type { WakuRelayTransport } from '../browser-node/src/p2p/waku-relay.ts';
import {
  copyingReveals,
  holdingPackets,
  type LoopbackNetwork,
  loopbackWaku,
  makeRequest,
  REVEALS,
  startNetwork,
  startServingMember,
  tamperingReveals,
  tcpAddress,
  until,
  waitForMesh,
} from './support/loopback-network.ts';

const LONG = 180_000;
const dbDir = mkdtempSync(join(tmpdir(), 'synod-node-network-'));
const dbFile = join(dbDir, 'node4.db');
const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);

let net: LoopbackNetwork;
const stores: LibsqlMachineStore[] = [];
const newStore = () => {
  const s = new LibsqlMachineStore(createClient({ url: `file:${dbFile}` }));
  stores.push(s);
  return s;
};

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  net = await startNetwork({ nodes: 5, store: (i) => (i === 4 ? newStore() : undefined) });
}, LONG);

afterAll(async () => {
  await net?.close();
  await Promise.allSettled(stores.map((s) => s.close()));
  rmSync(dbDir, { recursive: true, force: true });
  process.off('unhandledRejection', onUnhandled);
});

const computedOf = (rid: string) =>
  net.recorder
    .verdictsOf(rid)
    .find((x) => x.nodeId === net.coordinator.key.nodeId && x.v.check === 'computed');
const idOf = (i: number) => (net.nodes[i] as LoopbackNetwork['nodes'][number]).key.nodeId;
const reasonOf = (v: Verdict, nodeId: string) =>
  v.rejected.filter((r) => r.nodeId === nodeId && r.reason !== 'DUPLICATE_REVEAL').map((r) => r.reason);

describe('five headless nodes and a coordinator over Waku relay on loopback TCP', () => {
  test(
    'quorum 5: an accepted verdict whose digest is byte-identical on every node',
    async () => {
      const body = makeRequest(net.embedder, { quorum: 5 });
      const rid = body.requestId;
      await net.coordinator.node.submit(body);
      const nodeIds = net.nodes.map((n) => n.key.nodeId);
      await until(
        () =>
          computedOf(rid) !== undefined &&
          nodeIds.every((id) =>
            net.recorder.verdictsOf(rid).some((x) => x.nodeId === id && x.v.check === 'recomputed'),
          ),
        LONG,
        'the verdict, recomputed by all five nodes',
      );
      const computed = computedOf(rid)?.v;
      expect(computed?.verdict.status).toBe('accepted');
      expect(computed?.verdict.accepted.map((a) => a.nodeId).sort()).toEqual([...nodeIds].sort());
      expect(computed?.verdict.rejected).toEqual([]);
      expect(computed?.verdict.winner?.output.length).toBeGreaterThan(0);
      const all = net.recorder.verdictsOf(rid);
      // the coordinator and all five nodes report it (a node that first held an incomplete transcript
      // reports twice: checked by digest, then recomputed)
      expect(new Set(all.map((x) => x.nodeId)).size).toBe(6);
      expect(all.length).toBeLessThanOrEqual(11);
      expect(new Set(all.map((x) => x.v.digest)).size).toBe(1);
      expect(new Set(all.map((x) => x.v.transcriptRoot)).size).toBe(1);
      // attestations of the same digest reach the coordinator from every node
      await until(
        () => (net.coordinator.node.status(rid)?.attestations ?? 0) >= 5,
        LONG,
        'five attestations',
      );
      expect(net.coordinator.node.metrics().published.seal).toBeGreaterThanOrEqual(1);
    },
    LONG,
  );

  test(
    'a garbage revealer is OUTSIDE_CLUSTER, a tampered reveal is COMMITMENT_MISMATCH, the rest agree',
    async () => {
      const body = makeRequest(net.embedder, { quorum: 5, secPercentage: 0.6 });
      const rid = body.requestId;
      const [garbage, tamperer] = net.nodes as [
        LoopbackNetwork['nodes'][number],
        LoopbackNetwork['nodes'][number],
      ];
      garbage.serving.queue.garbageFor.add(rid);
      tamperer.transport.use(tamperingReveals(tamperer.key, new Set([rid])));
      await net.coordinator.node.submit(body);
      const honest = [2, 3, 4].map(idOf);
      await until(
        () =>
          computedOf(rid) !== undefined &&
          honest.every((id) =>
            net.recorder.verdictsOf(rid).some((x) => x.nodeId === id && x.v.check === 'recomputed'),
          ),
        LONG,
        'the verdict, recomputed by the honest nodes',
      );
      const v = computedOf(rid)?.v.verdict as Verdict;
      expect(v.status).toBe('accepted');
      expect(v.accepted.map((a) => a.nodeId).sort()).toEqual([...honest].sort());
      expect(reasonOf(v, garbage.key.nodeId)).toEqual(['OUTSIDE_CLUSTER']);
      expect(reasonOf(v, tamperer.key.nodeId)).toEqual(['COMMITMENT_MISMATCH']);
      expect(v.winner?.output).not.toContain('garbage');
      expect(v.winner?.output).not.toContain('(tampered)');
      // every node that reports a verdict reports the same digest (the tamperer holds its own honest
      // reveal, not the tampered one everybody else got, so it may only confirm the digest)
      await until(() => net.recorder.verdictsOf(rid).length >= 5, LONG, 'verdict reports');
      expect(new Set(net.recorder.verdictsOf(rid).map((x) => x.v.digest)).size).toBe(1);
    },
    LONG,
  );

  test(
    'copying another node’s reveal after the seal gains nothing: COMMITMENT_MISMATCH (member) and NOT_SEALED (outsider)',
    async () => {
      const body = makeRequest(net.embedder, { quorum: 5, secPercentage: 0.6 });
      const rid = body.requestId;
      const copier = net.nodes[2] as LoopbackNetwork['nodes'][number];
      const victim = idOf(3);
      // An outsider: never committed, not sealed; its own key and Waku transport, no SynodNode.
      const outsiderKey = await NodeKey.fromSeed(new Uint8Array(32).fill(250));
      const outsider: WakuRelayTransport = await loopbackWaku([tcpAddress(net.coordinator.waku)]);
      try {
        let copied = false;
        outsider.subscribe(REVEALS, (bytes) => {
          void decodePacket(bytes, { now: Date.now() }).then(async ({ packet }) => {
            if (copied || packet.type !== 'reveal' || packet.from !== victim || packet.body.requestId !== rid)
              return;
            copied = true;
            const copy = await signPacket(outsiderKey, 'reveal', { ...packet.body, createdAt: Date.now() });
            await outsider.publish(REVEALS, encodePacket(copy));
          });
        });
        await until(
          () => outsider.meshPeers(REVEALS).includes(net.coordinator.waku.peerId),
          LONG,
          'the outsider in the mesh',
        );
        // The member copier publishes only once the coordinator holds the outsider's copy, so both
        // are in the coordinator's transcript before the last member reveals (early verdict).
        const outsiderCopyHeld = () =>
          net.coordinatorPackets.some(
            (p) => p.type === 'reveal' && p.from === outsiderKey.nodeId && p.body.requestId === rid,
          );
        copier.transport.use(
          copyingReveals(copier.key, copier.waku, () => victim, new Set([rid]), outsiderCopyHeld),
        );
        await net.coordinator.node.submit(body);
        await until(() => computedOf(rid) !== undefined, LONG, 'the verdict');
        const v = computedOf(rid)?.v.verdict as Verdict;
        expect(v.status).toBe('accepted');
        expect(reasonOf(v, copier.key.nodeId)).toEqual(['COMMITMENT_MISMATCH']);
        expect(reasonOf(v, outsiderKey.nodeId)).toEqual(['NOT_SEALED']);
        const accepted = v.accepted.map((a) => a.nodeId);
        expect(accepted).not.toContain(copier.key.nodeId);
        expect(accepted).not.toContain(outsiderKey.nodeId);
        expect(accepted.sort()).toEqual([0, 1, 3, 4].map(idOf).sort());
        await until(
          () =>
            [0, 1, 3, 4].map(idOf).every((id) => net.recorder.verdictsOf(rid).some((x) => x.nodeId === id)),
          LONG,
          'verdict reports from the honest nodes',
        );
        expect(new Set(net.recorder.verdictsOf(rid).map((x) => x.v.digest)).size).toBe(1);
      } finally {
        await outsider.close();
      }
    },
    LONG,
  );

  test(
    'a node restarted after its commit restores from its libSQL file and its reveal counts',
    async () => {
      const body = makeRequest(net.embedder, { quorum: 5, revealWindowMs: 60_000 });
      const rid = body.requestId;
      const old = net.nodes[4] as LoopbackNetwork['nodes'][number];
      let sealGateOpen = false;
      net.coordinator.transport.use(holdingPackets('seal', () => sealGateOpen));
      try {
        await net.coordinator.node.submit(body);
        // the coordinator holds all five commits and has sealed (its seal is held on the way out)
        await until(
          () => net.coordinator.node.status(rid)?.sealSize === 5,
          LONG,
          'the seal at the coordinator',
        );
        expect(old.node.status(rid)?.phase).not.toBe('revealed');
        // stop the node process: node, transport; its machine is in the libSQL file
        await old.node.close();
        await old.waku.close();
        const restarted = await startServingMember(
          old.key,
          old.serving,
          [tcpAddress(net.coordinator.waku)],
          net.recorder,
          newStore(),
        );
        net.nodes[4] = restarted;
        expect(restarted.node.status(rid)).not.toBeNull(); // restored from the file
        await waitForMesh(net.coordinator, [restarted]);
        sealGateOpen = true;
        await until(() => computedOf(rid) !== undefined, LONG, 'the verdict');
        const v = computedOf(rid)?.v.verdict as Verdict;
        expect(v.status).toBe('accepted');
        expect(v.accepted.map((a) => a.nodeId)).toContain(old.key.nodeId);
        expect(v.accepted).toHaveLength(5);
        // The restarted node verifies the verdict: fully ('verified') when it held every sealed commit
        // before it went down, else it can only confirm the digest ('unverified'): commits published
        // while it was down are not sent again, and nothing fetches them. Either way, the same digest.
        await until(
          () => (net.recorder.finished.get(rid) ?? []).some((f) => f.nodeId === old.key.nodeId),
          60_000,
          'the restarted node to finish the request',
        );
        const finished = (net.recorder.finished.get(rid) ?? []).filter((f) => f.nodeId === old.key.nodeId);
        expect(finished).toHaveLength(1);
        expect(finished[0]?.kind).toBe('done');
        expect(['verified', 'unverified']).toContain(finished[0]?.reason as string);
        const mine = net.recorder.verdictsOf(rid).filter((x) => x.nodeId === old.key.nodeId);
        expect(mine.length).toBeGreaterThanOrEqual(1);
        expect(new Set(mine.map((x) => x.v.digest))).toEqual(new Set([computedOf(rid)?.v.digest as string]));
      } finally {
        sealGateOpen = true;
      }
      expect(net.recorder.errors).toEqual([]);
    },
    LONG,
  );

  test(
    'a node down while the seal goes out is NOT_REVEALED; after a restart its machine finishes cleanly',
    async () => {
      const body = makeRequest(net.embedder, { quorum: 5, maxTimeMs: 8_000, revealWindowMs: 2_000 });
      const rid = body.requestId;
      const old = net.nodes[4] as LoopbackNetwork['nodes'][number];
      let sealGateOpen = false;
      net.coordinator.transport.use(holdingPackets('seal', () => sealGateOpen));
      try {
        await net.coordinator.node.submit(body);
        await until(
          () => net.coordinator.node.status(rid)?.sealSize === 5,
          LONG,
          'the seal at the coordinator',
        );
        await old.node.close();
        await old.waku.close();
        sealGateOpen = true; // the seal goes out while node 4 is down
        await until(() => computedOf(rid) !== undefined, LONG, 'the verdict at the reveal deadline');
        const v = computedOf(rid)?.v.verdict as Verdict;
        expect(v.status).toBe('accepted');
        expect(v.accepted).toHaveLength(4);
        expect(reasonOf(v, old.key.nodeId)).toEqual(['NOT_REVEALED']);
        const restarted = await startServingMember(
          old.key,
          old.serving,
          [tcpAddress(net.coordinator.waku)],
          net.recorder,
          newStore(),
        );
        net.nodes[4] = restarted;
        expect(restarted.node.status(rid)?.phase).toBeDefined();
        // it never sees the seal again: it expires at the seal wait, without an error
        await until(
          () => (net.recorder.finished.get(rid) ?? []).some((f) => f.nodeId === old.key.nodeId),
          LONG,
          'the restored machine to finish',
        );
        const finished = (net.recorder.finished.get(rid) ?? []).filter((f) => f.nodeId === old.key.nodeId);
        expect(finished).toHaveLength(1);
        const [outcome] = finished;
        if (outcome?.kind === 'done') {
          // gossipsub's message cache can still hand the new peer the seal and verdict (IHAVE/IWANT):
          // then its late reveal changes nothing and it verifies the very same verdict (reported once by
          // digest if its transcript was incomplete, then once more when recomputed: never another digest)
          expect(outcome.reason).toBe('verified');
          const mine = net.recorder.verdictsOf(rid).filter((x) => x.nodeId === old.key.nodeId);
          expect(mine.length).toBeGreaterThanOrEqual(1);
          expect(new Set(mine.map((x) => x.v.digest))).toEqual(
            new Set([computedOf(rid)?.v.digest as string]),
          );
          expect(new Set(mine.map((x) => x.v.check)).size).toBe(mine.length);
        } else {
          expect(outcome).toEqual({ nodeId: old.key.nodeId, kind: 'expired', reason: 'not-sealed' });
        }
        // the verdict is final: nothing the restarted node did changes it
        expect(
          net.coordinatorPackets.filter((p) => p.type === 'verdict' && p.body.requestId === rid),
        ).toHaveLength(1);
      } finally {
        sealGateOpen = true;
      }
      expect(net.recorder.errors).toEqual([]);
      expect(unhandled).toEqual([]);
    },
    LONG,
  );
});
