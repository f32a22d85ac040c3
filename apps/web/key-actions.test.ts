import { describe, expect, test } from 'bun:test';
import { KEY_STORAGE_ITEM } from '../../browser-node/src/browser/key-store.ts';
import { DEFAULT_KEY_ITEM, sealedKeyFile } from './key-actions.ts';

function storage(items: Record<string, string>) {
  const map = new Map(Object.entries(items));
  return {
    getItem: (k: string) => map.get(k) ?? null,
    setItem: (k: string, v: string) => void map.set(k, v),
    removeItem: (k: string) => void map.delete(k),
  };
}

describe('the sealed key as a file', () => {
  test("the page's default item is the key store's", () => {
    expect(DEFAULT_KEY_ITEM).toBe(KEY_STORAGE_ITEM);
  });

  test('named after the node id, holding the stored text as it is', () => {
    const sealed = JSON.stringify({ v: 1, nodeId: 'ab'.repeat(32), salt: 'x', box: 'y' });
    expect(sealedKeyFile(storage({ 'synod.node-key.v1': sealed }))).toEqual({
      name: `synod-node-key-${'ab'.repeat(6)}.json`,
      text: sealed,
    });
    expect(sealedKeyFile(storage({ other: sealed }), 'other')?.text).toBe(sealed);
  });

  test('none when nothing is stored, or what is stored is not a sealed key', () => {
    expect(sealedKeyFile(storage({}))).toBeNull();
    expect(sealedKeyFile(storage({ 'synod.node-key.v1': 'not json' }))).toBeNull();
    expect(sealedKeyFile(storage({ 'synod.node-key.v1': '{"nodeId":"../x"}' }))).toBeNull();
  });
});
