import { beforeAll, describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import {
  AGREE_SPEC,
  BASE_TIME,
  buildScenario,
  CHEATERS_SPEC,
  keyOf,
  NO_CONSENSUS_SPEC,
  type Scenario,
} from '../../test-vectors/fixtures.ts';
import { verdictDigest } from '../consensus/verdict.ts';
import { toHex } from '../encoding/bytes.ts';
import { nobleEd25519 } from '../identity/ed25519.ts';
import { packetId, signedBytes, signPacket } from '../packets/envelope.ts';
import { LIMITS } from '../packets/limits.ts';
import type { AnyPacket, BodyOf, Packet, PacketType } from '../packets/schemas.ts';
import { buildTranscript, type Transcript, transcriptRoot } from './transcript.ts';
import { type TranscriptCheck, type TranscriptIssue, verifyTranscript } from './verify.ts';

let agree: Scenario;
let agreeT: Transcript;
let noConsensus: Scenario;
let cheaters: Scenario;
beforeAll(async () => {
  agree = await buildScenario(AGREE_SPEC);
  agreeT = buildTranscript(agree.packets);
  noConsensus = await buildScenario(NO_CONSENSUS_SPEC);
  cheaters = await buildScenario(CHEATERS_SPEC);
});

/** Seed of the key that signed a fixture packet. */
async function seedOfNode(nodeId: string): Promise<number> {
  for (let i = 1; i < 16; i++) if ((await keyOf(i)).nodeId === nodeId) return i;
  throw new Error(`no fixture seed for ${nodeId}`);
}

async function resign<T extends PacketType>(seed: number, type: T, body: BodyOf[T]): Promise<Packet<T>> {
  return signPacket(await keyOf(seed), type, body);
}

function failure(r: TranscriptCheck) {
  if (r.ok) throw new Error('expected the transcript to fail verification');
  return { code: r.error.code, issues: r.error.details['issues'] as TranscriptIssue[], error: r.error };
}

function success(r: TranscriptCheck) {
  if (!r.ok) throw new Error(`expected success, got ${r.error.code}: ${JSON.stringify(r.error.details)}`);
  return r;
}

/** Flip one hex digit of a signature. */
function forge(sig: string, at = 10): string {
  return sig.slice(0, at) + (sig[at] === '0' ? '1' : '0') + sig.slice(at + 1);
}

function withPackets(t: Transcript, packets: readonly AnyPacket[]): Transcript {
  return { ...t, packets: [...packets] };
}

describe('verifyTranscript: valid transcripts', () => {
  test('3 agree + 1 garbage + 1 silent: accepted, with every member accounted for', async () => {
    const r = success(await verifyTranscript(agreeT));
    expect(r.requestId).toBe(agree.request.body.requestId);
    expect(r.root).toBe(transcriptRoot(agreeT));
    expect(r.verdictDigest).toBe(verdictDigest(r.verdict));
    expect(r.verdict.status).toBe('accepted');
    expect(r.verdict.sealId).toBe(agree.sealId);
    expect(r.verdict.accepted).toHaveLength(3);
    expect(r.verdict.rejected.map((x) => x.reason).sort()).toEqual(['NOT_REVEALED', 'OUTSIDE_CLUSTER']);
    expect(r.transcript).toEqual(agreeT);
  });

  test('expected root and digest that match pass', async () => {
    const first = success(await verifyTranscript(agreeT));
    const again = success(
      await verifyTranscript(agreeT, {
        expectedRoot: first.root,
        expectedVerdictDigest: first.verdictDigest,
      }),
    );
    expect(again.verdictDigest).toBe(first.verdictDigest);
  });

  test('a JSON round trip and the noble back end give the same result', async () => {
    const a = success(await verifyTranscript(agreeT));
    const b = success(await verifyTranscript(JSON.parse(JSON.stringify(agreeT)), { backend: nobleEd25519 }));
    expect(b.root).toBe(a.root);
    expect(b.verdictDigest).toBe(a.verdictDigest);
  });

  test('reordered input (built again) verifies to the same root and verdict digest', async () => {
    const reference = success(await verifyTranscript(agreeT));
    await fc.assert(
      fc.asyncProperty(
        fc.shuffledSubarray(agree.packets, { minLength: agree.packets.length }),
        async (packets) => {
          const r = success(await verifyTranscript(buildTranscript(packets)));
          expect(r.root).toBe(reference.root);
          expect(r.verdictDigest).toBe(reference.verdictDigest);
        },
      ),
      { numRuns: 15 },
    );
  });

  test('no-consensus transcripts verify; the verdict says so', async () => {
    const r = success(await verifyTranscript(buildTranscript(noConsensus.packets)));
    expect(r.verdict.status).toBe('no-consensus');
    expect(r.verdict.winner).toBeNull();
    expect(r.verdict.accepted).toEqual([]);
  });

  test('tampered reveal and outsider reveal are listed by the verdict', async () => {
    const r = success(await verifyTranscript(buildTranscript(cheaters.packets)));
    expect(r.verdict.status).toBe('accepted');
    expect(r.verdict.rejected.map((x) => x.reason).sort()).toEqual(['COMMITMENT_MISMATCH', 'NOT_SEALED']);
  });

  test('re-embedded bits are passed to the verdict (EMBEDDING_DISAGREES)', async () => {
    const reveal = agree.reveals[0] as Packet<'reveal'>;
    const flipped = (reveal.body.bEmbedding[0] === '0' ? 'f' : '0') + reveal.body.bEmbedding.slice(1);
    const reembedded = new Map([[packetId(reveal), flipped]]);
    const strict = success(await verifyTranscript(agreeT, { reembedded }));
    expect(strict.verdict.rejected.find((x) => x.revealId === packetId(reveal))?.reason).toBe(
      'EMBEDDING_DISAGREES',
    );
    const tolerant = success(await verifyTranscript(agreeT, { reembedded, noiseToleranceBits: 4 }));
    expect(tolerant.verdictDigest).toBe(success(await verifyTranscript(agreeT)).verdictDigest);
  });
});

describe('verifyTranscript: signatures', () => {
  test('a forged signature on any packet fails with PACKET_BAD_SIGNATURE naming that packet', async () => {
    for (let i = 0; i < agreeT.packets.length; i++) {
      const packets = agreeT.packets.map((p, k) => (k === i ? { ...p, sig: forge(p.sig) } : p));
      const f = failure(await verifyTranscript(withPackets(agreeT, packets)));
      expect(f.code).toBe('PACKET_BAD_SIGNATURE');
      const p = agreeT.packets[i] as AnyPacket;
      expect(f.issues).toEqual([
        {
          check: 'BAD_SIGNATURE',
          message: expect.any(String),
          index: i,
          packetId: packetId(p),
          type: p.type,
          from: p.from,
        },
      ]);
    }
  });

  test('every bad signature is listed, not just the first', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.nat({ max: 10 }), { minLength: 1, maxLength: 11 }),
        async (forged) => {
          const packets = agreeT.packets.map((p, k) =>
            forged.includes(k) ? { ...p, sig: forge(p.sig, 70) } : p,
          );
          const f = failure(await verifyTranscript(withPackets(agreeT, packets)));
          expect(f.code).toBe('PACKET_BAD_SIGNATURE');
          expect(f.issues.map((x) => x.index)).toEqual([...forged].sort((a, b) => a - b));
        },
      ),
      { numRuns: 20 },
    );
  });

  test('a body edited after signing fails its signature', async () => {
    const packets = agreeT.packets.map((p) =>
      p.type === 'reveal' && p === agreeT.packets[agreeT.packets.length - 1]
        ? { ...p, body: { ...p.body, output: 'edited afterwards' } }
        : p,
    );
    const f = failure(await verifyTranscript(withPackets(agreeT, packets)));
    expect(f.code).toBe('PACKET_BAD_SIGNATURE');
    expect(f.issues.map((x) => x.index)).toEqual([agreeT.packets.length - 1]);
  });

  test('a signature by another key over the same bytes fails', async () => {
    const request = agreeT.packets[0] as Packet<'request'>;
    const other = await keyOf(9);
    const sig = Buffer.from(
      await other.sign(signedBytes(request.v, request.type, request.from, request.body)),
    ).toString('hex');
    const f = failure(
      await verifyTranscript(withPackets(agreeT, [{ ...request, sig }, ...agreeT.packets.slice(1)])),
    );
    expect(f.code).toBe('PACKET_BAD_SIGNATURE');
    expect(f.issues[0]?.type).toBe('request');
  });
});

