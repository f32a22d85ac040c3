import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, concatBytes, equalBytes } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { SynodError } from '../errors.ts';

/**
 * Ed25519 over two back ends that give the same bytes: WebCrypto (native in Bun, browsers and workerd)
 * where the runtime has it, and @noble/curves otherwise. Ed25519 signatures are deterministic (RFC 8032),
 * so both produce identical signatures for the same key and message.
 *
 * Verification is one rule on both, so that every verifier of a transcript reaches the same verdict
 * (`encodingsAcceptable`, then the equation):
 * - the public key A and the signature's R are canonical encodings (y < p) of points not of small order,
 *   and S < L; a small-order key would let anyone "sign" as it without a secret (R small order, S = 0);
 * - the equation is the cofactorless [S]B = R + [k]A, as WebCrypto checks it (BoringSSL compares the
 *   encoding of [S]B - [k]A with R). noble's own strict verify is cofactored and accepts signatures
 *   whose R or A carries a small-order component that WebCrypto refuses, so the noble back end checks
 *   the cofactorless equation itself.
 */
export interface Ed25519Backend {
  readonly name: 'webcrypto' | 'noble';
  publicKeyFromSeed(seed: Uint8Array): Promise<Uint8Array>;
  sign(seed: Uint8Array, message: Uint8Array): Promise<Uint8Array>;
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

export const nobleEd25519: Ed25519Backend = {
  name: 'noble',
  async publicKeyFromSeed(seed) {
    assertLength(seed, 32, 'secret seed');
    return ed25519.getPublicKey(seed);
  },
  async sign(seed, message) {
    assertLength(seed, 32, 'secret seed');
    return ed25519.sign(message, seed);
  },
  async verify(publicKey, message, signature) {
    if (!encodingsAcceptable(publicKey, signature)) return false;
    try {
      const A = ed25519.Point.fromBytes(publicKey, false);
      const r = signature.subarray(0, 32);
      const k = bytesToNumberLE(sha512(concatBytes(r, publicKey, message))) % ed25519.Point.Fn.ORDER;
      const s = bytesToNumberLE(signature.subarray(32));
      const expectedR = ed25519.Point.BASE.multiplyUnsafe(s).subtract(A.multiplyUnsafe(k));
      return equalBytes(expectedR.toBytes(), r);
    } catch {
      // A key that is not a point of the curve.
      return false;
    }
  },
};

/**
 * The encodings of the points of small order, the sign bit (bit 7 of byte 31) aside: the identity,
 * the point of order 2, those of order 4 and 8, and the non-canonical encodings y = p and y = p + 1 of
 * the order-4 and identity points (libsodium's list; the tests derive the eight points and check it).
 */
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => Uint8Array.from(h.match(/../g) as string[], (x) => Number.parseInt(x, 16)));

/** Whether a point encoding is one of a small-order point (sign bit aside). */
export function hasSmallOrder(p: Uint8Array): boolean {
  for (const bad of SMALL_ORDER) {
    let diff = ((p[31] as number) & 0x7f) ^ (bad[31] as number);
    for (let i = 0; i < 31; i++) diff |= (p[i] as number) ^ (bad[i] as number);
    if (diff === 0) return true;
  }
  return false;
}

/** Whether a point encoding's y (bit 255 aside) is below p = 2^255 - 19. */
function isCanonicalY(p: Uint8Array): boolean {
  if (((p[31] as number) & 0x7f) !== 0x7f) return true;
  for (let i = 30; i >= 1; i--) if (p[i] !== 0xff) return true;
  return (p[0] as number) < 0xed;
}

/** The checks of the verification rule made before the equation (see the module comment). */
function encodingsAcceptable(publicKey: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const r = signature.subarray(0, 32);
  return (
    isCanonicalY(publicKey) &&
    !hasSmallOrder(publicKey) &&
    isCanonicalY(r) &&
    !hasSmallOrder(r) &&
    isCanonicalScalar(signature.subarray(32))
  );
}

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410).
const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

