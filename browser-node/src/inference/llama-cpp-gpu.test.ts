import { describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';

/**
 * LlamaCppEngine on a GPU backend, for real: Vulkan through Mesa's lavapipe, a Vulkan device that runs
 * on the CPU (Debian's mesa-vulkan-drivers, installed by .ci/system-deps), so the Vulkan build of
 * llama.cpp offloads the model's layers to a device and runs its GPU kernels. llama.cpp hides CPU Vulkan
 * devices unless `GGML_VK_VISIBLE_DEVICES` names them; each case runs in a process of its own
 * (test-llama-gpu-probe.ts) with that variable set as it needs.
 */
const LAVAPIPE_ICD = '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';

async function probe(args: string[], env: Record<string, string>) {
  const child = Bun.spawn(['bun', new URL('./test-llama-gpu-probe.ts', import.meta.url).pathname, ...args], {
    env: { ...process.env, ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [out, err, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  const line = out.trim().split('\n').at(-1) ?? '';
  if (code !== 0 || !line.startsWith('{')) throw new Error(`the probe failed (exit ${code}): ${err}${out}`);
  return JSON.parse(line) as Record<string, unknown>;
}

/** Only lavapipe, whatever else the machine has: the ICD file names the driver loaded. */
const LAVAPIPE_ONLY = { VK_ICD_FILENAMES: LAVAPIPE_ICD, VK_DRIVER_FILES: LAVAPIPE_ICD };

describe('LlamaCppEngine on a GPU backend (Vulkan on lavapipe)', () => {
  test('the lavapipe Vulkan driver is installed (.ci/system-deps installs mesa-vulkan-drivers)', () => {
    expect(existsSync(LAVAPIPE_ICD)).toBe(true);
  });

  test('--gpu vulkan offloads to the device: the id names the backend, and greedy output is the CPU one', async () => {
    const r = await probe(['--gpu', 'vulkan', '--max-tokens', '200', '--compare'], {
      ...LAVAPIPE_ONLY,
      GGML_VK_VISIBLE_DEVICES: '0',
    });
    expect(r).toMatchObject({ ok: true, id: 'node-llama-cpp@3.22.1+vulkan', cpuId: 'node-llama-cpp@3.22.1' });
    expect(r['backend']).toEqual({ gpu: 'vulkan', devices: [expect.stringContaining('llvmpipe')] });
    expect(r['tokens']).toBe(200);
    // The same 200 tokens as the CPU's (they part later on some prompts: documented, not promised).
    expect(r['text']).toBe(r['cpuText'] as string);
    expect(String(r['id']).length).toBeLessThanOrEqual(32);
  }, 120_000);

  test('--gpu vulkan --gpu-layers 0 offloads nothing: the id says the CPU', async () => {
    const r = await probe(['--gpu', 'vulkan', '--gpu-layers', '0'], {
      ...LAVAPIPE_ONLY,
      GGML_VK_VISIBLE_DEVICES: '0',
    });
    expect(r).toMatchObject({ ok: true, id: 'node-llama-cpp@3.22.1', backend: null });
  }, 60_000);

  test('--gpu vulkan with no device it may use is ENGINE_UNAVAILABLE with a hint, not the CPU unsaid', async () => {
    // llama.cpp hides a CPU Vulkan device by default: the binary runs, and sees none.
    const hidden = await probe(['--gpu', 'vulkan'], LAVAPIPE_ONLY);
    expect(hidden).toMatchObject({
      ok: false,
      code: 'ENGINE_UNAVAILABLE',
      message: 'llama.cpp sees no vulkan device',
      hint: expect.stringContaining('GGML_VK_VISIBLE_DEVICES'),
    });
    // A device index that is not there: the binary does not run at all.
    const none = await probe(['--gpu', 'vulkan'], { ...LAVAPIPE_ONLY, GGML_VK_VISIBLE_DEVICES: '99' });
    expect(none).toMatchObject({
      ok: false,
      code: 'ENGINE_UNAVAILABLE',
      message: expect.stringContaining("llama.cpp's vulkan binary cannot run here"),
      hint: expect.stringContaining('driver'),
    });
  }, 60_000);

  test('--gpu auto with no device runs on the CPU, its id saying so', async () => {
    const r = await probe(['--gpu', 'auto'], { ...LAVAPIPE_ONLY, GGML_VK_VISIBLE_DEVICES: '99' });
    expect(r).toMatchObject({ ok: true, id: 'node-llama-cpp@3.22.1', backend: null });
  }, 60_000);

  test('a backend this platform has no binary or support for is ENGINE_UNAVAILABLE naming it', async () => {
    // Metal is macOS's: node-llama-cpp would load another backend in its place.
    const metal = await probe(['--gpu', 'metal'], { ...LAVAPIPE_ONLY, GGML_VK_VISIBLE_DEVICES: '0' });
    expect(metal).toMatchObject({
      ok: false,
      code: 'ENGINE_UNAVAILABLE',
      message: 'llama.cpp cannot use metal on this machine',
    });
    // CUDA: its binary (installed with node-llama-cpp's optional packages) runs only with NVIDIA's driver.
    const cuda = await probe(['--gpu', 'cuda'], LAVAPIPE_ONLY);
    expect(cuda).toMatchObject({
      ok: false,
      code: 'ENGINE_UNAVAILABLE',
      message: expect.stringContaining("llama.cpp's cuda binary cannot run here"),
      hint: expect.stringContaining("GPU's cuda driver"),
    });
  }, 60_000);
});