describe('verifyTranscript: composition', () => {
  test('a missing sealed commit is TRANSCRIPT_INVALID', async () => {
    const missing = agree.commits[2] as Packet<'commit'>;
    const f = failure(await verifyTranscript(buildTranscript(agree.packets.filter((p) => p !== missing))));
    expect(f.code).toBe('TRANSCRIPT_INVALID');
    expect(f.issues).toEqual([
      {
        check: 'SEALED_COMMIT_MISSING',
        message: expect.any(String),
        packetId: packetId(missing),
        nodeId: missing.from,
      },
    ]);
  });

  test('a seal by someone other than the coordinator is TRANSCRIPT_INVALID', async () => {
    const seal = await resign(9, 'seal', agree.seal.body);
    const packets = agree.packets.map((p) => (p === agree.seal ? seal : p));
    const f = failure(await verifyTranscript(buildTranscript(packets)));
    expect(f.code).toBe('TRANSCRIPT_INVALID');
    expect(f.issues.map((x) => x.check)).toEqual(['SEAL_NOT_BY_COORDINATOR']);
    expect(f.issues[0]?.['coordinator']).toBe(agree.request.from);
  });

  test("a seal claiming the coordinator's key but signed by another fails its signature", async () => {
    const other = await resign(9, 'seal', agree.seal.body);
    const forgedSeal = { ...other, from: agree.request.from };
    const packets = agree.packets.map((p) => (p === agree.seal ? forgedSeal : p));
    const f = failure(await verifyTranscript(buildTranscript(packets)));
    expect(f.code).toBe('PACKET_BAD_SIGNATURE');
    expect(f.issues.map((x) => x.type)).toEqual(['seal']);
  });

  test('a seal naming another request packet is TRANSCRIPT_INVALID', async () => {
    const seal = await resign(1, 'seal', { ...agree.seal.body, requestPacketId: 'aa'.repeat(32) });
    const f = failure(
      await verifyTranscript(buildTranscript(agree.packets.map((p) => (p === agree.seal ? seal : p)))),
    );
    expect(f.code).toBe('TRANSCRIPT_INVALID');
    expect(f.issues.map((x) => x.check)).toEqual(['SEAL_WRONG_REQUEST']);
  });

  test('a seal of fewer members than the quorum, or more than maxCommits, is TRANSCRIPT_INVALID (SEAL_SIZE)', async () => {
    const { quorum, maxCommits } = agree.request.body.frame;
    const members = agree.seal.body.members;
    // One member, the rest of the transcript left as it is: a sybil quorum of one.
    const one = await resign(1, 'seal', { ...agree.seal.body, members: members.slice(0, 1) });
    const f = failure(
      await verifyTranscript(buildTranscript(agree.packets.map((p) => (p === agree.seal ? one : p)))),
    );
    expect(f.code).toBe('TRANSCRIPT_INVALID');
    expect(f.issues.find((x) => x.check === 'SEAL_SIZE')).toMatchObject({ size: 1, quorum, maxCommits });
    expect(quorum).toBeGreaterThan(1);
  });

  test('a seal dated before its request is TRANSCRIPT_INVALID (SEAL_BEFORE_REQUEST)', async () => {
    const seal = await resign(1, 'seal', { ...agree.seal.body, createdAt: agree.request.body.createdAt - 1 });
    const f = failure(
      await verifyTranscript(buildTranscript(agree.packets.map((p) => (p === agree.seal ? seal : p)))),
    );
    expect(f.code).toBe('TRANSCRIPT_INVALID');
    expect(f.issues.map((x) => x.check)).toContain('SEAL_BEFORE_REQUEST');
  });

  test('a seal dated past maxTimeMs and the skew window is TRANSCRIPT_INVALID (SEAL_LATE); within them it holds', async () => {
    const { createdAt, frame } = agree.request.body;
    const latest = createdAt + frame.maxTimeMs + LIMITS.defaultSkewMs;
    const at = async (t: number) => {
      const seal = await resign(1, 'seal', { ...agree.seal.body, createdAt: t });
      return verifyTranscript(buildTranscript(agree.packets.map((p) => (p === agree.seal ? seal : p))));
    };
    const late = failure(await at(latest + 1));
    expect(late.code).toBe('TRANSCRIPT_INVALID');
    expect(late.issues.map((x) => x.check)).toContain('SEAL_LATE');
    // At the bound the transcript holds.
    expect((await at(latest)).ok).toBe(true);
  });

  test('a sealed commit from another signer, or with another commitment, is TRANSCRIPT_INVALID', async () => {
    const [m0, m1, ...rest] = agree.seal.body.members;
    if (m0 === undefined || m1 === undefined) throw new Error('fixture has members');
    const seal = await resign(1, 'seal', {
      ...agree.seal.body,
      members: [{ ...m0, commitId: m1.commitId }, { ...m1, commitment: m0.commitment }, ...rest],
    });
    const f = failure(
      await verifyTranscript(buildTranscript(agree.packets.map((p) => (p === agree.seal ? seal : p)))),
    );
    expect(f.code).toBe('TRANSCRIPT_INVALID');
    expect(f.issues.map((x) => x.check)).toEqual([
      'SEALED_COMMIT_WRONG_SIGNER',
      'SEALED_COMMIT_WRONG_COMMITMENT',
      'SEALED_COMMIT_WRONG_COMMITMENT',
    ]);
  });

  test('non-canonical order and duplicates are TRANSCRIPT_INVALID', async () => {
    const [request, c0, c1, ...rest] = agreeT.packets as [AnyPacket, AnyPacket, AnyPacket, ...AnyPacket[]];
    const swapped = failure(await verifyTranscript(withPackets(agreeT, [request, c1, c0, ...rest])));
    expect(swapped.code).toBe('TRANSCRIPT_INVALID');
    expect(swapped.issues.map((x) => x.check)).toEqual(['NOT_CANONICAL_ORDER']);
    const doubled = failure(await verifyTranscript(withPackets(agreeT, [request, c0, c0, c1, ...rest])));
    expect(doubled.issues.map((x) => x.check)).toEqual(['DUPLICATE_PACKET']);
    const revealsFirst = failure(
      await verifyTranscript(
        withPackets(agreeT, [...agreeT.packets.slice(-1), ...agreeT.packets.slice(0, -1)]),
      ),
    );
    expect(revealsFirst.issues.map((x) => x.check)).toEqual(['NOT_CANONICAL_ORDER']);
  });

  test('no seal, two seals, or no request is TRANSCRIPT_INVALID', async () => {
    const noSeal = failure(
      await verifyTranscript(buildTranscript(agree.packets.filter((p) => p !== agree.seal))),
    );
    expect(noSeal.issues.map((x) => x.check)).toEqual(['SEAL_COUNT']);

    const seal2 = await resign(1, 'seal', { ...agree.seal.body, createdAt: BASE_TIME + 5_001 });
    const sorted = [...agreeT.packets, seal2].sort((a, b) => {
      const rank = { request: 0, commit: 1, seal: 2, reveal: 3 } as Record<string, number>;
      return (rank[a.type] as number) - (rank[b.type] as number) || (packetId(a) < packetId(b) ? -1 : 1);
    });
    const twoSeals = failure(await verifyTranscript(withPackets(agreeT, sorted)));
    expect(twoSeals.code).toBe('TRANSCRIPT_INVALID');
    expect(twoSeals.issues.map((x) => x.check)).toEqual(['SEAL_COUNT']);

    const noRequest = failure(await verifyTranscript(withPackets(agreeT, agreeT.packets.slice(1))));
    expect(noRequest.issues.map((x) => x.check)).toEqual(['REQUEST_COUNT']);
  });

  test("packets of another request, or a header requestId that is not the request's", async () => {
    const header = failure(await verifyTranscript({ ...agreeT, requestId: 'ab'.repeat(32) }));
    expect(header.code).toBe('TRANSCRIPT_INVALID');
    expect(header.issues.every((x) => x.check === 'REQUEST_ID_MISMATCH')).toBe(true);
    expect(header.issues).toHaveLength(agreeT.packets.length);

    const foreign = await resign(2, 'commit', {
      requestId: noConsensus.request.body.requestId,
      commitment: '01'.repeat(32),
      createdAt: BASE_TIME,
    });
    const f = failure(
      await verifyTranscript(
        withPackets(agreeT, [
          agreeT.packets[0] as AnyPacket,
          ...[...agreeT.packets.filter((p) => p.type === 'commit'), foreign].sort((a, b) =>
            packetId(a) < packetId(b) ? -1 : 1,
          ),
          ...agreeT.packets.filter((p) => p.type === 'seal' || p.type === 'reveal'),
        ]),
      ),
    );
    expect(f.issues.map((x) => [x.check, x.packetId])).toEqual([['REQUEST_ID_MISMATCH', packetId(foreign)]]);
  });

  test('more than 128 commits is TRANSCRIPT_INVALID even under the total bound', async () => {
    const key = await keyOf(8);
    const extra = await Promise.all(
      Array.from({ length: 124 }, (_, i) =>
        signPacket(key, 'commit', {
          requestId: agree.request.body.requestId,
          commitment: '03'.repeat(32),
          createdAt: BASE_TIME + 2_000 + i,
        }),
      ),
    );
    const packets = [...agreeT.packets, ...extra].sort((a, b) => {
      const rank: Record<string, number> = { request: 0, commit: 1, seal: 2, reveal: 3 };
      return (rank[a.type] as number) - (rank[b.type] as number) || (packetId(a) < packetId(b) ? -1 : 1);
    });
    const f = failure(await verifyTranscript(withPackets(agreeT, packets)));
    expect(f.code).toBe('TRANSCRIPT_INVALID');
    expect(f.issues).toEqual([
      { check: 'TOO_MANY_PACKETS', message: expect.any(String), type: 'commit', count: 129, limit: 128 },
    ]);
  });

  test('malformed re-embedded bits: the verdict error is returned, not thrown', async () => {
    const reveal = agree.reveals[0] as Packet<'reveal'>;
    const f = failure(await verifyTranscript(agreeT, { reembedded: new Map([[packetId(reveal), 'abcd']]) }));
    expect(f.code).toBe('EMBEDDING_INVALID');
  });

  test('extra unsealed commits are allowed (evidence); unsealed reveals are rejected by the verdict', async () => {
    const extra = await resign(8, 'commit', {
      requestId: agree.request.body.requestId,
      commitment: '02'.repeat(32),
      createdAt: BASE_TIME + 1_500,
    });
    const r = success(await verifyTranscript(buildTranscript([...agree.packets, extra])));
    expect(r.verdict.status).toBe('accepted');
  });
});

