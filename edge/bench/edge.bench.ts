/**
 * Edge benchmark: `bun edge/bench/edge.bench.ts` (root script `bench:edge`). Everything on 127.0.0.1.
 * The load generator runs in its own process, so it does not share the server's event loop; the servers
 * run in this Bun process (load-generators.ts): autocannon (npm, under Node) always, and wrk (one
 * thread) as well when it is on PATH (`apt-get install wrk`; BENCH_LOADGEN=autocannon to skip it).
 * Results: a table on stdout and bench-results/edge.json.
 *
 * 1. accept: POST /v1/inference at 50 connections for DURATION s against the real relay (startRelay:
 *    libSQL in a file, WAL, synchronous=FULL; every accepted request is committed to the admission log
 *    with its quota count before its 202, by the admission writer thread, one transaction per group
 *    commit). No nodes are on the relay's network: signing and the quorum work happen after the 2xx and
 *    are not what this measures (the dispatcher starts 256 requests, the rest stay queued).
 *    Beside it, in the same run and runtime: a bare Hono hello-world (GET / -> "hello") on Bun.serve.
 *    BENCH_ACCEPT_ROUNDS rounds (default 3) of hello-world then a fresh relay, so that a shared machine's
 *    drift falls on both sides; the figure is the round with the median share, with the range beside.
 *    Each round runs every load generator in turn, each against its own hello-world and fresh relay.
 *    Each measured run follows an unmeasured one of BENCH_WARMUP_S seconds (default 2) against the same
 *    server, so that both sides are measured warm (JIT, page cache, a relay database that is not empty).
 *    The generator's own cost counts: autocannon spends several times wrk's CPU per request, on the
 *    same 2 cores as the servers, and it caps the hello-world side well below what Bun.serve answers
 *    with wrk; both shares are printed. Target: accepted/s >= 30% of hello-world/s.
 *    The relay's database is in BENCH_DB_DIR (default the system's temporary folder); before the rounds,
 *    the latency of a commit-sized write + fdatasync there is measured (disk-sync.ts) and printed, as
 *    every group commit waits for one.
 *    Beside the rates, the CPU each answered request cost (cpu-account.ts): the servers' (this process,
 *    every thread: HTTP, the admission writer, GC, JIT; also split by thread) and the load generator's
 *    (its process), and how busy the machine was; from those, how many cores 30% of hello-world's rate
 *    would keep busy at the accept path's measured cost, against the cores there are.
 * 2. verify: POST /v1/verify of a real quorum-5 transcript (made by 5 real nodes, stories260K + USE Lite,
 *    in memory) at 50 connections, transcripts/s; beside it the raw cost of that transcript's signature
 *    checks alone (Ed25519 verify of each packet's signed bytes, precomputed, same backend and the same
 *    Promise.all pattern, single-threaded), as transcripts/s. Target: within 1.5x.
 * 3. latency: submit-to-verdict on a local network: the relay CLI (bun edge/src/main.ts) as a child
 *    process, 3 nodes in this process on Waku relay (libp2p gossipsub over TCP), one request at a time.
 *    Per request: client time from just before POST /v1/inference to the SSE `status` event with the
 *    verdict, minus the slowest sealed member's inference+embedding time, measured node-side by wrapping
 *    each node's InferenceQueue.submit (QueueResult.finishedAt - startedAt: generation and embedding of
 *    that job, excluding queue wait, which is zero here as requests are sequential).
 *    Target: p50 of the difference under 250 ms.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MemoryMachineStore, MemoryNetwork, SynodNode } from '@synod/browser-node';
import { createHeadlessWakuRelay } from '@synod/browser-node/headless';
import { defaultEd25519, type EmbeddingModelRef, fromHex, NodeKey } from '@synod/shared';
import type { Subprocess } from 'bun';
import { Hono } from 'hono';
import { loadTestServing, type TestServing } from '../../browser-node/src/node/test-helpers.ts';
import { signedBytes } from '../../shared/src/packets/envelope.ts';
import { createApiKey } from '../src/auth/api-keys.ts';
import { startRelay } from '../src/runtime/bun.ts';
import { startTestNetwork } from '../src/test-helpers.ts';
import { freePort, stopProcess, waitUntil } from '../src/test-servers.ts';
import { BENCH_PARTS, type BenchEnv, BenchEnvError, readBenchEnv } from './bench-env.ts';
import { accountCpu, type CpuAccount } from './cpu-account.ts';
import { type DiskSync, measureDiskSync } from './disk-sync.ts';
import {
  availableGenerators,
  type LoadGenerator,
  type LoadRequest,
  type LoadResult,
  runLoad,
} from './load-generators.ts';
import { percentile } from './percentile.ts';

const REPO = resolve(import.meta.dir, '../..');
// Every setting checked before anything starts (bench-env.ts): a bad one stops the bench, naming it.
let env: BenchEnv;
try {
  env = readBenchEnv(process.env, { available: availableGenerators(), tmpdir: tmpdir() });
} catch (e) {
  if (!(e instanceof BenchEnvError)) throw e;
  console.error(`bench:edge: ${e.message}`);
  process.exit(2);
}
const DURATION = env.durationS;
const CONNECTIONS = 50;
const LATENCY_SAMPLES = env.latencySamples;
const ACCEPT_ROUNDS = env.acceptRounds;
const NO_LIMITS = { rateLimit: { ratePerSecond: 1e9, burst: 1e9 } };
const GENERATORS = env.generators;
const LOAD = { connections: CONNECTIONS, durationSeconds: DURATION, repo: REPO };
/** An unmeasured run before each measured one, so both servers are measured warm (JIT, caches). */
const WARMUP = env.warmupS;
const WARM = { ...LOAD, durationSeconds: WARMUP };
const cannon = (url: string, req: LoadRequest = {}) => runLoad('autocannon', url, req, LOAD);
/** Where the accept runs' relay keeps its database (default the system's temporary folder). */
const DB_DIR = env.dbDir;

