import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { fromHex, lengthPrefixed, toHex, utf8 } from '../encoding/bytes.ts';
import { sha256, taggedHash } from '../encoding/hash.ts';
import { isSynodError } from '../errors.ts';
import {
  assertCommitment,
  type CommitmentInput,
  checkCommitment,
  computeCommitment,
  outputDigest,
} from './commitment.ts';

const base: CommitmentInput = {
  requestId: 'ab'.repeat(32),
  nodeId: 'cd'.repeat(32),
  model: { id: 'stories260K', fileHash: 'ef'.repeat(32) },
  output: 'Once upon a time there was a cat.',
  bEmbedding: '0f'.repeat(64),
  salt: '42'.repeat(32),
};

const hex32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));

describe('commitments', () => {
  test('deterministic lowercase sha256 hex', () => {
    expect(computeCommitment(base)).toBe(computeCommitment({ ...base }));
    expect(computeCommitment(base)).toMatch(/^[0-9a-f]{64}$/);
    expect(outputDigest('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  test('a matching reveal verifies; a mismatch says why', () => {
    const c = computeCommitment(base);
    expect(checkCommitment(c, base)).toEqual({ ok: true });
    const r = checkCommitment(c, { ...base, output: 'Once upon a time there was a dog.' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe('COMMITMENT_MISMATCH');
    let caught: unknown;
    try {
      assertCommitment(c, { ...base, salt: '00'.repeat(32) });
    } catch (e) {
      caught = e;
    }
    expect(isSynodError(caught, 'COMMITMENT_MISMATCH')).toBe(true);
  });

  test('malformed reveal material is a mismatch, not a crash', () => {
    const c = computeCommitment(base);
    expect(checkCommitment(c, { ...base, salt: 'zz' }).ok).toBe(false);
    expect(checkCommitment(c, { ...base, nodeId: 'short' }).ok).toBe(false);
  });

  test('property: the commitment binds every field (request, node, model, hash, output, bits, salt)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<keyof CommitmentInput>(
          'requestId',
          'nodeId',
          'model',
          'output',
          'bEmbedding',
          'salt',
        ),
        hex32,
        fc.string({ maxLength: 50 }),
        (field, h, text) => {
          const changed: CommitmentInput = { ...base };
          switch (field) {
            case 'requestId':
              changed.requestId = h === base.requestId ? '00'.repeat(32) : h;
              break;
            case 'nodeId':
              changed.nodeId = h === base.nodeId ? '00'.repeat(32) : h;
              break;
            case 'model':
              changed.model = {
                id: base.model.id,
                fileHash: h === base.model.fileHash ? '00'.repeat(32) : h,
              };
              break;
            case 'output':
              changed.output = text === base.output ? `${text}!` : text;
              break;
            case 'bEmbedding':
              changed.bEmbedding =
                h.slice(0, 128).padEnd(128, '0') === base.bEmbedding ? 'ff'.repeat(64) : h.padEnd(128, '0');
              break;
            case 'salt':
              changed.salt = h === base.salt ? '00'.repeat(32) : h;
              break;
          }
          expect(computeCommitment(changed)).not.toBe(computeCommitment(base));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('model id and request id boundaries cannot be shifted', () => {
    const a = computeCommitment({ ...base, model: { id: 'ab', fileHash: base.model.fileHash }, output: 'c' });
    const b = computeCommitment({ ...base, model: { id: 'a', fileHash: base.model.fileHash }, output: 'bc' });
    expect(a).not.toBe(b);
  });

  test('property: equals the documented formula, field by field, and fails where it fails', () => {
    const formula = (c: CommitmentInput) =>
      toHex(
        taggedHash(
          'commitment',
          lengthPrefixed(utf8(c.requestId)),
          lengthPrefixed(fromHex(c.nodeId, 32)),
          lengthPrefixed(utf8(c.model.id)),
          lengthPrefixed(fromHex(c.model.fileHash, 32)),
          lengthPrefixed(sha256(utf8(c.output))),
          lengthPrefixed(fromHex(c.bEmbedding)),
          lengthPrefixed(fromHex(c.salt, 32)),
        ),
      );
    const hexish = fc.oneof(
      hex32,
      fc.uint8Array({ maxLength: 200 }).map((b) => toHex(b)),
      fc.constantFrom('', 'zz', 'AB'.repeat(32), 'abc'),
    );
    fc.assert(
      fc.property(
        fc.string({ maxLength: 80 }),
        hexish,
        fc.string({ maxLength: 30 }),
        hexish,
        fc.string({ maxLength: 300 }),
        hexish,
        hexish,
        (requestId, nodeId, id, fileHash, output, bEmbedding, salt) => {
          const c: CommitmentInput = { requestId, nodeId, model: { id, fileHash }, output, bEmbedding, salt };
          let expected: string | undefined;
          let expectedError: unknown;
          try {
            expected = formula(c);
          } catch (e) {
            expectedError = e;
          }
          if (expectedError === undefined) expect(computeCommitment(c)).toBe(expected as string);
          else expect(() => computeCommitment(c)).toThrow((expectedError as Error).message);
        },
      ),
      { numRuns: 500 },
    );
  });
});
