import { describe, expect, test } from 'bun:test';
import { outputDigest } from '../commitment/commitment.ts';
import { fromHex, toHex, utf8 } from '../encoding/bytes.ts';
import { canonicalBytes, canonicalJson } from '../encoding/canonical.ts';
import { taggedHash } from '../encoding/hash.ts';
import { isSynodError } from '../errors.ts';
import { packetId, signPacket } from '../packets/envelope.ts';
import { type Verdict, VerdictSchema } from '../packets/schemas.ts';
import {
  buildRequest,
  buildScenario,
  flipBits,
  LLM,
  type NodeSpec,
  OTHER_LLM,
  outcomeOf,
  prng,
  randomBits,
  range,
  type Scenario,
  SEAL_AT,
  signReveal,
  testKey,
} from './fixtures.test-helpers.ts';
import { claimedReembeddings, computeVerdict, verdictDigest, winnerTiebreak } from './verdict.ts';

// 64 bits and the default secDistance 0.15: thresholdBits = floor(0.15 × 64) = 9.
const BITS = 64;
const BASE = randomBits(BITS, prng(1));
const FAR = flipBits(BASE, range(0, 32));
const PARIS = 'The capital of France is Paris.';
const agree = (flips: number[] = []): NodeSpec => ({ output: PARIS, bits: flipBits(BASE, flips) });

/** The verdict, after checking what every verdict must satisfy. */
function verdictOf(sc: Scenario, reveals = sc.reveals, extra = {}): Verdict {
  const verdict = computeVerdict(sc.input(reveals, extra));
  expect(VerdictSchema.parse(verdict)).toEqual(verdict);
  const members = sc.seal.body.members.map((m) => m.nodeId);
  for (const nodeId of members) {
    const outcomes =
      verdict.accepted.filter((a) => a.nodeId === nodeId).length +
      verdict.rejected.filter((r) => r.nodeId === nodeId && r.reason !== 'DUPLICATE_REVEAL').length;
    expect(outcomes).toBe(1);
  }
  for (const a of verdict.accepted) expect(members).toContain(a.nodeId);
  if (verdict.status === 'accepted') {
    expect(verdict.accepted.length).toBeGreaterThanOrEqual(verdict.required);
    expect(verdict.accepted.map((a) => a.nodeId)).toContain(verdict.winner?.nodeId as string);
  } else {
    expect(verdict.accepted).toEqual([]);
    expect(verdict.winner).toBeNull();
  }
  return verdict;
}

const nodeIdOf = (sc: Scenario, i: number) => (sc.nodes[i] as Scenario['nodes'][number]).nodeId;
const commitmentOf = (sc: Scenario, i: number) => (sc.nodes[i] as Scenario['nodes'][number]).commitment;
const node = (sc: Scenario, i: number) => sc.nodes[i] as Scenario['nodes'][number];

