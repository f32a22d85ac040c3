import { afterAll, describe, expect, test } from 'bun:test';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isSynodError } from '@synod/shared';
import { IdentityInUseError, loadOrCreateIdentity, lockIdentity } from './identity-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-identity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function caught(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('identity file', () => {
  test('a file that is not a sealed key is KEYSTORE_MALFORMED, naming the file', async () => {
    for (const [name, text] of [
      ['truncated.json', '{"v":1,"nodeId":"ab'],
      ['empty.json', ''],
      ['other.json', '{"hello":"world"}\n'],
    ] as const) {
      const path = join(dir, name);
      writeFileSync(path, text, { mode: 0o600 });
      const e = await caught(() => loadOrCreateIdentity(path, 'pw'));
      expect(isSynodError(e, 'KEYSTORE_MALFORMED')).toBe(true);
      expect(isSynodError(e) && e.details['path']).toBe(resolve(path));
      expect(isSynodError(e) && e.hint).toContain(resolve(path));
    }
  });

  test('starts racing on a fresh path agree on one key, written once, owner-only', async () => {
    const path = join(dir, 'race', 'identity.json');
    const results = await Promise.all(Array.from({ length: 4 }, () => loadOrCreateIdentity(path, 'pw')));
    const ids = new Set(results.map((r) => r.key.nodeId));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect((await loadOrCreateIdentity(path, 'pw')).key.nodeId).toBe(results[0]?.key.nodeId ?? '');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    // Nothing half-written is left beside it.
    expect(readdirSync(join(dir, 'race'))).toEqual(['identity.json']);
  });

  test('a key file other users can read is reported (opened all the same)', async () => {
    const path = join(dir, 'open', 'identity.json');
    const first = await loadOrCreateIdentity(path, 'pw');
    expect(first.exposedMode).toBeNull();
    chmodSync(path, 0o644);
    const again = await loadOrCreateIdentity(path, 'pw');
    expect(again.key.nodeId).toBe(first.key.nodeId);
    expect(again.exposedMode).toBe('0644');
  });
});

describe('identity lock', () => {
  test('one holder at a time: a second is IDENTITY_IN_USE until the first releases it', () => {
    const path = join(dir, 'lock', 'identity.json');
    const release = lockIdentity(path);
    let second: unknown;
    try {
      lockIdentity(path);
    } catch (e) {
      second = e;
    }
    expect(second).toBeInstanceOf(IdentityInUseError);
    expect((second as IdentityInUseError).code).toBe('IDENTITY_IN_USE');
    release();
    const again = lockIdentity(path);
    again();
    // One file beside the key, and no journal left with it.
    expect(readdirSync(join(dir, 'lock'))).toEqual(['identity.json.lock']);
  });

  test('one key file reached by another path (a symlink to it, or to its folder) is the same lock', async () => {
    const real = join(dir, 'linked', 'real');
    const path = join(real, 'identity.json');
    await loadOrCreateIdentity(path, 'pw');
    symlinkSync(path, join(dir, 'linked', 'alias.json'));
    symlinkSync(real, join(dir, 'linked', 'folder'));
    mkdirSync(join(dir, 'linked', 'fresh'));
    symlinkSync(join(dir, 'linked', 'fresh'), join(dir, 'linked', 'fresh-folder'));
    for (const [first, second] of [
      [path, join(dir, 'linked', 'alias.json')],
      [path, join(dir, 'linked', 'folder', 'identity.json')],
      // A key not created yet, in a folder reached two ways.
      [join(dir, 'linked', 'fresh', 'new.json'), join(dir, 'linked', 'fresh-folder', 'new.json')],
    ] as const) {
      const release = lockIdentity(first);
      let again: unknown;
      try {
        lockIdentity(second)();
      } catch (e) {
        again = e;
      }
      release();
      expect(again).toBeInstanceOf(IdentityInUseError);
    }
  });

  test('a holder killed (SIGKILL) leaves no lock behind', async () => {
    const path = join(dir, 'killed', 'identity.json');
    const holder = Bun.spawn(
      [
        process.execPath,
        '-e',
        `const { lockIdentity } = await import(${JSON.stringify(resolve(import.meta.dir, 'identity-file.ts'))});
         lockIdentity(${JSON.stringify(path)}); console.log('held'); await Bun.sleep(60_000);`,
      ],
      { stdout: 'pipe', stderr: 'inherit' },
    );
    const reader = (holder.stdout as ReadableStream<Uint8Array>).getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toContain('held');
    expect(() => lockIdentity(path)).toThrow(IdentityInUseError);
    holder.kill('SIGKILL');
    await holder.exited;
    const release = lockIdentity(path);
    release();
  });
});
