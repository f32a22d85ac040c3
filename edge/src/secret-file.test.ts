import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSecretFile } from './secret-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-secret-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const mode = (p: string) => statSync(p).mode & 0o777;

describe('writeSecretFile', () => {
  test('a new file, in a folder made for it, is 0600', () => {
    const p = join(dir, 'new', 'dev-api-key');
    writeSecretFile(p, 'synod_sk_a\n');
    expect(readFileSync(p, 'utf8')).toBe('synod_sk_a\n');
    expect(mode(p)).toBe(0o600);
  });

  test('a file already there, readable by others, is 0600 once rewritten', () => {
    const p = join(dir, 'old-key');
    writeFileSync(p, 'stale\n', { mode: 0o644 });
    expect(mode(p)).toBe(0o644);
    writeSecretFile(p, 'synod_sk_b\n');
    expect(readFileSync(p, 'utf8')).toBe('synod_sk_b\n');
    expect(mode(p)).toBe(0o600);
  });
});
