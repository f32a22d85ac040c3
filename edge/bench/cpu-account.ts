/**
 * Where a load run's CPU went: this process (the servers under test run in it: Bun.serve's thread, the
 * admission writer thread, GC and JIT threads), and the whole machine from /proc/stat (Linux), so the
 * benchmark can say how much CPU a request costs on each side and whether the cores were all busy.
 * Figures per request hold up better than requests/s on a shared machine, whose speed drifts between
 * runs.
 */
import { readFileSync } from 'node:fs';

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

export interface CpuAccount<T> {
  result: T;
  /** CPU time of this process (user + system, all threads) during the run, in ms. */
  processCpuMs: number;
  /** Share of the machine's CPU time that was busy during the run (0-1), or null off Linux. */
  machineBusy: number | null;
}

/** Run `run`, and account for the CPU this process and the machine spent meanwhile. */
export async function accountCpu<T>(run: () => Promise<T>): Promise<CpuAccount<T>> {
  const ticks0 = machineTicks();
  const cpu0 = process.cpuUsage();
  const result = await run();
  const cpu = process.cpuUsage(cpu0);
  const ticks1 = machineTicks();
  const total = ticks0 && ticks1 ? ticks1.total - ticks0.total : 0;
  return {
    result,
    processCpuMs: (cpu.user + cpu.system) / 1000,
    machineBusy: ticks0 && ticks1 && total > 0 ? (ticks1.busy - ticks0.busy) / total : null,
  };
}
