import { beforeAll, describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { AGREE_SPEC, BASE_TIME, buildScenario, keyOf, type Scenario } from '../../test-vectors/fixtures.ts';
import { isSynodError, type SynodError } from '../errors.ts';
import { packetId, signPacket } from '../packets/envelope.ts';
import type { AnyPacket, Packet } from '../packets/schemas.ts';
import { merkleLeaf, merkleRoot } from './merkle.ts';
import {
  buildTranscript,
  TRANSCRIPT_LIMITS,
  type Transcript,
  transcriptInclusionProof,
  transcriptPacketIds,
  transcriptRoot,
  verifyTranscriptInclusion,
} from './transcript.ts';

let s: Scenario;
beforeAll(async () => {
  s = await buildScenario(AGREE_SPEC);
});

function thrown(fn: () => unknown): SynodError {
  try {
    fn();
  } catch (e) {
    if (isSynodError(e)) return e;
    throw e;
  }
  throw new Error('expected a SynodError');
}

describe('buildTranscript', () => {
  test('canonical order: request, commits, seal, reveals; each group by packet id', () => {
    const t = buildTranscript(s.packets);
    expect(t.v).toBe(1);
    expect(t.requestId).toBe(s.request.body.requestId);
    expect(t.packets.map((p) => p.type)).toEqual([
      'request',
      ...s.commits.map(() => 'commit' as const),
      'seal',
      ...s.reveals.map(() => 'reveal' as const),
    ]);
    const ids = t.packets.map(packetId);
    const commitIds = ids.slice(1, 1 + s.commits.length);
    expect(commitIds).toEqual([...commitIds].sort());
    const revealIds = ids.slice(2 + s.commits.length);
    expect(revealIds).toEqual([...revealIds].sort());
    expect(transcriptPacketIds(t)).toEqual(ids);
  });

  test('any permutation, with duplicates, gives the same transcript and root', () => {
    const reference = buildTranscript(s.packets);
    const root = transcriptRoot(reference);
    fc.assert(
      fc.property(
        fc.shuffledSubarray(s.packets, { minLength: s.packets.length }),
        fc.array(fc.nat({ max: s.packets.length - 1 }), { maxLength: 6 }),
        (shuffled, dupes) => {
          const input = [...shuffled, ...dupes.map((i) => structuredClone(s.packets[i] as AnyPacket))];
          const t = buildTranscript(input);
          expect(t).toEqual(reference);
          expect(transcriptRoot(t)).toBe(root);
        },
      ),
      { numRuns: 50 },
    );
  });

  test('the root is the Merkle root over the canonical order of whole envelopes', () => {
    const t = buildTranscript(s.packets);
    expect(transcriptRoot(t)).toBe(merkleRoot(t.packets.map(merkleLeaf)));
    const other = structuredClone(t);
    (other.packets[0] as Packet<'request'>).sig = `${'0'.repeat(127)}1`;
    expect(transcriptRoot(other)).not.toBe(transcriptRoot(t));
  });

  test('two signatures for one packet id keep the smaller one, whatever the order', () => {
    const commit = s.commits[0] as Packet<'commit'>;
    const alt = { ...commit, sig: commit.sig === 'f'.repeat(128) ? '0'.repeat(128) : 'f'.repeat(128) };
    const smaller = alt.sig < commit.sig ? alt : commit;
    const a = buildTranscript([...s.packets, alt]);
    const b = buildTranscript([alt, ...s.packets]);
    expect(a).toEqual(b);
    expect(a.packets).toContainEqual(smaller);
    expect(a.packets.filter((p) => packetId(p) === packetId(commit))).toHaveLength(1);
  });

  test('verdict, attestation and heartbeat packets are rejected', async () => {
    const key = await keyOf(1);
    const attestation = await signPacket(key, 'attestation', {
      requestId: s.request.body.requestId,
      verdictDigest: 'ab'.repeat(32),
      transcriptRoot: 'cd'.repeat(32),
      createdAt: BASE_TIME,
    });
    const heartbeat = await signPacket(key, 'heartbeat', {
      role: 'node',
      software: 'synod-test/1',
      models: [],
      embedders: [],
      capacity: { queued: 0, maxQueue: 4 },
      addresses: [],
      createdAt: BASE_TIME,
    });
    for (const p of [attestation, heartbeat] as AnyPacket[]) {
      const e = thrown(() => buildTranscript([...s.packets, p]));
      expect(e.code).toBe('TRANSCRIPT_INVALID');
      expect(e.details['type']).toBe(p.type);
    }
  });

  test('packets of another request are rejected', async () => {
    const key = await keyOf(9);
    const foreign = await signPacket(key, 'commit', {
      requestId: 'ef'.repeat(32),
      commitment: '01'.repeat(32),
      createdAt: BASE_TIME,
    });
    const e = thrown(() => buildTranscript([...s.packets, foreign]));
    expect(e.code).toBe('TRANSCRIPT_INVALID');
    expect(e.details['packets']).toEqual([
      { id: packetId(foreign), type: 'commit', requestId: 'ef'.repeat(32) },
    ]);
  });

  test('exactly one request and at most one seal', async () => {
    expect(thrown(() => buildTranscript(s.packets.slice(1))).code).toBe('TRANSCRIPT_INVALID');
    const noSeal = buildTranscript(s.packets.filter((p) => p.type !== 'seal'));
    expect(noSeal.packets.some((p) => p.type === 'seal')).toBe(false);
    const coordinator = await keyOf(1);
    const secondSeal = await signPacket(coordinator, 'seal', {
      ...s.seal.body,
      members: s.seal.body.members.slice(1),
    });
    const e = thrown(() => buildTranscript([...s.packets, secondSeal]));
    expect(e.code).toBe('TRANSCRIPT_INVALID');
    expect(e.details['sealIds']).toHaveLength(2);
  });

  test('size bound: at most 128 commits and 256 reveals (386 packets)', () => {
    expect(TRANSCRIPT_LIMITS).toEqual({ maxCommits: 128, maxReveals: 256, maxPackets: 386 });
    const base = s.commits[0] as Packet<'commit'>;
    const commits = Array.from({ length: 129 }, (_, i) => ({
      ...base,
      body: { ...base.body, createdAt: BASE_TIME + i },
    }));
    const e = thrown(() => buildTranscript([s.request, ...commits, s.seal]));
    expect(e.code).toBe('TRANSCRIPT_INVALID');
    expect(e.details['commits']).toBe(129);
    expect(buildTranscript([s.request, ...commits.slice(0, 128), s.seal]).packets).toHaveLength(130);
  });
});

describe('transcript order checks', () => {
  test('transcriptRoot rejects a non-canonical or duplicated packet list', () => {
    const t = buildTranscript(s.packets);
    const swapped: Transcript = {
      ...t,
      packets: [t.packets[0], t.packets[2], t.packets[1], ...t.packets.slice(3)] as AnyPacket[],
    };
    expect(thrown(() => transcriptRoot(swapped)).message).toContain('canonical order');
    const doubled: Transcript = { ...t, packets: [t.packets[0], ...t.packets] as AnyPacket[] };
    expect(thrown(() => transcriptRoot(doubled)).message).toContain('twice');
    expect(thrown(() => transcriptRoot({ ...t, packets: [] })).code).toBe('TRANSCRIPT_INVALID');
  });
});

describe('transcript inclusion proofs', () => {
  test('every packet of the transcript proves into the root', () => {
    const t = buildTranscript(s.packets);
    const root = transcriptRoot(t);
    for (const p of t.packets) {
      const proof = transcriptInclusionProof(t, packetId(p));
      expect(proof.leafCount).toBe(t.packets.length);
      expect(verifyTranscriptInclusion(root, p, proof)).toBe(true);
    }
  });

  test('a modified packet, a re-signed copy or a foreign packet does not verify', () => {
    const t = buildTranscript(s.packets);
    const root = transcriptRoot(t);
    const reveal = t.packets[t.packets.length - 1] as Packet<'reveal'>;
    const proof = transcriptInclusionProof(t, packetId(reveal));
    expect(
      verifyTranscriptInclusion(root, { ...reveal, body: { ...reveal.body, output: 'other' } }, proof),
    ).toBe(false);
    expect(verifyTranscriptInclusion(root, { ...reveal, sig: '0'.repeat(128) }, proof)).toBe(false);
    expect(verifyTranscriptInclusion(root, t.packets[0] as AnyPacket, proof)).toBe(false);
    const notJson = { ...reveal, body: { ...reveal.body, createdAt: Number.NaN } };
    expect(verifyTranscriptInclusion(root, notJson, proof)).toBe(false);
  });

  test('a packet that is not in the transcript has no proof', () => {
    const t = buildTranscript(s.packets);
    expect(thrown(() => transcriptInclusionProof(t, '00'.repeat(32))).code).toBe('MERKLE_PROOF_INVALID');
  });
});
