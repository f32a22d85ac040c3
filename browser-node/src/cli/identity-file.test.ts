import { afterAll, describe, expect, test } from 'bun:test';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
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
import { isSynodError, NodeKey, sealNodeKey } from '@synod/shared';
import {
  IdentityInUseError,
  keyLockDir,
  loadOrCreateIdentity,
  lockIdentity,
  lockNodeKey,
  newKeyPassphraseProblem,
} from './identity-file.ts';

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
      const e = await caught(() => loadOrCreateIdentity(path, 'a passphrase for the test'));
      expect(isSynodError(e, 'KEYSTORE_MALFORMED')).toBe(true);
      expect(isSynodError(e) && e.details['path']).toBe(resolve(path));
      expect(isSynodError(e) && e.hint).toContain(resolve(path));
    }
  });

  test('a wrong passphrase is KEY_WRONG_PASSPHRASE naming the file it does not open', async () => {
    const path = join(dir, 'wrong-pass', 'identity.json');
    await loadOrCreateIdentity(path, 'the right passphrase');
    const e = await caught(() => loadOrCreateIdentity(path, 'wrong'));
    expect(isSynodError(e, 'KEY_WRONG_PASSPHRASE')).toBe(true);
    expect(isSynodError(e) && e.message).toContain(resolve(path));
    expect(isSynodError(e) && e.details['path']).toBe(resolve(path));
  });

  test('starts racing on a fresh path agree on one key, written once, owner-only', async () => {
    const path = join(dir, 'race', 'identity.json');
    const results = await Promise.all(
      Array.from({ length: 4 }, () => loadOrCreateIdentity(path, 'a passphrase for the test')),
    );
    const ids = new Set(results.map((r) => r.key.nodeId));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect((await loadOrCreateIdentity(path, 'a passphrase for the test')).key.nodeId).toBe(
      results[0]?.key.nodeId ?? '',
    );
    expect(statSync(path).mode & 0o777).toBe(0o600);
    // Nothing half-written is left beside it.
    expect(readdirSync(join(dir, 'race'))).toEqual(['identity.json']);
  });

  test('a new key with a passphrase under 8 characters is PASSPHRASE_TOO_SHORT, naming the path; no file is made', async () => {
    for (const role of ['node', 'relay'] as const) {
      const path = join(dir, `short-${role}`, 'identity.json');
      const e = await caught(() => loadOrCreateIdentity(path, 'short', role));
      expect(isSynodError(e, 'PASSPHRASE_TOO_SHORT')).toBe(true);
      expect(isSynodError(e) && e.message).toBe(
        `no identity file at ${resolve(path)}: a new ${role} key made there needs a passphrase of at least 8 characters (this one has 5)`,
      );
      expect(isSynodError(e) && e.details).toMatchObject({ path: resolve(path), length: 5, minimum: 8 });
      expect(isSynodError(e) && e.hint).toContain('--identity');
      expect(existsSync(path)).toBe(false);
      // The CLIs ask first, to refuse it as a bad flag (exit 2): the same error, nothing made.
      const problem = newKeyPassphraseProblem(path, 'short', role);
      expect(problem?.code).toBe('PASSPHRASE_TOO_SHORT');
      expect(problem?.message).toBe(isSynodError(e) ? e.message : '');
      expect(newKeyPassphraseProblem(path, 'long enough', role)).toBeNull();
      expect(existsSync(path)).toBe(false);
    }
  });

  test('a key sealed before with a short passphrase still opens with it', async () => {
    const path = join(dir, 'old-short', 'identity.json');
    mkdirSync(join(dir, 'old-short'));
    const key = await NodeKey.generate();
    writeFileSync(path, JSON.stringify(await sealNodeKey(key, 'pw', { N: 2 ** 10 })), { mode: 0o600 });
    const opened = await loadOrCreateIdentity(path, 'pw');
    expect(opened).toMatchObject({ created: false });
    expect(opened.key.nodeId).toBe(key.nodeId);
  });

  test('a key file other users can read is reported (opened all the same)', async () => {
    const path = join(dir, 'open', 'identity.json');
    const first = await loadOrCreateIdentity(path, 'a passphrase for the test');
    expect(first.exposedMode).toBeNull();
    chmodSync(path, 0o644);
    const again = await loadOrCreateIdentity(path, 'a passphrase for the test');
    expect(again.key.nodeId).toBe(first.key.nodeId);
    expect(again.exposedMode).toBe('0644');
  });
});

