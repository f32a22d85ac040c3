import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { concatBytes, toHex, utf8 } from './bytes.ts';

export function sha256(bytes: Uint8Array): Uint8Array {
  return nobleSha256(bytes);
}

export function sha256Hex(bytes: Uint8Array): string {
  return toHex(nobleSha256(bytes));
}

/**
 * Every digest the protocol defines starts with a domain tag `synod/v1/<purpose>` followed by one
 * zero byte, so a digest made for one purpose can never be replayed as another.
 */
export function domainTag(purpose: string): Uint8Array {
  return concatBytes(utf8(`synod/v1/${purpose}`), new Uint8Array([0]));
}

export function taggedHash(purpose: string, ...parts: Uint8Array[]): Uint8Array {
  return nobleSha256(concatBytes(domainTag(purpose), ...parts));
}