const r1 = (x: number) => Math.round(x * 10) / 10;

/**
 * CPU per answered request of a load run: the servers' (this process, all threads) and the load
 * generator's (its own process), in µs, and how busy the machine was (0-1).
 */
function cpuPerRequest(run: CpuAccount<LoadResult>) {
  const answered = Math.max(1, run.result.ok + run.result.non2xx);
  const threadUs = (name: string) =>
    ((run.threads.find((t) => t.name === name)?.cpuMs ?? 0) * 1000) / answered;
  return {
    serverUs: (run.processCpuMs * 1000) / answered,
    /** The JavaScript thread (HTTP, routes), worker threads (the admission writer), everything else. */
    byThreadUs: {
      main: threadUs('main'),
      workers: threadUs('Worker'),
      other:
        (run.threads
          .filter((t) => t.name !== 'main' && t.name !== 'Worker')
          .reduce((sum, t) => sum + t.cpuMs, 0) *
          1000) /
        answered,
    },
    generatorUs: (run.result.generatorCpuMs * 1000) / answered,
    machineBusy: run.machineBusy,
  };
}

// ---------------------------------------------------------------------------------------------------
// 1. accept vs hello-world, in rounds (hello-world, then a fresh relay) so drift of a shared machine
//    during the run falls on both sides; the median round's share is the figure.
async function acceptRound(embedder: EmbeddingModelRef, tool: LoadGenerator) {
  const hello = new Hono().get('/', (c) => c.text('hello'));
  const helloServer = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: hello.fetch });
  const helloUrl = `http://127.0.0.1:${helloServer.port}/`;
  if (WARMUP > 0) await runLoad(tool, helloUrl, {}, WARM);
  const helloRun = await accountCpu(() => runLoad(tool, helloUrl, {}, LOAD));
  const helloRes = helloRun.result;
  helloServer.stop(true);

  const dir = mkdtempSync(join(DB_DIR, 'synod-bench-relay-'));
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(5));
  const relay = await startRelay({
    dbUrl: `file:${join(dir, 'relay.db')}`,
    key,
    transports: [new MemoryNetwork().join(key.nodeId)],
    embedders: [embedder],
    configuredModels: ['stories260K'],
    config: NO_LIMITS,
    // Nothing is dispatched here (no nodes): an unbounded log, so every request is accepted and stored.
    maxQueuedRequests: Number.POSITIVE_INFINITY,
  });
  const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
  await relay.store.createApiKey({ id: k.id, hash: k.hash, label: 'bench', quotaPerDay: 1e9 }, Date.now());
  const post: LoadRequest = {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${k.key}` },
    body: JSON.stringify({ prompt: 'Once upon a time', params: { maxTokens: 16 } }),
  };
  if (WARMUP > 0) await runLoad(tool, `${relay.url}/v1/inference`, post, WARM);
  const acceptRun = await accountCpu(() => runLoad(tool, `${relay.url}/v1/inference`, post, LOAD));
  const acceptRes = acceptRun.result;
  await Bun.sleep(1_000); // let requests in flight when autocannon stopped finish
  // The writer thread's transactions (the HTTP thread's handovers are smaller batches of the same).
  const groupCommit = (await relay.admissionWriter?.stats()) ?? relay.admissions.stats();
  const dispatched = relay.dispatcher.stats().dispatched;
  const queued = await relay.intake.count();
  const stored = await relay.store.counts();
  await relay.stop();
  rmSync(dir, { recursive: true, force: true });
  const share = acceptRes.perSecond / helloRes.perSecond;
  const cpu = { hello: cpuPerRequest(helloRun), accept: cpuPerRequest(acceptRun) };
  return { hello: helloRes, accept: acceptRes, share, cpu, groupCommit, dispatched, queued, stored };
}

async function benchAccept() {
  // The relay pins the real embedder; the models themselves are not needed here (no nodes), so they
  // are unloaded before the rounds and take no memory or threads from either side.
  const serving = await loadTestServing();
  const embedder = serving.embedder;
  await serving.close();
  const rounds = new Map<LoadGenerator, Awaited<ReturnType<typeof acceptRound>>[]>(
    GENERATORS.map((g) => [g, []]),
  );
  for (let i = 0; i < ACCEPT_ROUNDS; i++) {
    for (const tool of GENERATORS) rounds.get(tool)?.push(await acceptRound(embedder, tool));
  }
  return GENERATORS.map((tool) => {
    const all = rounds.get(tool) ?? [];
    const byShare = [...all].sort((a, b) => a.share - b.share);
    const median = byShare[Math.floor((byShare.length - 1) / 2)] as (typeof all)[number];
    return {
      tool,
      ...median,
      shareRange: [byShare[0]?.share ?? Number.NaN, byShare.at(-1)?.share ?? Number.NaN],
      rounds: all.map((r) => ({
        hello: r.hello.perSecond,
        accept: r.accept.perSecond,
        share: r.share,
        cpu: r.cpu,
      })),
    };
  });
}

// ---------------------------------------------------------------------------------------------------
// 2. verify vs raw signature checks
async function benchVerify() {
  const t = await startTestNetwork({ nodes: 5 });
  let transcript: { packets: { v: number; type: string; from: string; body: unknown; sig: string }[] };
  try {
    const post = await fetch(`${t.relay.url}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` },
      body: JSON.stringify({
        prompt: 'Once upon a time',
        params: { maxTokens: 24 },
        frame: { quorum: 5, maxCommits: 5, secPercentage: 0.6 },
      }),
    });
    const { requestId } = (await post.json()) as { requestId: string };
    await waitUntil(
      'quorum-5 verdict',
      async () =>
        ['verdict', 'no-consensus'].includes(
          ((await (await fetch(`${t.relay.url}/v1/inference/${requestId}`)).json()) as { status: string })
            .status,
        ),
      120_000,
    );
    const v = (await (await fetch(`${t.relay.url}/v1/verify/${requestId}`)).json()) as {
      ok: boolean;
      transcript: typeof transcript;
    };
    if (!v.ok) throw new Error('the quorum-5 transcript did not verify');
    transcript = v.transcript;
  } finally {
    await t.close();
  }
  const sealMembers = transcript.packets.filter((p) => p.type === 'reveal').length;

  // Raw: the signatures alone, inputs precomputed.
  const backend = await defaultEd25519();
  const inputs = transcript.packets.map((p) => ({
    pub: fromHex(p.from),
    msg: signedBytes(p.v, p.type, p.from, p.body),
    sig: fromHex(p.sig),
  }));
  const once = () => Promise.all(inputs.map((i) => backend.verify(i.pub, i.msg, i.sig)));
  for (let i = 0; i < 200; i++) await once();
  const rawStart = performance.now();
  let rawN = 0;
  while (performance.now() - rawStart < DURATION * 1000) {
    const r = await once();
    if (!r.every(Boolean)) throw new Error('a signature did not verify');
    rawN++;
  }
  const rawPerSecond = rawN / ((performance.now() - rawStart) / 1000);

  // The endpoint, over HTTP, on a relay with no network.
  const dir = mkdtempSync(join(tmpdir(), 'synod-bench-verify-'));
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(6));
  const relay = await startRelay({
    dbUrl: `file:${join(dir, 'relay.db')}`,
    key,
    transports: [new MemoryNetwork().join(key.nodeId)],
    embedders: [],
    configuredModels: ['stories260K'],
    config: NO_LIMITS,
  });
  const endpoint = await cannon(`${relay.url}/v1/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ transcript }),
  });
  await Bun.sleep(1_000);
  await relay.stop();
  rmSync(dir, { recursive: true, force: true });
  return { packets: transcript.packets.length, sealMembers, rawPerSecond, endpoint };
}

