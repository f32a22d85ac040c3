import { describe, expect, test } from 'bun:test';
import { DEFAULT_KEY_ITEM, forgetKey, replaceKey, sealedKeyFile, storedKeyNodeId } from './key-actions.ts';

function storage(items: Record<string, string>) {
  const map = new Map(Object.entries(items));
  return {
    getItem: (k: string) => map.get(k) ?? null,
    setItem: (k: string, v: string) => void map.set(k, v),
    removeItem: (k: string) => void map.delete(k),
  };
}

describe('the sealed key as a file', () => {
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

/** Web Locks with one lock, held or not by another tab. */
function locks(heldElsewhere: boolean): LockManager {
  return {
    request: (_name: string, _options: LockOptions, callback: (lock: Lock | null) => unknown) =>
      Promise.resolve(callback(heldElsewhere ? null : ({ name: _name, mode: 'exclusive' } as Lock))),
    query: () => Promise.resolve({ held: [], pending: [] }),
  } as unknown as LockManager;
}

describe('a sealed key loaded from a file in place of the stored one', () => {
  const stored = JSON.stringify({ v: 1, nodeId: 'ab'.repeat(32) });
  const loaded = { nodeId: 'cd'.repeat(32), text: JSON.stringify({ v: 1, nodeId: 'cd'.repeat(32) }) };

  test('stored under the tab lock, in place of the key the user agreed to replace, or of none', async () => {
    const s = storage({ 'synod.node-key.v1': stored });
    expect(storedKeyNodeId(s)).toBe('ab'.repeat(32));
    await replaceKey(s, loaded, 'ab'.repeat(32), DEFAULT_KEY_ITEM, locks(false));
    expect(s.getItem(DEFAULT_KEY_ITEM)).toBe(loaded.text);
    const empty = storage({});
    await replaceKey(empty, loaded, null, 'other', locks(false));
    expect(empty.getItem('other')).toBe(loaded.text);
    // What is stored and is not a sealed key counts as none.
    const garbled = storage({ 'synod.node-key.v1': 'not json' });
    expect(storedKeyNodeId(garbled)).toBeNull();
    await replaceKey(garbled, loaded, null, DEFAULT_KEY_ITEM, locks(false));
    expect(garbled.getItem(DEFAULT_KEY_ITEM)).toBe(loaded.text);
  });

  test('nothing stored while another tab runs the key, without Web Locks, or when the stored key changed', async () => {
    const s = storage({ 'synod.node-key.v1': stored });
    const code = (p: Promise<void>) =>
      p.then(
        () => 'stored',
        (e: { code?: string }) => e.code,
      );
    expect(await code(replaceKey(s, loaded, 'ab'.repeat(32), DEFAULT_KEY_ITEM, locks(true)))).toBe(
      'NODE_KEY_IN_USE',
    );
    expect(await code(replaceKey(s, loaded, 'ab'.repeat(32), DEFAULT_KEY_ITEM, undefined))).toBe(
      'TAB_LOCK_UNAVAILABLE',
    );
    // The user was asked with no key stored (or another one); another tab made this one meanwhile.
    expect(await code(replaceKey(s, loaded, null, DEFAULT_KEY_ITEM, locks(false)))).toBe('NODE_KEY_CHANGED');
    expect(await code(replaceKey(s, loaded, 'ef'.repeat(32), DEFAULT_KEY_ITEM, locks(false)))).toBe(
      'NODE_KEY_CHANGED',
    );
    expect(s.getItem(DEFAULT_KEY_ITEM)).toBe(stored);
  });
});

describe('forgetting the stored key', () => {
  const stored = JSON.stringify({ v: 1, nodeId: 'ab'.repeat(32) });
  const code = (p: Promise<void>) =>
    p.then(
      () => 'forgotten',
      (e: { code?: string }) => e.code,
    );

  test('the key the user was asked about is removed', async () => {
    const s = storage({ 'synod.node-key.v1': stored });
    expect(await code(forgetKey(s, DEFAULT_KEY_ITEM, locks(false), stored))).toBe('forgotten');
    expect(s.getItem(DEFAULT_KEY_ITEM)).toBeNull();
    // A damaged item (not a sealed key) is forgotten the same way.
    const damaged = storage({ 'synod.node-key.v1': '{"v":1' });
    expect(await code(forgetKey(damaged, DEFAULT_KEY_ITEM, locks(false), '{"v":1'))).toBe('forgotten');
  });

  test('nothing removed while another tab runs it, without Web Locks, or when another tab stored another key meanwhile', async () => {
    const s = storage({ 'synod.node-key.v1': stored });
    expect(await code(forgetKey(s, DEFAULT_KEY_ITEM, locks(true), stored))).toBe('NODE_KEY_IN_USE');
    expect(await code(forgetKey(s, DEFAULT_KEY_ITEM, undefined, stored))).toBe('TAB_LOCK_UNAVAILABLE');
    // Asked about a damaged item; a new key was made in another tab meanwhile: that one stays.
    expect(await code(forgetKey(s, DEFAULT_KEY_ITEM, locks(false), '{"v":1'))).toBe('NODE_KEY_CHANGED');
    expect(s.getItem(DEFAULT_KEY_ITEM)).toBe(stored);
  });
});
