import { describe, expect, test } from 'bun:test';
import { accountCpu, parseProcStat, parseTaskStat, threadCpuBetween } from './cpu-account.ts';

/** The head of a real /proc/stat (Linux 6.1, 2 CPUs). */
const PROC_STAT = `cpu  1611172 7288 675407 3786255 49489 0 104302 695 0 0
cpu0 805586 3644 337703 1893127 24744 0 52151 347 0 0
cpu1 805586 3644 337704 1893128 24745 0 52151 348 0 0
intr 123456 0 0
ctxt 987654
`;

describe('parseProcStat', () => {
  test('busy is everything but idle and iowait, from the aggregate line', () => {
    const busy = 1611172 + 7288 + 675407 + 0 + 104302 + 695;
    expect(parseProcStat(PROC_STAT)).toEqual({ busy, total: busy + 3786255 + 49489 });
  });

  test('an old kernel without steal and guest columns still parses', () => {
    expect(parseProcStat('cpu 10 0 5 85 0\n')).toEqual({ busy: 15, total: 100 });
  });

  test('anything else is a TypeError', () => {
    expect(() => parseProcStat('cpu0 1 2 3 4\n')).toThrow(TypeError);
    expect(() => parseProcStat('cpu 1 two 3 4\n')).toThrow(TypeError);
    expect(() => parseProcStat('cpu 1 2\n')).toThrow(TypeError);
  });
});

describe('parseTaskStat', () => {
  test('user + system ticks, counted from the last parenthesis (a name may hold spaces and parens)', () => {
    const line = '4242 (Bun Pool (1)) S 4200 4200 4200 0 -1 4194560 1200 0 3 0 1234 567 0 0 20 0 9 0 100 0 0';
    expect(parseTaskStat(line)).toBe(1234 + 567);
  });

  test('anything else is a TypeError', () => {
    expect(() => parseTaskStat('no parenthesis here')).toThrow(TypeError);
    expect(() => parseTaskStat('1 (x) S 1 2')).toThrow(TypeError);
  });
});

describe('threadCpuBetween', () => {
  test('groups by name, counts a thread born meanwhile from zero, skips idle ones, most first', () => {
    const before = new Map([
      ['1', { name: 'main', ticks: 100 }],
      ['2', { name: 'Worker', ticks: 50 }],
      ['3', { name: 'HeapHelper', ticks: 7 }],
    ]);
    const after = new Map([
      ['1', { name: 'main', ticks: 160 }],
      ['2', { name: 'Worker', ticks: 60 }],
      ['3', { name: 'HeapHelper', ticks: 7 }],
      ['4', { name: 'Worker', ticks: 5 }],
    ]);
    expect(threadCpuBetween(before, after)).toEqual([
      { name: 'main', cpuMs: 600 },
      { name: 'Worker', cpuMs: 150 },
    ]);
  });
});

describe('accountCpu', () => {
  test('counts the CPU this process burns during the run, and the machine share busy', async () => {
    const { result, processCpuMs, threads, machineBusy } = await accountCpu(async () => {
      const until = performance.now() + 60;
      let x = 0;
      while (performance.now() < until) x += Math.sqrt(x + 1);
      return x;
    });
    expect(result).toBeGreaterThan(0);
    // 60 ms of wall time spinning on one thread: most of it is CPU time (the machine may be shared).
    expect(processCpuMs).toBeGreaterThan(20);
    if (process.platform === 'linux') {
      // The spinning was on the main thread, to the clock tick.
      expect(threads.find((t) => t.name === 'main')?.cpuMs ?? 0).toBeGreaterThan(10);
      expect(machineBusy).toBeGreaterThan(0);
      expect(machineBusy).toBeLessThanOrEqual(1);
    } else {
      expect(machineBusy).toBeNull();
    }
  });
});
