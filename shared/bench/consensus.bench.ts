/**
 * Consensus benchmark: `bun run shared/bench/consensus.bench.ts` (root script `bench:consensus`).
 *
 * 1. computeVerdict for N reveals of d bits, two ways, next to a naive baseline, in the same run:
 *    - "verdict": the whole function on pre-verified packets (signatures are the caller's and are
 *      excluded; commitment checks, dedup, sorting and clustering are included);
 *    - "clustering": PackedMatrix + clusterByHamming over the valid rows (distance matrix, balls, medoid),
 *      once per Hamming kernel: "js" (the pure-JS reference path) and the WebAssembly kernels
 *      "wasm-i64" (i64.popcnt, the default when wasm loads) and "wasm-i8x16" (SIMD i8x16.popcnt);
 *    - "baseline": the reference design (Rakis): Euclidean distance over the packed BYTES, each byte a
 *      number in plain JS arrays, all ordered pairs, then the same ball / centre / medoid logic, with
 *      its threshold larger than any distance (so every reveal lands in every ball).
 *    Seals beyond LIMITS.maxSealMembers (128) cannot be signed, so the packets here are built directly
 *    (ids are real packet ids, signatures are placeholders): computeVerdict does not re-check schemas.
 * 2. Sign and verify throughput of each packet type with signPacket / verifyPacket, on the default
 *    Ed25519 back end (WebCrypto in Bun) and on @noble/curves.
 *
 * Times are medians over repetitions after warm-up. Results go to bench-results/consensus.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { computeCommitment } from '../src/commitment/commitment.ts';
import {
  type ConsensusInput,
  clusterByHamming,
  computeVerdict,
  verdictDigest,
} from '../src/consensus/verdict.ts';
import { PackedMatrix } from '../src/embedding/binary.ts';
import {
  embeddedWasmKernels,
  type HammingKernel,
  hammingKernel,
  jsHammingKernel,
} from '../src/embedding/kernel.ts';
import { fromHex, toHex, utf8 } from '../src/encoding/bytes.ts';
import { sha256, sha256Hex } from '../src/encoding/hash.ts';
import { distanceThresholdBits, resolveFrame } from '../src/frame/frame.ts';
import { defaultEd25519, type Ed25519Backend, nobleEd25519 } from '../src/identity/ed25519.ts';
import { NodeKey } from '../src/identity/node-key.ts';
import { encodePacket, packetId, signPacket, verifyPacket } from '../src/packets/envelope.ts';
import { deriveRequestId } from '../src/packets/request-id.ts';
import type {
  AnyPacket,
  BodyOf,
  Packet,
  PacketType,
  RequestBody,
  SealMember,
} from '../src/packets/schemas.ts';
import { seededRandom } from '../src/seeded-random.ts';

const NS = [4, 16, 64, 256, 1024];
const DS = [512, 768, 1024];
const T0 = 1_700_000_000_000;
const LLM = { id: 'llama-3.2-1b-instruct-q4', fileHash: sha256Hex(utf8('bench llm')) };
const OUTPUT =
  'Paris is the capital and largest city of France. It sits on the Seine in the north of the country, ' +
  'and has been the seat of government for most of the last thousand years. Its metropolitan area holds ' +
  'about twelve million people, roughly a fifth of the population of France, and it is one of the main ' +
  'centres of finance, diplomacy, commerce, fashion, science and the arts in Europe. ';

// ---------------------------------------------------------------------------------------------------
// Deterministic data

const prng = seededRandom;

const hexOf = (label: string) => sha256Hex(utf8(`synod-bench/${label}`));

function requestBody(bits: number, label: string): RequestBody {
  const content: Omit<RequestBody, 'requestId'> = {
    nonce: hexOf(`nonce/${label}`).slice(0, 32),
    prompt: 'What is the capital of France? Answer in one paragraph.',
    acceptedModels: [LLM.id],
    params: { temperature: 0.7, maxTokens: 256 },
    frame: resolveFrame({
      quorum: 3,
      maxCommits: 128,
      secDistance: 0.15,
      secPercentage: 0.6,
      embeddingModel: { id: 'bge-small-en-v1.5', fileHash: hexOf('embedder'), bits },
    }),
    origin: { kind: 'http' },
    createdAt: T0,
  };
  return { ...content, requestId: deriveRequestId(content) };
}

const SIG = '00'.repeat(64);
const unsigned = <T extends PacketType>(type: T, from: string, body: BodyOf[T]): Packet<T> => ({
  v: 1,
  type,
  from,
  body,
  sig: SIG,
});

interface Dataset {
  input: ConsensusInput;
  rows: Uint8Array[];
  commitments: string[];
  thresholdBits: number;
  requestId: string;
}

/** N sealed nodes: 80% near a common answer (each bit flipped with p = 0.05), 20% unrelated. */
function dataset(n: number, bits: number): Dataset {
  const random = prng(n * 10_007 + bits);
  const request = unsigned('request', hexOf('coordinator'), requestBody(bits, `${n}/${bits}`));
  const requestId = request.body.requestId;
  const base = Uint8Array.from({ length: bits / 8 }, () => Math.floor(random() * 256));
  const members: SealMember[] = [];
  const reveals: ConsensusInput['reveals'][number][] = [];
  for (let i = 0; i < n; i++) {
    const nodeId = hexOf(`node/${i}`);
    const honest = i % 5 !== 4;
    const vec = base.map((b) => {
      if (!honest) return Math.floor(random() * 256);
      let x = b;
      for (let k = 0; k < 8; k++) if (random() < 0.05) x ^= 1 << k;
      return x;
    });
    const body = {
      requestId,
      output: `${OUTPUT}(${honest ? 'a' : 'b'}${i})`,
      bEmbedding: toHex(vec),
      model: LLM,
      salt: hexOf(`salt/${n}/${bits}/${i}`),
      createdAt: T0 + 3_000,
    };
    const commitment = computeCommitment({ ...body, nodeId });
    members.push({ nodeId, commitment, commitId: hexOf(`commit/${i}`) });
    const packet = unsigned('reveal', nodeId, body);
    reveals.push({ id: packetId(packet), packet });
  }
  members.sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
  const seal = unsigned('seal', hexOf('coordinator'), {
    requestId,
    requestPacketId: packetId(request),
    members,
    createdAt: T0 + 2_000,
  });
  const byCommitment = [...reveals].map((r) => ({
    bytes: fromHex(r.packet.body.bEmbedding),
    commitment: members.find((m) => m.nodeId === r.packet.from)?.commitment as string,
  }));
  return {
    input: { request, seal, sealId: packetId(seal), reveals },
    rows: byCommitment.map((r) => r.bytes),
    commitments: byCommitment.map((r) => r.commitment),
    thresholdBits: distanceThresholdBits(request.body.frame, bits),
    requestId,
  };
}