describe('verifyTranscript: structure', () => {
  test('not a transcript object', async () => {
    for (const input of [null, [], 'transcript', 42, { v: 2, requestId: 'x', packets: [] }]) {
      const f = failure(await verifyTranscript(input));
      expect(f.code).toBe('TRANSCRIPT_INVALID');
      expect(f.issues.length).toBeGreaterThan(0);
      expect(f.issues.every((x) => x.check === 'SHAPE')).toBe(true);
    }
  });

  test('unknown fields are rejected, in the transcript and in any packet', async () => {
    const top = failure(await verifyTranscript({ ...agreeT, root: 'ff'.repeat(32) }));
    expect(top.issues).toEqual([{ check: 'SHAPE', message: expect.any(String), keys: ['root'] }]);

    const packets = agreeT.packets.map((p, k) =>
      k === 2 ? { ...p, body: { ...p.body, extra: 1 } } : k === 4 ? { ...p, note: 'hi' } : p,
    );
    const f = failure(await verifyTranscript(withPackets(agreeT, packets as AnyPacket[])));
    expect(f.code).toBe('TRANSCRIPT_INVALID');
    expect(f.issues.map((x) => [x.check, x.index, x.code])).toEqual([
      ['PACKET_INVALID', 2, 'PACKET_UNKNOWN_FIELD'],
      ['PACKET_INVALID', 4, 'PACKET_UNKNOWN_FIELD'],
    ]);
  });

  test('a packet failing its schema or request-id derivation is listed with its own code', async () => {
    const request = agreeT.packets[0] as Packet<'request'>;
    const badRequest = { ...request, body: { ...request.body, prompt: 'another prompt' } };
    const reveal = agreeT.packets[agreeT.packets.length - 1] as Packet<'reveal'>;
    const badReveal = { ...reveal, body: { ...reveal.body, salt: 'xyz' } };
    const packets = [badRequest, ...agreeT.packets.slice(1, -1), badReveal] as AnyPacket[];
    const f = failure(await verifyTranscript(withPackets(agreeT, packets)));
    expect(f.issues.map((x) => x.code)).toEqual(['REQUEST_ID_MISMATCH', 'PACKET_INVALID_FIELD']);
  });

  test('a packet with a lone surrogate (JSON "\\ud800", not encodable) is listed, not thrown', async () => {
    const reveal = agreeT.packets[agreeT.packets.length - 1] as Packet<'reveal'>;
    const odd = { ...reveal, body: { ...reveal.body, output: 'Paris\uD800' } };
    const packets = [...agreeT.packets.slice(0, -1), odd] as AnyPacket[];
    const f = failure(await verifyTranscript(withPackets(agreeT, packets)));
    expect(f.code).toBe('TRANSCRIPT_INVALID');
    expect(f.issues).toEqual([
      {
        check: 'PACKET_INVALID',
        code: 'ENCODING_INVALID',
        message: expect.stringContaining('lone surrogate'),
        index: packets.length - 1,
        details: expect.any(Object),
      },
    ]);
  });

  test('a packet over the protocol bound in its canonical form (signed all the same) is listed: PACKET_TOO_LARGE', async () => {
    const reveal = agreeT.packets[agreeT.packets.length - 1] as Packet<'reveal'>;
    // Within the output's character bound, but each control character is 6 bytes in canonical JSON.
    const body = { ...reveal.body, output: '\u0001'.repeat(LIMITS.maxOutputChars) };
    const key = await keyOf(await seedOfNode(reveal.from));
    const sig = toHex(await key.sign(signedBytes(reveal.v, 'reveal', reveal.from, body)));
    const big = { ...reveal, body, sig };
    const packets = [...agreeT.packets.slice(0, -1), big] as AnyPacket[];
    const f = failure(await verifyTranscript(withPackets(agreeT, packets)));
    expect(f.issues).toEqual([
      {
        check: 'PACKET_INVALID',
        code: 'PACKET_TOO_LARGE',
        message: expect.stringContaining(`exceeds ${LIMITS.maxPacketBytes}`),
        index: packets.length - 1,
        details: { size: expect.any(Number), limit: LIMITS.maxPacketBytes },
      },
    ]);
  });

  test('verdict, attestation and heartbeat packets are not part of a transcript', async () => {
    const ok = success(await verifyTranscript(agreeT));
    const coordinator = await keyOf(1);
    const verdict = await signPacket(coordinator, 'verdict', {
      requestId: ok.requestId,
      verdict: ok.verdict,
      verdictDigest: ok.verdictDigest,
      transcriptRoot: ok.root,
      createdAt: BASE_TIME + 20_000,
    });
    const attestation = await signPacket(await keyOf(3), 'attestation', {
      requestId: ok.requestId,
      verdictDigest: ok.verdictDigest,
      transcriptRoot: ok.root,
      createdAt: BASE_TIME + 21_000,
    });
    const heartbeat = await signPacket(await keyOf(4), 'heartbeat', {
      role: 'node',
      software: 'synod-test/1',
      models: [],
      embedders: [],
      capacity: { queued: 0, maxQueue: 1 },
      addresses: [],
      createdAt: BASE_TIME,
    });
    const f = failure(
      await verifyTranscript(withPackets(agreeT, [...agreeT.packets, verdict, attestation, heartbeat])),
    );
    expect(f.code).toBe('TRANSCRIPT_INVALID');
    expect(f.issues.map((x) => [x.check, x.type])).toEqual([
      ['NOT_A_TRANSCRIPT_TYPE', 'verdict'],
      ['NOT_A_TRANSCRIPT_TYPE', 'attestation'],
      ['NOT_A_TRANSCRIPT_TYPE', 'heartbeat'],
    ]);
  });

  test('more than 386 packets is rejected before any packet is parsed', async () => {
    const f = failure(await verifyTranscript({ ...agreeT, packets: new Array(387).fill(agreeT.packets[0]) }));
    expect(f.issues).toEqual([
      { check: 'TOO_MANY_PACKETS', message: expect.any(String), count: 387, limit: 386 },
    ]);
  });
});

