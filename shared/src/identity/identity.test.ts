import { describe, expect, test } from 'bun:test';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, concatBytes } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { toHex, utf8 } from '../encoding/bytes.ts';
import { isSynodError } from '../errors.ts';
import { createWebCryptoBackend, defaultEd25519, hasSmallOrder, nobleEd25519 } from './ed25519.ts';
import { openNodeKey, parseSealedKey, sealNodeKey } from './keystore.ts';
import { isNodeId, NodeKey, verifySignature } from './node-key.ts';

const webcrypto = createWebCryptoBackend(crypto.subtle);

describe('Ed25519 back ends', () => {
  test('RFC 8032 test vector 1 (empty message) on both back ends', async () => {
    const seed = Uint8Array.from(
      Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex'),
    );
    const expectedPub = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
    const expectedSig =
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';
    for (const b of [nobleEd25519, webcrypto]) {
      expect(toHex(await b.publicKeyFromSeed(seed))).toBe(expectedPub);
      expect(toHex(await b.sign(seed, new Uint8Array(0)))).toBe(expectedSig);
    }
  });

  test('the runtime default is WebCrypto under Bun', async () => {
    expect((await defaultEd25519()).name).toBe('webcrypto');
  });

  test('property: both back ends sign identically and cross-verify', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 200 }),
        async (seed, msg) => {
          const [a, b] = await Promise.all([nobleEd25519.sign(seed, msg), webcrypto.sign(seed, msg)]);
          expect(toHex(a)).toBe(toHex(b));
          const pub = await nobleEd25519.publicKeyFromSeed(seed);
          expect(await webcrypto.verify(pub, msg, a)).toBe(true);
          expect(await nobleEd25519.verify(pub, msg, b)).toBe(true);
        },
      ),
      { numRuns: 50 },
    );
  });

  test('property: forged signatures (any flipped bit in message or signature) are rejected by both', async () => {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(3));
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 100 }),
        fc.nat(),
        fc.boolean(),
        async (msg, pos, inSig) => {
          const sig = await key.sign(msg);
          const m = msg.slice();
          const s = sig.slice();
          if (inSig) s[pos % 64] = (s[pos % 64] as number) ^ (1 << (pos % 8));
          else m[pos % m.length] = (m[pos % m.length] as number) ^ (1 << (pos % 8));
          for (const b of [nobleEd25519, webcrypto]) expect(await b.verify(key.publicKey, m, s)).toBe(false);
        },
      ),
      { numRuns: 60 },
    );
  });

  test('non-canonical S (S + L) is rejected by both back ends', async () => {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(9));
    const msg = utf8('malleability');
    const sig = await key.sign(msg);
    // add L to S (little-endian) to build the malleated twin
    const L = [
      0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    const twin = sig.slice();
    let carry = 0;
    for (let i = 0; i < 32; i++) {
      const v = (twin[32 + i] as number) + (L[i] as number) + carry;
      twin[32 + i] = v & 0xff;
      carry = v >> 8;
    }
    for (const b of [nobleEd25519, webcrypto]) expect(await b.verify(key.publicKey, msg, twin)).toBe(false);
  });

  // Signatures made outside any back end, with the curve's arithmetic, to hold the verification rule.
  const Point = ed25519.Point;
  const L = Point.Fn.ORDER;
  const scalarLE = (n: bigint) =>
    Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
  const challenge = (r: Uint8Array, a: Uint8Array, m: Uint8Array) =>
    bytesToNumberLE(sha512(concatBytes(r, a, m))) % L;
  /** A point of order 8: its multiples are the eight points of small order. */
  const T8 = Point.fromHex('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05');

  test('the small-order list is the eight points of small order, in every encoding of them', () => {
    const torsion = Array.from({ length: 8 }, (_, i) =>
      i === 0 ? Point.ZERO : T8.multiplyUnsafe(BigInt(i)),
    );
    for (const t of torsion) {
      const bytes = t.toBytes();
      expect(hasSmallOrder(bytes)).toBe(true);
      const flipped = bytes.slice();
      flipped[31] = (flipped[31] as number) ^ 0x80;
      expect(hasSmallOrder(flipped)).toBe(true);
    }
    expect(new Set(torsion.map((t) => t.toHex())).size).toBe(8);
    // y = p + 1: a non-canonical encoding of the identity.
    expect(hasSmallOrder(Uint8Array.from([0xee, ...new Array(30).fill(0xff), 0x7f]))).toBe(true);
    const key = Point.BASE.multiply(12345n).toBytes();
    expect(hasSmallOrder(key)).toBe(false);
  });

  test('a small-order key "signs" nothing: the keyless forgery (R of small order, S = 0) is refused by both', async () => {
    const msg = utf8('Atlantis, 7-0.');
    const identity = Point.ZERO.toBytes();
    const order2 = T8.multiplyUnsafe(4n).toBytes();
    const aliasOfIdentity = Uint8Array.from([0xee, ...new Array(30).fill(0xff), 0x7f]);
    for (const key of [identity, order2, aliasOfIdentity]) {
      for (const r of [identity, order2]) {
        const sig = concatBytes(r, new Uint8Array(32));
        for (const b of [nobleEd25519, webcrypto]) expect(await b.verify(key, msg, sig)).toBe(false);
        expect(await verifySignature(toHex(key), msg, sig)).toBe(false);
      }
    }
  });

  test('property: both back ends agree on signatures whose R or A carries a small-order component', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.bigInt({ min: 1n, max: L - 1n }),
        fc.bigInt({ min: 1n, max: L - 1n }),
        fc.integer({ min: 1, max: 7 }),
        fc.boolean(),
        async (a, r, t, onKey) => {
          const msg = utf8('mixed order');
          const torsion = T8.multiplyUnsafe(BigInt(t));
          const A = onKey ? Point.BASE.multiply(a).add(torsion) : Point.BASE.multiply(a);
          const R = onKey ? Point.BASE.multiply(r) : Point.BASE.multiply(r).add(torsion);
          const k = challenge(R.toBytes(), A.toBytes(), msg);
          const sig = concatBytes(R.toBytes(), scalarLE((r + k * a) % L));
          const [n, w] = [
            await nobleEd25519.verify(A.toBytes(), msg, sig),
            await webcrypto.verify(A.toBytes(), msg, sig),
          ];
          expect(n).toBe(w);
          // The cofactorless equation holds only when the small-order parts cancel: never for R's part.
          if (!onKey) expect(w).toBe(false);
        },
      ),
      { numRuns: 40 },
    );
  });

  test('malformed keys and signatures verify as false, never throw', async () => {
    expect(await verifySignature('zz', utf8('m'), new Uint8Array(64))).toBe(false);
    expect(await verifySignature('00'.repeat(32), utf8('m'), new Uint8Array(10))).toBe(false);
    expect(await webcrypto.verify(new Uint8Array(32).fill(0xff), utf8('m'), new Uint8Array(64))).toBe(false);
  });
});

