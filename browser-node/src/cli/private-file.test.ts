import { afterAll, describe, expect, test } from 'bun:test';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { ownerOnlyFile, writeOwnerOnlyFile } from './private-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-private-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const mode = (p: string) => statSync(p).mode & 0o777;

describe('ownerOnlyFile', () => {
  test('a new state file, and the WAL SQLite makes beside it, are 0600', async () => {
    const path = ownerOnlyFile(join(dir, 'new', 'state.db'));
    expect(mode(path)).toBe(0o600);
    const client = createClient({ url: `file:${path}` });
    await client.execute('PRAGMA journal_mode = WAL');
    await client.execute('CREATE TABLE t (x)');
    await client.execute('INSERT INTO t VALUES (1)');
    expect(mode(`${path}-wal`)).toBe(0o600);
    client.close();
  });

  test('a file already there, readable by others, is made 0600 and keeps its content', () => {
    const path = join(dir, 'old.db');
    writeFileSync(path, 'kept', { mode: 0o644 });
    ownerOnlyFile(path);
    expect(mode(path)).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toBe('kept');
  });

  test('a secret written over an older file readable by others is 0600 and holds only the new text', () => {
    const path = join(dir, 'keys', 'dev-api-key');
    writeOwnerOnlyFile(path, 'synod_sk_old-and-longer\n');
    writeFileSync(path, 'stale, world-readable\n', { mode: 0o644 });
    chmodSync(path, 0o644);
    writeOwnerOnlyFile(path, 'synod_sk_b\n');
    expect(readFileSync(path, 'utf8')).toBe('synod_sk_b\n');
    expect(mode(path)).toBe(0o600);
  });
});
