/**
 * What the disk under the relay's database charges for a durable commit: the latency of writing a
 * commit-sized chunk and waiting for `fdatasync`, the way SQLite's WAL is written (sequential chunks
 * overwriting a preallocated file, wrapping at its end), and the filesystem the folder is on. The
 * accept path waits for one such sync per group commit, so on a shared machine its throughput follows
 * this figure; the benchmark prints it beside the accepted requests/s.
 */
import {
  closeSync,
  fdatasyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { percentile } from './percentile.ts';

export interface DiskSync {
  /** The folder measured, resolved. */
  dir: string;
  /** Its filesystem (from /proc/mounts; `unknown` where there is none). */
  fsType: string;
  chunkBytes: number;
  samples: number;
  p50Ms: number;
  p99Ms: number;
}

export interface DiskSyncOptions {
  /** Syncs to time. Default 400. */
  samples?: number;
  /** Bytes written before each sync: a commit of about 16 requests is 12 WAL frames of 4 KiB. Default 48 KiB. */
  chunkBytes?: number;
  /** The file's size, where the writes wrap (SQLite's WAL checkpoints near 4 MiB). Default 4 MiB. */
  fileBytes?: number;
}

/** Time `samples` write+fdatasync rounds in a scratch file under `dir` (removed afterwards). */
export function measureDiskSync(dir: string, o: DiskSyncOptions = {}): DiskSync {
  const samples = o.samples ?? 400;
  const chunkBytes = o.chunkBytes ?? 48 * 1024;
  const fileBytes = Math.max(o.fileBytes ?? 4 * 1024 * 1024, chunkBytes);
  if (!(Number.isInteger(samples) && samples > 0)) throw new RangeError('samples must be a positive integer');
  if (!(Number.isInteger(chunkBytes) && chunkBytes > 0)) {
    throw new RangeError('chunkBytes must be a positive integer');
  }
  if (o.fileBytes !== undefined && !(Number.isInteger(o.fileBytes) && o.fileBytes > 0)) {
    throw new RangeError('fileBytes must be a positive integer');
  }
  let resolved: string;
  try {
    resolved = realpathSync(dir);
  } catch (e) {
    throw new RangeError(`no folder ${dir} to measure: ${(e as Error).message}`);
  }
  const scratch = mkdtempSync(join(resolved, 'synod-disk-sync-'));
  const chunk = new Uint8Array(chunkBytes).fill(0x5a);
  const times: number[] = [];
  try {
    const fd = openSync(join(scratch, 'wal'), 'w');
    try {
      // Preallocated and synced first, so the timed rounds overwrite (as a WAL after its first cycle).
      for (let at = 0; at < fileBytes; at += chunkBytes) writeSync(fd, chunk, 0, chunkBytes, at);
      fdatasyncSync(fd);
      let at = 0;
      for (let i = 0; i < samples; i++) {
        if (at + chunkBytes > fileBytes) at = 0;
        const t = performance.now();
        writeSync(fd, chunk, 0, chunkBytes, at);
        fdatasyncSync(fd);
        times.push(performance.now() - t);
        at += chunkBytes;
      }
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return {
    dir: resolved,
    fsType: filesystemOf(resolved),
    chunkBytes,
    samples,
    p50Ms: percentile(times, 50),
    p99Ms: percentile(times, 99),
  };
}

/** The type of the filesystem holding `path` (an absolute, resolved path), from a /proc/mounts text. */
export function filesystemOf(path: string, mounts = readMounts()): string {
  let best = { point: '', type: 'unknown' };
  for (const line of mounts.split('\n')) {
    const [, point, type] = line.split(' ');
    if (point === undefined || type === undefined) continue;
    const p = point.replace(/\\040/g, ' ');
    const inside = p === '/' || path === p || path.startsWith(`${p}/`);
    if (inside && p.length >= best.point.length) best = { point: p, type };
  }
  return best.type;
}

function readMounts(): string {
  try {
    return readFileSync('/proc/mounts', 'utf8');
  } catch {
    return '';
  }
}
