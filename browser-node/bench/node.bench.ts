/**
 * Node benchmark: what our layers cost on top of the libraries they wrap, and how fast a loopback
 * network of real nodes moves. `npm run bench:node`; results in bench-results/node.json.
 *
 *  (a) generation tokens/s: raw node-llama-cpp (the same getLlama/loadModel/createContext options as
 *      llama-cpp.ts, a fresh sequence per call, the prompt tokenized with BOS and evaluated with
 *      sequence.evaluate, greedy, as the engine does) vs
 *      LlamaCppEngine.generate vs WorkerEngine (llama-cpp in a Worker); same model (stories260K),
 *      prompt, maxTokens, greedy. Alternating order, several repetitions, medians; overhead % vs raw.
 *  (b) embeddings/s, one sentence at a time: raw @energetic-ai/embeddings (EmbeddingsModel.embed over
 *      the same graph) vs UseLiteEmbedder.embedBits (embedding + sign quantization + packing).
 *  (c) 5 headless nodes + a coordinator over Waku relay on loopback TCP, real engines: time from
 *      request publish to the coordinator's first valid commit, to its seal, to its verdict; p50/p90.
 *  (d) intake: verified packets/s for a burst of valid signed packets (Ed25519 verify, schema, dedup).
 *  (e) re-announcing: a relay's node with REANNOUNCE_MACHINES requests collecting (2 KB prompts), on the
 *      in-memory network; a peer joins and the node publishes every request again (a join pass): the
 *      first pass signs each packet again, the next one (another peer) reuses the signed packets.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { type AnyPacket, encodePacket, NodeKey, signPacket } from '@synod/shared';
import { makeRequest, startNetwork, until } from '../../tests/support/loopback-network.ts';
import { LlamaCppEngine } from '../src/inference/llama-cpp.ts';
import { ModelsDir } from '../src/inference/models-dir.ts';
import { TEST_MODELS_DIR } from '../src/inference/test-models.ts';
import { defaultUseLiteDir, UseLiteEmbedder } from '../src/inference/use-lite.ts';
import { WorkerEngine } from '../src/inference/worker-client.ts';
import { SynodNode } from '../src/node/synod-node.ts';
import { testRequest } from '../src/node/test-request.ts';
import { Intake } from '../src/p2p/intake.ts';
import { MemoryNetwork } from '../src/p2p/memory.ts';
import { topicOfPacketType } from '../src/p2p/topics.ts';

const started = performance.now();
const PROMPT = 'Once upon a time';
const MAX_TOKENS = 256;
const GEN_REPS = 25;
const EMBED_REPS = 21;
const NET_REQUESTS = 10;
const INTAKE_BURST = 5_000;
const REANNOUNCE_MACHINES = 1_024;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
};
const overhead = (raw: number, ours: number) => ((raw - ours) / raw) * 100; // % fewer per second than raw
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

// --- (a) generation --------------------------------------------------------------------------------
async function benchGeneration() {
  const model = await new ModelsDir({ root: TEST_MODELS_DIR }).resolve('stories260K');
  const lib = await import('node-llama-cpp');
  const llama = await lib.getLlama({
    gpu: false,
    build: 'never',
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: lib.LlamaLogLevel.error,
    maxThreads: 1,
  });
  const rawModel = await llama.loadModel({ modelPath: model.path, gpuLayers: 0 });
  const rawContext = await rawModel.createContext({
    contextSize: Math.min(2048, rawModel.trainContextSize),
    threads: 1,
    sequences: 1,
  });
  const raw = async () => {
    const sequence = rawContext.getSequence();
    let tokens = 0;
    const t0 = performance.now();
    const bos = rawModel.tokens.bos;
    const input = [...(bos === null ? [] : [bos]), ...rawModel.tokenize(PROMPT, true)];
    const generated: (typeof input)[number][] = [];
    for await (const token of sequence.evaluate(input, { temperature: 0, yieldEogToken: true })) {
      tokens++;
      if (rawModel.isEogToken(token)) break;
      generated.push(token);
      if (tokens >= MAX_TOKENS) break;
    }
    const ms = performance.now() - t0;
    // The engine's text: the continuation of the prompt's, its first space kept.
    const text = rawModel.detokenize([...input, ...generated]).slice(rawModel.detokenize(input).length);
    await sequence.clearHistory();
    sequence.dispose();
    return { tokens, ms, text };
  };

  const engine = new LlamaCppEngine({ threads: 1 });
  await engine.load({ id: model.id, fileHash: model.fileHash, path: model.path });
  const worker = new WorkerEngine({ kind: 'llama-cpp', options: { threads: 1 } });
  await worker.load({ id: model.id, fileHash: model.fileHash, path: model.path });
  const ours = (e: LlamaCppEngine | WorkerEngine) => async () => {
    const t0 = performance.now();
    const r = await e.generate({ prompt: PROMPT, params: { temperature: 0, maxTokens: MAX_TOKENS } });
    return { tokens: r.tokens, ms: performance.now() - t0, text: r.text };
  };
  const runners = { raw, engine: ours(engine), worker: ours(worker) } as const;
  type Name = keyof typeof runners;
  const names = Object.keys(runners) as Name[];
  for (let w = 0; w < 3; w++) for (const n of names) await runners[n](); // warm-up
  const tps: Record<Name, number[]> = { raw: [], engine: [], worker: [] };
  const texts = new Map<Name, Set<string>>(names.map((n) => [n, new Set<string>()]));
  let tokens = 0;
  for (let rep = 0; rep < GEN_REPS; rep++) {
    const order = names.map((_, i) => names[(i + rep) % names.length] as Name); // rotate who goes first
    for (const n of order) {
      const r = await runners[n]();
      tps[n].push((r.tokens / r.ms) * 1000);
      texts.get(n)?.add(r.text);
      tokens = r.tokens;
    }
  }
  await worker.unload();
  await engine.unload();
  await rawContext.dispose();
  await rawModel.dispose();
  await llama.dispose();
  const allTexts = new Set(names.flatMap((n) => [...(texts.get(n) ?? [])]));
  const med = { raw: median(tps.raw), engine: median(tps.engine), worker: median(tps.worker) };
  return {
    model: model.id,
    prompt: PROMPT,
    maxTokens: MAX_TOKENS,
    tokensPerRun: tokens,
    repetitions: GEN_REPS,
    tokensPerSecond: med,
    samples: tps,
    overheadPct: { engine: overhead(med.raw, med.engine), worker: overhead(med.raw, med.worker) },
    /** Median over repetitions of the overhead against the raw run of the same repetition. */
    pairedOverheadPct: {
      engine: median(tps.engine.map((x, i) => overhead(tps.raw[i] as number, x))),
      worker: median(tps.worker.map((x, i) => overhead(tps.raw[i] as number, x))),
    },
    identicalOutputs: allTexts.size === 1,
  };
}

