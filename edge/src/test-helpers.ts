/**
 * For edge tests: a real relay (libSQL in a temp file, in-process node) and real serving nodes
 * (node-llama-cpp + stories260K, USE Lite) on an in-memory network. No fakes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryMachineStore, MemoryNetwork, type ReembedConfig, SynodNode } from '@synod/browser-node';
import type { InferenceQueue, InferenceQueueOptions } from '@synod/browser-node/inference';
import { NodeKey } from '@synod/shared';
import { loadTestServing, type TestServing } from '../../browser-node/src/node/test-helpers.ts';
import { createApiKey } from './auth/api-keys.ts';
import type { EdgeConfig } from './config.ts';
import type { NetworkWaits } from './relay/in-process.ts';
import { type ChainBridgeOptions, type RunningRelay, startRelay } from './runtime/bun.ts';
import { waitUntil } from './test-servers.ts';

export interface TestNetwork {
  relay: RunningRelay;
  /** The relay's own key: it coordinates, and signs seals and verdicts of, the requests it accepts. */
  relayKey: NodeKey;
  /** The in-memory network the relay and nodes share (a test may join it as another peer). */
  network: MemoryNetwork;
  nodes: SynodNode[];
  servings: TestServing[];
  apiKey: string;
  dir: string;
  close(): Promise<void>;
}

export async function startTestNetwork(
  options: {
    nodes?: number;
    quotaPerDay?: number;
    dbUrl?: string;
    gatewaySecret?: string;
    chain?: ChainBridgeOptions;
    config?: Partial<EdgeConfig>;
    /** The relay's `maxOpenRequests` (0: nothing is dispatched; requests stay queued). */
    maxOpenRequests?: number;
    /** The relay's `maxQueuedRequests` (default the relay's own). */
    maxQueuedRequests?: number;
    /**
     * The relay trusts the test's nodes (`trustedNodes`): its seat policy caps other keys at once. The
     * nodes send a heartbeat once the relay is up, so it knows them to be online and able to serve.
     */
    trustNodes?: boolean;
    /**
     * The relay's waits after its start (`RelayOptions.waits`). With fewer nodes than a default quorum (3)
     * and no waits given, the relay never refuses a quorum for want of nodes (`servingSettleMs` infinite):
     * such networks take requests their tests hold queued, or answer at a smaller quorum.
     */
    waits?: NetworkWaits;
    /** The relay's embedder, to re-embed the reveals it coordinates (`RelayOptions.reembed`). */
    reembed?: ReembedConfig;
    /** Node `i`'s inference queue (a test double wrapping the real one, say); default the real one. */
    makeQueue?: (i: number, options: InferenceQueueOptions) => InferenceQueue;
  } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'synod-edge-'));
  const net = new MemoryNetwork();
  const servings: TestServing[] = [];
  const nodes: SynodNode[] = [];
  for (let i = 0; i < (options.nodes ?? 3); i++) {
    const makeQueue = options.makeQueue;
    const serving = await loadTestServing(4, makeQueue ? (o) => makeQueue(i, o) : undefined);
    servings.push(serving);
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(40 + i));
    const node = new SynodNode({
      key,
      role: 'node',
      transports: [net.join(key.nodeId)],
      serving,
      store: new MemoryMachineStore(),
      heartbeat: {
        intervalMs: 60_000,
        software: 'synod-node/test',
        addresses: [],
        tokensPerSecond: 500,
        embeddingsPerSecond: 50,
        engine: 'node-llama-cpp',
      },
    });
    nodes.push(node);
  }
  const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(39));
  const serving0 = servings[0];
  if (!serving0) throw new Error('a test network needs at least one node');
  const relay = await startRelay({
    dbUrl: options.dbUrl ?? `file:${join(dir, 'relay.db')}`,
    key: relayKey,
    transports: [net.join(relayKey.nodeId)],
    embedders: [serving0.embedder],
    configuredModels: ['stories260K'],
    ...(options.gatewaySecret ? { gatewaySecret: options.gatewaySecret } : {}),
    ...(options.reembed ? { reembed: options.reembed } : {}),
    ...(options.chain ? { chain: options.chain } : {}),
    ...(options.config ? { config: options.config } : {}),
    ...(options.maxOpenRequests !== undefined ? { maxOpenRequests: options.maxOpenRequests } : {}),
    ...(options.maxQueuedRequests !== undefined ? { maxQueuedRequests: options.maxQueuedRequests } : {}),
    ...(options.trustNodes ? { trustedNodes: nodes.map((n) => n.nodeId) } : {}),
    ...(options.waits
      ? { waits: options.waits }
      : (options.nodes ?? 3) < 3
        ? { waits: { servingSettleMs: Number.POSITIVE_INFINITY } }
        : {}),
  });
  for (const n of nodes) await n.start();
  const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
  await relay.store.createApiKey(
    { id: k.id, hash: k.hash, label: 'tests', quotaPerDay: options.quotaPerDay ?? 1000 },
    Date.now(),
  );
  return {
    relay,
    relayKey,
    network: net,
    nodes,
    servings,
    apiKey: k.key,
    dir,
    async close() {
      await relay.stop();
      await Promise.all(nodes.map((n) => n.close()));
      await Promise.all(servings.map((s) => s.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  } satisfies TestNetwork;
}

/** Submit a prompt over the relay's HTTP API with the network's API key; its request id (a 202). */
export async function submitPrompt(
  t: TestNetwork,
  prompt = 'Once upon a time',
  maxTokens = 8,
): Promise<string> {
  const r = await fetch(`${t.relay.url}/v1/inference`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` },
    body: JSON.stringify({ prompt, params: { maxTokens } }),
  });
  if (r.status !== 202) throw new Error(`POST /v1/inference answered ${r.status}: ${await r.text()}`);
  return ((await r.json()) as { requestId: string }).requestId;
}

/** Wait until a request's status, read over HTTP, is `status`. */
export async function waitForStatus(t: TestNetwork, requestId: string, status = 'verdict'): Promise<void> {
  await waitUntil(`request ${requestId.slice(0, 12)} ${status}`, async () => {
    const view = (await (await fetch(`${t.relay.url}/v1/inference/${requestId}`)).json()) as {
      status: string;
    };
    return view.status === status;
  });
}

/**
 * Make the relay's admissions store each request and then lose the commit's answer (as a writer thread
 * restarted under a batch does: WRITER_TIMEOUT), until the returned restore is called.
 */
export function loseCommitAnswers(relay: Pick<TestNetwork['relay'], 'admissions'>): () => void {
  const admissions = relay.admissions;
  const own = admissions.admit;
  admissions.admit = async (admission) => {
    await own.call(admissions, admission);
    throw new Error('WRITER_TIMEOUT: the writer thread left a batch unanswered');
  };
  return () => {
    admissions.admit = own;
  };
}
