import { sha256Hex, toHex, utf8 } from '@synod/shared';

/**
 * API keys: `synod_sk_` + 32 random bytes in hex. Only sha256(key) is stored (`api_keys.hash`); the key
 * itself is shown once, at creation. The key id is a short public handle derived from the hash, safe to
 * log and to show in usage reports.
 */
export const API_KEY_PREFIX = 'synod_sk_';
const API_KEY_RE = /^synod_sk_[0-9a-f]{64}$/;

export interface NewApiKey {
  /** The secret: give it to the user once, never store it. */
  key: string;
  id: string;
  hash: string;
}

export function createApiKey(random: (n: number) => Uint8Array): NewApiKey {
  const key = `${API_KEY_PREFIX}${toHex(random(32))}`;
  const hash = hashApiKey(key);
  return { key, hash, id: apiKeyId(hash) };
}

export function hashApiKey(key: string): string {
  return sha256Hex(utf8(key));
}

export function apiKeyId(hash: string): string {
  return `key_${hash.slice(0, 16)}`;
}

export function isWellFormedApiKey(key: string): boolean {
  return API_KEY_RE.test(key);
}

/** The bearer token of an `Authorization: Bearer <key>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}
