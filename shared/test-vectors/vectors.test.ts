/**
 * The golden vectors in v1.json, recomputed from their inputs with the implementation in shared/src.
 * Another implementation can port this file to test itself against v1.json (see README.md).
 */
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { computeCommitment, outputDigest } from '../src/commitment/commitment.ts';
import { claimedReembeddings, verdictDigest } from '../src/consensus/verdict.ts';
import { hamming, normalizedHamming, quantize } from '../src/embedding/binary.ts';
import { fromHex, toHex, utf8 } from '../src/encoding/bytes.ts';
import { canonicalJson } from '../src/encoding/canonical.ts';
import { domainTag, sha256Hex, taggedHash } from '../src/encoding/hash.ts';
import { isSynodError } from '../src/errors.ts';
import { distanceThresholdBits, requiredAgreement } from '../src/frame/frame.ts';
import { NodeKey, verifySignature } from '../src/identity/node-key.ts';
import {
  encodePacket,
  packetId,
  parseEnvelope,
  signedBytes,
  signPacket,
  verifyPacket,
} from '../src/packets/envelope.ts';
import { deriveRequestId } from '../src/packets/request-id.ts';
import { type AnyPacket, type Packet, REJECT_REASONS, VerdictSchema } from '../src/packets/schemas.ts';
import {
  inclusionProof,
  merkleLeaf,
  merkleLeafHash,
  merkleRoot,
  verifyInclusion,
} from '../src/transcript/merkle.ts';
import { buildTranscript, transcriptRoot } from '../src/transcript/transcript.ts';
import { verifyTranscript } from '../src/transcript/verify.ts';
import { generateVectors, renderVectors, VECTORS_PATH, type Vectors } from './generate.ts';

const fileText = readFileSync(VECTORS_PATH, 'utf8');
const v = JSON.parse(fileText) as Vectors;

async function keyFromSeedHex(seed: string): Promise<NodeKey> {
  return NodeKey.fromSeed(fromHex(seed, 32));
}

type ScenarioVector = Vectors['scenarios'][number];

function scenarioNamed(name: string): ScenarioVector {
  const s = v.scenarios.find((x) => x.name === name);
  if (s === undefined) throw new Error(`no scenario ${name}`);
  return s;
}

const packetsOf = (s: ScenarioVector) => s.transcript.packets as AnyPacket[];
const requestOf = (s: ScenarioVector) => packetsOf(s).find((p) => p.type === 'request') as Packet<'request'>;
const sealOf = (s: ScenarioVector) => packetsOf(s).find((p) => p.type === 'seal') as Packet<'seal'>;

interface RevealWithId {
  id: string;
  packet: Packet<'reveal'>;
  /** Whether it reproduces its author's sealed commitment. */
  opens: boolean;
}

/** Each sealed member (nodeId, commitment) with its reveals, smallest packet id first. */
function revealsByMember(
  s: ScenarioVector,
): { member: { nodeId: string; commitment: string }; reveals: RevealWithId[] }[] {
  const requestId = requestOf(s).body.requestId;
  return sealOf(s).body.members.map(({ nodeId, commitment }) => ({
    member: { nodeId, commitment },
    reveals: packetsOf(s)
      .filter((p): p is Packet<'reveal'> => p.type === 'reveal' && p.from === nodeId)
      .map((packet) => {
        const { model, output, bEmbedding, salt } = packet.body;
        const opened = computeCommitment({ requestId, nodeId, model, output, bEmbedding, salt });
        return { id: packetId(packet), packet, opens: opened === commitment };
      })
      .sort((a, b) => (a.id < b.id ? -1 : 1)),
  }));
}

describe('v1.json', () => {
  test('is the format it says it is', () => {
    expect(v.format).toBe('synod-test-vectors');
    expect(v.version).toBe(1);
  });

  test('the generator reproduces it byte for byte', async () => {
    expect(renderVectors(await generateVectors())).toBe(fileText);
  });
});

