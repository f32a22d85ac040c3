import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { NodeKey, openNodeKey, sealNodeKey } from '@synod/shared';

/**
 * A node's identity at rest: a sealed key file (scrypt + AES-GCM, see @synod/shared keystore). Created
 * on first start when absent; opened with the passphrase afterwards (KEY_WRONG_PASSPHRASE otherwise).
 */
export async function loadOrCreateIdentity(
  path: string,
  passphrase: string,
): Promise<{ key: NodeKey; created: boolean }> {
  if (existsSync(path)) {
    const sealed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return { key: await openNodeKey(sealed, passphrase), created: false };
  }
  const key = await NodeKey.generate();
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(await sealNodeKey(key, passphrase), null, 2)}\n`, { mode: 0o600 });
  return { key, created: true };
}
