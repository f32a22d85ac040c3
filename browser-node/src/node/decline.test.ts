import { describe, expect, test } from 'bun:test';
import type { AnyPacket } from '@synod/shared';
import { NodeKey } from '@synod/shared';
import { InferenceError } from '../inference/errors.ts';
import { MemoryNetwork } from '../p2p/memory.ts';
import { declineOf, SynodNode } from './synod-node.ts';
import { loadTestServing } from './test-helpers.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

/**
 * A relay and one node serving stories260K on a memory network (keys from `seed`), what the relay
 * heard of declines and how its requests ended, and what the node logged and how its requests ended.
 */
async function relayAndNode(seed: number) {
  const serving = await loadTestServing();
  const net = new MemoryNetwork();
  const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
  const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(seed + 1));
  const logs: Array<Record<string, unknown>> = [];
  const finished = new Map<string, string>();
  const ended = new Map<string, { kind: string; reason: string; at: number }>();
  const declines: Extract<AnyPacket, { type: 'decline' }>[] = [];
  const relay = new SynodNode({
    key: relayKey,
    role: 'relay',
    transports: [net.join(relayKey.nodeId)],
    onPacket: ({ packet }) => {
      if (packet.type === 'decline') declines.push(packet);
    },
    onFinished: (id, o) => ended.set(id, { ...o, at: Date.now() }),
  });
  const node = new SynodNode({
    key: nodeKey,
    role: 'node',
    transports: [net.join(nodeKey.nodeId)],
    serving,
    log: (e) => logs.push(e),
    onFinished: (id, o) => finished.set(id, o.reason),
  });
  await relay.start();
  await node.start();
  const close = async () => {
    await node.close();
    await relay.close();
    await serving.close();
  };
  return { serving, nodeKey, relay, node, logs, finished, ended, declines, close };
}

describe('SynodNode: a request its model cannot run', () => {
  test('a prompt longer than the context is declined, signed, and its coordinator ends it DECLINED before its deadline', async () => {
    const { serving, nodeKey, relay, node, logs, finished, ended, declines, close } = await relayAndNode(180);
    try {
      // Within LIMITS.maxPromptChars, far past stories260K's context.
      const body = testRequest({
        embedder: serving.embedder,
        prompt: 'Once upon a time there was a cat. '.repeat(900),
        acceptedModels: ['stories260K'],
        params: { temperature: 0, maxTokens: 16 },
        frame: { revealWindowMs: 10_000, maxTimeMs: 60_000 },
      });
      await relay.submit(body);
      await until(() => ended.has(body.requestId) && finished.has(body.requestId));
      expect(finished.get(body.requestId)).toBe('declined');
      const outcome = ended.get(body.requestId);
      expect(outcome).toMatchObject({ kind: 'expired', reason: 'declined' });
      // Long before the request's 60 s were up: nothing waited for a deadline.
      expect((outcome?.at ?? Infinity) - body.createdAt).toBeLessThan(30_000);
      expect(declines).toEqual([
        expect.objectContaining({
          type: 'decline',
          from: nodeKey.nodeId,
          body: expect.objectContaining({
            requestId: body.requestId,
            model: { id: 'stories260K', fileHash: expect.any(String) },
            reason: 'context-exceeded',
          }),
        }),
      ]);
      const d = (declines[0] as { body: { promptTokens: number; contextTokens: number } }).body;
      expect(d.promptTokens).toBeGreaterThanOrEqual(d.contextTokens);
      const line = logs.find(
        (l) => l['requestId'] === body.requestId && String(l['msg']).includes('declined'),
      );
      // Counted as declined, not as a failure of the node (its alerts are not for users' long prompts).
      expect(node.metrics().inferences).toMatchObject({ declined: 1, failed: 0 });
      expect(line).toMatchObject({
        level: 'info',
        model: 'stories260K',
        promptTokens: d.promptTokens,
        contextTokens: d.contextTokens,
      });
    } finally {
      await close();
    }
  }, 60_000);

  test('a node busy with a long generation declines a prompt longer than the context as it arrives', async () => {
    const { serving, relay, node, declines, close } = await relayAndNode(182);
    try {
      const frame = { revealWindowMs: 10_000, maxTimeMs: 60_000 };
      // About 2,000 tokens of output: seconds of work for the node's one engine.
      const busy = testRequest({
        embedder: serving.embedder,
        prompt: 'Once upon a time',
        acceptedModels: ['stories260K'],
        params: { temperature: 0, maxTokens: 2000 },
        frame,
      });
      await relay.submit(busy);
      await until(() => serving.queue.running);
      const long = testRequest({
        embedder: serving.embedder,
        prompt: 'Once upon a time there was a cat. '.repeat(900),
        acceptedModels: ['stories260K'],
        params: { temperature: 0, maxTokens: 16 },
        frame,
      });
      await relay.submit(long);
      await until(() => declines.some((d) => d.body.requestId === long.requestId));
      // Declined while the first generation still ran: not after it.
      expect(serving.queue.running).toBe(true);
      expect(node.metrics().inferences).toMatchObject({ done: 0, declined: 1 });
      await until(() => node.metrics().inferences.done === 1, 30_000);
    } finally {
      await close();
    }
  }, 60_000);

  test('declineOf: only PROMPT_TOO_LONG with both token counts makes a decline', () => {
    const tooLong = new InferenceError('PROMPT_TOO_LONG', 'x', {
      details: { promptTokens: 900, contextSize: 512 },
    });
    expect(declineOf(tooLong)).toEqual({ reason: 'context-exceeded', promptTokens: 900, contextTokens: 512 });
    expect(
      declineOf(new InferenceError('PROMPT_TOO_LONG', 'x', { details: { promptTokens: 900 } })),
    ).toBeUndefined();
    expect(
      declineOf(
        new InferenceError('INFERENCE_FAILED', 'x', { details: { promptTokens: 900, contextSize: 512 } }),
      ),
    ).toBeUndefined();
    expect(declineOf(new Error('PROMPT_TOO_LONG'))).toBeUndefined();
  });
});
