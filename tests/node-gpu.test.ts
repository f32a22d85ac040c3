import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { waitUntil } from '../edge/src/test-servers.ts';
import { type StartedRelayNetwork, startRelayNetwork } from './relay-processes.ts';

/**
 * A GPU box in a quorum: one `synod node --gpu vulkan` beside two CPU nodes, as real processes, behind a
 * relay. The GPU is Mesa's lavapipe (a Vulkan device that runs on the CPU, installed by .ci/system-deps),
 * which llama.cpp's Vulkan build offloads the model to once `GGML_VK_VISIBLE_DEVICES` names it.
 */
const LAVAPIPE_ICD = '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';
let started: StartedRelayNetwork;

beforeAll(async () => {
  started = await startRelayNetwork('node-gpu', {
    env: { VK_ICD_FILENAMES: LAVAPIPE_ICD, VK_DRIVER_FILES: LAVAPIPE_ICD, GGML_VK_VISIBLE_DEVICES: '0' },
    nodeFlags: (i) => (i === 1 ? ['--gpu', 'vulkan'] : []),
  });
}, 240_000);

afterAll(async () => {
  await started?.stop();
});

describe('synod node --gpu vulkan in a quorum with CPU nodes', () => {
  test('it says its backend, advertises it, and its answer agrees with the CPU nodes in an accepted verdict', async () => {
    const { net, apiKey } = started;
    const gpuNode = net.nodes[0];
    if (!gpuNode) throw new Error('no node');
    const loaded = gpuNode.child.lines
      .map((l) => JSON.parse(l.startsWith('{') ? l : '{}') as Record<string, unknown>)
      .find((j) => j['msg'] === 'models loaded');
    expect(loaded).toMatchObject({ engine: 'node-llama-cpp@3.22.1+vulkan' });
    const cpuLoaded = net.nodes[1]?.child.lines.find((l) => l.includes('"msg":"models loaded"'));
    expect(cpuLoaded).toContain('"engine":"node-llama-cpp@3.22.1"');

    const r = await fetch(`${net.relayUrl}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ prompt: 'Once upon a time', params: { maxTokens: 48 } }),
    });
    expect(r.status).toBe(202);
    const { requestId } = (await r.json()) as { requestId: string };
    let view: {
      status: string;
      verdict?: { status: string; accepted: string[] };
      reveals: { nodeId: string; output: string }[];
    } = { status: '', reveals: [] };
    await waitUntil(
      'the verdict',
      async () => {
        view = (await (await fetch(`${net.relayUrl}/v1/inference/${requestId}`)).json()) as typeof view;
        return !['pending', 'open', 'sealed', 'queued'].includes(view.status);
      },
      90_000,
      250,
    );
    expect(view.status).toBe('verdict');
    expect(view.verdict?.status).toBe('accepted');
    const nodeIds = net.nodes.map((n) => n.nodeId);
    expect(view.reveals.map((x) => x.nodeId).sort()).toEqual([...nodeIds].sort());
    // Greedy: the GPU node's text is the CPU nodes' text.
    expect(new Set(view.reveals.map((x) => x.output)).size).toBe(1);

    // The relay lists the node with the engine its heartbeats advertise (one every 10 s).
    type Listed = { nodes: { nodeId: string; models: { id: string; engine: string }[] }[] };
    let listed: Listed = { nodes: [] };
    await waitUntil(
      "the nodes' heartbeats",
      async () => {
        listed = (await (await fetch(`${net.relayUrl}/v1/nodes`)).json()) as Listed;
        return nodeIds.every((id) => (listed.nodes.find((n) => n.nodeId === id)?.models.length ?? 0) > 0);
      },
      30_000,
      250,
    );
    const engines = nodeIds.map((id) => listed.nodes.find((n) => n.nodeId === id)?.models[0]?.engine);
    expect(engines).toEqual([
      'node-llama-cpp@3.22.1+vulkan',
      'node-llama-cpp@3.22.1',
      'node-llama-cpp@3.22.1',
    ]);
  }, 120_000);
});