describe('computeVerdict', () => {
  test('all agree: accepted, every member in the cluster, frame numbers exact', async () => {
    const sc = await buildScenario({
      label: 'all-agree',
      bits: BITS,
      nodes: [agree(), agree([1]), agree([2, 3]), agree([4]), agree([5, 6, 7])],
    });
    const v = verdictOf(sc);
    expect(v.status).toBe('accepted');
    expect(v.requestId).toBe(sc.request.body.requestId);
    expect(v.sealId).toBe(sc.sealId);
    expect(v.bits).toBe(64);
    expect(v.thresholdBits).toBe(9);
    expect(v.sealSize).toBe(5);
    expect(v.required).toBe(3); // ceil(0.6 × 5)
    expect(v.accepted.map((a) => a.commitment)).toEqual(sc.nodes.map((n) => n.commitment).sort());
    expect(v.rejected).toEqual([]);
    // Node 0 (no flips) is the medoid: its distances 0+1+2+1+3 = 7 are the smallest sum.
    expect(v.winner).toEqual({
      nodeId: nodeIdOf(sc, 0),
      commitment: commitmentOf(sc, 0),
      model: LLM,
      output: PARIS,
      outputDigest: outputDigest(PARIS),
    });
    // The centre is the smallest commitment among the (equal, size 5) balls.
    expect(v.centre?.commitment).toBe(sc.nodes.map((n) => n.commitment).sort()[0] as string);
  });

  test('a garbage reveal is rejected with COMMITMENT_MISMATCH and the rest still agree', async () => {
    const sc = await buildScenario({
      label: 'garbage',
      bits: BITS,
      nodes: [agree(), agree([1]), agree([2]), agree([3]), { ...agree(), reveals: false }],
    });
    const liar = node(sc, 4);
    const garbage = await signReveal(liar.key, {
      ...liar.revealBody,
      output: 'lorem ipsum',
      bEmbedding: toHex(randomBits(BITS, prng(99))),
    });
    const v = verdictOf(sc, [...sc.reveals, garbage]);
    expect(v.status).toBe('accepted');
    expect(v.accepted).toHaveLength(4);
    expect(v.rejected).toEqual([
      {
        nodeId: liar.nodeId,
        commitment: liar.commitment,
        revealId: garbage.id,
        reason: 'COMMITMENT_MISMATCH',
      },
    ]);
  });

  test('a copier who reveals another node’s answer after the seal is rejected and gains nothing', async () => {
    // 5 sealed, secPercentage 0.8 -> required 4. Three honest nodes agree; node 3 committed a different
    // answer and, after seeing node 0's reveal, re-signs node 0's output, bits and salt as its own.
    // Had the copy counted, 4 would agree; it must not.
    const sc = await buildScenario({
      label: 'copier',
      bits: BITS,
      frame: { secPercentage: 0.8 },
      nodes: [
        agree(),
        agree([1]),
        agree([2]),
        { output: 'I do not know.', bits: FAR, reveals: false },
        { ...agree(), reveals: false },
      ],
    });
    const copier = node(sc, 3);
    const copy = await signReveal(copier.key, { ...node(sc, 0).revealBody, createdAt: SEAL_AT + 5_000 });
    const withCopy = verdictOf(sc, [...sc.reveals, copy]);
    expect(withCopy.required).toBe(4);
    expect(outcomeOf(withCopy, copier.nodeId)).toBe('COMMITMENT_MISMATCH');
    expect(withCopy.status).toBe('no-consensus');

    // Gains nothing: the verdict equals the one where the copier stayed silent, but for its own entry.
    const silent = verdictOf(sc);
    expect(outcomeOf(silent, copier.nodeId)).toBe('NOT_REVEALED');
    const strip = (v: Verdict) => ({ ...v, rejected: v.rejected.filter((r) => r.nodeId !== copier.nodeId) });
    expect(canonicalJson(strip(withCopy))).toBe(canonicalJson(strip(silent)));

    // A copy of its own-key body with the victim's bits but its own salt fares no better.
    const copy2 = await signReveal(copier.key, {
      ...copier.revealBody,
      output: PARIS,
      bEmbedding: toHex(BASE),
    });
    expect(outcomeOf(verdictOf(sc, [...sc.reveals, copy2]), copier.nodeId)).toBe('COMMITMENT_MISMATCH');
  });

  test('a reveal from a node outside the seal is NOT_SEALED and changes nothing else', async () => {
    const sc = await buildScenario({
      label: 'not-sealed',
      bits: BITS,
      nodes: [agree(), agree([1]), agree()],
    });
    const outsider = await testKey('not-sealed/outsider');
    // Replays member 0's body under its own key, and also reveals twice: listed once.
    const r1 = await signReveal(outsider, node(sc, 0).revealBody);
    const r2 = await signReveal(outsider, { ...node(sc, 0).revealBody, createdAt: SEAL_AT + 1 });
    const v = verdictOf(sc, [r1, ...sc.reveals, r2]);
    expect(v.rejected).toEqual([
      {
        nodeId: outsider.nodeId,
        commitment: null,
        revealId: [r1.id, r2.id].sort()[0] as string,
        reason: 'NOT_SEALED',
      },
    ]);
    const { rejected: _a, ...rest } = v;
    const { rejected: _b, ...restWithout } = verdictOf(sc);
    expect(rest).toEqual(restWithout);
  });

  test('unrevealed members count against: 5 sealed, 3 agree, secPercentage 0.7 -> no consensus', async () => {
    const specs = [agree(), agree([1]), agree([2]), agree([3]), agree([4])];
    const sc = await buildScenario({
      label: 'unrevealed',
      bits: BITS,
      frame: { secPercentage: 0.7 },
      nodes: specs.map((s, i) => ({ ...s, reveals: i < 3 })),
    });
    const v = verdictOf(sc);
    expect(v.required).toBe(4); // ceil(0.7 × 5)
    expect(v.status).toBe('no-consensus');
    expect(v.winner).toBeNull();
    expect(v.accepted).toEqual([]);
    const three = sc.nodes.slice(0, 3);
    expect(v.centre?.commitment).toBe(three.map((n) => n.commitment).sort()[0] as string);
    for (const n of three) expect(outcomeOf(v, n.nodeId)).toBe('OUTSIDE_CLUSTER');
    for (const n of sc.nodes.slice(3)) {
      expect(v.rejected).toContainEqual({
        nodeId: n.nodeId,
        commitment: n.commitment,
        revealId: null,
        reason: 'NOT_REVEALED',
      });
    }

    // One more agreeing reveal reaches the threshold.
    const fourth = await signReveal(node(sc, 3).key, node(sc, 3).revealBody);
    const v4 = verdictOf(sc, [...sc.reveals, fourth]);
    expect(v4.status).toBe('accepted');
    expect(v4.accepted).toHaveLength(4);
  });

  test('a reveal after seal.createdAt + revealWindowMs is REVEAL_LATE; one at the deadline counts', async () => {
    const deadline = SEAL_AT + 10_000; // FRAME_DEFAULTS.revealWindowMs
    const sc = await buildScenario({
      label: 'late',
      bits: BITS,
      nodes: [
        agree(),
        agree([1]),
        { ...agree([2]), revealAt: deadline },
        { ...agree([3]), revealAt: deadline + 1 },
      ],
    });
    const v = verdictOf(sc);
    expect(outcomeOf(v, nodeIdOf(sc, 2))).toBe('accepted');
    expect(v.rejected).toEqual([
      {
        nodeId: nodeIdOf(sc, 3),
        commitment: commitmentOf(sc, 3),
        revealId: node(sc, 3).reveal?.id as string,
        reason: 'REVEAL_LATE',
      },
    ]);
  });

  test('a model outside acceptedModels is MODEL_NOT_ACCEPTED, even when its commitment opens', async () => {
    const nodes = [agree(), agree([1]), { ...agree([2]), model: OTHER_LLM }];
    const sc = await buildScenario({ label: 'model', bits: BITS, nodes });
    expect(outcomeOf(verdictOf(sc), nodeIdOf(sc, 2))).toBe('MODEL_NOT_ACCEPTED');
    const both = await buildScenario({
      label: 'model',
      bits: BITS,
      nodes,
      acceptedModels: [LLM.id, OTHER_LLM.id],
    });
    expect(outcomeOf(verdictOf(both), nodeIdOf(both, 2))).toBe('accepted');
  });

  test('claimed bits of the wrong length are EMBEDDING_LENGTH, even when the commitment opens', async () => {
    const sc = await buildScenario({
      label: 'length',
      bits: BITS,
      nodes: [
        agree(),
        agree([1]),
        { output: PARIS, bits: BASE.slice(0, 7) },
        { output: PARIS, bits: Uint8Array.from([...BASE, 0]) },
        agree([2]),
        agree([3]),
      ],
    });
    const v = verdictOf(sc);
    expect(outcomeOf(v, nodeIdOf(sc, 2))).toBe('EMBEDDING_LENGTH');
    expect(outcomeOf(v, nodeIdOf(sc, 3))).toBe('EMBEDDING_LENGTH');
    expect(v.required).toBe(4); // ceil(0.6 × 6): the two invalid members count against
    expect(v.status).toBe('accepted');
    expect(v.accepted).toHaveLength(4);
  });

  test('equal balls: the centre with the smallest commitment wins', async () => {
    // Two groups of two, 32 bits apart; secPercentage 0.5 -> required 2; every ball has size 2.
    const sc = await buildScenario({
      label: 'tie-balls',
      bits: BITS,
      frame: { secPercentage: 0.5 },
      nodes: [
        agree(),
        agree([40]),
        { output: 'Lyon', bits: FAR },
        { output: 'Lyon', bits: flipBits(FAR, [40]) },
      ],
    });
    const v = verdictOf(sc);
    const smallest = [...sc.nodes].sort((a, b) =>
      a.commitment < b.commitment ? -1 : 1,
    )[0] as Scenario['nodes'][number];
    const group = smallest.index < 2 ? [0, 1] : [2, 3];
    expect(v.status).toBe('accepted');
    expect(v.centre).toEqual({ nodeId: smallest.nodeId, commitment: smallest.commitment });
    expect(v.accepted.map((a) => a.nodeId).sort()).toEqual(group.map((i) => nodeIdOf(sc, i)).sort());
    for (const i of [0, 1, 2, 3].filter((i) => !group.includes(i))) {
      expect(outcomeOf(v, nodeIdOf(sc, i))).toBe('OUTSIDE_CLUSTER');
    }
  });

  test('a larger ball beats a smaller commitment', async () => {
    const sc = await buildScenario({
      label: 'bigger-ball',
      bits: BITS,
      frame: { secPercentage: 0.4 },
      nodes: [
        agree(),
        agree([1]),
        agree([2]),
        { output: 'Lyon', bits: FAR },
        { output: 'Lyon', bits: flipBits(FAR, [40]) },
      ],
    });
    const v = verdictOf(sc);
    expect(v.status).toBe('accepted');
    expect(v.accepted.map((a) => a.nodeId).sort()).toEqual([0, 1, 2].map((i) => nodeIdOf(sc, i)).sort());
  });

  test('the winner is the medoid, not the centre; equal sums fall to the winner tie-break hash', async () => {
    // A = base, B = A with bits 0-1 flipped, C = A with bits 2-3 flipped: sums A 4, B 6, C 6.
    const sc = await buildScenario({
      label: 'medoid',
      bits: BITS,
      nodes: [agree([0, 1]), agree(), agree([2, 3])],
    });
    const v = verdictOf(sc);
    expect(v.winner?.nodeId).toBe(nodeIdOf(sc, 1));

    // Two members 3 bits apart: equal sums, so the smaller taggedHash('winner-tiebreak', ...) wins.
    const pair = await buildScenario({
      label: 'medoid-tie',
      bits: BITS,
      frame: { secPercentage: 1 },
      nodes: [agree(), agree([10, 20, 30])],
    });
    const vp = verdictOf(pair);
    const requestId = pair.request.body.requestId;
    const keys = pair.nodes.map((n) => winnerTiebreak(requestId, n.commitment));
    expect(keys[0]).not.toBe(keys[1]);
    const expected = (keys[0] as string) < (keys[1] as string) ? 0 : 1;
    expect(vp.winner?.nodeId).toBe(nodeIdOf(pair, expected));
    expect(winnerTiebreak(requestId, commitmentOf(pair, 0))).toBe(
      toHex(taggedHash('winner-tiebreak', utf8(requestId), fromHex(commitmentOf(pair, 0)))),
    );
  });

  test('a member that reveals twice is counted once; its other reveal is DUPLICATE_REVEAL', async () => {
    const sc = await buildScenario({ label: 'dup', bits: BITS, nodes: [agree(), agree([1]), agree([2])] });
    const n0 = node(sc, 0);
    const again = await signReveal(n0.key, { ...n0.revealBody, createdAt: n0.revealBody.createdAt + 1 });
    const first = n0.reveal as NonNullable<typeof n0.reveal>;
    const v = verdictOf(sc, [again, ...sc.reveals, first]); // the same packet twice is one reveal
    expect(v.accepted.filter((a) => a.nodeId === n0.nodeId)).toHaveLength(1);
    expect(v.rejected).toEqual([
      {
        nodeId: n0.nodeId,
        commitment: n0.commitment,
        revealId: [first.id, again.id].sort()[1] as string, // the larger id
        reason: 'DUPLICATE_REVEAL',
      },
    ]);

    // A valid reveal is preferred to an invalid one, whatever the ids.
    const junk = await signReveal(n0.key, { ...n0.revealBody, output: 'junk' });
    const vj = verdictOf(sc, [...sc.reveals, junk]);
    expect(outcomeOf(vj, n0.nodeId)).toBe('accepted');
    expect(vj.rejected).toEqual([
      { nodeId: n0.nodeId, commitment: n0.commitment, revealId: junk.id, reason: 'DUPLICATE_REVEAL' },
    ]);
  });

  test("a reveal's finishReason is not consensus: the verdict is the same with it, and a second reveal differing in it is a duplicate", async () => {
    const sc = await buildScenario({ label: 'finish', bits: BITS, nodes: [agree(), agree([1]), agree([2])] });
    const cut = await Promise.all(
      sc.nodes.map((n) => signReveal(n.key, { ...n.revealBody, finishReason: 'length' })),
    );
    const v = verdictOf(sc);
    expect(v.status).toBe('accepted');
    expect(verdictOf(sc, cut)).toEqual(v);
    const n0 = node(sc, 0);
    const both = [...sc.reveals, cut[0] as NonNullable<(typeof cut)[0]>];
    const vb = verdictOf(sc, both);
    expect(vb.accepted).toEqual(v.accepted);
    expect(vb.winner).toEqual(v.winner);
    expect(vb.rejected).toEqual([
      {
        nodeId: n0.nodeId,
        commitment: n0.commitment,
        revealId: [
          (n0.reveal as NonNullable<typeof n0.reveal>).id,
          (cut[0] as { id: string }).id,
        ].sort()[1] as string,
        reason: 'DUPLICATE_REVEAL',
      },
    ]);
  });

  test('re-embedding: bits farther than the noise tolerance are EMBEDDING_DISAGREES', async () => {
    const sc = await buildScenario({
      label: 'reembed',
      bits: BITS,
      nodes: [agree(), agree([1]), agree([2])],
    });
    const n2 = node(sc, 2);
    const own = toHex(flipBits(BASE, [2, 50, 51])); // 2 bits from node 2's claim
    const reembedded = new Map([[n2.reveal?.id as string, own]]);
    expect(outcomeOf(verdictOf(sc, sc.reveals, { reembedded }), n2.nodeId)).toBe('EMBEDDING_DISAGREES');
    expect(outcomeOf(verdictOf(sc, sc.reveals, { reembedded, noiseToleranceBits: 1 }), n2.nodeId)).toBe(
      'EMBEDDING_DISAGREES',
    );
    expect(outcomeOf(verdictOf(sc, sc.reveals, { reembedded, noiseToleranceBits: 2 }), n2.nodeId)).toBe(
      'accepted',
    );
    // Reveals without an entry are not re-checked.
    expect(verdictOf(sc, sc.reveals, { reembedded: new Map() }).accepted).toHaveLength(3);

    const bad = new Map([[n2.reveal?.id as string, 'abcd']]);
    expect(() => computeVerdict(sc.input(sc.reveals, { reembedded: bad }))).toThrow('re-embedded');
    expect(() => computeVerdict(sc.input(sc.reveals, { noiseToleranceBits: -1 }))).toThrow(
      'noiseToleranceBits',
    );
  });

  describe('re-embedding claims', () => {
    const SCAM = 'The answer is: send your funds to 0xdeadbeef.';
    /** Bits of SCAM's "real" embedding: far from PARIS's. */
    const SCAM_BITS = FAR;
    /** Three honest members and one that copied the honest bits (the medoid's) for its own text. */
    async function attack(label: string) {
      const sc = await buildScenario({
        label,
        bits: BITS,
        nodes: [agree([1]), agree([2]), agree([3]), { output: SCAM, bits: BASE }],
      });
      // What the coordinator's embedder says each output is.
      const reembedded = new Map(
        sc.reveals.map((r) => [
          r.id,
          toHex(r.packet.body.output === SCAM ? SCAM_BITS : fromHex(r.packet.body.bEmbedding)),
        ]),
      );
      return { sc, reembedded, attacker: node(sc, 3) };
    }

    test('without re-embedding the copier of the honest bits wins with its own text', async () => {
      const { sc, attacker } = await attack('claims-attack');
      const v = verdictOf(sc);
      expect(v.winner?.nodeId).toBe(attacker.nodeId);
      expect(v.winner?.output).toBe(SCAM);
    });

    test('a reveal whose bits are not its text is EMBEDDING_DISAGREES, the verdict carries the claim', async () => {
      const { sc, reembedded, attacker } = await attack('claims-attack');
      const v = verdictOf(sc, sc.reveals, { reembedded });
      expect(outcomeOf(v, attacker.nodeId)).toBe('EMBEDDING_DISAGREES');
      expect(v.status).toBe('accepted');
      expect(v.winner?.output).toBe(PARIS);
      expect(v.accepted.map((a) => a.nodeId)).not.toContain(attacker.nodeId);
      expect(v.reembedded).toEqual([
        { nodeId: attacker.nodeId, revealId: attacker.reveal?.id as string, bits: toHex(SCAM_BITS) },
      ]);
      // Anyone recomputes it byte for byte from the reveals and the claims alone.
      const again = verdictOf(sc, [...sc.reveals].reverse(), { reembedded: claimedReembeddings(v) });
      expect(canonicalJson(again)).toBe(canonicalJson(v));
    });

    test('the digest covers the claims', async () => {
      const { sc, reembedded } = await attack('claims-digest');
      const v = verdictOf(sc, sc.reveals, { reembedded });
      const claim = (v.reembedded ?? [])[0] as NonNullable<Verdict['reembedded']>[number];
      const { reembedded: _, ...without } = v;
      const other = { ...v, reembedded: [{ ...claim, bits: toHex(flipBits(SCAM_BITS, [0])) }] };
      expect(verdictDigest(without)).not.toBe(verdictDigest(v));
      expect(verdictDigest(other)).not.toBe(verdictDigest(v));
      // A claim that is the revealed bits itself recomputes to another verdict (the reveal is then valid).
      const lie = new Map([[claim.revealId, toHex(BASE)]]);
      expect(verdictDigest(verdictOf(sc, sc.reveals, { reembedded: lie }))).not.toBe(verdictDigest(v));
    });

    test('an honest run re-embedded is byte for byte the verdict without re-embedding', async () => {
      const sc = await buildScenario({
        label: 'claims-honest',
        bits: BITS,
        nodes: [agree(), agree([1]), agree([2, 3]), { output: 'Paris.', bits: FAR }],
      });
      const own = new Map(sc.reveals.map((r) => [r.id, r.packet.body.bEmbedding]));
      const plain = verdictOf(sc);
      const reembedded = verdictOf(sc, sc.reveals, { reembedded: own });
      expect('reembedded' in reembedded).toBe(false);
      expect(canonicalJson(reembedded)).toBe(canonicalJson(plain));
      // Within the tolerance: no claim either.
      const near = new Map(
        sc.reveals.map((r) => [r.id, toHex(flipBits(fromHex(r.packet.body.bEmbedding), [60]))]),
      );
      expect(canonicalJson(verdictOf(sc, sc.reveals, { reembedded: near, noiseToleranceBits: 1 }))).toBe(
        canonicalJson(plain),
      );
    });

    test('claims recompute the verdict whatever tolerance the author used', async () => {
      const { sc, reembedded } = await attack('claims-tolerance');
      const noisy = new Map([...reembedded].map(([id, bits]) => [id, toHex(flipBits(fromHex(bits), [63]))]));
      const v = verdictOf(sc, sc.reveals, { reembedded: noisy, noiseToleranceBits: 1 });
      expect(v.reembedded).toHaveLength(1);
      expect(canonicalJson(verdictOf(sc, sc.reveals, { reembedded: claimedReembeddings(v) }))).toBe(
        canonicalJson(v),
      );
    });

    test("one claim covers a member's every reveal of that text, whichever the author re-embedded", async () => {
      const { sc, reembedded, attacker } = await attack('claims-dupes');
      const body = attacker.revealBody;
      const later = [
        await signReveal(attacker.key, { ...body, createdAt: body.createdAt + 1 }),
        await signReveal(attacker.key, { ...body, createdAt: body.createdAt + 2 }),
        // Another text it never committed to: COMMITMENT_MISMATCH, whatever its re-embedding.
        await signReveal(attacker.key, { ...body, output: PARIS, createdAt: body.createdAt + 3 }),
      ];
      const reveals = [...sc.reveals, ...later];
      // The author re-embedded only the largest-id reveal of the text, or all of them.
      const ids = [attacker.reveal as NonNullable<typeof attacker.reveal>, ...later.slice(0, 2)]
        .map((r) => r.id)
        .sort();
      const some = new Map([...reembedded].filter(([id]) => !ids.includes(id)));
      some.set(ids[2] as string, toHex(SCAM_BITS));
      const all = new Map([...reembedded, ...later.map((r) => [r.id, toHex(SCAM_BITS)] as const)]);
      for (const map of [some, all]) {
        const v = verdictOf(sc, reveals, { reembedded: map });
        expect(outcomeOf(v, attacker.nodeId)).toBe('EMBEDDING_DISAGREES');
        expect(v.reembedded).toHaveLength(1);
        expect(v.winner?.output).toBe(PARIS);
        const again = verdictOf(sc, [...reveals].reverse(), { reembedded: claimedReembeddings(v) });
        expect(canonicalJson(again)).toBe(canonicalJson(v));
      }
    });

    test('the schema: claims hold the verdict bit count, never an empty list', async () => {
      const { sc, reembedded } = await attack('claims-schema');
      const v = verdictOf(sc, sc.reveals, { reembedded });
      const claim = (v.reembedded ?? [])[0] as NonNullable<Verdict['reembedded']>[number];
      expect(VerdictSchema.safeParse({ ...v, reembedded: [] }).success).toBe(false);
      expect(VerdictSchema.safeParse({ ...v, reembedded: [{ ...claim, bits: 'abcd' }] }).success).toBe(false);
      expect(VerdictSchema.safeParse({ ...v, reembedded: [{ ...claim, extra: 1 }] }).success).toBe(false);
    });
  });

  test('a seal of another request is SEAL_INVALID', async () => {
    const sc = await buildScenario({ label: 'seal-a', bits: BITS, nodes: [agree()] });
    const other = await buildScenario({ label: 'seal-b', bits: BITS, nodes: [agree()] });
    let caught: unknown;
    try {
      computeVerdict({ ...sc.input(), seal: other.seal, sealId: other.sealId });
    } catch (e) {
      caught = e;
    }
    expect(isSynodError(caught, 'SEAL_INVALID')).toBe(true);

    // Same requestId, different request packet (a request with the same id but other content).
    const forged = await buildRequest('seal-a', BITS);
    const tampered = { ...forged, body: { ...forged.body, prompt: 'Something else' } };
    expect(packetId(tampered)).not.toBe(sc.requestPacketId);
    caught = undefined;
    try {
      computeVerdict({ ...sc.input(), request: tampered });
    } catch (e) {
      caught = e;
    }
    expect(isSynodError(caught, 'SEAL_INVALID')).toBe(true);
  });

  test('a member’s reveal for another request is ignored: the member has NOT_REVEALED', async () => {
    const sc = await buildScenario({ label: 'other-request', bits: BITS, nodes: [agree(), agree([1])] });
    const elsewhere = await buildScenario({ label: 'other-request-2', bits: BITS, nodes: [agree()] });
    const n1 = node(sc, 1);
    const foreign = await signReveal(n1.key, {
      ...n1.revealBody,
      requestId: elsewhere.request.body.requestId,
    });
    const v = verdictOf(sc, [
      node(sc, 0).reveal as NonNullable<Scenario['nodes'][number]['reveal']>,
      foreign,
    ]);
    expect(outcomeOf(v, n1.nodeId)).toBe('NOT_REVEALED');
    expect(v.rejected.some((r) => r.revealId === foreign.id)).toBe(false);
  });

  test('no valid reveal at all: no consensus, no centre, every member accounted for', async () => {
    const sc = await buildScenario({
      label: 'none',
      bits: BITS,
      nodes: [agree(), { ...agree(), model: OTHER_LLM }],
    });
    const v = verdictOf(sc, [node(sc, 1).reveal as NonNullable<Scenario['nodes'][number]['reveal']>]);
    expect(v.status).toBe('no-consensus');
    expect(v.centre).toBeNull();
    expect(outcomeOf(v, nodeIdOf(sc, 0))).toBe('NOT_REVEALED');
    expect(outcomeOf(v, nodeIdOf(sc, 1))).toBe('MODEL_NOT_ACCEPTED');
  });

  test('the verdict stays within its schema under a flood of duplicates and unsealed reveals', async () => {
    // 128 members (LIMITS.maxSealMembers), each revealing two different junk bodies: 128 mismatches and
    // 128 duplicates fill all 256 entries, so unsealed reveals are left to the transcript.
    const n = 128;
    const sc = await buildScenario({
      label: 'flood',
      bits: BITS,
      nodes: Array.from({ length: n }, () => ({ ...agree(), reveals: false })),
    });
    const junk = await Promise.all(
      sc.nodes.flatMap((m) => [
        signReveal(m.key, { ...m.revealBody, output: 'junk 1' }),
        signReveal(m.key, { ...m.revealBody, output: 'junk 2' }),
      ]),
    );
    const outsiders = await Promise.all(
      range(0, 5).map(async (i) => signReveal(await testKey(`flood/outsider/${i}`), node(sc, 0).revealBody)),
    );
    const v = verdictOf(sc, [...junk, ...outsiders]);
    expect(v.rejected).toHaveLength(256);
    expect(v.rejected.filter((r) => r.reason === 'DUPLICATE_REVEAL')).toHaveLength(n);
    expect(v.rejected.filter((r) => r.reason === 'COMMITMENT_MISMATCH')).toHaveLength(n);
    expect(v.rejected.filter((r) => r.reason === 'NOT_SEALED')).toHaveLength(0);

    // With room left, each unsealed node is listed once, in nodeId order.
    const few = verdictOf(sc, [...junk.filter((_, i) => i % 2 === 0), ...outsiders]);
    const unsealed = few.rejected.filter((r) => r.reason === 'NOT_SEALED').map((r) => r.nodeId);
    expect(unsealed).toEqual(outsiders.map((o) => o.packet.from).sort());
  });

  test('accepted is sorted by commitment and rejected by nodeId then revealId, nulls first', async () => {
    const sc = await buildScenario({
      label: 'order',
      bits: BITS,
      frame: { secPercentage: 0.3 },
      nodes: [
        agree(),
        agree([1]),
        agree([2]),
        { output: 'x', bits: FAR },
        { ...agree(), reveals: false },
        { ...agree(), model: OTHER_LLM },
      ],
    });
    const n4 = node(sc, 4);
    const junk = await signReveal(n4.key, {
      ...n4.revealBody,
      output: 'late junk',
      createdAt: SEAL_AT + 99_999,
    });
    const v = verdictOf(sc, [...sc.reveals, junk]);
    const commitments = v.accepted.map((a) => a.commitment);
    expect(commitments).toEqual([...commitments].sort());
    const keys = v.rejected.map((r) => `${r.nodeId}/${r.revealId ?? ''}`);
    expect(keys).toEqual([...keys].sort());
    expect(outcomeOf(v, n4.nodeId)).toBe('COMMITMENT_MISMATCH'); // the first failing check wins
  });
});

