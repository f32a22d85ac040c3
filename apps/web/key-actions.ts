/**
 * What the page does with the sealed node key besides unlocking it: save it to a file (a backup: it is
 * sealed with the passphrase, as kept in localStorage), load one from a file (that backup, in another
 * browser, or a `synod node` identity file: sealed-key-file.ts checks it) and forget it (a lost
 * passphrase otherwise leaves the browser with a key nobody can open, and no way to make another).
 * Loading and forgetting take the key's tab lock first (tab-lock.ts), so a key another tab of this
 * browser runs is not pulled from under it.
 */

import { KEY_STORAGE_ITEM } from '../../browser-node/src/browser/key-storage-item.ts';
import type { KeyStorage } from '../../browser-node/src/browser/key-store.ts';
import { acquireTabLock } from '../../browser-node/src/browser/tab-lock.ts';
import { KeyFileError, type SealedKeyText } from './sealed-key-file.ts';

/** The sealed key's localStorage item when the config names none: the browser node's own. */
export const DEFAULT_KEY_ITEM = KEY_STORAGE_ITEM;

export interface SealedKeyFile {
  name: string;
  text: string;
}

/** The stored sealed key as a file to save, or null when there is none (or it is not a sealed key). */
export function sealedKeyFile(storage: KeyStorage, item = DEFAULT_KEY_ITEM): SealedKeyFile | null {
  const text = storage.getItem(item);
  if (text === null) return null;
  let nodeId: unknown;
  try {
    nodeId = (JSON.parse(text) as { nodeId?: unknown }).nodeId;
  } catch {
    return null;
  }
  if (typeof nodeId !== 'string' || !/^[0-9a-f]{64}$/.test(nodeId)) return null;
  return { name: `synod-node-key-${nodeId.slice(0, 12)}.json`, text };
}

/**
 * Remove the stored key: the one the user was asked about, `confirmed` (the stored text then), when
 * given. Throws NODE_KEY_IN_USE when a tab of this browser runs it (this one included: the page offers
 * this only while locked), TAB_LOCK_UNAVAILABLE without Web Locks, NODE_KEY_CHANGED when what is stored
 * is no longer `confirmed` (another tab made or loaded a key meanwhile); in each case nothing is removed.
 */
export async function forgetKey(
  storage: KeyStorage,
  item = DEFAULT_KEY_ITEM,
  locks: LockManager | undefined = globalThis.navigator?.locks,
  confirmed?: string | null,
): Promise<void> {
  const lock = await acquireTabLock(item, locks);
  try {
    if (confirmed !== undefined && storage.getItem(item) !== confirmed) {
      throw new KeyFileError(
        'NODE_KEY_CHANGED',
        `the key stored in this browser changed meanwhile (another tab): it is now ${storedKeyNodeId(storage, item) ?? 'none'}; look at it, then forget it again if you mean to`,
      );
    }
    storage.removeItem(item);
  } finally {
    lock.release();
  }
}

/** The node id of the key stored under `item`, or null when none is (or what is there is not a sealed key). */
export function storedKeyNodeId(storage: KeyStorage, item = DEFAULT_KEY_ITEM): string | null {
  const file = sealedKeyFile(storage, item);
  return file === null ? null : (JSON.parse(file.text) as { nodeId: string }).nodeId;
}

/**
 * Store a checked sealed key (sealed-key-file.ts) in place of `replacing`, the node id of the key the
 * user agreed to replace (null: none was stored). Throws NODE_KEY_IN_USE when a tab of this browser
 * runs the stored key, TAB_LOCK_UNAVAILABLE without Web Locks, NODE_KEY_CHANGED when the stored key is
 * no longer `replacing` (another tab made or forgot one meanwhile); in each case nothing is stored.
 */
export async function replaceKey(
  storage: KeyStorage,
  key: SealedKeyText,
  replacing: string | null,
  item = DEFAULT_KEY_ITEM,
  locks: LockManager | undefined = globalThis.navigator?.locks,
): Promise<void> {
  const lock = await acquireTabLock(item, locks);
  try {
    const stored = storedKeyNodeId(storage, item);
    if (stored !== replacing) {
      throw new KeyFileError(
        'NODE_KEY_CHANGED',
        `the key stored in this browser changed meanwhile (another tab): it is now ${stored ?? 'none'}; look at it, then load the file again`,
      );
    }
    storage.setItem(item, key.text);
  } finally {
    lock.release();
  }
}
