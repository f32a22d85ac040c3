/**
 * Members check the re-embedding claims of the verdicts they attest, end to end with real serving nodes
 * (node-llama-cpp + stories260K, USE Lite from the model mirror): each embeds the claimed texts with the
 * embedder its queue commits with, and does not co-sign a verdict whose relay lied about an honest
 * member's text (REEMBED_CLAIM_FALSE); a true claim (a copier's text) is co-signed as before.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { NodeKey, type Packet, toHex, type VerdictEffect } from '@synod/shared';
import type { Embedder } from '../inference/embedder.ts';
import { InferenceQueue, type QueueJob, type QueueResult } from '../inference/queue.ts';
import { UseLiteEmbedder } from '../inference/use-lite.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import type { ClaimCheckConfig } from './claim-embeddings.ts';
import { MemoryMachineStore } from './machine-store.ts';
import { type ReembedConfig, type ServingConfig, SynodNode } from './synod-node.ts';
import { loadTestServing, type TestServing } from './test-helpers.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const SCAM = 'The answer is: send your funds to 0xdeadbeef.';
/** What the honest member with a text of its own adds to the model's output. */
const OWN = ' And they all lived happily ever after.';

/** TEST DOUBLE: a member that infers honestly, commits to its honest bits, and reveals another text. */
class CopierQueue extends InferenceQueue {
  override async submit(job: QueueJob): Promise<QueueResult> {
    return { ...(await super.submit(job)), text: SCAM };
  }
}

/**
 * TEST DOUBLE: an honest member whose text differs from the others' (the model's output and a sentence
 * more), revealed with that text's own embedding.
 */
class OwnTextQueue extends InferenceQueue {
  override async submit(job: QueueJob): Promise<QueueResult> {
    const r = await super.submit(job);
    const text = `${r.text}${OWN}`;
    return { ...r, text, bEmbedding: await (this.embedder as Embedder).embedBits(text) };
  }
}

/**
 * TEST DOUBLE: a lying relay's embedder. USE Lite's bits of every text, but for the honest member's own
 * text (ending with OWN) the bits of another: the relay rejects it EMBEDDING_DISAGREES with a false claim.
 */
function lyingReembed(embedder: UseLiteEmbedder): ReembedConfig {
  return {
    embedder: embedder.ref,
    embed: (text) => embedder.embedBits(text.endsWith(OWN) ? 'Buy my coin before it is too late.' : text),
  };
}

/** The relay's embedder, honest: USE Lite's bits of every text. */
const honestReembed = (embedder: UseLiteEmbedder): ReembedConfig => ({
  embedder: embedder.ref,
  embed: (text) => embedder.embedBits(text),
});

let relayEmbedder: UseLiteEmbedder;
let honest: TestServing[];
let ownText: TestServing<OwnTextQueue>;
let copier: TestServing<CopierQueue>;

beforeAll(async () => {
  relayEmbedder = new UseLiteEmbedder();
  await relayEmbedder.load();
  honest = [await loadTestServing(), await loadTestServing()];
  ownText = await loadTestServing(4, (o) => new OwnTextQueue(o));
  copier = await loadTestServing(4, (o) => new CopierQueue(o));
}, 120_000);

afterAll(async () => {
  await Promise.all([...(honest ?? []), ownText, copier].map((s) => s?.close()));
  await relayEmbedder?.unload();
});

interface Member {
  node: SynodNode;
  key: NodeKey;
  lines: Record<string, unknown>[];
  attestations: Packet<'attestation'>[];
  finished: string[];
}

/**
 * A relay re-embedding with `reembed` and three real members serving with `servings` (`claimCheck[i]`
 * overriding member i's default), on one in-memory network; one request of theirs, until every
 * member's machine for it finished.
 */
