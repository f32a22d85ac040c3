import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import {
  bitAt,
  hamming,
  hammingDistanceMatrix,
  PackedMatrix,
  quantize,
  truncateBits,
} from '../embedding/binary.ts';
import { compareStrings, fromHex, toHex, utf8 } from '../encoding/bytes.ts';
import { canonicalJson } from '../encoding/canonical.ts';
import { taggedHash } from '../encoding/hash.ts';
import { distanceThresholdBits, requiredAgreement } from '../frame/frame.ts';
import { type Verdict, VerdictSchema } from '../packets/schemas.ts';
import {
  buildScenario,
  flipBits,
  OTHER_LLM,
  type Outcome,
  outcomeOf,
  prng,
  randomBits,
  type Scenario,
  SEAL_AT,
  signReveal,
  testKey,
} from './fixtures.test-helpers.ts';
import { clusterByHamming, computeVerdict, type RevealInput } from './verdict.ts';

// ---------------------------------------------------------------------------------------------------
// Independent, deliberately naive references: bit by bit, no matrices, no shared helpers.

function naiveHamming(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < a.length * 8; i++) if (bitAt(a, i) !== bitAt(b, i)) d++;
  return d;
}

interface Row {
  nodeId: string;
  commitment: string;
  bits: Uint8Array;
}

interface Reference {
  status: Verdict['status'];
  centre: string | null;
  accepted: string[];
  winner: string | null;
  maxBall: number;
}

function referenceCluster(
  rows: Row[],
  thresholdBits: number,
  required: number,
  requestId: string,
): Reference {
  if (rows.length === 0)
    return { status: 'no-consensus', centre: null, accepted: [], winner: null, maxBall: 0 };
  const ballOf = (c: Row) => rows.filter((r) => naiveHamming(r.bits, c.bits) <= thresholdBits);
  let centre = rows[0] as Row;
  for (const r of rows) {
    const a = ballOf(r).length;
    const b = ballOf(centre).length;
    if (a > b || (a === b && r.commitment < centre.commitment)) centre = r;
  }
  const ball = ballOf(centre);
  if (ball.length < required) {
    return {
      status: 'no-consensus',
      centre: centre.commitment,
      accepted: [],
      winner: null,
      maxBall: ball.length,
    };
  }
  const sum = (r: Row) => ball.reduce((s, o) => s + naiveHamming(r.bits, o.bits), 0);
  const key = (r: Row) => toHex(taggedHash('winner-tiebreak', utf8(requestId), fromHex(r.commitment)));
  const winner = [...ball].sort((a, b) => sum(a) - sum(b) || compareStrings(key(a), key(b)))[0] as Row;
  return {
    status: 'accepted',
    centre: centre.commitment,
    accepted: ball.map((r) => r.commitment).sort(),
    winner: winner.commitment,
    maxBall: ball.length,
  };
}

// ---------------------------------------------------------------------------------------------------
// Random scenarios: up to 8 sealed nodes, each near a common base vector, each behaving in one way.

const MODES = ['honest', 'honest', 'honest', 'silent', 'garbage', 'late', 'twice', 'wrong-model'] as const;
type Mode = (typeof MODES)[number];

const scenarioArb = fc.record({
  bits: fc.constantFrom(8, 32, 64, 96),
  secDistance: fc.constantFrom(0, 0.05, 0.1, 0.15, 0.25, 0.5),
  secPercentage: fc.constantFrom(0.1, 0.34, 0.5, 0.6, 0.75, 1),
  seed: fc.integer(),
  nodes: fc.array(
    fc.record({
      flips: fc.uniqueArray(fc.nat(95), { maxLength: 20 }),
      mode: fc.constantFrom(...MODES),
      output: fc.constantFrom('Paris', 'Paris.', 'Lyon'),
    }),
    { minLength: 1, maxLength: 8 },
  ),
  outsiders: fc.nat(2),
});
type ScenarioSpec = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

interface Built {
  sc: Scenario;
  modes: Mode[];
  /** Every reveal: honest, garbage, late, duplicate, wrong-model and outsiders. */
  pool: RevealInput[];
  /** The rows a correct implementation clusters (valid considered reveals). */
  rows: Row[];
}