const VERIFY_KEY_CACHE_LIMIT = 4096;

function createWebCryptoBackend(subtle: SubtleCrypto): Ed25519Backend {
  const signKeys = new Map<string, Promise<CryptoKey>>();
  const verifyKeys = new Map<string, Promise<CryptoKey>>();
  const keyOf = (bytes: Uint8Array) => String.fromCharCode(...bytes);

  function signingKey(seed: Uint8Array): Promise<CryptoKey> {
    const k = keyOf(seed);
    let key = signKeys.get(k);
    if (!key) {
      const pkcs8 = new Uint8Array(48);
      pkcs8.set(PKCS8_PREFIX);
      pkcs8.set(seed, 16);
      key = subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, true, ['sign']);
      if (signKeys.size >= 64) signKeys.clear();
      signKeys.set(k, key);
    }
    return key;
  }

  function verifyingKey(publicKey: Uint8Array): Promise<CryptoKey> {
    const k = keyOf(publicKey);
    let key = verifyKeys.get(k);
    if (!key) {
      key = subtle.importKey('raw', publicKey.slice(), { name: 'Ed25519' }, false, ['verify']);
      key.catch(() => verifyKeys.delete(k));
      if (verifyKeys.size >= VERIFY_KEY_CACHE_LIMIT) {
        const oldest = verifyKeys.keys().next().value;
        if (oldest !== undefined) verifyKeys.delete(oldest);
      }
      verifyKeys.set(k, key);
    }
    return key;
  }

  return {
    name: 'webcrypto',
    async publicKeyFromSeed(seed) {
      assertLength(seed, 32, 'secret seed');
      const key = await signingKey(seed);
      const jwk = await subtle.exportKey('jwk', key);
      if (typeof jwk.x !== 'string')
        throw new SynodError('KEY_INVALID', 'runtime did not export the public key');
      return base64UrlDecode(jwk.x);
    },
    async sign(seed, message) {
      assertLength(seed, 32, 'secret seed');
      const sig = await subtle.sign({ name: 'Ed25519' }, await signingKey(seed), message.slice());
      return new Uint8Array(sig);
    },
    async verify(publicKey, message, signature) {
      // Non-canonical S (S >= L, which some WebCrypto builds take), non-canonical or small-order A and R.
      if (!encodingsAcceptable(publicKey, signature)) return false;
      try {
        return await subtle.verify(
          { name: 'Ed25519' },
          await verifyingKey(publicKey),
          signature.slice(),
          message.slice(),
        );
      } catch {
        return false;
      }
    },
  };
}

// The group order L, little-endian.
const ORDER_L = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
]);

function isCanonicalScalar(s: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const a = s[i] as number;
    const b = ORDER_L[i] as number;
    if (a < b) return true;
    if (a > b) return false;
  }
  return false;
}

function base64UrlDecode(text: string): Uint8Array {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function assertLength(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new SynodError('KEY_INVALID', `${what} must be ${length} bytes`);
  }
}

let detected: Promise<Ed25519Backend> | undefined;

/**
 * The fastest back end this runtime offers: WebCrypto when `crypto.subtle` can sign and verify
 * Ed25519 (checked once with a known-answer test against noble), noble otherwise.
 */
export function defaultEd25519(): Promise<Ed25519Backend> {
  detected ??= detect();
  return detected;
}

async function detect(): Promise<Ed25519Backend> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return nobleEd25519;
  try {
    const backend = createWebCryptoBackend(subtle);
    const seed = new Uint8Array(32).fill(7);
    const msg = Uint8Array.from([1, 2, 3]);
    const [sigA, sigB, pub] = await Promise.all([
      backend.sign(seed, msg),
      nobleEd25519.sign(seed, msg),
      backend.publicKeyFromSeed(seed),
    ]);
    const same = sigA.length === sigB.length && sigA.every((b, i) => b === sigB[i]);
    if (same && (await backend.verify(pub, msg, sigA))) return backend;
  } catch {
    // fall through to noble
  }
  return nobleEd25519;
}

export { createWebCryptoBackend };