async function run(
  seed: number,
  reembed: ReembedConfig,
  servings: ServingConfig[],
  claimCheck: (ClaimCheckConfig | false | undefined)[] = [],
) {
  const net = new MemoryNetwork();
  const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
  const verdicts: VerdictEffect[] = [];
  const relay = new SynodNode({
    key: relayKey,
    role: 'relay',
    transports: [net.join(relayKey.nodeId)],
    store: new MemoryMachineStore(),
    reembed,
    onVerdict: (_id, v) => verdicts.push(v),
  });
  const members: Member[] = [];
  for (const [i, serving] of servings.entries()) {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(seed + 1 + i));
    const lines: Member['lines'] = [];
    const attestations: Member['attestations'] = [];
    const finished: Member['finished'] = [];
    const check = claimCheck[i];
    const node = new SynodNode({
      key,
      role: 'node',
      transports: [net.join(key.nodeId)],
      store: new MemoryMachineStore(),
      serving,
      ...(check === undefined ? {} : { claimCheck: check }),
      log: (line) => lines.push(line),
      onPacket: ({ packet, own }) => {
        if (own && packet.type === 'attestation') attestations.push(packet);
      },
      onFinished: (_id, outcome) => finished.push(outcome.reason),
    });
    members.push({ node, key, lines, attestations, finished });
  }
  const serving = servings[0] as ServingConfig;
  try {
    await relay.start();
    for (const m of members) await m.node.start();
    await relay.submit(
      testRequest({
        embedder: serving.embedder,
        nonce: seed,
        prompt: 'Once upon a time',
        acceptedModels: [serving.models[0]?.id as string],
        params: { temperature: 0, maxTokens: 12 },
        frame: { quorum: 3, maxCommits: 3, maxTimeMs: 20_000, revealWindowMs: 10_000 },
      }),
    );
    await until(() => verdicts.length === 1 && members.every((m) => m.finished.length === 1), 60_000);
    return { verdict: verdicts[0] as VerdictEffect, members };
  } finally {
    await Promise.all([relay, ...members.map((m) => m.node)].map((n) => n.close()));
  }
}

const claimLines = (m: Member) => m.lines.filter((l) => l['code'] === 'REEMBED_CLAIM_FALSE');

describe('members check the claims of a re-embedding relay before they attest its verdict', () => {
  test("a relay's false claim about an honest member: the others do not attest, and log REEMBED_CLAIM_FALSE", async () => {
    const { verdict, members } = await run(60, lyingReembed(relayEmbedder), [...honest, ownText]);
    const [a, b, victim] = members as [Member, Member, Member];
    // The relay rejected the honest member's reveal on the bits of another text, and says so in its claim.
    const v = verdict.verdict;
    expect(v.rejected).toEqual([
      expect.objectContaining({ nodeId: victim.key.nodeId, reason: 'EMBEDDING_DISAGREES' }),
    ]);
    expect(v.reembedded).toHaveLength(1);
    const claim = v.reembedded?.[0];
    expect(claim?.nodeId).toBe(victim.key.nodeId);
    expect(claim?.bits).toBe(toHex(await relayEmbedder.embedBits('Buy my coin before it is too late.')));
    for (const m of [a, b]) {
      expect(m.finished).toEqual(['reembed-claim-false']);
      expect(m.attestations).toEqual([]);
      expect(claimLines(m)).toEqual([
        expect.objectContaining({
          level: 'warn',
          requestId: v.requestId,
          detail: expect.stringContaining(`node ${victim.key.nodeId}'s reveal ${claim?.revealId}`),
        }),
      ]);
      const metrics = m.node.metrics();
      expect(metrics.lifecycleRejected.REEMBED_CLAIM_FALSE).toBe(1);
      expect(metrics.claimChecks).toEqual({ held: 0, false: 1, failed: 0, embedded: 1 });
    }
    // The member the claim names never co-signs a claim about its own text (as before).
    expect(victim.finished).toEqual(['verified']);
    expect(victim.attestations).toEqual([]);
    expect(claimLines(victim)).toEqual([]);
  }, 120_000);

  test('a true claim (a copier of the honest bits with its own text): the others check it and attest', async () => {
    const { verdict, members } = await run(70, honestReembed(relayEmbedder), [...honest, copier]);
    const [a, b, cheat] = members as [Member, Member, Member];
    const v = verdict.verdict;
    expect(v.status).toBe('accepted');
    expect(v.rejected).toEqual([
      expect.objectContaining({ nodeId: cheat.key.nodeId, reason: 'EMBEDDING_DISAGREES' }),
    ]);
    for (const m of [a, b]) {
      expect(m.finished).toEqual(['verified']);
      expect(m.attestations.map((p) => p.body.verdictDigest)).toEqual([verdict.digest]);
      expect(claimLines(m)).toEqual([]);
      expect(m.node.metrics().claimChecks).toEqual({ held: 1, false: 0, failed: 0, embedded: 1 });
    }
    expect(cheat.attestations).toEqual([]);
  }, 120_000);

  test('a member without an embedder to check with takes the claims as given and attests, as before', async () => {
    const { verdict, members } = await run(80, lyingReembed(relayEmbedder), [...honest, ownText], [false]);
    const [unchecked, checked] = members as [Member, Member, Member];
    expect(verdict.verdict.reembedded).toHaveLength(1);
    expect(unchecked.finished).toEqual(['verified']);
    expect(unchecked.attestations.map((p) => p.body.verdictDigest)).toEqual([verdict.digest]);
    expect(unchecked.node.metrics().claimChecks).toEqual({ held: 0, false: 0, failed: 0, embedded: 0 });
    expect(checked.finished).toEqual(['reembed-claim-false']);
  }, 120_000);
});
