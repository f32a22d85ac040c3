import { expect, test } from 'bun:test';
import { NodeKey, type Packet } from '@synod/shared';
import { SynodNode } from './synod-node.ts';
import { loadTestServing, relayAndNode, TEST_HEARTBEAT } from './test-helpers.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

test('drain: no new request is taken, the one being computed is committed and revealed, then it resolves with none left', async () => {
  const serving = await loadTestServing();
  const { net, relay, node, published, close } = await relayAndNode([180, 181], serving, {
    heartbeat: TEST_HEARTBEAT,
  });
  try {
    const ask = (nonce: number, maxTokens: number) =>
      testRequest({
        embedder: serving.embedder,
        nonce,
        prompt: 'Once upon a time',
        acceptedModels: ['stories260K'],
        params: { temperature: 0, maxTokens },
        frame: { maxTimeMs: 30_000 },
      });
    expect(node.duties()).toBe(0);
    // Nothing owed: a drain ends at once.
    const idleKey = await NodeKey.fromSeed(new Uint8Array(32).fill(182));
    const idle = new SynodNode({ key: idleKey, role: 'node', transports: [net.join('idle')], serving });
    expect(await idle.drain(10_000)).toBe(0);
    await idle.close();

    const long = ask(1, 2_000);
    await relay.submit(long);
    await until(() => node.duties() === 1);
    const beats = () => published.filter((p): p is Packet<'heartbeat'> => p.type === 'heartbeat');
    const before = beats().length;
    const draining = node.drain(45_000);
    // Its heartbeat says at once that it has no room.
    await until(() => beats().length > before);
    expect(beats().at(-1)?.body.capacity.maxQueue).toBe(0);
    // A request arriving meanwhile is not taken.
    const late = ask(2, 8);
    await relay.submit(late);
    expect(await draining).toBe(0);
    const mine = (type: string, requestId: string) =>
      published.some((p) => p.type === type && (p.body as { requestId?: string }).requestId === requestId);
    expect(mine('commit', long.requestId)).toBe(true);
    expect(mine('reveal', long.requestId)).toBe(true);
    expect(node.status(late.requestId)).toBeNull();
    expect(mine('commit', late.requestId)).toBe(false);
  } finally {
    await close();
    await serving.close();
  }
}, 60_000);

test('drain: a request being computed whose reveal could be due after the drain is given up before it commits', async () => {
  const serving = await loadTestServing();
  const { relay, node, published, close } = await relayAndNode([183, 184], serving);
  try {
    // Its seal may come up to 5 minutes later: past a drain of 2 s.
    const long = testRequest({
      embedder: serving.embedder,
      nonce: 3,
      prompt: 'Once upon a time',
      acceptedModels: ['stories260K'],
      params: { temperature: 0, maxTokens: 4_000 },
      frame: { maxTimeMs: 300_000 },
    });
    await relay.submit(long);
    await until(() => node.duties() === 1);
    const started = Date.now();
    expect(await node.drain(2_000)).toBe(0);
    // Given up at once, not waited for.
    expect(Date.now() - started).toBeLessThan(1_500);
    await node.settled();
    expect(node.status(long.requestId)?.outcome).toMatchObject({
      kind: 'expired',
      reason: 'inference-failed',
    });
    expect(published.some((p) => p.type === 'commit')).toBe(false);
    // Counted: every inference started is done, failed, declined or dropped once it settles.
    await until(() => node.metrics().inferences.dropped === 1);
    expect(node.metrics().inferences).toMatchObject({
      started: 1,
      done: 0,
      failed: 0,
      declined: 0,
      dropped: 1,
    });
  } finally {
    await close();
    await serving.close();
  }
}, 60_000);