// --- (b) embeddings --------------------------------------------------------------------------------
const SENTENCES = [
  'Once upon a time there was a little girl named Lily.',
  'She liked to play in the park with her dog.',
  'The sun was shining and the birds were singing.',
  'One day she found a shiny red ball under a tree.',
  'Verifiable inference lets anyone recompute the verdict.',
  'A quorum of independent nodes answers every request.',
  'The commitment binds the request, the node, the model and a salt.',
  'Hamming distance between packed bit vectors is cheap to compute.',
];

async function benchEmbeddings() {
  const ours = new UseLiteEmbedder();
  await ours.load(); // sets the tfjs WASM backend for the process; the raw model below shares it
  const core = (await import('@energetic-ai/core')) as unknown as {
    io: {
      getModelArtifactsForJSON(
        json: unknown,
        load: (m: unknown) => Promise<[unknown[], ArrayBuffer]>,
      ): Promise<unknown>;
      fromMemory(a: unknown): unknown;
    };
    loadGraphModel(h: unknown): Promise<unknown>;
  };
  const { EmbeddingsModel } = await import('@energetic-ai/embeddings');
  const dir = await defaultUseLiteDir();
  const modelJson = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as {
    weightsManifest: Array<{ paths: string[]; weights: unknown[] }>;
  };
  const shards = modelJson.weightsManifest.flatMap((g) => g.paths).map((p) => readFileSync(join(dir, p)));
  const weights = new Uint8Array(shards.reduce((n, b) => n + b.length, 0));
  let off = 0;
  for (const b of shards) {
    weights.set(b, off);
    off += b.length;
  }
  const artifacts = await core.io.getModelArtifactsForJSON(modelJson, async () => [
    modelJson.weightsManifest.flatMap((g) => g.weights),
    weights.buffer as ArrayBuffer,
  ]);
  const graph = await core.loadGraphModel(core.io.fromMemory(artifacts));
  const vocabulary = JSON.parse(readFileSync(join(dir, 'vocab.json'), 'utf8'));
  const raw = new EmbeddingsModel({ model: graph as never, vocabulary });

  const runners = {
    raw: async () => {
      for (const s of SENTENCES) await raw.embed(s);
    },
    embedBits: async () => {
      for (const s of SENTENCES) await ours.embedBits(s);
    },
  };
  type Name = keyof typeof runners;
  const names = Object.keys(runners) as Name[];
  for (let w = 0; w < 5; w++) for (const n of names) await runners[n](); // warm-up (tfjs WASM JIT)
  const eps: Record<Name, number[]> = { raw: [], embedBits: [] };
  for (let rep = 0; rep < EMBED_REPS; rep++) {
    const order = rep % 2 ? [...names].reverse() : names;
    for (const n of order) {
      const t0 = performance.now();
      await runners[n]();
      eps[n].push((SENTENCES.length / (performance.now() - t0)) * 1000);
    }
  }
  await ours.unload();
  const med = { raw: median(eps.raw), embedBits: median(eps.embedBits) };
  return {
    embedder: 'use-lite-512',
    sentences: SENTENCES.length,
    repetitions: EMBED_REPS,
    embeddingsPerSecond: med,
    samples: eps,
    overheadPct: overhead(med.raw, med.embedBits),
    pairedOverheadPct: median(eps.embedBits.map((x, i) => overhead(eps.raw[i] as number, x))),
  };
}