// ---------------------------------------------------------------------------------------------------
// The baselines. Both use Euclidean distance over the packed BYTES (each byte a number, plain JS arrays),
// all ordered pairs, and the reference's threshold, larger than any distance (every reveal in every
// ball); then the same centre and medoid selection as clusterByHamming.
//  - "reference": written the way the reference design computes it: a per-pair reduce with Math.pow,
//    nested number[][] matrix, ball sizes by filter;
//  - "tuned loop": the same arithmetic as a plain indexed loop, to show how much is style and how
//    much is the bit representation.

type DistanceMatrix = number[][];

function referenceDistances(rows: number[][]): DistanceMatrix {
  return rows.map((a, i) =>
    rows.map((b, j) =>
      i === j ? 0 : Math.sqrt(a.reduce((acc, x, k) => acc + (x - (b[k] as number)) ** 2, 0)),
    ),
  );
}

function loopDistances(rows: number[][]): DistanceMatrix {
  const n = rows.length;
  const dist: DistanceMatrix = [];
  for (let i = 0; i < n; i++) {
    const row: number[] = [];
    const a = rows[i] as number[];
    for (let j = 0; j < n; j++) {
      const b = rows[j] as number[];
      let s = 0;
      for (let k = 0; k < a.length; k++) {
        const diff = (a[k] as number) - (b[k] as number);
        s += diff * diff;
      }
      row.push(Math.sqrt(s));
    }
    dist.push(row);
  }
  return dist;
}