async function build(spec: ScenarioSpec): Promise<Built> {
  const base = randomBits(spec.bits, prng(spec.seed));
  const deadline = SEAL_AT + 10_000;
  const modes = spec.nodes.map((n) => n.mode);
  const sc = await buildScenario({
    label: 'prop',
    bits: spec.bits,
    frame: { secDistance: spec.secDistance, secPercentage: spec.secPercentage },
    nodes: spec.nodes.map((n) => ({
      output: n.output,
      bits: flipBits(
        base,
        n.flips.filter((f) => f < spec.bits),
      ),
      reveals: n.mode === 'honest' || n.mode === 'twice' || n.mode === 'late' || n.mode === 'wrong-model',
      ...(n.mode === 'late' ? { revealAt: deadline + 1 } : {}),
      ...(n.mode === 'wrong-model' ? { model: OTHER_LLM } : {}),
    })),
  });
  const pool = [...sc.reveals];
  for (const n of sc.nodes) {
    const mode = modes[n.index] as Mode;
    if (mode === 'garbage') pool.push(await signReveal(n.key, { ...n.revealBody, output: 'garbage' }));
    if (mode === 'twice')
      pool.push(await signReveal(n.key, { ...n.revealBody, createdAt: n.revealBody.createdAt + 7 }));
  }
  const first = sc.nodes[0] as Scenario['nodes'][number];
  for (let i = 0; i < spec.outsiders; i++)
    pool.push(await signReveal(await testKey(`prop/outsider/${i}`), first.revealBody));
  const rows = sc.nodes
    .filter((n) => modes[n.index] === 'honest' || modes[n.index] === 'twice')
    .map((n) => ({ nodeId: n.nodeId, commitment: n.commitment, bits: fromHex(n.revealBody.bEmbedding) }));
  return { sc, modes, pool, rows };
}

const RUNS = { numRuns: 60 };

