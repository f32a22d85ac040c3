import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { isSynodError } from '../errors.ts';
import { parseInferenceInput } from '../packets/inference-input.ts';
import {
  distanceThresholdBits,
  exactSixDecimals,
  requiredAgreement,
  resolveFrame,
  toPpm,
  validateFrame,
} from './frame.ts';

const embeddingModel = { id: 'use-lite-512', fileHash: 'ab'.repeat(32), bits: 512 };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isSynodError(e) ? e.code : 'untyped';
  }
  return undefined;
}

describe('security frame', () => {
  test('defaults resolve to a valid frame', () => {
    const f = resolveFrame({ embeddingModel });
    expect(f.quorum).toBe(3);
    expect(f.maxCommits).toBe(3);
    expect(validateFrame(f)).toEqual(f);
  });

  test('maxCommits defaults to quorum and never below it', () => {
    expect(resolveFrame({ embeddingModel, quorum: 5 }).maxCommits).toBe(5);
    expect(
      codeOf(() => validateFrame({ ...resolveFrame({ embeddingModel }), quorum: 4, maxCommits: 3 })),
    ).toBe('FRAME_OUT_OF_RANGE');
  });

  test('fractions: every text of six decimals passes; a caller is held to them exactly, a packet read with the tolerance older relays signed under', () => {
    const base = resolveFrame({ embeddingModel });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), (k) => {
        const x = Number((k / 1e6).toFixed(6));
        expect(exactSixDecimals(x)).toBe(true);
        expect(validateFrame({ ...base, secPercentage: x }).secPercentage).toBe(x);
        expect(toPpm(x)).toBe(k);
      }),
    );
    for (const near of [0.1500000000001, 0.6666669999999, 0.7 + 0.1, 0.15 + Number.EPSILON]) {
      // From a caller: refused.
      expect(exactSixDecimals(near)).toBe(false);
      const input = parseInferenceInput({ prompt: 'a', frame: { secPercentage: near } });
      expect(input.ok ? null : input.issues[0]).toMatchObject({ path: 'frame.secPercentage' });
      // In a packet an older relay signed: read as it was.
      expect(validateFrame({ ...base, secPercentage: near }).secPercentage).toBe(near);
    }
  });

  test('every documented bound is enforced with FRAME_OUT_OF_RANGE', () => {
    const base = resolveFrame({ embeddingModel });
    const bad = [
      { secDistance: -0.01 },
      { secDistance: 0.51 },
      { secPercentage: 0 },
      { secPercentage: 1.01 },
      { secPercentage: 0.1234567 },
      { quorum: 0 },
      { quorum: 65 },
      { maxTimeMs: 999 },
      { maxTimeMs: 600_001 },
      { revealWindowMs: 100 },
      { embeddingModel: { ...embeddingModel, bits: 12 } },
      { embeddingModel: { ...embeddingModel, fileHash: 'AB'.repeat(32) } },
      { unknown: 1 },
    ];
    for (const b of bad) expect(codeOf(() => validateFrame({ ...base, ...b }))).toBe('FRAME_OUT_OF_RANGE');
    expect(codeOf(() => validateFrame({ ...base, secDistance: 0.5, secPercentage: 1 }))).toBeUndefined();
    expect(codeOf(() => validateFrame({ ...base, secDistance: 0 }))).toBeUndefined();
  });

  test('thresholds use exact integer arithmetic', () => {
    expect(distanceThresholdBits({ secDistance: 0.29 }, 100)).toBe(29); // 0.29*100 is 28.999… in floats
    expect(distanceThresholdBits({ secDistance: 0.25 }, 512)).toBe(128);
    expect(distanceThresholdBits({ secDistance: 0.1 }, 768)).toBe(76);
    expect(requiredAgreement({ secPercentage: 0.6 }, 5)).toBe(3);
    expect(requiredAgreement({ secPercentage: 0.7 }, 10)).toBe(7); // 0.7*10 is 7.000…1 in floats
    expect(requiredAgreement({ secPercentage: 1 }, 3)).toBe(3);
    expect(requiredAgreement({ secPercentage: 0.000001 }, 1)).toBe(1);
  });

  test('property: thresholds match exact rational arithmetic', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 500_000 }), fc.integer({ min: 1, max: 1024 }), (ppm, n) => {
        const frac = ppm / 1e6;
        expect(toPpm(frac)).toBe(ppm);
        const exactFloor = (BigInt(ppm) * BigInt(n)) / 1_000_000n;
        expect(BigInt(distanceThresholdBits({ secDistance: frac }, n))).toBe(exactFloor);
        const p = ppm * 2 || 1;
        const exactCeil = (BigInt(p) * BigInt(n) + 999_999n) / 1_000_000n;
        expect(BigInt(requiredAgreement({ secPercentage: p / 1e6 }, n))).toBe(
          exactCeil > 0n ? exactCeil : 1n,
        );
      }),
    );
  });
});
