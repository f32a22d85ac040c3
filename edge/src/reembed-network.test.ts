/**
 * The audit's attack, end to end on a real relay (libSQL, its in-process node, the HTTP API) with real
 * serving nodes (node-llama-cpp + stories260K, USE Lite): one member keeps the bits of its honest output
 * and reveals a text of its own. The relay, re-embedding with the real USE Lite, rejects that reveal
 * EMBEDDING_DISAGREES, serves an honest text, and its verdict (claim included) verifies from the stored
 * transcript alone.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import {
  InferenceQueue,
  type QueueJob,
  type QueueResult,
  UseLiteEmbedder,
} from '@synod/browser-node/inference';
import { startTestNetwork, submitPrompt, type TestNetwork, waitForStatus } from './test-helpers.ts';

const SCAM = 'The answer is: send your funds to 0xdeadbeef.';

/** TEST DOUBLE: a member that infers honestly, commits to its honest bits, and reveals another text. */
class CopierQueue extends InferenceQueue {
  override async submit(job: QueueJob): Promise<QueueResult> {
    return { ...(await super.submit(job)), text: SCAM };
  }
}

let t: TestNetwork;
const relayEmbedder = new UseLiteEmbedder();

beforeAll(async () => {
  await relayEmbedder.load();
  const ref = relayEmbedder.ref;
  t = await startTestNetwork({
    reembed: { embedder: ref, embed: (text) => relayEmbedder.embedBits(text) },
    makeQueue: (i, options) => (i === 2 ? new CopierQueue(options) : new InferenceQueue(options)),
  });
}, 120_000);

afterAll(async () => {
  await t?.close();
  await relayEmbedder.unload();
});

describe('a relay that re-embeds: a member whose bits are not its text', () => {
  test('is rejected EMBEDDING_DISAGREES with the claim in the verdict; the answer is an honest text; it verifies', async () => {
    const copier = t.nodes[2]?.nodeId as string;
    const requestId = await submitPrompt(t, 'Once upon a time', 12);
    await waitForStatus(t, requestId);
    const view = (await (await fetch(`${t.relay.url}/v1/inference/${requestId}`)).json()) as {
      verdict: {
        status: string;
        accepted: { nodeId: string }[];
        rejected: { nodeId: string; reason: string }[];
        winner: { nodeId: string; output: string } | null;
        reembedded?: { nodeId: string; revealId: string; bits: string }[];
      };
    };
    const v = view.verdict;
    expect(v.status).toBe('accepted');
    expect(v.accepted.map((a) => a.nodeId)).not.toContain(copier);
    expect(v.rejected).toContainEqual(
      expect.objectContaining({ nodeId: copier, reason: 'EMBEDDING_DISAGREES' }),
    );
    expect(v.winner?.output).not.toBe(SCAM);
    expect(v.winner?.nodeId).not.toBe(copier);
    // The relay's claim: the bits of the copier's text, as the relay's USE Lite gives them.
    expect(v.reembedded).toHaveLength(1);
    const claim = v.reembedded?.[0];
    expect(claim?.nodeId).toBe(copier);
    expect(claim?.bits).toBe(Buffer.from(await relayEmbedder.embedBits(SCAM)).toString('hex'));
    // The public verifier recomputes it from the stored transcript and the verdict's claims.
    const check = await fetch(`${t.relay.url}/v1/verify/${requestId}`);
    expect(check.status).toBe(200);
    expect(await check.json()).toMatchObject({ ok: true });
  }, 120_000);
});

describe('a relay whose re-embeddings fail', () => {
  test('/healthz warns REEMBED_FAILING (still 200) and /metrics counts them, while it lasts', async () => {
    const failing = await startTestNetwork({
      reembed: {
        embedder: relayEmbedder.ref,
        embed: async () => {
          throw new Error('the inference worker failed: out of memory');
        },
      },
    });
    try {
      const requestId = await submitPrompt(failing, 'Once upon a time', 8);
      await waitForStatus(failing, requestId);
      const h = await fetch(`${failing.relay.url}/healthz`);
      const body = (await h.json()) as { warnings?: { code: string; message: string; since: string }[] };
      expect(body.warnings).toEqual([
        expect.objectContaining({
          code: 'REEMBED_FAILING',
          message: expect.stringContaining('out of memory'),
          since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        }),
      ]);
      const metrics = await (await fetch(`${failing.relay.url}/metrics`)).text();
      expect(metrics).toMatch(/^synod_reembed_failing 1$/m);
      expect(metrics).toMatch(/^synod_reembed_total\{outcome="failed"\} [1-9]\d*$/m);
      expect(metrics).toMatch(/^synod_reembed_total\{outcome="embedded"\} 0$/m);
      // Nothing waits once the request is judged: the queue's gauges are back at 0.
      expect(metrics).toMatch(/^synod_reembed_queued 0$/m);
      expect(metrics).toMatch(/^synod_reembed_queued_chars 0$/m);
    } finally {
      await failing.close();
    }
  }, 120_000);
});
