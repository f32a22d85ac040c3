import { expect, test } from 'bun:test';
import { createPublicClient, http } from 'viem';
import { startAnvil } from './anvil.ts';

test('port 0 asks for a free port: anvil runs on one, and its URL names it', async () => {
  const anvil = await startAnvil({ port: 0 });
  try {
    expect(anvil.port).toBeGreaterThan(0);
    expect(anvil.url).toBe(`http://127.0.0.1:${anvil.port}`);
    const client = createPublicClient({ transport: http(anvil.url) });
    expect(await client.getChainId()).toBe(31337);
  } finally {
    await anvil.stop();
  }
});

test('anvil keeps the states of the last statesKept blocks only, in memory: a call at an older block fails', async () => {
  const anvil = await startAnvil({ statesKept: 4 });
  try {
    const client = createPublicClient({ transport: http(anvil.url) });
    const rich = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
    await client.request({ method: 'anvil_mine' as never, params: ['0x10'] as never });
    const head = await client.getBlockNumber();
    expect(head).toBe(16n);
    // The latest states answer; one 12 blocks back is gone (unbounded, anvil kept every one, and wrote
    // them to disk once memory held enough).
    expect(await client.getBalance({ address: rich, blockNumber: head - 1n })).toBeGreaterThan(0n);
    await expect(client.getBalance({ address: rich, blockNumber: head - 12n })).rejects.toThrow();
  } finally {
    await anvil.stop();
  }
});
