import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { canonicalJson } from '../encoding/canonical.ts';
import { type ErrorCode, isSynodError } from '../errors.ts';
import {
  decodePacket,
  encodePacket,
  packetEncodings,
  packetId,
  packetSize,
  signedBytes,
  signPacket,
  verifyPacket,
} from './envelope.ts';
import { parseInferenceInput } from './inference-input.ts';
import { LIMITS } from './limits.ts';
import { deriveRequestId } from './request-id.ts';
import { type AnyPacket, type BodyOf, MAX_SEED, type PacketType } from './schemas.ts';
import { requestBody, seedKey } from './test-helpers.ts';

const NOW = 1_700_000_000_000;

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  if (!isSynodError(caught, code)) throw new Error(`expected ${code}, got ${String(caught)}`);
}

function bodies(requestId: string, from: string): { [T in PacketType]: BodyOf[T] } {
  const h = (c: string) => c.repeat(64);
  return {
    request: requestBody(),
    commit: { requestId, commitment: h('a'), createdAt: NOW },
    seal: {
      requestId,
      requestPacketId: h('b'),
      members: [{ nodeId: from, commitment: h('a'), commitId: h('c') }],
      createdAt: NOW,
    },
    reveal: {
      requestId,
      output: 'The end.',
      bEmbedding: 'ff'.repeat(64),
      model: { id: 'stories260K', fileHash: h('d') },
      salt: '01'.repeat(32),
      createdAt: NOW,
    },
    verdict: {
      requestId,
      verdict: {
        v: 1,
        requestId,
        sealId: h('e'),
        status: 'no-consensus',
        bits: 512,
        thresholdBits: 76,
        sealSize: 1,
        required: 1,
        centre: null,
        accepted: [],
        winner: null,
        rejected: [{ nodeId: from, commitment: h('a'), revealId: null, reason: 'NOT_REVEALED' }],
      },
      verdictDigest: h('f'),
      transcriptRoot: h('0'),
      createdAt: NOW,
    },
    attestation: { requestId, verdictDigest: h('f'), transcriptRoot: h('0'), createdAt: NOW },
    heartbeat: {
      role: 'node',
      software: 'synod/0.1.0',
      models: [{ id: 'stories260K', fileHash: h('d'), engine: 'node-llama-cpp', tokensPerSecond: 700 }],
      embedders: [{ id: 'use-lite-512', fileHash: h('1'), bits: 512, embeddingsPerSecond: 80 }],
      capacity: { queued: 0, maxQueue: 8 },
      addresses: ['/ip4/127.0.0.1/tcp/9000'],
      createdAt: NOW,
    },
    decline: {
      requestId,
      requestPacketId: h('b'),
      model: { id: 'stories260K', fileHash: h('d') },
      reason: 'context-exceeded',
      promptTokens: 4_812,
      contextTokens: 512,
      createdAt: NOW,
    },
  };
}

