import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * Write a secret (an API key) to a file only its owner may read or write (0600), its folder made if
 * missing. `writeFileSync`'s `mode` applies only to a file it creates: a file that was already there
 * (an older key, made readable to others) keeps its mode, so the mode is set again after the write.
 */
export function writeSecretFile(path: string, text: string): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}
