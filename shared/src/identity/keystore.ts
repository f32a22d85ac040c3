import { scryptAsync } from '@noble/hashes/scrypt.js';
import * as z from 'zod';
import { fromHex, toHex, utf8 } from '../encoding/bytes.ts';
import { SynodError } from '../errors.ts';
import { NodeKey } from './node-key.ts';

/**
 * A node key sealed at rest: scrypt(passphrase, salt) derives an AES-256-GCM key that encrypts the
 * 32-byte seed; the node id is the associated data, so a sealed file cannot be relabelled.
 * The format is JSON so it can live in a file, IndexedDB or localStorage alike.
 */
export interface SealedKey {
  v: 1;
  kind: 'synod-node-key';
  nodeId: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: { name: 'aes-256-gcm'; iv: string; data: string };
}

/**
 * Bounds on scrypt's cost read from a sealed key, so that a chosen file cannot make a tab (or a node)
 * spend a GiB of memory and minutes deriving: 128·N·r bytes of memory at most, and p passes.
 * `sealNodeKey`'s defaults (N = 2^15, r = 8, p = 1: 32 MiB) are well within.
 */
export const SCRYPT_MAX_MEMORY_BYTES = 256 * 1024 * 1024;
export const SCRYPT_MAX_P = 4;

const SealedKeySchema = z.strictObject({
  v: z.literal(1),
  kind: z.literal('synod-node-key'),
  nodeId: z.string().regex(/^[0-9a-f]{64}$/),
  kdf: z
    .strictObject({
      name: z.literal('scrypt'),
      N: z
        .number()
        .int()
        .min(2 ** 10)
        .max(2 ** 20)
        .refine((n) => (n & (n - 1)) === 0, 'must be a power of two'),
      r: z.number().int().min(1).max(32),
      p: z.number().int().min(1).max(SCRYPT_MAX_P),
      salt: z.string().regex(/^[0-9a-f]{32,128}$/),
    })
    .refine((k) => 128 * k.N * k.r <= SCRYPT_MAX_MEMORY_BYTES, {
      message: `scrypt's memory (128 * N * r bytes) must be at most ${SCRYPT_MAX_MEMORY_BYTES / 2 ** 20} MiB`,
    }),
  cipher: z.strictObject({
    name: z.literal('aes-256-gcm'),
    iv: z.string().regex(/^[0-9a-f]{24}$/),
    data: z.string().regex(/^[0-9a-f]{96}$/),
  }),
});

/**
 * Check a sealed key without opening it (no passphrase): the format `sealNodeKey` writes, with scrypt's
 * cost a power of two and bounded (SCRYPT_MAX_MEMORY_BYTES, SCRYPT_MAX_P). Throws KEYSTORE_MALFORMED,
 * `details.issues` saying what is wrong (`path: message` each).
 */
export function parseSealedKey(value: unknown): SealedKey {
  const parsed = SealedKeySchema.safeParse(value, {
    error: (issue) => (issue.code === 'invalid_type' && issue.input === undefined ? 'is missing' : undefined),
  });
  if (!parsed.success) {
    throw new SynodError('KEYSTORE_MALFORMED', 'the sealed key file is not a Synod node key', {
      details: {
        issues: parsed.error.issues.map(
          (i) => `${i.path.length === 0 ? 'the file' : i.path.join('.')}: ${i.message}`,
        ),
      },
      hint: 'check that the file was written by `sealNodeKey` and has not been edited',
    });
  }
  return parsed.data;
}

export interface SealOptions {
  /** scrypt cost; 2^15 by default (about 0.1-0.3 s). Tests may lower it. */
  N?: number;
  random?: (n: number) => Uint8Array;
}

/**
 * The fewest characters a passphrase sealing a new key may have (the CLI and the web app refuse shorter
 * ones, `PASSPHRASE_TOO_SHORT`). The passphrase is all that protects a sealed key file or a tab's stored
 * key: at scrypt N = 2^15 a guess costs about 0.1 s, so one letter falls in seconds. Keys sealed before
 * with shorter ones still open.
 */
export const MIN_PASSPHRASE_LENGTH = 8;

/**
 * Refuse a passphrase too short to seal a new key with (`PASSPHRASE_TOO_SHORT`), counted in characters
 * as typed (code points, before the NFKC it is hashed in). Only for a key being created: opening one
 * never checks it.
 */
export function checkNewPassphrase(passphrase: string): void {
  // As typed: one character that NFKC spreads into many (U+FDFA, 18) is still one to guess.
  const length = [...passphrase].length;
  if (length >= MIN_PASSPHRASE_LENGTH) return;
  throw new SynodError(
    'PASSPHRASE_TOO_SHORT',
    `a passphrase for a new key needs at least ${MIN_PASSPHRASE_LENGTH} characters (this one has ${length})`,
    {
      details: { length, minimum: MIN_PASSPHRASE_LENGTH },
      hint: 'it is all that protects the sealed key (a saved key file, or the key stored in the browser): a few words are better than one',
    },
  );
}

async function deriveKey(passphrase: string, salt: Uint8Array, N: number, r: number, p: number) {
  if (passphrase.length === 0) throw new SynodError('KEY_INVALID', 'the passphrase must not be empty');
  const raw = await scryptAsync(utf8(passphrase.normalize('NFKC')), salt, { N, r, p, dkLen: 32 });
  return crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

export async function sealNodeKey(
  key: NodeKey,
  passphrase: string,
  options: SealOptions = {},
): Promise<SealedKey> {
  const random = options.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n)));
  const N = options.N ?? 2 ** 15;
  const r = 8;
  const p = 1;
  const salt = random(16);
  const iv = random(12);
  const aes = await deriveKey(passphrase, salt, N, r, p);
  const data = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv: iv.slice(), additionalData: utf8(key.nodeId).slice() },
      aes,
      key.exportSeed().slice(),
    ),
  );
  return {
    v: 1,
    kind: 'synod-node-key',
    nodeId: key.nodeId,
    kdf: { name: 'scrypt', N, r, p, salt: toHex(salt) },
    cipher: { name: 'aes-256-gcm', iv: toHex(iv), data: toHex(data) },
  };
}

export async function openNodeKey(sealed: unknown, passphrase: string): Promise<NodeKey> {
  const s = parseSealedKey(sealed);
  const aes = await deriveKey(passphrase, fromHex(s.kdf.salt), s.kdf.N, s.kdf.r, s.kdf.p);
  let seed: Uint8Array;
  try {
    seed = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: fromHex(s.cipher.iv).slice(), additionalData: utf8(s.nodeId).slice() },
        aes,
        fromHex(s.cipher.data).slice(),
      ),
    );
  } catch (cause) {
    throw new SynodError('KEY_WRONG_PASSPHRASE', 'the passphrase does not open this key', {
      cause,
      details: { nodeId: s.nodeId },
      hint: 'use the passphrase the key was sealed with; a sealed key cannot be recovered without it',
    });
  }
  const key = await NodeKey.fromSeed(seed);
  if (key.nodeId !== s.nodeId) {
    throw new SynodError('KEYSTORE_MALFORMED', 'the sealed seed does not match the recorded node id');
  }
  return key;
}