describe('computeVerdict properties', () => {
  test('matches a naive reference: accepted iff the largest ball >= required; centre, cluster and medoid', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (spec) => {
        const { sc, modes, pool, rows } = await build(spec);
        const v = computeVerdict(sc.input(pool));
        const frame = sc.frame;
        const thresholdBits = distanceThresholdBits(frame, spec.bits);
        const required = requiredAgreement(frame, spec.nodes.length);
        const ref = referenceCluster(rows, thresholdBits, required, sc.request.body.requestId);
        expect(v.thresholdBits).toBe(thresholdBits);
        expect(v.required).toBe(required);
        expect(v.status).toBe(ref.maxBall >= required && rows.length > 0 ? 'accepted' : 'no-consensus');
        expect(v.status).toBe(ref.status);
        expect(v.centre?.commitment ?? null).toBe(ref.centre);
        expect(v.accepted.map((a) => a.commitment)).toEqual(ref.accepted);
        expect(v.winner?.commitment ?? null).toBe(ref.winner);

        const expected: Record<Mode, Outcome | null> = {
          honest: null,
          twice: null,
          silent: 'NOT_REVEALED',
          garbage: 'COMMITMENT_MISMATCH',
          late: 'REVEAL_LATE',
          'wrong-model': 'MODEL_NOT_ACCEPTED',
        };
        for (const n of sc.nodes) {
          const mode = modes[n.index] as Mode;
          const outcome = outcomeOf(v, n.nodeId);
          const inCluster = ref.accepted.includes(n.commitment);
          expect(outcome).toBe(expected[mode] ?? (inCluster ? 'accepted' : 'OUTSIDE_CLUSTER'));
          const dups = v.rejected.filter((r) => r.nodeId === n.nodeId && r.reason === 'DUPLICATE_REVEAL');
          expect(dups).toHaveLength(mode === 'twice' ? 1 : 0);
        }
      }),
      RUNS,
    );
  });

  test('invariants: schema, accepted ⊆ sealed, each node once, winner in the accepted set', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (spec) => {
        const { sc, pool } = await build(spec);
        const v = computeVerdict(sc.input(pool));
        expect(VerdictSchema.parse(v)).toEqual(v);
        const sealed = new Map(sc.seal.body.members.map((m) => [m.nodeId, m.commitment]));
        const acceptedIds = v.accepted.map((a) => a.nodeId);
        expect(new Set(acceptedIds).size).toBe(acceptedIds.length);
        for (const a of v.accepted) expect(sealed.get(a.nodeId)).toBe(a.commitment);
        for (const nodeId of sealed.keys()) {
          const outcomes =
            (acceptedIds.includes(nodeId) ? 1 : 0) +
            v.rejected.filter((r) => r.nodeId === nodeId && r.reason !== 'DUPLICATE_REVEAL').length;
          expect(outcomes).toBe(1);
        }
        for (const r of v.rejected) {
          if (r.reason === 'NOT_SEALED') {
            expect(sealed.has(r.nodeId)).toBe(false);
            expect(r.commitment).toBeNull();
          } else {
            expect(sealed.get(r.nodeId)).toBe(r.commitment as string);
          }
          expect(r.revealId === null).toBe(r.reason === 'NOT_REVEALED');
        }
        // At most one NOT_SEALED per outsider node, one DUPLICATE_REVEAL per member.
        const keys = v.rejected.map((r) => `${r.nodeId}/${r.reason === 'DUPLICATE_REVEAL'}`);
        expect(new Set(keys).size).toBe(keys.length);
        if (v.status === 'accepted') {
          expect(v.accepted.length).toBeGreaterThanOrEqual(v.required);
          expect(acceptedIds).toContain(v.winner?.nodeId as string);
          expect(v.accepted.map((a) => a.commitment)).toContain(v.centre?.commitment as string);
        } else {
          expect(v.winner).toBeNull();
          expect(v.accepted).toEqual([]);
        }
      }),
      RUNS,
    );
  });

  test('permutation invariance: any order of reveals (with repeats) gives a byte-identical verdict', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, fc.nat(), async (spec, repeatSeed) => {
        const { sc, pool } = await build(spec);
        const expected = canonicalJson(computeVerdict(sc.input(pool)));
        // Repeats of the same packet (gossip delivers twice) and a reversed member list change nothing.
        const repeated = [...pool, pool[repeatSeed % pool.length] as RevealInput].filter(Boolean);
        const reversedSeal = {
          ...sc.seal,
          body: { ...sc.seal.body, members: [...sc.seal.body.members].reverse() },
        };
        fc.assert(
          fc.property(fc.shuffledSubarray(repeated, { minLength: repeated.length }), (shuffled) => {
            expect(canonicalJson(computeVerdict(sc.input(shuffled)))).toBe(expected);
            expect(canonicalJson(computeVerdict({ ...sc.input(shuffled), seal: reversedSeal }))).toBe(
              expected,
            );
          }),
          { numRuns: 15 },
        );
      }),
      { numRuns: 30 },
    );
  });
});

