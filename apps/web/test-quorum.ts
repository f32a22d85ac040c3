/**
 * For the contributor app's Chromium tests: a real quorum for a tab to join. The relay (a coordinator,
 * SynodNode role relay) on a Waku relay listening on TCP and WebSocket, as `synod-relay`'s is, which
 * tabs bootstrap to; a headless serving node (node-llama-cpp + USE Lite) joined to it over TCP. The
 * relay submits requests and records every commit, reveal and piece of evidence it hears. Nothing is
 * stubbed; it only saves each test the setup.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import {
  type AnyPacket,
  deriveRequestId,
  type Evidence,
  NodeKey,
  type RequestBody,
  resolveFrame,
} from '@synod/shared';
import { SynodNode } from '../../browser-node/src/node/synod-node.ts';
import { loadTestServing, type TestServing } from '../../browser-node/src/node/test-helpers.ts';
import type { WakuRelayOptions } from '../../browser-node/src/p2p/waku-relay.ts';
import { createHeadlessWakuRelay } from '../../browser-node/src/p2p/waku-relay-headless.ts';

export interface TestQuorum {
  serving: TestServing;
  headless: SynodNode;
  /** The relay's coordinator (a new one after `restartRelay`). */
  readonly coordinator: SynodNode;
  /** The relay's WebSocket multiaddr, for the web app's `bootstrap`. */
  ws: string;
  /** Per request, per node id: the commitments heard (more than one is equivocation). */
  commits: Map<string, Map<string, Set<string>>>;
  /** Per request: the node ids whose reveal was heard. */
  reveals: Map<string, Set<string>>;
  evidence: Evidence[];
  /** A greedy request for stories260K (nonce: two hex digits). */
  request(nonce: string, frame: { quorum: number; maxCommits?: number; maxTimeMs?: number }): RequestBody;
  /**
   * Stop the relay (its coordinator and Waku node); `start()` brings it back on the same ports with the
   * same libp2p identity and node key, as a restarted `synod-relay` is.
   */
  stopRelay(): Promise<{ start(): Promise<void> }>;
  close(): Promise<void>;
}

export async function startTestQuorum(seed: number): Promise<TestQuorum> {
  const serving = await loadTestServing();
  // @libp2p/crypto is typed against a newer @libp2p/interface than libp2p's: the same key at run time.
  const privateKey = (await generateKeyPair('Ed25519')) as unknown as WakuRelayOptions['privateKey'];
  let relayWaku = await createHeadlessWakuRelay({ privateKey });
  const tcp = relayWaku.addresses().find((a) => !a.includes('/ws'));
  const ws = relayWaku.addresses().find((a) => a.includes('/ws'));
  if (tcp === undefined || ws === undefined) throw new Error(`relay addresses: ${relayWaku.addresses()}`);
  const port = (address: string) => Number(/\/tcp\/(\d+)/.exec(address)?.[1]);
  const headlessWaku = await createHeadlessWakuRelay({
    bootstrap: [tcp],
    reconnect: { initialMs: 200, maxMs: 2_000 },
  });
  const heartbeat = {
    intervalMs: 1_000,
    software: 'synod-test',
    addresses: [],
    tokensPerSecond: 200,
    embeddingsPerSecond: 20,
    engine: 'node-llama-cpp',
  };
  const commits = new Map<string, Map<string, Set<string>>>();
  const reveals = new Map<string, Set<string>>();
  const evidence: Evidence[] = [];
  const headless = new SynodNode({
    key: await NodeKey.fromSeed(new Uint8Array(32).fill(seed)),
    role: 'node',
    transports: [headlessWaku],
    serving,
    heartbeat,
  });
  const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed + 1));
  const newCoordinator = () =>
    new SynodNode({
      key: relayKey,
      role: 'relay',
      transports: [relayWaku],
      heartbeat: { ...heartbeat, tokensPerSecond: 0, embeddingsPerSecond: 0, engine: 'none' },
      onEvidence: (_id, e) => evidence.push(e),
      onPacket: ({ packet }: { packet: AnyPacket }) => {
        if (packet.type === 'reveal') {
          reveals.set(
            packet.body.requestId,
            (reveals.get(packet.body.requestId) ?? new Set()).add(packet.from),
          );
        }
        if (packet.type !== 'commit') return;
        const byNode = commits.get(packet.body.requestId) ?? new Map<string, Set<string>>();
        byNode.set(packet.from, (byNode.get(packet.from) ?? new Set()).add(packet.body.commitment));
        commits.set(packet.body.requestId, byNode);
      },
    });
  let coordinator = newCoordinator();
  await headless.start();
  await coordinator.start();
  return {
    serving,
    headless,
    get coordinator() {
      return coordinator;
    },
    ws,
    commits,
    reveals,
    evidence,
    request(nonce, frame) {
      const fields = {
        nonce: nonce.repeat(16),
        prompt: 'Once upon a time',
        acceptedModels: ['stories260K'],
        params: { temperature: 0, maxTokens: 32 },
        frame: resolveFrame({
          embeddingModel: serving.embedder,
          maxTimeMs: 60_000,
          revealWindowMs: 30_000,
          ...frame,
        }),
        origin: { kind: 'http' as const },
        createdAt: Date.now(),
      };
      return { ...fields, requestId: deriveRequestId(fields) } as RequestBody;
    },
    async stopRelay() {
      await coordinator.close();
      await relayWaku.close();
      return {
        async start() {
          relayWaku = await createHeadlessWakuRelay({ privateKey, tcpPort: port(tcp), wsPort: port(ws) });
          coordinator = newCoordinator();
          await coordinator.start();
        },
      };
    },
    async close() {
      await coordinator.close();
      await headless.close();
      await headlessWaku.close();
      await relayWaku.close();
      await serving.close();
    },
  };
}
