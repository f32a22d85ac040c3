import { describe, expect, test } from 'bun:test';
import { BenchEnvError, readBenchEnv } from './bench-env.ts';

const HERE = { available: ['autocannon'] as const, tmpdir: '/tmp' };

describe('readBenchEnv', () => {
  test('defaults: 10 s runs after 2 s warm-ups, 3 rounds, 30 samples, every generator here, every part', () => {
    expect(readBenchEnv({}, { available: ['autocannon', 'wrk'], tmpdir: '/tmp' })).toEqual({
      durationS: 10,
      warmupS: 2,
      acceptRounds: 3,
      latencySamples: 30,
      generators: ['autocannon', 'wrk'],
      parts: new Set(['accept', 'verify', 'latency']),
      dbDir: '/tmp',
    });
  });

  test('settings given are taken; lists lose their repeats and spaces; an empty value is the default', () => {
    const e = readBenchEnv(
      {
        BENCH_DURATION_S: '4',
        BENCH_WARMUP_S: '0',
        BENCH_ACCEPT_ROUNDS: '5',
        BENCH_LATENCY_SAMPLES: '',
        BENCH_LOADGEN: 'autocannon, autocannon',
        BENCH_PARTS: 'latency,accept',
        BENCH_DB_DIR: '/dev/shm',
      },
      HERE,
    );
    expect(e).toMatchObject({
      durationS: 4,
      warmupS: 0,
      acceptRounds: 5,
      latencySamples: 30,
      dbDir: '/dev/shm',
    });
    expect(e.generators).toEqual(['autocannon']);
    expect([...e.parts]).toEqual(['latency', 'accept']);
  });

  test.each([
    [{ BENCH_DURATION_S: 'ten' }, 'BENCH_DURATION_S: ten is not a whole number from 1 to 3600'],
    [{ BENCH_DURATION_S: '0' }, 'BENCH_DURATION_S'],
    [{ BENCH_DURATION_S: '1e3' }, 'BENCH_DURATION_S'],
    [{ BENCH_WARMUP_S: '-1' }, 'BENCH_WARMUP_S'],
    [{ BENCH_ACCEPT_ROUNDS: '2.5' }, 'BENCH_ACCEPT_ROUNDS'],
    [{ BENCH_LATENCY_SAMPLES: '0x10' }, 'BENCH_LATENCY_SAMPLES'],
    [{ BENCH_LOADGEN: 'ab' }, 'BENCH_LOADGEN: ab is not one of autocannon, wrk'],
    [{ BENCH_LOADGEN: 'wrk' }, 'BENCH_LOADGEN: wrk is not installed here'],
    [{ BENCH_PARTS: 'acept' }, 'BENCH_PARTS: acept is not one of accept, verify, latency'],
    [{ BENCH_PARTS: 'accept,' }, 'BENCH_PARTS:  is not one of'],
  ])('%p is a BenchEnvError naming the variable', (env, message) => {
    expect(() => readBenchEnv(env, HERE)).toThrow(BenchEnvError);
    expect(() => readBenchEnv(env, HERE)).toThrow(message);
  });
});
