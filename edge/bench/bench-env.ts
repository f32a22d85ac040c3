/**
 * The settings of `npm run bench:edge`, read from its environment variables and checked before any load
 * runs: a value that is not one (`BENCH_DURATION_S=ten`, `BENCH_LOADGEN=ab`, `BENCH_PARTS=acept`) stops
 * the bench with its name, instead of running NaN-second loads or silently skipping a part.
 */
import type { LoadGenerator } from './load-generators.ts';

export const BENCH_PARTS = ['accept', 'verify', 'latency'] as const;
export type BenchPart = (typeof BENCH_PARTS)[number];

export interface BenchEnv {
  /** Seconds of each measured load run (`BENCH_DURATION_S`, default 10). */
  durationS: number;
  /** Seconds of the unmeasured run before each measured one (`BENCH_WARMUP_S`, default 2; 0: none). */
  warmupS: number;
  /** Rounds of hello-world then a fresh relay (`BENCH_ACCEPT_ROUNDS`, default 3). */
  acceptRounds: number;
  /** Requests timed submit→verdict (`BENCH_LATENCY_SAMPLES`, default 30). */
  latencySamples: number;
  /** `BENCH_LOADGEN` (comma-separated), default every generator available here. */
  generators: LoadGenerator[];
  /** `BENCH_PARTS` (comma-separated), default all of them. */
  parts: Set<BenchPart>;
  /** Where the accept runs' relay keeps its database (`BENCH_DB_DIR`, default the temporary folder). */
  dbDir: string;
}

/** A bench setting that is not one. */
export class BenchEnvError extends Error {
  readonly code = 'BENCH_ENV_INVALID';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'BenchEnvError';
  }
}

const GENERATORS: readonly LoadGenerator[] = ['autocannon', 'wrk'];

export function readBenchEnv(
  env: Record<string, string | undefined>,
  here: { available: readonly LoadGenerator[]; tmpdir: string },
): BenchEnv {
  return {
    durationS: whole(env, 'BENCH_DURATION_S', 10, 1, 3_600),
    warmupS: whole(env, 'BENCH_WARMUP_S', 2, 0, 600),
    acceptRounds: whole(env, 'BENCH_ACCEPT_ROUNDS', 3, 1, 100),
    latencySamples: whole(env, 'BENCH_LATENCY_SAMPLES', 30, 1, 10_000),
    generators: generators(env, here.available),
    parts: new Set(list(env, 'BENCH_PARTS', BENCH_PARTS, BENCH_PARTS)),
    dbDir: env['BENCH_DB_DIR'] || here.tmpdir,
  };
}

/** `BENCH_LOADGEN`: known generators, each of them installed here. */
function generators(env: Record<string, string | undefined>, available: readonly LoadGenerator[]) {
  const chosen = list(env, 'BENCH_LOADGEN', GENERATORS, available);
  const missing = chosen.find((g) => !available.includes(g));
  if (missing !== undefined) throw new BenchEnvError('BENCH_LOADGEN', `${missing} is not installed here`);
  return chosen;
}

/** A whole number in [min, max], or `fallback` when the variable is unset or empty. */
function whole(
  env: Record<string, string | undefined>,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const n = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max))
    throw new BenchEnvError(name, `${text} is not a whole number from ${min} to ${max}`);
  return n;
}

/** A comma-separated list of known names, without repeats, or `fallback` when unset or empty. */
function list<T extends string>(
  env: Record<string, string | undefined>,
  name: string,
  known: readonly T[],
  fallback: readonly T[],
): T[] {
  const text = env[name];
  if (text === undefined || text === '') return [...fallback];
  const out: T[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim() as T;
    if (!known.includes(item)) throw new BenchEnvError(name, `${raw} is not one of ${known.join(', ')}`);
    if (!out.includes(item)) out.push(item);
  }
  return out;
}
