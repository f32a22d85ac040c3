import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { ownerOnlyFile } from './private-file.ts';

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
});
