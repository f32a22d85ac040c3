import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileErrorKind, LocalFileError } from './file-error.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-file-error-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('what a local file error says', () => {
  test("SQLite's SQLITE_READONLY of a file this user may not write is a permission, not a read-only file system", () => {
    const lock = join(dir, 'identity.json.lock');
    writeFileSync(lock, '');
    // `mayWrite`: the system's answer for another user's file (this test may run as root, who may write it).
    expect(fileErrorKind('SQLITE_READONLY', lock, () => false)).toBe('denied');
    expect(fileErrorKind('SQLITE_READONLY', lock, () => true)).toBe('read-only');
    // No file there: nothing to ask of it.
    expect(fileErrorKind('SQLITE_READONLY', join(dir, 'none'), () => false)).toBe('read-only');
    expect(fileErrorKind('EROFS', lock, () => false)).toBe('read-only');
    expect(fileErrorKind('EACCES', lock)).toBe('denied');
  });

  test('the error names the file, the reason and a hint for the flag', () => {
    const e = new LocalFileError('IDENTITY_FILE_UNWRITABLE', {
      action: 'write',
      what: 'the identity lock file',
      path: join(dir, 'absent.lock'),
      flag: '--identity',
      cause: Object.assign(new Error('disk I/O'), { code: 'ENOSPC' }),
    });
    expect(e.message).toBe(
      `cannot write the identity lock file ${join(dir, 'absent.lock')}: no space left on the device`,
    );
    expect(e.hint).toContain('--identity');
    expect(e.details).toEqual({ path: join(dir, 'absent.lock'), errno: 'ENOSPC' });
  });
});