function baselineCluster(dist: DistanceMatrix, commitments: string[]): number {
  const threshold = Number.POSITIVE_INFINITY;
  const sizes = dist.map((row) => row.filter((d) => d <= threshold).length);
  let centre = 0;
  sizes.forEach((size, i) => {
    const best = sizes[centre] as number;
    if (size > best || (size === best && (commitments[i] as string) < (commitments[centre] as string)))
      centre = i;
  });
  const ball = (dist[centre] as number[]).flatMap((d, j) => (d <= threshold ? [j] : []));
  let medoid = ball[0] as number;
  let min = Number.POSITIVE_INFINITY;
  for (const i of ball) {
    const s = ball.reduce((acc, j) => acc + ((dist[i] as number[])[j] as number), 0);
    if (s < min) {
      min = s;
      medoid = i;
    }
  }
  return medoid;
}

// ---------------------------------------------------------------------------------------------------
// Timing

let sink = 0;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Median ms of `fn` after warm-up, repeating for about `budgetMs` (at least `minRuns`, at most 3000). */
function timeSync(fn: () => number, budgetMs: number, minRuns = 5): { ms: number; runs: number } {
  const warmUntil = performance.now() + Math.min(100, budgetMs / 4);
  for (let i = 0; i < Math.min(3, minRuns) || performance.now() < warmUntil; i++) sink += fn();
  const times: number[] = [];
  const end = performance.now() + budgetMs;
  while (times.length < minRuns || (performance.now() < end && times.length < 3000)) {
    const t = performance.now();
    sink += fn();
    times.push(performance.now() - t);
  }
  return { ms: median(times), runs: times.length };
}

async function throughput(fn: () => Promise<unknown>, budgetMs: number): Promise<number> {
  for (let i = 0; i < 5; i++) await fn();
  let runs = 0;
  const start = performance.now();
  while (runs < 20 || performance.now() - start < budgetMs) {
    await fn();
    runs++;
  }
  return (runs * 1000) / (performance.now() - start);
}

// ---------------------------------------------------------------------------------------------------
// 1. Consensus

interface ConsensusRow {
  n: number;
  d: number;
  /** Kernel computeVerdict and `clusteringMs` used (hammingKernel()). */
  kernel: string;
  verdictMs: number;
  /** Clustering on the default kernel. */
  clusteringMs: number;
  /** Clustering per kernel name ("js", "wasm-i64", "wasm-i8x16" when wasm loads). */
  clusteringByKernelMs: Record<string, number>;
  referenceMs: number;
  loopMs: number;
  /** reference / clustering (default kernel): the like-for-like comparison (neither checks commitments). */
  speedupVsReference: number;
  /** reference / clustering on the pure-JS path. */
  speedupJsVsReference: number;
  /** tuned loop / clustering (default kernel). */
  speedupVsLoop: number;
  /** reference / verdict (ours also checks N commitments). */
  speedupVerdictVsReference: number;
  status: string;
  accepted: number;
}

function kernels(): HammingKernel[] {
  const wasm = embeddedWasmKernels();
  return wasm === null ? [jsHammingKernel] : [jsHammingKernel, wasm.i64, wasm.i8x16];
}

