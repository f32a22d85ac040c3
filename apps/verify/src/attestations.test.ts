import { describe, expect, test } from 'bun:test';
import { NodeKey, signPacket } from '@synod/shared';
import { checkAttestations } from './attestations.ts';

const REQUEST = 'a'.repeat(64);
const key = (n: number) => NodeKey.fromSeed(new Uint8Array(32).fill(n));
/** Keys 1 to 4 are the seal's members; any other key is outside it. */
const MEMBERS = await Promise.all([1, 2, 3, 4].map(async (n) => (await key(n)).nodeId));
const DERIVED = { verdictDigest: 'b'.repeat(64), root: 'c'.repeat(64), members: MEMBERS };
const attest = async (
  n: number,
  over: Partial<{ requestId: string; verdictDigest: string; transcriptRoot: string }> = {},
) =>
  signPacket(await key(n), 'attestation', {
    requestId: REQUEST,
    verdictDigest: DERIVED.verdictDigest,
    transcriptRoot: DERIVED.root,
    createdAt: 1_700_000_000_000,
    ...over,
  });

describe('checkAttestations', () => {
  test('counts distinct seal members whose signature verifies, and those attesting the derived verdict', async () => {
    const agreeing = [await attest(1), await attest(2)];
    const other = await attest(3, { verdictDigest: 'd'.repeat(64) });
    const r = await checkAttestations([...agreeing, other], REQUEST, DERIVED);
    expect(r).toEqual({
      nodes: 3,
      members: {
        sealSize: 4,
        signed: 3,
        agree: 2,
        conflicts: [
          { nodeId: MEMBERS[2] as string, verdictDigest: 'd'.repeat(64), transcriptRoot: 'c'.repeat(64) },
        ],
        otherRoot: [],
      },
      outsiders: { signed: 0, agree: 0, other: 0 },
      invalid: [],
    });
    // With no derived verdict (the transcript does not hold), there is no seal to tell members by.
    expect(await checkAttestations(agreeing, REQUEST, null)).toEqual({
      nodes: 2,
      members: null,
      outsiders: null,
      invalid: [],
    });
  });

  test('keys outside the seal are counted apart, never as support, whatever they attest', async () => {
    const outsiders = [await attest(8), await attest(9, { verdictDigest: 'd'.repeat(64) })];
    const sameVerdictOtherRoot = await attest(1, { transcriptRoot: 'e'.repeat(64) });
    const r = await checkAttestations([...outsiders, sameVerdictOtherRoot], REQUEST, DERIVED);
    expect(r.members).toMatchObject({ signed: 1, agree: 0, conflicts: [] });
    expect(r.members?.otherRoot.map((a) => a.nodeId)).toEqual([MEMBERS[0] as string]);
    expect(r.outsiders).toEqual({ signed: 2, agree: 1, other: 1 });
  });

  test('what does not verify or does not belong is listed with why, and never counted', async () => {
    const forged = structuredClone(await attest(1));
    forged.body.verdictDigest = 'e'.repeat(64);
    const elsewhere = await attest(2, { requestId: 'f'.repeat(64) });
    const twice = [await attest(3), await attest(3)];
    const notOne = await signPacket(await key(4), 'commit', {
      requestId: REQUEST,
      commitment: '0'.repeat(64),
      createdAt: 1_700_000_000_000,
    });
    const r = await checkAttestations(
      [forged, elsewhere, ...twice, notOne, { junk: true }],
      REQUEST,
      DERIVED,
    );
    expect(r.nodes).toBe(1);
    expect(r.members?.agree).toBe(1);
    expect(r.invalid.map((i) => i.why)).toEqual([
      'its signature does not verify',
      `attests request ${'f'.repeat(64)}`,
      'a second attestation from the same node',
      'a commit packet, not an attestation',
      expect.stringMatching(/^malformed: /),
    ]);
    expect(r.invalid[0]?.from).toBe(forged.from);
  });

  test('odd values are listed as malformed, never thrown: a deeply nested `from`, a lone surrogate', async () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const good = await attest(1);
    const surrogate = { ...good, body: { ...good.body, verdictDigest: 'b'.repeat(63) + '\uD800' } };
    const r = await checkAttestations([{ ...good, from: deep }, surrogate, 7, null], REQUEST, DERIVED);
    expect(r).toMatchObject({ nodes: 0, members: { signed: 0, agree: 0 } });
    expect(r.invalid.map((i) => i.from)).toEqual(['?', good.from, '?', '?']);
    expect(r.invalid.every((i) => i.why.startsWith('malformed: '))).toBe(true);
  });
});
