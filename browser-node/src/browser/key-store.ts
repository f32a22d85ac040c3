/**
 * The browser node's identity at rest: its Ed25519 seed sealed with a passphrase (scrypt + AES-256-GCM,
 * `sealNodeKey` of @synod/shared) in `localStorage`. The seed itself is never stored in the clear;
 * reopening needs the passphrase (KEY_WRONG_PASSPHRASE otherwise).
 */
import {
  checkNewPassphrase,
  NodeKey,
  openNodeKey,
  parseSealedKey,
  type SealedKey,
  SynodError,
  sealNodeKey,
} from '@synod/shared';
import { KEY_STORAGE_ITEM } from './key-storage-item.ts';

export { KEY_STORAGE_ITEM };

export interface KeyStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface OpenedKey {
  key: NodeKey;
  created: boolean;
}

/**
 * Open the sealed key in `storage`, or create, seal and store a new one. A new key's passphrase is
 * checked first (`checkNewPassphrase`: PASSPHRASE_TOO_SHORT, nothing stored); a stored key opens with
 * whatever passphrase sealed it, however short.
 */
export async function loadOrCreateBrowserKey(
  passphrase: string,
  options: { storage?: KeyStorage; item?: string; scryptN?: number } = {},
): Promise<OpenedKey> {
  const storage = options.storage ?? globalThis.localStorage;
  const item = options.item ?? KEY_STORAGE_ITEM;
  const existing = storage.getItem(item);
  if (existing !== null) {
    let sealed: unknown;
    try {
      sealed = JSON.parse(existing) as unknown;
    } catch (cause) {
      throw damagedKey(cause);
    }
    return { key: await openNodeKey(sealed, passphrase), created: false };
  }
  checkNewPassphrase(passphrase);
  const key = await NodeKey.generate();
  const sealed: SealedKey = await sealNodeKey(
    key,
    passphrase,
    options.scryptN === undefined ? {} : { N: options.scryptN },
  );
  storage.setItem(item, JSON.stringify(sealed));
  return { key, created: true };
}

/**
 * KEYSTORE_MALFORMED for a stored item that is not even JSON (cut short, or written over by something
 * else): said as such, with what to do, not as a JSON parser's message.
 */
function damagedKey(cause: unknown): SynodError {
  return new SynodError(
    'KEYSTORE_MALFORMED',
    'the node key stored in this browser is damaged: it is not a sealed key',
    {
      cause,
      details: { issues: ['it is not JSON'] },
      hint: 'forget it ("Forget this key…") and create a new key, or load a saved copy of it from a file',
    },
  );
}

/** The node id of the stored key without opening it (shown before the passphrase is typed). */
export function storedNodeId(storage: KeyStorage = globalThis.localStorage, item = KEY_STORAGE_ITEM) {
  const raw = storage.getItem(item);
  if (raw === null) return null;
  try {
    const id = (JSON.parse(raw) as { nodeId?: unknown }).nodeId;
    return typeof id === 'string' ? id : null;
  } catch {
    return null;
  }
}

export function forgetBrowserKey(storage: KeyStorage = globalThis.localStorage, item = KEY_STORAGE_ITEM) {
  storage.removeItem(item);
}

/** A sealed key checked without its passphrase: its node id, and its text as it is stored (compact JSON). */
export interface CheckedSealedKey {
  nodeId: string;
  text: string;
}

/**
 * Check the text of a sealed key file without opening it (`parseSealedKey` of @synod/shared: the
 * format, scrypt's cost a power of two and bounded). Throws KEYSTORE_MALFORMED (`details.issues`),
 * also when the text is not JSON.
 */
export function checkSealedKey(text: string): CheckedSealedKey {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (cause) {
    throw new SynodError('KEYSTORE_MALFORMED', 'the sealed key file is not a Synod node key', {
      cause,
      details: { issues: ['it is not JSON'] },
    });
  }
  const sealed = parseSealedKey(value);
  return { nodeId: sealed.nodeId, text: JSON.stringify(sealed) };
}