const failure = (e: unknown) => e as { code?: string; message: string; hint?: string };

describe('identity file that cannot be read or written', () => {
  test('a key path under a file (no folder can be made there) is typed, naming the file, with a hint', async () => {
    const blocker = join(dir, 'blocker');
    writeFileSync(blocker, 'not a folder');
    const path = join(blocker, 'identity.json');
    const locked = await caught(async () => lockIdentity(path)());
    expect(failure(locked).code).toBe('IDENTITY_FILE_UNWRITABLE');
    expect(failure(locked).message).toContain(resolve(path));
    expect(failure(locked).hint).toContain('--identity');
    const opened = failure(await caught(() => loadOrCreateIdentity(path, 'a passphrase for the test')));
    expect(opened.code).toBe('IDENTITY_FILE_UNREADABLE');
    expect(opened.message).toContain(resolve(path));
    expect(opened.hint).toContain('--identity');
  });

  test('a key path that is a folder is IDENTITY_FILE_UNREADABLE', async () => {
    const path = join(dir, 'a-folder.json');
    mkdirSync(path);
    const e = failure(await caught(() => loadOrCreateIdentity(path, 'a passphrase for the test')));
    expect(e.code).toBe('IDENTITY_FILE_UNREADABLE');
    expect(e.message).toContain(resolve(path));
    expect(e.message).toContain('folder');
  });

  test('a lock file that cannot be opened is IDENTITY_FILE_UNWRITABLE naming the lock file', async () => {
    const path = join(dir, 'lock-folder', 'identity.json');
    mkdirSync(`${path}.lock`, { recursive: true });
    const e = await caught(async () => lockIdentity(path)());
    expect(failure(e).code).toBe('IDENTITY_FILE_UNWRITABLE');
    expect(failure(e).message).toContain(`${resolve(path)}.lock`);
  });

  // A full disk for real: a 12 KiB tmpfs (Linux, as root; elsewhere the test is skipped).
  const full = join(dir, 'full');
  const canMount = process.platform === 'linux' && process.getuid?.() === 0 && mountTmpfs(full);
  if (canMount) Bun.spawnSync(['umount', full]);
  test.skipIf(!canMount)(
    'a full disk while the key is written is IDENTITY_FILE_UNWRITABLE (no space), leaving no file',
    async () => {
      expect(mountTmpfs(full)).toBe(true);
      try {
        await onFullDisk(full);
      } finally {
        Bun.spawnSync(['umount', full]);
      }
    },
  );
});

/** On a 12 KiB file system: the key cannot be written, then the lock cannot be either. */
async function onFullDisk(full: string): Promise<void> {
  const path = join(full, 'identity.json');
  // The lock takes 8 KiB of the 12; 4 KiB of filler leaves no room for the key.
  writeFileSync(join(full, 'filler'), new Uint8Array(4096));
  const release = lockIdentity(path);
  try {
    const e = failure(await caught(() => loadOrCreateIdentity(path, 'a passphrase for the test')));
    expect(e.code).toBe('IDENTITY_FILE_UNWRITABLE');
    expect(e.message).toContain(resolve(path));
    expect(e.message).toContain('no space left');
    expect(e.hint).toContain('free disk space');
  } finally {
    release();
  }
  // Nothing half-written is left.
  expect(readdirSync(full).sort()).toEqual(['filler', 'identity.json.lock']);
  // No room for the lock either: typed too.
  rmSync(`${path}.lock`);
  writeFileSync(join(full, 'filler-2'), new Uint8Array(8192));
  const locked = await caught(async () => lockIdentity(path)());
  expect(failure(locked).code).toBe('IDENTITY_FILE_UNWRITABLE');
  expect(failure(locked).hint).toContain('free disk space');
}

// Permissions for real: as another user (nobody, through setpriv), since root may write anywhere.
const asNobody =
  process.platform === 'linux' &&
  process.getuid?.() === 0 &&
  Bun.spawnSync(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'true']).exitCode === 0;

test.skipIf(!asNobody)(
  'a folder this user may not write is IDENTITY_FILE_UNWRITABLE: permission denied',
  () => {
    const folder = join(dir, 'not-theirs');
    mkdirSync(folder, { mode: 0o755 });
    chmodSync(dir, 0o755);
    const run = Bun.spawnSync(
      [
        ...['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e'],
        `const { lockIdentity } = await import(${JSON.stringify(resolve(import.meta.dir, 'identity-file.ts'))});
       try { lockIdentity(${JSON.stringify(join(folder, 'identity.json'))}); } catch (e) {
         console.log(JSON.stringify({ code: e.code, message: e.message, hint: e.hint }));
       }`,
      ],
      { stderr: 'inherit' },
    );
    const e = JSON.parse(run.stdout.toString()) as { code: string; message: string; hint: string };
    expect(e.code).toBe('IDENTITY_FILE_UNWRITABLE');
    expect(e.message).toContain(`${join(folder, 'identity.json')}.lock: permission denied`);
    expect(e.hint).toContain('uid 65534');
  },
);