describe('encoding', () => {
  test('JCS canonicalization (RFC 8785)', () => {
    expect(v.jcs.length).toBeGreaterThanOrEqual(6);
    for (const c of v.jcs) {
      const canonical = canonicalJson(JSON.parse(c.json));
      expect({ name: c.name, canonical }).toEqual({ name: c.name, canonical: c.canonical });
      expect(toHex(utf8(canonical))).toBe(c.utf8);
      expect(sha256Hex(utf8(canonical))).toBe(c.sha256);
    }
  });

  test('values JCS must refuse', () => {
    expect(v.jcsInvalid.length).toBeGreaterThan(0);
    for (const c of v.jcsInvalid) {
      let error: unknown;
      try {
        canonicalJson(JSON.parse(c.json));
      } catch (e) {
        error = e;
      }
      expect(isSynodError(error, 'ENCODING_INVALID')).toBe(true);
    }
  });

  test('sha256 and tagged hashes', () => {
    for (const c of v.sha256) expect(sha256Hex(fromHex(c.data))).toBe(c.digest);
    for (const c of v.taggedHashes) {
      expect(toHex(domainTag(c.purpose))).toBe(c.domainTag);
      expect(toHex(domainTag(c.purpose))).toBe(`${toHex(utf8(`synod/v1/${c.purpose}`))}00`);
      expect(toHex(taggedHash(c.purpose, ...c.parts.map((p) => fromHex(p))))).toBe(c.digest);
      expect(sha256Hex(fromHex(c.domainTag + c.parts.join('')))).toBe(c.digest);
    }
  });
});

describe('identity and request ids', () => {
  test('node ids from seeds', async () => {
    for (const c of v.nodeIds) expect((await keyFromSeedHex(c.seed)).nodeId).toBe(c.nodeId);
  });

  test('request id derivation (http, peer and chain origins)', () => {
    expect(v.requestIds.map((c) => c.body.origin.kind).sort()).toEqual(['chain', 'http', 'peer']);
    for (const c of v.requestIds) {
      expect(deriveRequestId(c.body)).toBe(c.requestId);
      if (c.body.origin.kind === 'chain') {
        const o = c.body.origin;
        expect(c.requestId).toBe(`${o.chainId}:${o.contract}:${o.requestNo}`);
      } else {
        expect(c.requestId).toBe(toHex(taggedHash('request-id', utf8(canonicalJson(c.body)))));
      }
    }
  });
});

describe('commitments and embeddings', () => {
  test('commitments', () => {
    for (const c of v.commitments) {
      expect(outputDigest(c.input.output)).toBe(c.outputDigest);
      expect(computeCommitment(c.input)).toBe(c.commitment);
    }
  });

  test('quantize and pack', () => {
    for (const c of v.embeddings.quantize) expect(toHex(quantize(c.vector, c.bits))).toBe(c.packed);
  });

  test('Hamming distances', () => {
    for (const c of v.embeddings.hamming) {
      expect(hamming(fromHex(c.a), fromHex(c.b))).toBe(c.distance);
      expect(normalizedHamming(fromHex(c.a), fromHex(c.b))).toBe(c.normalized);
    }
  });

  test('frame thresholds in exact integer arithmetic', () => {
    for (const c of v.frame.thresholds) expect(distanceThresholdBits(c, c.bits)).toBe(c.thresholdBits);
    for (const c of v.frame.required) expect(requiredAgreement(c, c.sealSize)).toBe(c.required);
  });
});

describe('packets', () => {
  test('one vector for every packet type', () => {
    const types: string[] = [...new Set(v.packets.map((p) => p.type))].sort();
    expect(types).toEqual(
      ['attestation', 'commit', 'decline', 'heartbeat', 'request', 'reveal', 'seal', 'verdict'].sort(),
    );
  });

  test('signed bytes, ids, signatures, encodings and leaves', async () => {
    for (const c of v.packets) {
      const key = await keyFromSeedHex(c.seed);
      expect(key.nodeId).toBe(c.from);
      const envelope = parseEnvelope(c.envelope) as AnyPacket;
      expect(envelope).toEqual(c.envelope as AnyPacket);
      expect(envelope.body).toEqual(c.body as AnyPacket['body']);
      const bytes = signedBytes(1, c.type, c.from, c.body);
      expect(toHex(bytes)).toBe(c.signedBytes);
      expect(sha256Hex(bytes)).toBe(c.packetId);
      expect(packetId(envelope)).toBe(c.packetId);
      const resigned = await signPacket(key, envelope.type, envelope.body as never);
      expect(resigned.sig).toBe(c.sig);
      expect(await verifySignature(c.from, bytes, fromHex(c.sig))).toBe(true);
      expect(toHex(encodePacket(envelope))).toBe(toHex(utf8(c.encoded)));
      expect(merkleLeaf(envelope)).toBe(c.merkleLeaf);
      const verified = await verifyPacket(JSON.parse(c.encoded), { now: envelope.body.createdAt });
      expect(verified.id).toBe(c.packetId);
    }
  });
});