describe('packets', () => {
  test('every packet type signs, encodes, decodes and keeps its id', async () => {
    const key = await seedKey(1);
    const req = requestBody();
    const all = bodies(req.requestId, key.nodeId);
    for (const type of Object.keys(all) as PacketType[]) {
      const p = (await signPacket(key, type, all[type] as never)) as AnyPacket;
      const decoded = await decodePacket(encodePacket(p), { now: NOW });
      expect(decoded.packet).toEqual(p);
      expect(decoded.id).toBe(packetId(p));
      expect(decoded.id).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  test('packetEncodings equals signedBytes, packetId and encodePacket for every packet type', async () => {
    const key = await seedKey(12);
    const req = requestBody();
    const all = bodies(req.requestId, key.nodeId);
    for (const type of Object.keys(all) as PacketType[]) {
      const p = (await signPacket(key, type, all[type] as never)) as AnyPacket;
      const e = packetEncodings(p);
      expect(e.signed).toEqual(signedBytes(p.v, p.type, p.from, p.body));
      expect(e.id).toBe(packetId(p));
      expect(e.wire).toEqual(encodePacket(p));
    }
  });

  test('property: packetEncodings equals the reference encodings for arbitrary prompts', async () => {
    const key = await seedKey(13);
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 120, unit: 'grapheme' }), async (prompt) => {
        const p = await signPacket(key, 'request', requestBody({ prompt: `x${prompt}` }));
        const e = packetEncodings(p);
        expect(e.wire).toEqual(encodePacket(p));
        expect(e.signed).toEqual(signedBytes(p.v, p.type, p.from, p.body));
      }),
      { numRuns: 50 },
    );
  });

  test('signatures are domain-separated by packet type', async () => {
    const key = await seedKey(2);
    const body = {
      requestId: 'ab'.repeat(32),
      verdictDigest: 'f'.repeat(64),
      transcriptRoot: '0'.repeat(64),
      createdAt: NOW,
    };
    const att = await signPacket(key, 'attestation', body);
    // same body bytes, another type: the signature must not carry over
    const forged = {
      ...att,
      type: 'commit',
      body: { requestId: body.requestId, commitment: 'f'.repeat(64), createdAt: NOW },
    };
    await expectCode(verifyPacket(forged, { now: NOW }), 'PACKET_BAD_SIGNATURE');
    expect(signedBytes(1, 'commit', key.nodeId, {})).not.toEqual(signedBytes(1, 'reveal', key.nodeId, {}));
  });

  test('property: any change to a signed packet breaks its signature', async () => {
    const key = await seedKey(3);
    const p = await signPacket(key, 'commit', {
      requestId: 'ab'.repeat(32),
      commitment: 'cd'.repeat(32),
      createdAt: NOW,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex')),
        fc.integer({ min: -1000, max: 1000 }),
        async (c, dt) => {
          const commitment = c.toLowerCase();
          fc.pre(commitment !== p.body.commitment || dt !== 0);
          const tampered = { ...p, body: { ...p.body, commitment, createdAt: NOW + dt } };
          await expectCode(verifyPacket(tampered, { now: NOW }), 'PACKET_BAD_SIGNATURE');
        },
      ),
      { numRuns: 60 },
    );
  });

  test('another key cannot sign for a node id', async () => {
    const [a, b] = await Promise.all([seedKey(4), seedKey(5)]);
    const p = await signPacket(b, 'commit', {
      requestId: 'ab'.repeat(32),
      commitment: 'cd'.repeat(32),
      createdAt: NOW,
    });
    await expectCode(verifyPacket({ ...p, from: a.nodeId }, { now: NOW }), 'PACKET_BAD_SIGNATURE');
  });

  test('createdAt outside the skew window is rejected', async () => {
    const key = await seedKey(6);
    const p = await signPacket(key, 'commit', {
      requestId: 'ab'.repeat(32),
      commitment: 'cd'.repeat(32),
      createdAt: NOW,
    });
    await expectCode(verifyPacket(p, { now: NOW + LIMITS.defaultSkewMs + 1 }), 'PACKET_STALE');
    await expectCode(verifyPacket(p, { now: NOW - LIMITS.defaultSkewMs - 1 }), 'PACKET_FROM_FUTURE');
    expect((await verifyPacket(p, { now: NOW + 5_000, skewMs: 10_000 })).id).toBe(packetId(p));
  });

  test('unknown fields anywhere are rejected with PACKET_UNKNOWN_FIELD', async () => {
    const key = await seedKey(7);
    const p = await signPacket(key, 'request', requestBody());
    await expectCode(verifyPacket({ ...p, extra: 1 }, { now: NOW }), 'PACKET_UNKNOWN_FIELD');
    await expectCode(
      verifyPacket({ ...p, body: { ...p.body, extra: 1 } }, { now: NOW }),
      'PACKET_UNKNOWN_FIELD',
    );
    const deep = { ...p, body: { ...p.body, params: { ...p.body.params, top_k: 3 } } };
    await expectCode(verifyPacket(deep, { now: NOW }), 'PACKET_UNKNOWN_FIELD');
    // An own `__proto__` member, as JSON.parse makes one, at the body's top level and deeper.
    const wire = new TextDecoder().decode(encodePacket(p));
    for (const text of [
      wire.replace('"body":{', '"body":{"__proto__":{"x":1},'),
      wire.replace('"params":{', '"params":{"__proto__":{},'),
    ]) {
      expect(text).not.toBe(wire);
      await expectCode(decodePacket(text, { now: NOW }), 'PACKET_UNKNOWN_FIELD');
    }
    await expectCode(
      verifyPacket({ ...p, body: [] as unknown as typeof p.body }, { now: NOW }),
      'PACKET_MALFORMED',
    );
  });

  test("a reveal's optional finishReason is 'length' only: signed, round-trips, verifies; absent keeps the old bytes", async () => {
    const key = await seedKey(13);
    const req = requestBody();
    const reveal = bodies(req.requestId, key.nodeId).reveal;
    const cut = await signPacket(key, 'reveal', { ...reveal, finishReason: 'length' });
    const decoded = await decodePacket(encodePacket(cut), { now: NOW });
    expect(decoded.packet).toEqual(cut);
    expect((decoded.packet as typeof cut).body.finishReason).toBe('length');
    expect((await verifyPacket(cut, { now: NOW })).id).toBe(packetId(cut));
    // It is signed: dropping it (or adding it to an uncut reveal) breaks the signature.
    const { finishReason: _drop, ...uncutBody } = cut.body;
    await expectCode(verifyPacket({ ...cut, body: uncutBody }, { now: NOW }), 'PACKET_BAD_SIGNATURE');
    const uncut = await signPacket(key, 'reveal', reveal);
    expect(new TextDecoder().decode(encodePacket(uncut))).not.toContain('finishReason');
    await expectCode(
      verifyPacket({ ...uncut, body: { ...uncut.body, finishReason: 'length' } }, { now: NOW }),
      'PACKET_BAD_SIGNATURE',
    );
    // Only 'length' exists: the model stopping on its own is the member's absence.
    for (const value of ['stop', 'LENGTH', '', null, 1]) {
      const body = { ...reveal, finishReason: value } as never;
      await expectCode(signPacket(key, 'reveal', body), 'PACKET_INVALID_FIELD');
      await expectCode(verifyPacket({ ...uncut, body }, { now: NOW }), 'PACKET_INVALID_FIELD');
    }
  });

  test('malformed, oversized, unknown type and wrong version are typed errors', async () => {
    const key = await seedKey(8);
    const p = await signPacket(key, 'commit', {
      requestId: 'ab'.repeat(32),
      commitment: 'cd'.repeat(32),
      createdAt: NOW,
    });
    await expectCode(decodePacket('{not json', { now: NOW }), 'PACKET_MALFORMED');
    await expectCode(decodePacket('[]', { now: NOW }), 'PACKET_MALFORMED');
    await expectCode(decodePacket('x'.repeat(LIMITS.maxPacketBytes + 1), { now: NOW }), 'PACKET_TOO_LARGE');
    await expectCode(verifyPacket({ ...p, type: 'gossip' }, { now: NOW }), 'PACKET_UNKNOWN_TYPE');
    await expectCode(verifyPacket({ ...p, v: 2 }, { now: NOW }), 'PACKET_UNSUPPORTED_VERSION');
    await expectCode(verifyPacket({ ...p, sig: 'zz' }, { now: NOW }), 'PACKET_MALFORMED');
    await expectCode(decodePacket(new Uint8Array([0xff, 0xfe]), { now: NOW }), 'PACKET_MALFORMED');
  });

  test('a packet naming a member twice is PACKET_DUPLICATE_MEMBER, even when the last value is the signed one', async () => {
    const key = await seedKey(9);
    const p = await signPacket(key, 'commit', {
      requestId: 'ab'.repeat(32),
      commitment: 'cd'.repeat(32),
      createdAt: NOW,
    });
    const text = new TextDecoder().decode(encodePacket(p));
    expect((await decodePacket(text, { now: NOW })).packet).toEqual(p);
    // JSON.parse keeps the last value, so this verifies as the genuine packet, while a reader keeping the
    // first sees another commitment: refused, named.
    const twice = text.replace('"commitment":', `"commitment":"${'ee'.repeat(32)}","commitment":`);
    expect((JSON.parse(twice) as typeof p).body.commitment).toBe(p.body.commitment);
    const e = await decodePacket(twice, { now: NOW }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(isSynodError(e, 'PACKET_DUPLICATE_MEMBER')).toBe(true);
    expect((e as Error).message).toBe('packet names "commitment" twice in body');
    expect((e as { details: unknown }).details).toEqual({ member: 'commitment', path: 'body' });
    // The same name written with an escape is the same name.
    await expectCode(
      decodePacket(text.replace('"sig":', '"\\u0073ig":"00","sig":'), { now: NOW }),
      'PACKET_DUPLICATE_MEMBER',
    );
    await expectCode(decodePacket(new TextEncoder().encode(twice), { now: NOW }), 'PACKET_DUPLICATE_MEMBER');
  });

  test('packetSize is the size signPacket holds to the limit: a body at it signs, one byte more does not', async () => {
    const key = await seedKey(10);
    const base = requestBody();
    // Messages of control characters: JCS escapes each as six bytes, so the packet outgrows the limit
    // while each message stays within its own character bound.
    const sized = (n: number) => {
      const messages = [0, 1].map((i) => ({
        role: 'user' as const,
        content: '\u0001'.repeat(Math.min(n - i * 30_000, 30_000)),
      }));
      const { prompt: _p, ...rest } = base;
      const body = { ...rest, messages };
      return { ...body, requestId: deriveRequestId(body) };
    };
    const bytes = (b: unknown) => new TextEncoder().encode(canonicalJson(b)).length;
    // Find the largest body that fits by the formula; it signs, and the next one is refused with the
    // size the formula gives.
    let lo = 31_000;
    let hi = 60_000;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (packetSize('request', bytes(sized(mid))) <= LIMITS.maxPacketBytes) lo = mid;
      else hi = mid - 1;
    }
    const fits = sized(lo);
    expect(packetSize('request', bytes(fits))).toBeGreaterThan(LIMITS.maxPacketBytes - 6);
    await signPacket(key, 'request', fits);
    const over = sized(lo + 1);
    let caught: unknown;
    try {
      await signPacket(key, 'request', over);
    } catch (e) {
      caught = e;
    }
    expect(isSynodError(caught, 'PACKET_TOO_LARGE')).toBe(true);
    expect((caught as { details?: { size?: number } }).details?.size).toBe(
      packetSize('request', bytes(over)),
    );
  });

  test('field bounds are enforced: temperature, maxTokens, frame, prompt xor messages', async () => {
    const key = await seedKey(9);
    const cases: Array<Partial<BodyOf['request']>> = [
      { params: { temperature: 2.5, maxTokens: 10 } },
      { params: { temperature: 0, maxTokens: 0 } },
      { params: { temperature: 0, maxTokens: 1.5 } },
      { params: { temperature: 1, maxTokens: 8, seed: -1 } },
      { messages: [{ role: 'user', content: 'hi' }] },
      { acceptedModels: [] },
      { acceptedModels: ['a', 'a'] },
      { acceptedModels: ['bad model id'] },
      { prompt: 'x'.repeat(LIMITS.maxPromptChars + 1) },
    ];
    for (const c of cases) {
      await expectCode(signPacket(key, 'request', requestBody(c)), 'PACKET_INVALID_FIELD');
    }
    const base = requestBody();
    const badFrame = requestBody({ frame: { ...base.frame, secDistance: 0.6 } });
    await expectCode(signPacket(key, 'request', badFrame), 'PACKET_INVALID_FIELD');
    // A packet takes any uint32 seed (what older relays signed is read as it was); a caller is held to
    // MAX_SEED (2^32 - 1 is llama.cpp's "random seed").
    const top = requestBody({ params: { temperature: 1, maxTokens: 8, seed: 2 ** 32 - 1 } });
    expect((await signPacket(key, 'request', top)).body.params.seed).toBe(2 ** 32 - 1);
    const asked = (seed: number) => parseInferenceInput({ prompt: 'a', params: { seed } });
    expect(asked(MAX_SEED).ok).toBe(true);
    const refused = asked(MAX_SEED + 1);
    expect(refused.ok ? null : refused.issues[0]).toMatchObject({ path: 'params.seed' });
  });

  test('a request whose id is not derived from its content is rejected', async () => {
    const key = await seedKey(10);
    const good = await signPacket(key, 'request', requestBody());
    const body = { ...good.body, prompt: 'changed' };
    await expectCode(signPacket(key, 'request', body), 'REQUEST_ID_MISMATCH');
  });

  test('chain requests use chainId:contract:requestNo', () => {
    const body = requestBody({
      origin: {
        kind: 'chain',
        chainId: 31337,
        contract: `0x${'ab'.repeat(20)}`,
        requestNo: '7',
        txHash: `0x${'cd'.repeat(32)}`,
        blockNumber: 12,
      },
    });
    expect(deriveRequestId(body)).toBe(`31337:0x${'ab'.repeat(20)}:7`);
    expect(body.requestId).toBe(deriveRequestId(body));
  });

  test('property: encode/decode round-trips arbitrary valid prompts byte for byte', async () => {
    const key = await seedKey(11);
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 1, maxLength: 200, unit: 'grapheme' }),
        fc.nat(2 ** 32 - 1),
        async (prompt, seed) => {
          const p = await signPacket(
            key,
            'request',
            requestBody({ prompt, params: { temperature: 0.7, maxTokens: 64, seed } }),
          );
          const bytes = encodePacket(p);
          const d = await decodePacket(bytes, { now: NOW });
          expect(canonicalJson(d.packet)).toBe(canonicalJson(p));
          expect(encodePacket(d.packet)).toEqual(bytes);
        },
      ),
      { numRuns: 50 },
    );
  });
});
