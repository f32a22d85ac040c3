/**
 * A reveal invalid in several ways at once gets one reason: the first failing check in the order of
 * docs/protocol.md (Consensus, step 1): EMBEDDING_LENGTH, MODEL_NOT_ACCEPTED, COMMITMENT_MISMATCH,
 * REVEAL_LATE, EMBEDDING_DISAGREES. Each fault is built so that it alone breaks its own check (the
 * commitment opens unless that fault is drawn), and every combination is drawn.
 */
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { hamming } from '../embedding/binary.ts';
import { fromHex, toHex } from '../encoding/bytes.ts';
import type { RejectReason } from '../packets/schemas.ts';
import {
  buildScenario,
  flipBits,
  OTHER_LLM,
  outcomeOf,
  randomBits,
  range,
  SEAL_AT,
  signReveal,
  testKey,
  testSalt,
} from './fixtures.test-helpers.ts';
import { rejectedBeforeBits } from './rejected-before-bits.ts';
import { computeVerdict } from './verdict.ts';

const BITS = 64;
const WINDOW = 10_000;
const ORDER = [
  'EMBEDDING_LENGTH',
  'MODEL_NOT_ACCEPTED',
  'COMMITMENT_MISMATCH',
  'REVEAL_LATE',
  'EMBEDDING_DISAGREES',
] as const satisfies readonly RejectReason[];

const faults = fc.record({
  EMBEDDING_LENGTH: fc.boolean(),
  MODEL_NOT_ACCEPTED: fc.boolean(),
  COMMITMENT_MISMATCH: fc.boolean(),
  REVEAL_LATE: fc.boolean(),
  EMBEDDING_DISAGREES: fc.boolean(),
  tolerance: fc.integer({ min: 0, max: 3 }),
});

describe('several faults in one reveal', () => {
  test('the first failing check in the documented order is its one reason', async () => {
    await fc.assert(
      fc.asyncProperty(faults, async (f) => {
        const bits = randomBits(BITS, () => 0.3);
        const claimed = f.EMBEDDING_LENGTH ? bits.slice(0, BITS / 8 - 1) : bits;
        const sc = await buildScenario({
          label: 'reasons',
          bits: BITS,
          frame: { quorum: 1, maxCommits: 1, secPercentage: 1, revealWindowMs: WINDOW },
          nodes: [
            {
              output: 'Paris',
              bits: claimed,
              ...(f.MODEL_NOT_ACCEPTED ? { model: OTHER_LLM } : {}),
              revealAt: f.REVEAL_LATE ? SEAL_AT + WINDOW + 1 : SEAL_AT + WINDOW,
              reveals: false,
            },
          ],
        });
        const node = sc.nodes[0]!;
        // The commitment was made over revealBody; another salt no longer opens it.
        const body = f.COMMITMENT_MISMATCH
          ? { ...node.revealBody, salt: testSalt('other') }
          : node.revealBody;
        const reveal = await signReveal(node.key, body);
        // The verifier's own bits: exactly at the tolerance, or one bit past it.
        const own = flipBits(bits, range(0, f.EMBEDDING_DISAGREES ? f.tolerance + 1 : f.tolerance));
        expect(hamming(own, bits)).toBe(f.EMBEDDING_DISAGREES ? f.tolerance + 1 : f.tolerance);
        const v = computeVerdict(
          sc.input([reveal], {
            reembedded: new Map([[reveal.id, toHex(own)]]),
            noiseToleranceBits: f.tolerance,
          }),
        );
        const expected = ORDER.find((reason) => f[reason]) ?? 'accepted';
        expect(outcomeOf(v, node.nodeId)).toBe(expected);
        expect(v.status).toBe(expected === 'accepted' ? 'accepted' : 'no-consensus');
        expect(v.rejected.filter((r) => r.nodeId === node.nodeId)).toHaveLength(
          expected === 'accepted' ? 0 : 1,
        );
        if (expected === 'accepted') expect(fromHex(body.bEmbedding)).toEqual(bits);
        // What a coordinator reads to skip an embedding: the verdict's reason, when it comes before bits.
        expect(rejectedBeforeBits(sc.request.body, sc.seal.body, reveal.packet)).toBe(
          expected === 'accepted' || expected === 'EMBEDDING_DISAGREES' ? null : expected,
        );
      }),
      { seed: 0x0de7, numRuns: 96 },
    );
  });

  test('a reveal from a key the seal does not list is NOT_SEALED before any bits', async () => {
    const sc = await buildScenario({
      label: 'reasons-outsider',
      bits: BITS,
      frame: { quorum: 1, maxCommits: 1, revealWindowMs: WINDOW },
      nodes: [{ output: 'Paris', bits: randomBits(BITS, () => 0.3) }],
    });
    const node = sc.nodes[0]!;
    const outsider = await signReveal(await testKey('reasons-outsider/other'), node.revealBody);
    expect(rejectedBeforeBits(sc.request.body, sc.seal.body, outsider.packet)).toBe('NOT_SEALED');
    expect(rejectedBeforeBits(sc.request.body, sc.seal.body, node.reveal!.packet)).toBeNull();
    const v = computeVerdict(sc.input([node.reveal!, outsider]));
    expect(v.rejected).toContainEqual(
      expect.objectContaining({ revealId: outsider.id, reason: 'NOT_SEALED' }),
    );
  });
});