describe('Matryoshka truncation', () => {
  const floats = (n: number) =>
    fc.array(fc.float({ noNaN: true, min: -1, max: 1 }), { minLength: n, maxLength: n });
  const prefixBits = fc.integer({ min: 1, max: 8 }).map((x) => x * 8);

  test('quantize(v, k) equals truncateBits(quantize(v), k)', () => {
    fc.assert(
      fc.property(floats(64), prefixBits, (v, k) => {
        expect(toHex(quantize(v, k))).toBe(toHex(truncateBits(quantize(v), k)));
      }),
    );
  });

  test('prefix Hamming counts sign disagreements of the truncated floats and never exceeds the full one', () => {
    fc.assert(
      fc.property(floats(64), floats(64), prefixBits, (a, b, k) => {
        let signs = 0;
        for (let i = 0; i < k; i++) if ((a[i] as number) > 0 !== (b[i] as number) > 0) signs++;
        const prefix = hamming(quantize(a, k), quantize(b, k));
        expect(prefix).toBe(signs);
        expect(prefix).toBeLessThanOrEqual(hamming(quantize(a), quantize(b)));
      }),
    );
  });

  test('a frame with fewer bits clusters exactly like the truncated floats', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(floats(64), { minLength: 1, maxLength: 6 }),
        prefixBits,
        fc.constantFrom(0.1, 0.25, 0.4),
        async (vectors, k, secDistance) => {
          const sc = await buildScenario({
            label: 'matryoshka',
            bits: k,
            frame: { secDistance, secPercentage: 0.5 },
            nodes: vectors.map((v) => ({ output: 'same', bits: truncateBits(quantize(v), k) })),
          });
          const v = computeVerdict(sc.input());
          // Reference straight from the floats: distance = sign disagreements among the first k dims.
          const d = (x: number[], y: number[]) => {
            let s = 0;
            for (let i = 0; i < k; i++) if ((x[i] as number) > 0 !== (y[i] as number) > 0) s++;
            return s;
          };
          const rows = sc.nodes.map((n, i) => ({ n, f: vectors[i] as number[] }));
          const t = distanceThresholdBits(sc.frame, k);
          let best = rows[0] as (typeof rows)[number];
          const ball = (c: typeof best) => rows.filter((r) => d(r.f, c.f) <= t).length;
          for (const r of rows) {
            if (ball(r) > ball(best) || (ball(r) === ball(best) && r.n.commitment < best.n.commitment))
              best = r;
          }
          expect(v.centre?.commitment).toBe(best.n.commitment);
          expect(v.status).toBe(ball(best) >= v.required ? 'accepted' : 'no-consensus');
          for (const n of sc.nodes) expect(n.revealBody.bEmbedding).toHaveLength(k / 4);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('Hamming distance against a bit-by-bit reference', () => {
  const bytes = fc.integer({ min: 1, max: 70 });
  const triple = bytes.chain((n) =>
    fc.tuple(
      fc.uint8Array({ minLength: n, maxLength: n }),
      fc.uint8Array({ minLength: n, maxLength: n }),
      fc.uint8Array({ minLength: n, maxLength: n }),
    ),
  );

  test('equals the naive count; symmetric; d(a, a) = 0; triangle inequality', () => {
    fc.assert(
      fc.property(triple, ([a, b, c]) => {
        expect(hamming(a, b)).toBe(naiveHamming(a, b));
        expect(hamming(a, b)).toBe(hamming(b, a));
        expect(hamming(a, a)).toBe(0);
        expect(hamming(a, c)).toBeLessThanOrEqual(hamming(a, b) + hamming(b, c));
      }),
    );
  });

  test('hammingDistanceMatrix equals PackedMatrix.distanceMatrix and the naive matrix', () => {
    const matrixArb = fc
      .tuple(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 1, max: 40 }))
      .chain(([rows, n]) =>
        fc.array(fc.uint8Array({ minLength: n, maxLength: n }), { minLength: rows, maxLength: rows }),
      );
    fc.assert(
      fc.property(matrixArb, (rows) => {
        const m = new PackedMatrix(rows);
        const fast = hammingDistanceMatrix(m);
        expect(Array.from(fast)).toEqual(Array.from(m.distanceMatrix()));
        rows.forEach((a, i) => {
          rows.forEach((b, j) => {
            expect(fast[i * rows.length + j]).toBe(naiveHamming(a, b));
          });
        });
        // A reused buffer full of junk gives the same answer.
        const out = new Uint16Array(rows.length * rows.length).fill(0xbeef);
        expect(Array.from(hammingDistanceMatrix(m, out))).toEqual(Array.from(fast));
      }),
    );
  });

  test('clusterByHamming does not depend on row order', () => {
    const arb = fc.integer({ min: 1, max: 10 }).chain((n) =>
      fc.tuple(
        fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 }), { minLength: n, maxLength: n }),
        fc.uniqueArray(fc.uint8Array({ minLength: 32, maxLength: 32 }).map(toHex), {
          minLength: n,
          maxLength: n,
        }),
        fc.integer({ min: 0, max: 32 }),
      ),
    );
    fc.assert(
      fc.property(arb, fc.nat(), ([rows, commitments, t], seed) => {
        const requestId = '00'.repeat(32);
        const a = clusterByHamming(new PackedMatrix(rows), t, commitments, requestId);
        const order = rows.map((_, i) => i);
        const random = prng(seed);
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [order[i], order[j]] = [order[j] as number, order[i] as number];
        }
        const b = clusterByHamming(
          new PackedMatrix(order.map((i) => rows[i] as Uint8Array)),
          t,
          order.map((i) => commitments[i] as string),
          requestId,
        );
        const back = (x: number) => order[x] as number;
        expect(back(b.centre)).toBe(a.centre);
        expect(back(b.medoid)).toBe(a.medoid);
        expect(b.ball.map(back).sort((x, y) => x - y)).toEqual(a.ball);
      }),
    );
  });
});
