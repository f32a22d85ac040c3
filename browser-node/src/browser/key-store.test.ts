import { describe, expect, test } from 'bun:test';
import { isSynodError, MIN_PASSPHRASE_LENGTH, NodeKey, sealNodeKey } from '@synod/shared';
import { type KeyStorage, loadOrCreateBrowserKey, storedNodeId } from './key-store.ts';

/** A `KeyStorage` test double over a Map (localStorage's shape). */
function memoryStorage(): KeyStorage & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => void map.set(k, v),
    removeItem: (k) => void map.delete(k),
  };
}

// A low scrypt cost: these tests are about what is stored, not about the key derivation's cost.
const FAST = { scryptN: 1 << 10 };

describe('the browser key store', () => {
  test('creates, seals and stores a key once; opens it again with its passphrase', async () => {
    const storage = memoryStorage();
    const made = await loadOrCreateBrowserKey('correct horse', { storage, ...FAST });
    expect(made.created).toBe(true);
    expect(storedNodeId(storage)).toBe(made.key.nodeId);
    const again = await loadOrCreateBrowserKey('correct horse', { storage, ...FAST });
    expect(again).toMatchObject({ created: false });
    expect(again.key.nodeId).toBe(made.key.nodeId);
  });

  test(`a new key's passphrase shorter than ${MIN_PASSPHRASE_LENGTH} characters is PASSPHRASE_TOO_SHORT, nothing stored; a stored key sealed with a short one still opens`, async () => {
    const storage = memoryStorage();
    const e = await loadOrCreateBrowserKey('pw', { storage, ...FAST }).catch((x: unknown) => x);
    expect(isSynodError(e, 'PASSPHRASE_TOO_SHORT')).toBe(true);
    expect(storage.map.size).toBe(0);
    // Sealed before the minimum (or by another tool): opened, not refused.
    const old = await NodeKey.generate();
    storage.setItem('synod.node-key.v1', JSON.stringify(await sealNodeKey(old, 'pw', { N: FAST.scryptN })));
    const opened = await loadOrCreateBrowserKey('pw', { storage, ...FAST });
    expect(opened).toMatchObject({ created: false });
    expect(opened.key.nodeId).toBe(old.nodeId);
  });

  test('a stored item that is not JSON is KEYSTORE_MALFORMED saying the stored key is damaged, and is left as it was', async () => {
    const storage = memoryStorage();
    const cut = '{"v":1,"kind":"synod-node-key"';
    storage.setItem('synod.node-key.v1', cut);
    const e = await loadOrCreateBrowserKey('pw', { storage, ...FAST }).catch((x: unknown) => x);
    expect(isSynodError(e, 'KEYSTORE_MALFORMED')).toBe(true);
    expect((e as Error).message).toBe(
      'the node key stored in this browser is damaged: it is not a sealed key',
    );
    expect((e as { hint?: string }).hint).toContain('forget it');
    expect(storage.getItem('synod.node-key.v1')).toBe(cut);
    expect(storedNodeId(storage)).toBeNull();
  });

  test('JSON that is not a sealed key is KEYSTORE_MALFORMED too', async () => {
    const storage = memoryStorage();
    storage.setItem('synod.node-key.v1', '{"hello":"world"}');
    const e = await loadOrCreateBrowserKey('pw', { storage, ...FAST }).catch((x: unknown) => x);
    expect(isSynodError(e, 'KEYSTORE_MALFORMED')).toBe(true);
  });
});