// --- (c) loopback network --------------------------------------------------------------------------
async function benchNetwork() {
  const marks = new Map<string, { commit?: number; seal?: number; verdict?: number }>();
  const net = await startNetwork({
    nodes: 5,
    onCoordinatorPacket: (p: AnyPacket) => {
      if (p.type === 'heartbeat') return;
      const m = marks.get(p.body.requestId);
      if (m === undefined) return;
      const t = performance.now();
      if (p.type === 'commit') m.commit ??= t;
      if (p.type === 'seal') m.seal ??= t;
      if (p.type === 'verdict') m.verdict ??= t;
    },
  });
  const rows: Array<{ commitMs: number; sealMs: number; verdictMs: number; status: string }> = [];
  try {
    for (let i = 0; i < NET_REQUESTS + 1; i++) {
      const body = makeRequest(net.embedder, { quorum: 5 });
      marks.set(body.requestId, {});
      const t0 = performance.now();
      await net.coordinator.node.submit(body); // resolves once the request packet is published
      await until(() => marks.get(body.requestId)?.verdict !== undefined, 60_000, 'the verdict');
      const m = marks.get(body.requestId) as { commit: number; seal: number; verdict: number };
      const status = net.coordinator.node.status(body.requestId)?.verdict?.status ?? 'none';
      if (i > 0)
        rows.push({ commitMs: m.commit - t0, sealMs: m.seal - t0, verdictMs: m.verdict - t0, status });
    }
  } finally {
    await net.close();
  }
  const col = (k: 'commitMs' | 'sealMs' | 'verdictMs') => rows.map((r) => r[k]);
  return {
    nodes: 5,
    quorum: 5,
    requests: rows.length,
    accepted: rows.filter((r) => r.status === 'accepted').length,
    firstCommitMs: { p50: pct(col('commitMs'), 50), p90: pct(col('commitMs'), 90) },
    sealMs: { p50: pct(col('sealMs'), 50), p90: pct(col('sealMs'), 90) },
    verdictMs: { p50: pct(col('verdictMs'), 50), p90: pct(col('verdictMs'), 90) },
    samples: rows,
  };
}

