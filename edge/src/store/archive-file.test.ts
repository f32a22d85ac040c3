import { afterAll, expect, test } from 'bun:test';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { smallDisk } from '../test-servers.ts';
import { ArchiveFile } from './archive-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-archive-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('appends whole lines; a line a crash left unfinished is cut away as it opens; the file is made 0600', async () => {
  const path = join(dir, 'a.jsonl');
  writeFileSync(path, '{"a":1}\n{"b":2}\n{"c":');
  chmodSync(path, 0o644);
  const a = await ArchiveFile.open(path);
  try {
    expect(a.size).toBe(16);
    await a.append(['{"c":3}', '{"d":4}']);
    expect(a.size).toBe(32);
  } finally {
    await a.close();
  }
  expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n{"b":2}\n{"c":3}\n{"d":4}\n');
  expect(statSync(path).mode & 0o777).toBe(0o600);
  // A file of one unfinished line is emptied.
  writeFileSync(path, '{"half":');
  const b = await ArchiveFile.open(path);
  expect(b.size).toBe(0);
  await b.close();
});

// A full disk for real: a 64 KiB tmpfs (Linux, as root; elsewhere the test is skipped).
const full = join(dir, 'full');
const disk = smallDisk(full, '64k');
test.skipIf(!disk.available)(
  'on a full disk a batch is cut back whole: the file ends where it did, with whole lines',
  async () => {
    expect(disk.mount()).toBe(true);
    try {
      const path = join(full, 'a.jsonl');
      const a = await ArchiveFile.open(path);
      try {
        await a.append(['{"first":1}']);
        const line = JSON.stringify({ pad: 'x'.repeat(4_000) });
        let caught: unknown;
        try {
          await a.append(Array.from({ length: 40 }, () => line)); // 160 KB: more than the disk holds
        } catch (e) {
          caught = e;
        }
        expect(String(caught)).toMatch(/ENOSPC|no more bytes/);
        expect(a.size).toBe(12);
        expect(readFileSync(path, 'utf8')).toBe('{"first":1}\n');
        // Room again: the next batch goes in whole.
        await a.append(['{"next":2}']);
      } finally {
        await a.close();
      }
      expect(readFileSync(path, 'utf8')).toBe('{"first":1}\n{"next":2}\n');
    } finally {
      disk.unmount();
    }
  },
);
