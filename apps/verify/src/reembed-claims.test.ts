/**
 * A re-embedding coordinator's verdict (its `reembedded` claims): recomputed from the transcript and
 * the claims; with `--reembed`, a claim that is not the text's embedding is REEMBED_CLAIM_FALSE.
 */
import { describe, expect, test } from 'bun:test';
import {
  computeVerdict,
  fromHex,
  type Packet,
  packetId,
  signPacket,
  type Verdict,
  verdictDigest,
} from '@synod/shared';
import { AGREEING_BITS, type Forged, forgeTranscript, otherBits } from './forged.test-helpers.ts';
import { type ReembedOptions, reasonsOf, verifyInput } from './report.ts';
import { readVerifyInput } from './verify-input.ts';

const PARIS = 'The capital of France is Paris.';
const SCAM = 'The answer is: send your funds to 0xdeadbeef.';

/** This machine's embedder: Paris is the members' bits, anything else far from them. */
const embedder: ReembedOptions = {
  noiseToleranceBits: 0,
  load: async () => ({
    embedBits: async (text) => fromHex(text === PARIS ? AGREEING_BITS : otherBits(0)),
    close: async () => {},
  }),
};

/** Three honest members and a copier of their bits with its own text; a coordinator's verdict over it. */
async function attacked(claimsOf: (f: Forged) => Map<string, string>) {
  const f = await forgeTranscript({ members: [{}, {}, {}, { output: SCAM }] });
  const reveals = f.transcript.packets
    .filter((p): p is Packet<'reveal'> => p.type === 'reveal')
    .map((packet) => ({ id: packetId(packet), packet }));
  const request = f.transcript.packets.find((p) => p.type === 'request') as Packet<'request'>;
  const seal = f.transcript.packets.find((p) => p.type === 'seal') as Packet<'seal'>;
  const verdict: Verdict = computeVerdict({
    request,
    seal,
    sealId: packetId(seal),
    reveals,
    reembedded: claimsOf(f),
  });
  const digest = verdictDigest(verdict);
  const verdictPacket = await signPacket(f.coordinator, 'verdict', {
    requestId: f.requestId,
    verdict,
    verdictDigest: digest,
    transcriptRoot: f.root,
    createdAt: f.verdictPacket.body.createdAt,
  });
  const input = { transcript: f.transcript, claimed: { verdictDigest: digest, verdict }, verdictPacket };
  return { f, verdict, input, reveals };
}

const idOf = (reveals: { id: string; packet: Packet<'reveal'> }[], output: string, n = 0) =>
  (reveals.filter((r) => r.packet.body.output === output)[n] as { id: string }).id;

/** The true claim against the copier: its text's bits, far from the members' (this machine's embedder). */
const trueClaim = (f: Forged) =>
  new Map([
    [
      idOf(
        f.transcript.packets
          .filter((p) => p.type === 'reveal')
          .map((packet) => ({ id: packetId(packet), packet: packet as Packet<'reveal'> })),
        SCAM,
      ),
      otherBits(0),
    ],
  ]);

describe('a verdict with re-embedding claims', () => {
  test('true claims: it holds, with and without --reembed', async () => {
    const { input, verdict } = await attacked(trueClaim);
    expect(verdict.reembedded).toHaveLength(1);
    expect(verdict.winner?.output).toBe(PARIS);
    const plain = await verifyInput(input);
    expect(reasonsOf(plain)).toEqual([]);
    expect(plain.ok).toBe(true);
    const checked = await verifyInput(input, {}, embedder);
    expect(reasonsOf(checked)).toEqual([]);
    expect(checked.reembedded).toMatchObject({ disagree: [], falseClaims: [] });
    expect(checked.ok).toBe(true);
  });

  test('a false claim against an honest member: it recomputes, and --reembed says REEMBED_CLAIM_FALSE', async () => {
    const { input, verdict, reveals } = await attacked((f) => {
      const rs = f.transcript.packets
        .filter((p) => p.type === 'reveal')
        .map((packet) => ({ id: packetId(packet), packet: packet as Packet<'reveal'> }));
      return new Map([[idOf(rs, PARIS), otherBits(1)]]);
    });
    const victim = idOf(reveals, PARIS);
    expect(verdict.rejected).toContainEqual(
      expect.objectContaining({ revealId: victim, reason: 'EMBEDDING_DISAGREES' }),
    );
    // The transcript and the claims alone cannot tell: the verdict recomputes.
    expect((await verifyInput(input)).ok).toBe(true);
    const checked = await verifyInput(input, {}, embedder);
    expect(checked.ok).toBe(false);
    expect(checked.reembedded?.falseClaims).toEqual([
      expect.objectContaining({ revealId: victim, distance: 256 }),
    ]);
    // And the copier this coordinator let through is caught as before.
    expect(checked.reembedded?.disagree).toEqual([
      expect.objectContaining({ revealId: idOf(reveals, SCAM) }),
    ]);
    expect(reasonsOf(checked).some((r) => r.startsWith('REEMBED_CLAIM_FALSE'))).toBe(true);
  });

  test('claims dropped from the verdict shown: the recomputation differs from the signed digest', async () => {
    const { input, reveals } = await attacked(() => new Map());
    expect(reveals).toHaveLength(4);
    const withClaims = await attacked((f) => {
      const rs = f.transcript.packets
        .filter((p) => p.type === 'reveal')
        .map((packet) => ({ id: packetId(packet), packet: packet as Packet<'reveal'> }));
      return new Map([[idOf(rs, SCAM), otherBits(0)]]);
    });
    const { reembedded: _, ...stripped } = withClaims.verdict;
    const r = await verifyInput({
      transcript: withClaims.input.transcript,
      claimed: { verdictDigest: withClaims.input.claimed.verdictDigest, verdict: stripped },
    });
    expect(r.ok).toBe(false);
    expect((await verifyInput(input)).ok).toBe(true);
  });

  test('the body POST /v1/verify takes (transcript, expected digest, the claims beside): it holds', async () => {
    const { input, verdict, reveals } = await attacked(trueClaim);
    expect(reveals.length).toBeGreaterThan(0);
    const body = {
      transcript: input.transcript,
      expectedVerdictDigest: verdictDigest(verdict),
      reembedded: verdict.reembedded,
    };
    const r = await verifyInput(readVerifyInput(JSON.stringify(body)));
    expect(reasonsOf(r)).toEqual([]);
    expect(r.ok).toBe(true);
    // Without the claims, the recomputed verdict is another: the expected digest does not hold.
    const without = await verifyInput(readVerifyInput(JSON.stringify({ ...body, reembedded: undefined })));
    expect(without.ok).toBe(false);
  });
});