describe('verifyTranscript: expected verdict and root', () => {
  test('a member re-signing a tampered output: COMMITMENT_MISMATCH, then VERDICT_MISMATCH', async () => {
    const honest = success(await verifyTranscript(agreeT));
    const victim = agree.reveals[1] as Packet<'reveal'>;
    const tampered = await resign(await seedOfNode(victim.from), 'reveal', {
      ...victim.body,
      output: 'Lyon is the capital of France.',
    });
    const t = buildTranscript(agree.packets.map((p) => (p === victim ? tampered : p)));

    const alone = success(await verifyTranscript(t));
    expect(alone.verdict.rejected).toContainEqual({
      nodeId: victim.from,
      commitment: agree.seal.body.members.find((m) => m.nodeId === victim.from)?.commitment as string,
      revealId: packetId(tampered),
      reason: 'COMMITMENT_MISMATCH',
    });
    expect(alone.verdictDigest).not.toBe(honest.verdictDigest);

    const f = failure(await verifyTranscript(t, { expectedVerdictDigest: honest.verdictDigest }));
    expect(f.code).toBe('VERDICT_MISMATCH');
    expect(f.issues).toEqual([
      {
        check: 'VERDICT_DIGEST_MISMATCH',
        message: expect.any(String),
        expected: honest.verdictDigest,
        actual: alone.verdictDigest,
      },
    ]);
    expect(f.error.details['verdict']).toEqual(alone.verdict);
  });

  test('a root that does not match is TRANSCRIPT_INVALID (ROOT_MISMATCH), listed with a digest mismatch', async () => {
    const honest = success(await verifyTranscript(agreeT));
    const onlyRoot = failure(await verifyTranscript(agreeT, { expectedRoot: '00'.repeat(32) }));
    expect(onlyRoot.code).toBe('TRANSCRIPT_INVALID');
    expect(onlyRoot.issues.map((x) => x.check)).toEqual(['ROOT_MISMATCH']);
    expect(onlyRoot.error.details['root']).toBe(honest.root);

    const both = failure(
      await verifyTranscript(agreeT, {
        expectedRoot: '00'.repeat(32),
        expectedVerdictDigest: '11'.repeat(32),
      }),
    );
    expect(both.code).toBe('TRANSCRIPT_INVALID');
    expect(both.issues.map((x) => x.check)).toEqual(['ROOT_MISMATCH', 'VERDICT_DIGEST_MISMATCH']);
  });
});