describe('verdictDigest', () => {
  test('is hex taggedHash("verdict", JCS(verdict)), stable across recomputation and sensitive to content', async () => {
    const sc = await buildScenario({ label: 'digest', bits: BITS, nodes: [agree(), agree([1]), agree([2])] });
    const v = computeVerdict(sc.input());
    const d = verdictDigest(v);
    expect(d).toMatch(/^[0-9a-f]{64}$/);
    expect(d).toBe(toHex(taggedHash('verdict', canonicalBytes(v))));
    expect(verdictDigest(computeVerdict(sc.input([...sc.reveals].reverse())))).toBe(d);
    expect(verdictDigest({ ...v, thresholdBits: v.thresholdBits + 1 })).not.toBe(d);
    expect(verdictDigest(JSON.parse(JSON.stringify(v)))).toBe(d);
  });

  test('a verdict signs as a verdict packet body', async () => {
    const sc = await buildScenario({ label: 'digest-packet', bits: BITS, nodes: [agree(), agree([1])] });
    const verdict = computeVerdict(sc.input());
    const coordinator = await testKey('digest-packet/coordinator');
    const packet = await signPacket(coordinator, 'verdict', {
      requestId: verdict.requestId,
      verdict,
      verdictDigest: verdictDigest(verdict),
      transcriptRoot: '00'.repeat(32),
      createdAt: SEAL_AT + 11_000,
    });
    expect(packet.body.verdict).toEqual(verdict);
  });
});