/** Mount a 12 KiB tmpfs at `at` (made if missing); false when this system does not let us. */
function mountTmpfs(at: string): boolean {
  mkdirSync(at, { recursive: true });
  return Bun.spawnSync(['mount', '-t', 'tmpfs', '-o', 'size=12k', 'tmpfs', at]).exitCode === 0;
}

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
    await loadOrCreateIdentity(path, 'a passphrase for the test');
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
      const again = await caught(async () => lockIdentity(second)());
      release();
      expect(again).toBeInstanceOf(IdentityInUseError);
    }
  });

  test('a copy of the key file at another path is the same key: lockNodeKey holds it by node id', async () => {
    const path = join(dir, 'copied', 'identity.json');
    const { key } = await loadOrCreateIdentity(path, 'a passphrase for the test');
    const copy = join(dir, 'copied', 'backup.json');
    copyFileSync(path, copy);
    const lockDir = join(dir, 'copied', 'locks');
    mkdirSync(lockDir);
    const release = lockNodeKey(key.nodeId, path, 'node', lockDir);
    // Its path lock is another file: only the key's lock tells the copy apart.
    lockIdentity(copy)();
    const again = await caught(async () => lockNodeKey(key.nodeId, copy, 'node', lockDir)());
    expect(again).toBeInstanceOf(IdentityInUseError);
    expect((again as IdentityInUseError).code).toBe('IDENTITY_IN_USE');
    expect((again as Error).message).toContain(`${copy} (node id ${key.nodeId}), from a copy of that file`);
    release();
    lockNodeKey(key.nodeId, copy, 'node', lockDir)();
    // Best effort: a folder where no lock file can be made leaves the key to its path lock.
    expect(() =>
      lockNodeKey(key.nodeId, copy, 'node', join(dir, 'copied', 'no-such-folder'))(),
    ).not.toThrow();
  });

  test("the key locks' folder is this user's own, or there is none: no other user can block or redirect it", () => {
    const base = join(dir, 'lock-bases');
    mkdirSync(base);
    const uid = process.getuid?.() ?? 0;
    const mine = keyLockDir(base);
    expect(mine).toBe(join(base, `synod-keys-${uid}`));
    expect(statSync(mine as string).mode & 0o777).toBe(0o700);
    expect(keyLockDir(base)).toBe(mine);
    // Planted by someone else before this user's first start: a symlink, a folder others may enter, a
    // folder of another user's.
    const planted = (name: string, make: (path: string) => void) => {
      const b = join(base, name);
      mkdirSync(b);
      make(join(b, `synod-keys-${uid}`));
      return keyLockDir(b);
    };
    expect(planted('symlink', (p) => symlinkSync(join(dir, 'elsewhere'), p))).toBeNull();
    expect(planted('open', (p) => mkdirSync(p, { mode: 0o777 }))).toBeNull();
    if (uid === 0) {
      expect(
        planted('theirs', (p) => {
          mkdirSync(p, { mode: 0o700 });
          chownSync(p, 65534, 65534);
        }),
      ).toBeNull();
    }
    // No folder: no key lock, and the start goes on under its path lock.
    expect(() => lockNodeKey('ab'.repeat(32), join(dir, 'x.json'), 'node', null)()).not.toThrow();
  });

  test('the lock is held until released, even by a caller that keeps no reference to it (after GC)', async () => {
    const path = join(dir, 'unreferenced', 'identity.json');
    // As the relay takes it: the release function is not kept.
    lockIdentity(path);
    Bun.gc(true);
    await Bun.sleep(10);
    Bun.gc(true);
    const other = Bun.spawnSync([
      process.execPath,
      '-e',
      `const { lockIdentity } = await import(${JSON.stringify(resolve(import.meta.dir, 'identity-file.ts'))});
       try { lockIdentity(${JSON.stringify(path)}); console.log('taken'); } catch (e) { console.log(e.code); }`,
    ]);
    expect(other.stdout.toString().trim()).toBe('IDENTITY_IN_USE');
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
