import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
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