// ---------------------------------------------------------------------------------------------------
// 3. submit-to-verdict latency over Waku
async function benchLatency() {
  const dir = mkdtempSync(join(tmpdir(), 'synod-bench-waku-'));
  const port = await freePort();
  const relayProc: Subprocess = Bun.spawn(
    [
      process.execPath,
      'edge/src/main.ts',
      '--db',
      `file:${join(dir, 'relay.db')}`,
      '--identity',
      join(dir, 'relay-identity.json'),
      '--port',
      String(port),
      '--dev-key-file',
      join(dir, 'dev-api-key'),
    ],
    {
      cwd: REPO,
      env: { ...process.env, SYNOD_PASSPHRASE: 'bench-passphrase' },
      stdout: 'pipe',
      stderr: 'inherit',
    },
  );
  const nodes: SynodNode[] = [];
  const servings: TestServing[] = [];
  const transports: { close(): Promise<void> }[] = [];
  try {
    const started = await new Promise<{ multiaddrs: string[] }>((res, rej) => {
      const timer = setTimeout(() => rej(new Error('the relay did not start')), 60_000);
      void (async () => {
        const dec = new TextDecoder();
        let buf = '';
        for await (const chunk of relayProc.stdout as ReadableStream<Uint8Array>) {
          buf += dec.decode(chunk, { stream: true });
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            try {
              const j = JSON.parse(line) as { msg?: string; multiaddrs?: string[] };
              if (j.msg === 'relay started') {
                clearTimeout(timer);
                res({ multiaddrs: j.multiaddrs ?? [] });
              }
            } catch {}
          }
        }
      })();
    });
    const url = `http://127.0.0.1:${port}`;
    const apiKey = readFileSync(join(dir, 'dev-api-key'), 'utf8').trim();
    const bootstrap = started.multiaddrs.filter((a) => !a.includes('/ws'));
    const memberMs = new Map<string, number>();
    for (let i = 0; i < 3; i++) {
      const serving = await loadTestServing(16);
      const nk = await NodeKey.fromSeed(new Uint8Array(32).fill(60 + i));
      const submit = serving.queue.submit.bind(serving.queue);
      serving.queue.submit = (job) =>
        submit(job).then((r) => {
          memberMs.set(`${nk.nodeId}:${job.requestId}`, r.finishedAt - r.startedAt);
          return r;
        });
      const waku = await createHeadlessWakuRelay({ host: '127.0.0.1', tcpPort: 0, wsPort: 0, bootstrap });
      transports.push(waku);
      const node = new SynodNode({
        key: nk,
        role: 'node',
        transports: [waku],
        serving,
        store: new MemoryMachineStore(),
        heartbeat: {
          intervalMs: 2_000,
          software: 'synod-node/bench',
          addresses: [],
          tokensPerSecond: 500,
          embeddingsPerSecond: 50,
          engine: 'node-llama-cpp',
        },
      });
      await node.start();
      nodes.push(node);
      servings.push(serving);
    }
    await waitUntil(
      'the relay hears 3 nodes',
      async () =>
        ((await (await fetch(`${url}/v1/nodes`)).json()) as { nodes: { role: string }[] }).nodes.filter(
          (n) => n.role === 'node',
        ).length >= 3,
      60_000,
      200,
    );
    await Bun.sleep(2_000); // let the gossipsub mesh settle

    const samples: { total: number; slowest: number; overhead: number }[] = [];
    let failed = 0;
    for (let i = 0; i < LATENCY_SAMPLES + 3; i++) {
      const t0 = performance.now();
      const r = await fetch(`${url}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
        body: JSON.stringify({ prompt: `Once upon a time ${i}`, params: { maxTokens: 16, seed: i } }),
      });
      const { requestId } = (await r.json()) as { requestId: string };
      const events = await fetch(`${url}/v1/inference/${requestId}/events`);
      const reader = (events.body as ReadableStream<Uint8Array>).getReader();
      const dec = new TextDecoder();
      let text = '';
      let t1 = Number.NaN;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += dec.decode(value, { stream: true });
        if (/"status":"(verdict|no-consensus)"/.test(text)) {
          t1 = performance.now();
          break;
        }
        if (/"status":"(expired|failed)"/.test(text)) break;
      }
      await reader.cancel().catch(() => undefined);
      const view = (await (await fetch(`${url}/v1/inference/${requestId}`)).json()) as {
        status: string;
        seal: { members: { nodeId: string }[] | string[] } | null;
      };
      if (Number.isNaN(t1) || !view.seal) {
        failed++;
        continue;
      }
      const members = (view.seal.members as (string | { nodeId: string })[]).map((m) =>
        typeof m === 'string' ? m : m.nodeId,
      );
      const slowest = Math.max(...members.map((m) => memberMs.get(`${m}:${requestId}`) ?? Number.NaN));
      if (i < 3) continue; // warm-up
      samples.push({ total: t1 - t0, slowest, overhead: t1 - t0 - slowest });
    }
    const col = (k: 'total' | 'slowest' | 'overhead') => samples.map((s) => s[k]).filter(Number.isFinite);
    return {
      samples: samples.length,
      failed,
      total: { p50: percentile(col('total'), 50), p99: percentile(col('total'), 99) },
      slowestMember: { p50: percentile(col('slowest'), 50), p99: percentile(col('slowest'), 99) },
      overhead: { p50: percentile(col('overhead'), 50), p99: percentile(col('overhead'), 99) },
    };
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
    await Promise.all(transports.map((t) => t.close().catch(() => undefined)));
    await Promise.all(servings.map((s) => s.close()));
    await stopProcess(relayProc);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
const PARTS = env.parts;
// The disk first, on a quiet machine: what each group commit of the accept runs waits for.
let disk: DiskSync | null = null;
if (PARTS.has('accept')) {
  try {
    disk = measureDiskSync(DB_DIR);
  } catch (e) {
    // A BENCH_DB_DIR that is not a writable folder: say so before any load runs.
    console.error(`bench:edge: BENCH_DB_DIR: ${(e as Error).message}`);
    process.exit(2);
  }
}
const accept = PARTS.has('accept') ? await benchAccept() : null;
const verify = PARTS.has('verify') ? await benchVerify() : null;
const latency = PARTS.has('latency') ? await benchLatency() : null;

const CORES = cpus().length;
const busy = (b: number | null) => (b === null ? 'n/a' : `${Math.round(b * 100)}%`);
/** Cores the accept path would keep busy at 30% of hello-world's rate, at its measured CPU per request. */
function coresAtTarget(a: { hello: LoadResult; cpu: { accept: { serverUs: number; generatorUs: number } } }) {
  return (0.3 * a.hello.perSecond * (a.cpu.accept.serverUs + a.cpu.accept.generatorUs)) / 1e6;
}

const verifyRatio = verify ? verify.rawPerSecond / verify.endpoint.perSecond : Number.NaN;
const rows: [string, string, string, string][] = [['metric', 'value', 'beside', 'target']];
if (disk) {
  rows.push([
    `relay database folder: ${disk.dir} (${disk.fsType})`,
    `write ${disk.chunkBytes / 1024} KiB + fdatasync: p50 ${disk.p50Ms.toFixed(3)} ms, p99 ${disk.p99Ms.toFixed(3)} ms`,
    'each group commit of the accept runs waits for one (BENCH_DB_DIR to measure another disk)',
    '',
  ]);
}
for (const a of accept ?? []) {
  const by = `${a.tool}${a.tool === 'wrk' ? ' -t1' : ''}`;
  rows.push(
    [
      `hello-world GET / (Hono, Bun.serve), ${CONNECTIONS} conns, ${by}`,
      `${Math.round(a.hello.perSecond)} req/s, p50 ${r1(a.hello.p50)} ms, p99 ${r1(a.hello.p99)} ms`,
      '',
      '',
    ],
    [
      `POST /v1/inference accepted, ${CONNECTIONS} conns (libSQL file), ${by}`,
      `${Math.round(a.accept.perSecond)} req/s, p50 ${r1(a.accept.p50)} ms, p99 ${r1(a.accept.p99)} ms`,
      `${r1(a.share * 100)}% of hello-world, median of ${a.rounds.length} rounds (${r1((a.shareRange[0] ?? 0) * 100)}-${r1((a.shareRange[1] ?? 0) * 100)}%; non-2xx ${a.accept.non2xx}, errors ${a.accept.errors})`,
      `>= 30%: ${a.share >= 0.3 ? 'met' : 'NOT met'}`,
    ],
    [
      '  CPU per request, server + load generator',
      `hello-world ${r1(a.cpu.hello.serverUs)} + ${r1(a.cpu.hello.generatorUs)} µs (machine ${busy(a.cpu.hello.machineBusy)} busy); accept ${r1(a.cpu.accept.serverUs)} + ${r1(a.cpu.accept.generatorUs)} µs (${busy(a.cpu.accept.machineBusy)} busy)`,
      `30% of hello-world (${Math.round(0.3 * a.hello.perSecond)} req/s) at that cost: ${r1(coresAtTarget(a))} of ${CORES} cores`,
      '',
    ],
    [
      '  server CPU per request, by thread',
      `hello-world: main ${r1(a.cpu.hello.byThreadUs.main)}, other ${r1(a.cpu.hello.byThreadUs.other)} µs`,
      `accept: main (HTTP) ${r1(a.cpu.accept.byThreadUs.main)}, admission writer ${r1(a.cpu.accept.byThreadUs.workers)}, other (GC, JIT) ${r1(a.cpu.accept.byThreadUs.other)} µs`,
      '',
    ],
    [
      '  admission group commits',
      `${a.groupCommit.batches} transactions, mean ${r1(a.groupCommit.admissions / Math.max(1, a.groupCommit.batches))} requests each, largest ${a.groupCommit.largest}`,
      `stored: ${a.queued} queued, ${a.dispatched} dispatched to the network`,
      '',
    ],
  );
}
if (verify) {
  rows.push([
    `POST /v1/verify, quorum-${verify.sealMembers} transcript (${verify.packets} packets)`,
    `${Math.round(verify.endpoint.perSecond)} transcripts/s, p50 ${verify.endpoint.p50} ms`,
    `signatures alone: ${Math.round(verify.rawPerSecond)} transcripts/s (${r1(verifyRatio)}x)`,
    `<= 1.5x: ${verifyRatio <= 1.5 ? 'met' : 'NOT met'}`,
  ]);
}
if (latency) {
  rows.push([
    `submit -> verdict, relay + 3 nodes on Waku (${latency.samples} requests)`,
    `p50 ${r1(latency.total.p50)} ms, p99 ${r1(latency.total.p99)} ms`,
    `slowest member inference+embedding p50 ${r1(latency.slowestMember.p50)} ms; difference p50 ${r1(latency.overhead.p50)} ms, p99 ${r1(latency.overhead.p99)} ms`,
    `p50 < 250 ms: ${latency.overhead.p50 < 250 ? 'met' : 'NOT met'}`,
  ]);
}
const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
for (const [i, r] of rows.entries()) {
  console.log(r.map((c, j) => c.padEnd(widths[j] ?? 0)).join(' | '));
  if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
}

const result = {
  when: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, bun: Bun.version },
  durationSeconds: DURATION,
  connections: CONNECTIONS,
  disk,
  accept:
    accept?.map((a) => ({
      ...a,
      shareOfHelloWorld: a.share,
      target: 0.3,
      coresAtTarget: coresAtTarget(a),
      cores: CORES,
    })) ?? null,
  verify: verify && { ...verify, rawOverEndpoint: verifyRatio, target: 1.5 },
  latency: latency && { ...latency, targetOverheadP50Ms: 250 },
};
mkdirSync(join(REPO, 'bench-results'), { recursive: true });
const out =
  PARTS.size === BENCH_PARTS.length
    ? 'bench-results/edge.json'
    : `bench-results/edge-${[...PARTS].join('-')}.json`;
writeFileSync(join(REPO, out), `${JSON.stringify(result, null, 2)}\n`);
console.log(`\nwrote ${out}`);
process.exit(0);