// --- (d) intake ------------------------------------------------------------------------------------
async function benchIntake() {
  const keys = await Promise.all([1, 2, 3, 4].map((n) => NodeKey.fromSeed(new Uint8Array(32).fill(n))));
  const now = Date.now();
  const packets: Uint8Array[] = [];
  for (let i = 0; i < INTAKE_BURST; i++) {
    const p = await signPacket(keys[i % keys.length] as NodeKey, 'commit', {
      requestId: (i + 1).toString(16).padStart(64, '0'),
      commitment: (i + 7).toString(16).padStart(64, '0'),
      createdAt: now,
    });
    packets.push(encodePacket(p));
  }
  let delivered = 0;
  const intake = new Intake({
    now: () => Date.now(),
    deliver: () => {
      delivered++;
    },
    maxQueue: INTAKE_BURST,
  });
  const topic = topicOfPacketType('commit');
  const t0 = performance.now();
  for (const [i, bytes] of packets.entries())
    intake.offer(bytes, { peer: `p${i % 8}`, transport: 'bench', topic });
  await intake.idle();
  const ms = performance.now() - t0;
  const m = intake.metrics();
  await intake.close();
  return {
    burst: INTAKE_BURST,
    delivered,
    rejected: m.rejectedTotal,
    ms,
    packetsPerSecond: (delivered / ms) * 1000,
  };
}

// --- (e) re-announcing ----------------------------------------------------------------------------
async function benchReannounce() {
  const net = new MemoryNetwork();
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(9));
  const node = new SynodNode({
    key,
    role: 'relay',
    transports: [net.join('relay')],
    // Join passes only, at once: no schedule within the run.
    reannounce: { joinDelayMs: 0, joinGapMs: 0, maxJoinGapMs: 0, firstMs: 3_600_000, maxMs: 3_600_000 },
    log: () => {},
  });
  await node.start();
  const embedder = { id: 'use-lite-512', fileHash: '11'.repeat(32), bits: 512 };
  const prompt = `${PROMPT} `.repeat(128).slice(0, 2_048);
  for (let i = 0; i < REANNOUNCE_MACHINES; i++) {
    await node.submit(testRequest({ embedder, nonce: i, prompt, frame: { maxTimeMs: 600_000 } }));
  }
  /** A peer joins (subscribes to requests); ms until it has every request. */
  const pass = async (name: string) => {
    const peer = net.join(name);
    let got = 0;
    const t0 = performance.now();
    const off = peer.subscribe(topicOfPacketType('request'), () => {
      got++;
    });
    await until(() => got >= REANNOUNCE_MACHINES, 120_000);
    const ms = performance.now() - t0;
    off();
    await peer.close();
    return ms;
  };
  const firstMs = await pass('peer-1');
  const nextMs = await pass('peer-2');
  const m = node.metrics().reannounced;
  await node.close();
  return {
    machines: REANNOUNCE_MACHINES,
    promptBytes: prompt.length,
    firstPassMs: firstMs,
    nextPassMs: nextMs,
    firstPerPacketUs: (firstMs / REANNOUNCE_MACHINES) * 1000,
    nextPerPacketUs: (nextMs / REANNOUNCE_MACHINES) * 1000,
    reannounced: m.byType.request ?? 0,
  };
}

// --- run -------------------------------------------------------------------------------------------
const generation = await benchGeneration();
const embeddings = await benchEmbeddings();
const intake = await benchIntake();
const network = await benchNetwork();
const reannounce = await benchReannounce();

