/**
 * Where a load run's CPU went: this process (the servers under test run in it: Bun.serve's thread, the
 * admission writer thread, GC and JIT threads), and the whole machine from /proc/stat (Linux), so the
 * benchmark can say how much CPU a request costs on each side and whether the cores were all busy.
 * Figures per request hold up better than requests/s on a shared machine, whose speed drifts between
 * runs.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Jiffies from the aggregate `cpu` line of /proc/stat. */
export interface MachineTicks {
  /** Everything but idle and iowait. */
  busy: number;
  total: number;
}

/** The aggregate `cpu` line of a /proc/stat text; a TypeError if there is none. */
export function parseProcStat(text: string): MachineTicks {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (line === undefined) throw new TypeError('no aggregate cpu line in /proc/stat');
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  if (fields.length < 4 || fields.some((n) => !Number.isFinite(n))) {
    throw new TypeError('a malformed cpu line in /proc/stat');
  }
  // user nice system idle iowait irq softirq steal guest guest_nice: guest time is already in user.
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

function machineTicks(): MachineTicks | null {
  try {
    return parseProcStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return null;
  }
}

/**
 * User + system clock ticks of one thread from its /proc/<pid>/task/<tid>/stat text (the name may hold
 * spaces and parentheses, so the fields are counted from the last `)`); a TypeError if it is not one.
 */
export function parseTaskStat(text: string): number {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new TypeError('a malformed task stat line');
  // After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15)
  const fields = text.slice(close + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isInteger(utime) || !Number.isInteger(stime)) throw new TypeError('a malformed task stat line');
  return utime + stime;
}

/** Linux reports thread times in USER_HZ, which is 100 on every architecture it runs on. */
const TICK_MS = 10;

/** This process's threads now: CPU ticks by thread id, with the thread's name. */
function threadTicks(): Map<string, { name: string; ticks: number }> {
  const out = new Map<string, { name: string; ticks: number }>();
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const ticks = parseTaskStat(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'));
      // The main thread is the one whose id is the process id: Bun.serve's HTTP thread here.
      const name =
        tid === String(process.pid) ? 'main' : readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      out.set(tid, { name, ticks });
    } catch {
      // the thread ended in between
    }
  }
  return out;
}

/** CPU each named group of threads spent between two snapshots, most first (threads born meanwhile count from 0). */
export function threadCpuBetween(
  before: Map<string, { name: string; ticks: number }>,
  after: Map<string, { name: string; ticks: number }>,
): { name: string; cpuMs: number }[] {
  const byName = new Map<string, number>();
  for (const [tid, t] of after) {
    const spent = t.ticks - (before.get(tid)?.ticks ?? 0);
    if (spent > 0) byName.set(t.name, (byName.get(t.name) ?? 0) + spent * TICK_MS);
  }
  return [...byName].map(([name, cpuMs]) => ({ name, cpuMs })).sort((a, b) => b.cpuMs - a.cpuMs);
}

export interface CpuAccount<T> {
  result: T;
  /** CPU time of this process (user + system, all threads) during the run, in ms. */
  processCpuMs: number;
  /**
   * The same by thread (Linux; empty elsewhere), grouped by thread name: `main` (the JavaScript thread,
   * which serves HTTP), `Worker` (worker threads, e.g. the admission writer), the runtime's GC and JIT
   * threads. From clock ticks, so to 10 ms.
   */
  threads: { name: string; cpuMs: number }[];
  /** Share of the machine's CPU time that was busy during the run (0-1), or null off Linux. */
  machineBusy: number | null;
}

/** Run `run`, and account for the CPU this process and the machine spent meanwhile. */
export async function accountCpu<T>(run: () => Promise<T>): Promise<CpuAccount<T>> {
  const ticks0 = machineTicks();
  const threads0 = threadTicks();
  const cpu0 = process.cpuUsage();
  const result = await run();
  const cpu = process.cpuUsage(cpu0);
  const threads1 = threadTicks();
  const ticks1 = machineTicks();
  const total = ticks0 && ticks1 ? ticks1.total - ticks0.total : 0;
  return {
    result,
    processCpuMs: (cpu.user + cpu.system) / 1000,
    threads: threadCpuBetween(threads0, threads1),
    machineBusy: ticks0 && ticks1 && total > 0 ? (ticks1.busy - ticks0.busy) / total : null,
  };
}
