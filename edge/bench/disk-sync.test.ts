import { describe, expect, test } from 'bun:test';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filesystemOf, measureDiskSync } from './disk-sync.ts';

/** Lines of a real /proc/mounts (Linux 6.1). */
const MOUNTS = `/dev/vda / ext4 rw,relatime,discard 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0
/dev/vdb /mnt/data\\040disk xfs rw,relatime 0 0
`;

describe('filesystemOf', () => {
  test('the longest mount point holding the path wins', () => {
    expect(filesystemOf('/tmp/relay', MOUNTS)).toBe('ext4');
    expect(filesystemOf('/dev/shm', MOUNTS)).toBe('tmpfs');
    expect(filesystemOf('/dev/shm/synod/relay.db', MOUNTS)).toBe('tmpfs');
    expect(filesystemOf('/mnt/data disk/relay', MOUNTS)).toBe('xfs');
  });

  test('a prefix that is not a path component does not count', () => {
    expect(filesystemOf('/dev/shmem', MOUNTS)).toBe('ext4');
  });

  test('no mount table: unknown', () => {
    expect(filesystemOf('/tmp', '')).toBe('unknown');
  });
});

describe('measureDiskSync', () => {
  test('times real write+fdatasync rounds and leaves nothing behind', () => {
    const dir = mkdtempSync(join(tmpdir(), 'synod-disk-sync-test-'));
    try {
      const r = measureDiskSync(dir, { samples: 20, chunkBytes: 8192, fileBytes: 65536 });
      expect(r.samples).toBe(20);
      expect(r.chunkBytes).toBe(8192);
      expect(r.p50Ms).toBeGreaterThan(0);
      expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
      expect(r.fsType).not.toBe('');
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad options are a RangeError, before anything is written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'synod-disk-sync-test-'));
    try {
      expect(() => measureDiskSync(dir, { samples: 0 })).toThrow(RangeError);
      expect(() => measureDiskSync(dir, { chunkBytes: 1.5 })).toThrow(RangeError);
      expect(() => measureDiskSync(dir, { fileBytes: Number.NaN })).toThrow(RangeError);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a folder that does not exist is a RangeError that names it', () => {
    const missing = join(tmpdir(), 'synod-no-such-folder-x');
    expect(() => measureDiskSync(missing)).toThrow(new RegExp(`no folder ${missing}`));
    expect(() => measureDiskSync(missing)).toThrow(RangeError);
  });
});