const line = (cells: Array<string | number>, widths: number[]) =>
  cells.map((c, i) => String(c).padEnd(widths[i] ?? 12)).join(' ');
const W = [44, 14, 14, 14];
console.log(`\nSynod node bench (bun ${Bun.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'})\n`);
console.log(line(['(a) generation, stories260K, greedy', 'tokens/s', 'overhead', 'paired'], W));
console.log(line(['  raw node-llama-cpp', round(generation.tokensPerSecond.raw), '-'], W));
console.log(
  line(
    [
      '  LlamaCppEngine.generate',
      round(generation.tokensPerSecond.engine),
      `${round(generation.overheadPct.engine)} %`,
      `${round(generation.pairedOverheadPct.engine)} %`,
    ],
    W,
  ),
);
console.log(
  line(
    [
      '  WorkerEngine (llama-cpp in a Worker)',
      round(generation.tokensPerSecond.worker),
      `${round(generation.overheadPct.worker)} %`,
      `${round(generation.pairedOverheadPct.worker)} %`,
    ],
    W,
  ),
);
console.log(
  line(
    [
      `  (${generation.tokensPerRun} tokens/run, ${GEN_REPS} reps, same output: ${generation.identicalOutputs})`,
      '',
      '',
    ],
    W,
  ),
);
console.log(line(['(b) embeddings, USE Lite, one at a time', 'emb/s', 'overhead', 'paired'], W));
console.log(line(['  raw @energetic-ai/embeddings', round(embeddings.embeddingsPerSecond.raw), '-'], W));
console.log(
  line(
    [
      '  UseLiteEmbedder.embedBits',
      round(embeddings.embeddingsPerSecond.embedBits),
      `${round(embeddings.overheadPct)} %`,
      `${round(embeddings.pairedOverheadPct)} %`,
    ],
    W,
  ),
);
console.log(line([`(c) 5 nodes, Waku/TCP loopback, ${network.requests} req`, 'p50 ms', 'p90 ms'], W));
console.log(
  line(['  publish -> first commit', round(network.firstCommitMs.p50), round(network.firstCommitMs.p90)], W),
);
console.log(line(['  publish -> seal', round(network.sealMs.p50), round(network.sealMs.p90)], W));
console.log(line(['  publish -> verdict', round(network.verdictMs.p50), round(network.verdictMs.p90)], W));
console.log(line([`  (accepted ${network.accepted}/${network.requests})`, '', ''], W));
console.log(line(['(d) intake, burst of valid signed packets', 'packets/s', ''], W));
console.log(
  line(
    [`  ${intake.burst} commits, ${intake.delivered} delivered`, Math.round(intake.packetsPerSecond), ''],
    W,
  ),
);
console.log(line([`(e) re-announcing, a join pass, ${reannounce.machines} requests`, 'ms', 'µs/packet'], W));
console.log(
  line(
    ['  first pass (each signed again)', round(reannounce.firstPassMs), round(reannounce.firstPerPacketUs)],
    W,
  ),
);
console.log(
  line(
    ['  next pass (signed packets kept)', round(reannounce.nextPassMs), round(reannounce.nextPerPacketUs)],
    W,
  ),
);

const file = join(import.meta.dir, '../../bench-results/node.json');
mkdirSync(dirname(file), { recursive: true });
writeFileSync(
  file,
  `${JSON.stringify(
    {
      runtime: {
        bun: Bun.version,
        platform: process.platform,
        arch: process.arch,
        cpu: cpus()[0]?.model,
        cores: cpus().length,
      },
      date: new Date().toISOString(),
      generation,
      embeddings,
      network,
      intake,
      reannounce,
      targets: { generationOverheadPct: 5, embeddingOverheadPct: 5 },
      totalSeconds: (performance.now() - started) / 1000,
    },
    null,
    2,
  )}\n`,
);
console.log(`\nwrote ${file} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
process.exit(0);