describe('merkle', () => {
  test('roots and inclusion proofs', () => {
    for (const c of v.merkle) {
      const leaves = c.leafData.map((d) => merkleLeafHash(fromHex(d)));
      expect(leaves).toEqual(c.leaves);
      expect(merkleRoot(leaves)).toBe(c.root);
      c.proofs.forEach((proof, i) => {
        expect(inclusionProof(leaves, i)).toEqual(proof);
        expect(verifyInclusion(c.root, leaves[i] as string, proof)).toBe(true);
      });
    }
  });
});

describe('scenarios', () => {
  test('accepted, no-consensus and every reject reason are covered', () => {
    expect(new Set(v.scenarios.map((s) => s.verdict.status))).toEqual(new Set(['accepted', 'no-consensus']));
    const reasons = new Set<string>(v.scenarios.flatMap((s) => s.verdict.rejected.map((r) => r.reason)));
    // EMBEDDING_DISAGREES needs a verifier that re-embeds; transcript verification does not.
    expect([...reasons].sort()).toEqual(REJECT_REASONS.filter((r) => r !== 'EMBEDDING_DISAGREES').sort());
    const withBits = v.scenarios.flatMap((s) => s.reembedded?.verdict.rejected.map((r) => r.reason) ?? []);
    expect([...new Set([...reasons, ...withBits])].sort()).toEqual([...REJECT_REASONS].sort());
  });

  test('a scenario fills rejected to its 256-entry cap and leaves a non-member to the transcript', () => {
    const capped = v.scenarios.filter((s) => {
      const outsiders = new Set(s.nodes.filter((n) => n.role === 'outsider').map((n) => n.nodeId));
      const unsealed = new Set(
        (s.transcript.packets as AnyPacket[])
          .filter((p) => p.type === 'reveal' && outsiders.has(p.from))
          .map((p) => p.from),
      );
      const listed = s.verdict.rejected.filter((r) => r.reason === 'NOT_SEALED').length;
      return s.verdict.rejected.length === 256 && unsealed.size > listed;
    });
    expect(capped.length).toBeGreaterThan(0);
  });

  test('invalid-reveal-before-valid: the valid reveal counts whichever packet id is smaller', () => {
    const s = scenarioNamed('invalid-reveal-before-valid');
    const seal = sealOf(s);
    expect(s.verdict.status).toBe('accepted');
    expect(s.verdict.required).toBe(seal.body.members.length);
    expect(s.verdict.accepted.map((a) => a.nodeId).sort()).toEqual(seal.body.members.map((m) => m.nodeId));
    const orders = revealsByMember(s).flatMap(({ member, reveals }) => {
      if (reveals.length !== 2) return [];
      const [first, second] = reveals as [RevealWithId, RevealWithId];
      expect(first.opens).not.toBe(second.opens);
      const invalid = first.opens ? second : first;
      expect(s.verdict.rejected.filter((r) => r.nodeId === member.nodeId)).toEqual([
        { ...member, revealId: invalid.id, reason: 'DUPLICATE_REVEAL' },
      ]);
      return [first.opens ? 'valid first' : 'invalid first'];
    });
    // Both orders, fixed by the fixtures' createdAt values: a change that flips one fails here.
    expect(orders.sort()).toEqual(['invalid first', 'valid first']);
    const winner = s.verdict.winner;
    const winnerReveals = revealsByMember(s).find((m) => m.member.nodeId === winner?.nodeId)?.reveals ?? [];
    expect(winnerReveals.find((r) => r.opens)?.packet.body.output).toBe(winner?.output);
  });

  test('no-valid-reveal: no candidate, so no centre; the smallest id decides the reason', () => {
    const s = scenarioNamed('no-valid-reveal');
    expect(s.verdict.status).toBe('no-consensus');
    expect(s.verdict.centre).toBeNull();
    expect(s.verdict.winner).toBeNull();
    expect(s.verdict.accepted).toEqual([]);
    const deadline = sealOf(s).body.createdAt + requestOf(s).body.frame.revealWindowMs;
    const pairs = revealsByMember(s).flatMap(({ member, reveals }) => {
      if (reveals.length !== 2) return [];
      const [first, second] = reveals as [RevealWithId, RevealWithId];
      const entries = s.verdict.rejected.filter((r) => r.nodeId === member.nodeId);
      expect(entries.find((r) => r.reason === 'DUPLICATE_REVEAL')?.revealId).toBe(second.id);
      const listed = entries.find((r) => r.reason !== 'DUPLICATE_REVEAL');
      expect(listed?.revealId).toBe(first.id);
      return [`${first.packet.body.createdAt > deadline ? 'late' : 'tampered'} first: ${listed?.reason}`];
    });
    expect(pairs.sort()).toEqual(['late first: REVEAL_LATE', 'tampered first: COMMITMENT_MISMATCH']);
    expect(s.verdict.rejected.map((r) => r.reason).sort()).toEqual([
      'COMMITMENT_MISMATCH',
      'DUPLICATE_REVEAL',
      'DUPLICATE_REVEAL',
      'MODEL_NOT_ACCEPTED',
      'NOT_REVEALED',
      'NOT_SEALED',
      'REVEAL_LATE',
    ]);
  });

  test('reembedded-disagrees: within and at the tolerance pass, beyond it is EMBEDDING_DISAGREES', () => {
    const s = scenarioNamed('reembedded-disagrees');
    const r = s.reembedded;
    if (r === undefined) throw new Error('no re-embedded verdict');
    const tolerance = r.noiseToleranceBits;
    expect(tolerance).toBeGreaterThan(0);
    const bitsOf = new Map(r.reveals.map((x) => [x.revealId, x.bits]));
    const deadline = sealOf(s).body.createdAt + requestOf(s).body.frame.revealWindowMs;
    const outcomes = revealsByMember(s).map(({ member, reveals }) => {
      const [reveal] = reveals as [RevealWithId];
      expect(reveals).toHaveLength(1);
      const bits = bitsOf.get(reveal.id);
      const d = bits === undefined ? null : hamming(fromHex(reveal.packet.body.bEmbedding), fromHex(bits));
      const where =
        d === null
          ? 'no bits'
          : d < tolerance
            ? 'within'
            : d === tolerance
              ? 'at'
              : `beyond by ${d - tolerance}`;
      const late = reveal.packet.body.createdAt > deadline;
      const outcome = r.verdict.accepted.some((a) => a.nodeId === member.nodeId)
        ? 'accepted'
        : r.verdict.rejected.find((x) => x.revealId === reveal.id)?.reason;
      return late ? `late: ${outcome}` : `${where}: ${outcome}`;
    });
    // Exactly at the tolerance is not more than it: the reveal passes. One bit more does not.
    expect(outcomes.sort()).toEqual([
      'at: accepted',
      'beyond by 1: EMBEDDING_DISAGREES',
      'late: REVEAL_LATE',
      'no bits: accepted',
      'within: accepted',
    ]);
    // The late reveal's bits are far beyond the tolerance: REVEAL_LATE is the earlier check.
    const late = revealsByMember(s).find(
      ({ reveals }) => (reveals[0]?.packet.body.createdAt ?? 0) > deadline,
    );
    expect(r.reveals.find((x) => x.revealId === late?.reveals[0]?.id)?.distance).toBeGreaterThan(tolerance);
    // Without re-embedding the reveal beyond the tolerance is accepted, and the winner.
    const disagrees = r.verdict.rejected.find((x) => x.reason === 'EMBEDDING_DISAGREES');
    expect(s.verdict.winner?.nodeId).toBe(disagrees?.nodeId as string);
    expect(s.verdict.accepted).toHaveLength(4);
    expect(r.verdict.winner?.nodeId).not.toBe(disagrees?.nodeId as string);
    // The member without bits makes the quorum.
    expect(r.verdict.accepted).toHaveLength(r.verdict.required);
  });

  test('reembedded-disagrees: one bit less tolerance loses the quorum, one more accepts all four', async () => {
    const s = scenarioNamed('reembedded-disagrees');
    const r = s.reembedded;
    if (r === undefined) throw new Error('no re-embedded verdict');
    const reembedded = new Map(r.reveals.map((x) => [x.revealId, x.bits]));
    const at = async (noiseToleranceBits: number) => {
      const check = await verifyTranscript(s.transcript, { reembedded, noiseToleranceBits });
      if (!check.ok) throw new Error(`${check.error.code}: ${check.error.message}`);
      return check.verdict;
    };
    const less = await at(r.noiseToleranceBits - 1);
    expect(less.status).toBe('no-consensus');
    expect(less.rejected.filter((x) => x.reason === 'EMBEDDING_DISAGREES')).toHaveLength(2);
    const more = await at(r.noiseToleranceBits + 1);
    expect(more.accepted).toEqual(s.verdict.accepted);
    expect(more.winner).toEqual(s.verdict.winner);
    expect(more.rejected.map((x) => x.reason)).toEqual(['REVEAL_LATE']);
  });

  for (const s of v.scenarios) {
    describe(s.name, () => {
      test('every packet is reproduced from its node seed', async () => {
        const keys = new Map<string, NodeKey>();
        for (const n of s.nodes) {
          const key = await keyFromSeedHex(n.seed);
          expect(key.nodeId).toBe(n.nodeId);
          keys.set(key.nodeId, key);
        }
        for (const p of s.transcript.packets as AnyPacket[]) {
          const key = keys.get(p.from);
          if (key === undefined) throw new Error(`no seed for ${p.from}`);
          expect((await signPacket(key, p.type, p.body as never)).sig).toBe(p.sig);
        }
      });

      test('canonical order, packet ids, leaves and root', () => {
        const packets = s.transcript.packets as AnyPacket[];
        expect(packets.map((p) => packetId(p))).toEqual(s.packetIds);
        expect(packets.map((p) => merkleLeaf(p))).toEqual(s.leaves);
        expect(merkleRoot(s.leaves)).toBe(s.root);
        expect(transcriptRoot(s.transcript)).toBe(s.root);
        const rebuilt = buildTranscript([...packets].reverse());
        expect(rebuilt).toEqual(s.transcript);
        const reveals = packets.filter((p) => p.type === 'reveal');
        expect(
          reveals.map((a) =>
            reveals.map((b) =>
              a.body.bEmbedding.length === b.body.bEmbedding.length
                ? hamming(fromHex(a.body.bEmbedding), fromHex(b.body.bEmbedding))
                : null,
            ),
          ),
        ).toEqual(s.revealDistances);
      });

      test('verdict and verdict digest', async () => {
        const r = await verifyTranscript(s.transcript, {
          expectedRoot: s.root,
          expectedVerdictDigest: s.verdictDigest,
        });
        if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
        expect(r.verdict).toEqual(s.verdict);
        expect(VerdictSchema.parse(s.verdict)).toEqual(s.verdict);
        expect(canonicalJson(r.verdict)).toBe(s.verdictJcs);
        expect(verdictDigest(s.verdict)).toBe(s.verdictDigest);
        expect(toHex(taggedHash('verdict', utf8(s.verdictJcs)))).toBe(s.verdictDigest);
      });

      const r = s.reembedded;
      if (r !== undefined) {
        test('verdict with the re-embedded bits', async () => {
          const reveals = (s.transcript.packets as AnyPacket[]).filter((p) => p.type === 'reveal');
          const ids = reveals.map((p) => packetId(p));
          expect(r.reveals.map((x) => x.revealId)).toEqual(
            ids.filter((id) => r.reveals.some((x) => x.revealId === id)),
          );
          for (const x of r.reveals) {
            const claimed = reveals[ids.indexOf(x.revealId)]?.body.bEmbedding ?? '';
            expect(hamming(fromHex(claimed), fromHex(x.bits))).toBe(x.distance);
          }
          const check = await verifyTranscript(s.transcript, {
            reembedded: new Map(r.reveals.map((x) => [x.revealId, x.bits])),
            noiseToleranceBits: r.noiseToleranceBits,
            expectedRoot: s.root,
            expectedVerdictDigest: r.verdictDigest,
          });
          if (!check.ok) throw new Error(`${check.error.code}: ${check.error.message}`);
          expect(check.verdict).toEqual(r.verdict);
          expect(VerdictSchema.parse(r.verdict)).toEqual(r.verdict);
          expect(canonicalJson(check.verdict)).toBe(r.verdictJcs);
          expect(verdictDigest(r.verdict)).toBe(r.verdictDigest);
          expect(r.verdictDigest).not.toBe(s.verdictDigest);
          // The verdict's own re-embedding claims recompute it, whatever tolerance made it.
          expect(r.verdict.reembedded?.length).toBeGreaterThan(0);
          const fromClaims = await verifyTranscript(s.transcript, {
            reembedded: claimedReembeddings(r.verdict),
            expectedVerdictDigest: r.verdictDigest,
          });
          expect(fromClaims.ok).toBe(true);
        });
      }
    });
  }
});
