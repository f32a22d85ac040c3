import { chmodSync, closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * Make sure a file exists and only its owner may read or write it (0600), its folder made if missing: the
 * node's state file holds outputs and salts before they are revealed, which would let another user of the
 * machine read the answers it committed to. SQLite gives its `-wal` and `-journal` files the mode of the
 * database file. A file that was there is set to 0600 too.
 */
export function ownerOnlyFile(path: string): string {
  const abs = resolve(path);
  mkdirSync(dirname(abs), { recursive: true });
  closeSync(openSync(abs, 'a', 0o600));
  chmodSync(abs, 0o600);
  return abs;
}

/**
 * Write a secret (an API key) to a file only its owner may read or write: the file is made 0600 first
 * (`ownerOnlyFile`), so it is never readable by others, not even for the moment the write takes, and a
 * file that was already there (an older key, made readable to others) is set to 0600 too.
 */
export function writeOwnerOnlyFile(path: string, text: string): void {
  writeFileSync(ownerOnlyFile(path), text);
}
