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