describe('NodeKey', () => {
  test('node id is the hex public key', async () => {
    const key = await NodeKey.fromSeed(new Uint8Array(32).fill(1));
    expect(isNodeId(key.nodeId)).toBe(true);
    expect(key.nodeId).toBe(toHex(key.publicKey));
    expect(await verifySignature(key.nodeId, utf8('x'), await key.sign(utf8('x')))).toBe(true);
  });

  test('bad seeds are typed errors', async () => {
    let caught: unknown;
    try {
      await NodeKey.fromSeed(new Uint8Array(31));
    } catch (e) {
      caught = e;
    }
    expect(isSynodError(caught, 'KEY_INVALID')).toBe(true);
  });

  test('generate uses the injected randomness', async () => {
    const key = await NodeKey.generate((n) => new Uint8Array(n).fill(5));
    expect(key.nodeId).toBe((await NodeKey.fromSeed(new Uint8Array(32).fill(5))).nodeId);
  });
});

describe('sealed keys at rest', () => {
  const fast = { N: 2 ** 10 };

  test('seal and open round-trip', async () => {
    const key = await NodeKey.generate();
    const sealed = await sealNodeKey(key, 'correct horse', fast);
    expect(JSON.stringify(sealed)).not.toContain(toHex(key.exportSeed()));
    const opened = await openNodeKey(JSON.parse(JSON.stringify(sealed)), 'correct horse');
    expect(opened.nodeId).toBe(key.nodeId);
  });

  test('a wrong passphrase is KEY_WRONG_PASSPHRASE', async () => {
    const sealed = await sealNodeKey(await NodeKey.generate(), 'right', fast);
    let caught: unknown;
    try {
      await openNodeKey(sealed, 'wrong');
    } catch (e) {
      caught = e;
    }
    expect(isSynodError(caught, 'KEY_WRONG_PASSPHRASE')).toBe(true);
  });

  test('a relabelled or edited file is rejected', async () => {
    const sealed = await sealNodeKey(await NodeKey.generate(), 'pw', fast);
    const other = await NodeKey.generate();
    let caught: unknown;
    try {
      await openNodeKey({ ...sealed, nodeId: other.nodeId }, 'pw');
    } catch (e) {
      caught = e;
    }
    expect(isSynodError(caught, 'KEY_WRONG_PASSPHRASE')).toBe(true);
    let malformed: unknown;
    try {
      await openNodeKey({ ...sealed, extra: 1 }, 'pw');
    } catch (e) {
      malformed = e;
    }
    expect(isSynodError(malformed, 'KEYSTORE_MALFORMED')).toBe(true);
  });

  // A chosen key file must not make a tab spend a GiB and minutes deriving, nor fail deep in scrypt.
  const costs: Array<[string, { N?: number; r?: number; p?: number }, RegExp]> = [
    ['N not a power of two', { N: 3 * 2 ** 10 }, /kdf\.N: must be a power of two/],
    ['128 * N * r over 256 MiB', { N: 2 ** 19, r: 8 }, /kdf: scrypt's memory .* at most 256 MiB/],
    ['p over 4', { p: 5 }, /kdf\.p: /],
  ];
  for (const [what, kdf, why] of costs)
    test(`scrypt's cost is checked before deriving: ${what} is KEYSTORE_MALFORMED`, async () => {
      const sealed = await sealNodeKey(await NodeKey.generate(), 'pw', fast);
      const edited = { ...sealed, kdf: { ...sealed.kdf, ...kdf } };
      const started = performance.now();
      const caught = await openNodeKey(edited, 'pw').catch((e: unknown) => e);
      expect(isSynodError(caught, 'KEYSTORE_MALFORMED')).toBe(true);
      expect(performance.now() - started).toBeLessThan(500);
      let issues: unknown;
      try {
        parseSealedKey(edited);
      } catch (e) {
        issues = isSynodError(e, 'KEYSTORE_MALFORMED') ? e.details?.['issues'] : e;
      }
      expect(JSON.stringify(issues)).toMatch(why);
    });

  test("sealNodeKey's default cost (N = 2^15, r = 8, p = 1) and the bounds' edges pass the check", async () => {
    const key = await NodeKey.generate();
    const sealed = await sealNodeKey(key, 'pw');
    expect(sealed.kdf).toMatchObject({ N: 2 ** 15, r: 8, p: 1 });
    expect(parseSealedKey(JSON.parse(JSON.stringify(sealed)))).toEqual(sealed);
    expect((await openNodeKey(sealed, 'pw')).nodeId).toBe(key.nodeId);
    for (const kdf of [
      { N: 2 ** 20, r: 2, p: 4 },
      { N: 2 ** 15, r: 32, p: 1 },
    ])
      expect(parseSealedKey({ ...sealed, kdf: { ...sealed.kdf, ...kdf } }).kdf).toMatchObject(kdf);
  });

  test('an empty passphrase is refused', async () => {
    let caught: unknown;
    try {
      await sealNodeKey(await NodeKey.generate(), '', fast);
    } catch (e) {
      caught = e;
    }
    expect(isSynodError(caught, 'KEY_INVALID')).toBe(true);
  });
});
