import { describe, expect, test } from 'bun:test';
import { NodeKey } from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { SynodNode } from './synod-node.ts';
import { loadTestServing } from './test-helpers.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

describe('SynodNode: an inference the engine refuses', () => {
  test('is logged with the engine’s reason, not its code alone (a prompt longer than the context)', async () => {
    const serving = await loadTestServing();
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(180));
    const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(181));
    const logs: Array<Record<string, unknown>> = [];
    const finished = new Map<string, string>();
    const relay = new SynodNode({ key: relayKey, role: 'relay', transports: [net.join(relayKey.nodeId)] });
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
    try {
      // Within LIMITS.maxPromptChars, far past stories260K's context.
      const body = testRequest({
        embedder: serving.embedder,
        prompt: 'Once upon a time there was a cat. '.repeat(900),
        acceptedModels: ['stories260K'],
        params: { temperature: 0, maxTokens: 16 },
        frame: { revealWindowMs: 10_000 },
      });
      await relay.submit(body);
      await until(() => finished.has(body.requestId));
      expect(finished.get(body.requestId)).toBe('inference-failed');
      const line = logs.find((l) => l['msg'] === 'inference failed');
      expect(line).toMatchObject({
        level: 'warn',
        reason: 'INFERENCE_INVALID_INPUT',
        requestId: body.requestId,
      });
      expect(String(line?.['err'])).toMatch(/context/i);
    } finally {
      await node.close();
      await relay.close();
      await serving.close();
    }
  }, 60_000);
});
