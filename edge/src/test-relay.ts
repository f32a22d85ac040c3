/**
 * A Bun relay for route and store tests: its node alone on an in-memory network (no peer, so nothing it
 * accepts is dispatched; or on `net`, where a test joins peers of its own), the test embedder, one model
 * `m`, its database at `dbUrl`. `seed` fills its node key's seed; `o` sets any other option.
 */
import { MemoryNetwork } from '@synod/browser-node';
import { NodeKey } from '@synod/shared';
import { type RelayOptions, type RunningRelay, startRelay } from './runtime/bun.ts';
import { TEST_EMBEDDER } from './store/test-admissions.ts';

export async function loneRelay(
  dbUrl: string,
  seed: number,
  o: Partial<Omit<RelayOptions, 'dbUrl' | 'key' | 'transports'>> = {},
  net: MemoryNetwork = new MemoryNetwork(),
): Promise<RunningRelay> {
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(seed));
  return startRelay({
    dbUrl,
    key,
    transports: [net.join(key.nodeId)],
    embedders: [TEST_EMBEDDER],
    configuredModels: ['m'],
    ...o,
  });
}