function benchConsensus(): ConsensusRow[] {
  const out: ConsensusRow[] = [];
  const kernel = hammingKernel();
  for (const n of NS) {
    for (const d of DS) {
      const data = dataset(n, d);
      const verdict = computeVerdict(data.input);
      const plain = data.rows.map((r) => Array.from(r));
      const budget = n >= 256 ? 400 : 250;
      const minRuns = n >= 1024 ? 3 : 5;
      const v = timeSync(() => computeVerdict(data.input).accepted.length, budget, minRuns);
      const clusteringByKernelMs: Record<string, number> = {};
      for (const k of kernels()) {
        clusteringByKernelMs[k.name] = timeSync(
          () =>
            clusterByHamming(
              new PackedMatrix(data.rows),
              data.thresholdBits,
              data.commitments,
              data.requestId,
              k,
            ).medoid,
          budget,
          minRuns,
        ).ms;
      }
      const c = { ms: clusteringByKernelMs[kernel.name] as number };
      const js = clusteringByKernelMs['js'] as number;
      const ref = timeSync(
        () => baselineCluster(referenceDistances(plain), data.commitments),
        budget,
        minRuns,
      );
      const loop = timeSync(() => baselineCluster(loopDistances(plain), data.commitments), budget, minRuns);
      out.push({
        n,
        d,
        kernel: kernel.name,
        verdictMs: v.ms,
        clusteringMs: c.ms,
        clusteringByKernelMs,
        referenceMs: ref.ms,
        loopMs: loop.ms,
        speedupVsReference: ref.ms / c.ms,
        speedupJsVsReference: ref.ms / js,
        speedupVsLoop: loop.ms / c.ms,
        speedupVerdictVsReference: ref.ms / v.ms,
        status: verdict.status,
        accepted: verdict.accepted.length,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// 2. Packets

async function packetBodies(): Promise<{ [T in PacketType]: BodyOf[T] }> {
  const data = dataset(16, 768);
  const request = data.input.request.body;
  const verdict = computeVerdict(data.input);
  const reveal = data.input.reveals[0]?.packet.body as BodyOf['reveal'];
  const digest = verdictDigest(verdict);
  return {
    request,
    commit: { requestId: request.requestId, commitment: hexOf('c'), createdAt: T0 + 1_000 },
    seal: data.input.seal.body,
    reveal,
    verdict: {
      requestId: request.requestId,
      verdict,
      verdictDigest: digest,
      transcriptRoot: hexOf('root'),
      createdAt: T0 + 14_000,
    },
    attestation: {
      requestId: request.requestId,
      verdictDigest: digest,
      transcriptRoot: hexOf('root'),
      createdAt: T0 + 15_000,
    },
    heartbeat: {
      role: 'node',
      software: 'synod-node/0.1.0',
      models: [
        { id: LLM.id, fileHash: LLM.fileHash, engine: 'webllm', tokensPerSecond: 42.5 },
        { id: 'stories260K', fileHash: hexOf('stories'), engine: 'wllama', tokensPerSecond: 900 },
      ],
      embedders: [
        { id: 'bge-small-en-v1.5', fileHash: hexOf('embedder'), bits: 768, embeddingsPerSecond: 55 },
      ],
      capacity: { queued: 1, maxQueue: 8 },
      addresses: ['/dns4/node.example/tcp/443/wss', '/webrtc'],
      createdAt: T0,
    },
    decline: {
      requestId: request.requestId,
      requestPacketId: hexOf('request'),
      model: { id: 'stories260K', fileHash: hexOf('stories') },
      reason: 'context-exceeded',
      promptTokens: 5_012,
      contextTokens: 512,
      createdAt: T0 + 200,
    },
  };
}

interface PacketRow {
  type: PacketType;
  bytes: number;
  backend: string;
  signPerSec: number;
  verifyPerSec: number;
}

async function benchPackets(): Promise<PacketRow[]> {
  const bodies = await packetBodies();
  const defaultBackend = await defaultEd25519();
  const backends: Ed25519Backend[] =
    defaultBackend.name === nobleEd25519.name ? [nobleEd25519] : [defaultBackend, nobleEd25519];
  const seed = sha256(utf8('synod-bench/key'));
  const rows: PacketRow[] = [];
  for (const backend of backends) {
    const key = await NodeKey.fromSeed(seed, backend);
    for (const type of Object.keys(bodies) as PacketType[]) {
      const body = bodies[type];
      const packet = await signPacket(key, type, body);
      const raw = JSON.parse(JSON.stringify(packet)) as unknown;
      const now = body.createdAt;
      const signPerSec = await throughput(() => signPacket(key, type, body), 300);
      const verifyPerSec = await throughput(() => verifyPacket(raw, { now, backend }), 300);
      rows.push({
        type,
        bytes: encodePacket(packet as AnyPacket).length,
        backend: backend.name,
        signPerSec,
        verifyPerSec,
      });
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------

const fmt = (x: number, digits = 3) =>
  x >= 100 ? x.toFixed(1) : x >= 1 ? x.toFixed(digits - 1) : x.toFixed(digits + 1);
const pad = (s: string | number, w: number) => String(s).padStart(w);

async function main(): Promise<void> {
  const started = performance.now();
  const defaultBackend = await defaultEd25519();
  console.log(
    `Synod consensus benchmark: bun ${Bun.version}, ${process.platform}/${process.arch}, ${cpus()[0]?.model ?? '?'}`,
  );
  const kernelNames = kernels().map((k) => k.name);
  console.log(
    `times are medians in ms; "x vs ..." = baseline time / our time; verdict and "x" columns use the ` +
      `default kernel (${hammingKernel().name}); clustering is also shown per kernel (${kernelNames.join(', ')})\n`,
  );

  const consensus = benchConsensus();
  const cols: [string, number][] = [
    ['N', 5],
    ['d', 5],
    ['verdict (incl. commits)', 24],
    ...kernelNames.map((k): [string, number] => [`clust. ${k}`, Math.max(12, k.length + 8)]),
    ['baseline: reference', 20],
    ['baseline: tuned loop', 21],
    ['x vs ref (js)', 14],
    ['x vs reference', 15],
    ['x vs loop', 10],
    ['verdict x vs ref', 17],
    ['result', 13],
  ];
  console.log(cols.map(([h, w]) => pad(h, w)).join(' '));
  for (const r of consensus) {
    const cells = [
      r.n,
      r.d,
      fmt(r.verdictMs),
      ...kernelNames.map((k) => fmt(r.clusteringByKernelMs[k] as number)),
      fmt(r.referenceMs),
      fmt(r.loopMs),
      `${r.speedupJsVsReference.toFixed(1)}x`,
      `${r.speedupVsReference.toFixed(1)}x`,
      `${r.speedupVsLoop.toFixed(1)}x`,
      `${r.speedupVerdictVsReference.toFixed(1)}x`,
      `${r.status === 'accepted' ? 'acc' : 'none'} ${r.accepted}/${r.n}`,
    ];
    console.log(cells.map((c, i) => pad(c, (cols[i] as [string, number])[1])).join(' '));
  }

  const at = (n: number, d: number) => consensus.find((r) => r.n === n && r.d === d) as ConsensusRow;
  const r64 = at(64, 768);
  const r1024 = at(1024, 768);
  const targets = {
    'N=64,d=768 clustering < 0.5 ms': r64.clusteringMs < 0.5,
    'N=64,d=768 whole verdict (incl. 64 commitment checks) < 0.5 ms': r64.verdictMs < 0.5,
    'N=64,d=768 clustering >= 50x reference baseline': r64.speedupVsReference >= 50,
    'N=64,d=768 whole verdict (incl. commitment checks) >= 50x reference baseline':
      r64.speedupVerdictVsReference >= 50,
    'N=1024,d=768 clustering < 50 ms': r1024.clusteringMs < 50,
    'N=1024,d=768 whole verdict < 50 ms': r1024.verdictMs < 50,
  };
  console.log('\ntargets:');
  for (const [name, ok] of Object.entries(targets)) console.log(`  ${ok ? 'met    ' : 'NOT met'}  ${name}`);

  console.log(
    `\npacket sign / verify throughput (packets/s, sequential, one core); default back end: ${defaultBackend.name}`,
  );
  const packets = await benchPackets();
  const backends = [...new Set(packets.map((p) => p.backend))];
  console.log(
    `${pad('type', 12)} ${pad('bytes', 7)}${backends.map((b) => ` ${pad(`${b} sign`, 15)} ${pad(`${b} verify`, 15)}`).join('')}`,
  );
  for (const type of [...new Set(packets.map((p) => p.type))]) {
    const cells = backends.map((b) => packets.find((p) => p.type === type && p.backend === b) as PacketRow);
    console.log(
      `${pad(type, 12)} ${pad(cells[0]?.bytes ?? 0, 7)}${cells.map((c) => ` ${pad(Math.round(c.signPerSec), 15)} ${pad(Math.round(c.verifyPerSec), 15)}`).join('')}`,
    );
  }

  const dir = join(import.meta.dir, '../../bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'consensus.json');
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        runtime: { bun: Bun.version, platform: process.platform, arch: process.arch, cpu: cpus()[0]?.model },
        date: new Date().toISOString(),
        defaultBackend: defaultBackend.name,
        consensus,
        targets,
        packets,
        totalSeconds: (performance.now() - started) / 1000,
        sink,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nwrote ${file} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

await main();
