import { Database } from 'bun:sqlite';
import {
  accessSync,
  constants,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { checkNewPassphrase, NodeKey, openNodeKey, SynodError, sealNodeKey, toHex } from '@synod/shared';
import { LocalFileError } from './file-error.ts';

/**
 * A node's identity at rest: a sealed key file (scrypt + AES-GCM, see @synod/shared keystore). Created
 * on first start when absent; opened with the passphrase afterwards (KEY_WRONG_PASSPHRASE otherwise).
 *
 * The file is written whole or not at all (a temporary file, linked into place only if no file is
 * there yet): a start killed while writing leaves no half-written key, and starts racing on a fresh
 * path all open the one key that won. A file that is not a sealed key is KEYSTORE_MALFORMED, naming it.
 * `exposedMode` is the file's mode when other users may read it (the key is sealed, but a readable file
 * lets anyone try passphrases offline), else null. A key file that cannot be read, or created (a full
 * disk, a folder this user may not write), is IDENTITY_FILE_UNREADABLE / IDENTITY_FILE_UNWRITABLE
 * (LocalFileError), naming it. A new key is sealed only with a passphrase of MIN_PASSPHRASE_LENGTH
 * characters or more (PASSPHRASE_TOO_SHORT, naming the path, and no file made); an existing key opens
 * with whatever passphrase it was sealed with.
 */
export async function loadOrCreateIdentity(
  path: string,
  passphrase: string,
  role: 'node' | 'relay' = 'node',
): Promise<{ key: NodeKey; created: boolean; exposedMode: string | null }> {
  const abs = resolve(path);
  const existing = readIfPresent(abs);
  if (existing !== undefined)
    return {
      key: await openSealed(abs, existing, passphrase, role),
      created: false,
      exposedMode: exposedMode(abs),
    };
  checkNewKeyPassphrase(abs, passphrase, role);
  const key = await NodeKey.generate();
  const temporary = `${abs}.${process.pid}.${toHex(crypto.getRandomValues(new Uint8Array(6)))}.tmp`;
  const sealed = `${JSON.stringify(await sealNodeKey(key, passphrase), null, 2)}\n`;
  try {
    try {
      mkdirSync(dirname(abs), { recursive: true });
      writeFileSync(temporary, sealed, { mode: 0o600, flush: true });
    } catch (cause) {
      throw unwritable('create', 'the identity file', abs, cause);
    }
    linkSync(temporary, abs);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw e instanceof LocalFileError ? e : unwritable('create', 'the identity file', abs, e);
    }
    // Another start created it first: that key is this node's.
    const won = readIfPresent(abs) ?? '';
    return {
      key: await openSealed(abs, won, passphrase, role),
      created: false,
      exposedMode: exposedMode(abs),
    };
  } finally {
    rmSync(temporary, { force: true });
  }
  return { key, created: true, exposedMode: null };
}

/**
 * The PASSPHRASE_TOO_SHORT error a start with `passphrase` would meet at `path` (no key file there yet,
 * and the passphrase too short to seal a new one), else null: for the CLIs, to refuse it as they refuse
 * a bad flag (exit 2), before anything is opened. `loadOrCreateIdentity` checks it again as it creates.
 */
export function newKeyPassphraseProblem(
  path: string,
  passphrase: string,
  role: 'node' | 'relay',
): SynodError | null {
  const abs = resolve(path);
  if (existsSync(abs)) return null;
  try {
    checkNewKeyPassphrase(abs, passphrase, role);
    return null;
  } catch (e) {
    if (e instanceof SynodError && e.code === 'PASSPHRASE_TOO_SHORT') return e;
    throw e;
  }
}

/**
 * PASSPHRASE_TOO_SHORT for a new key, saying that it is a new one at `abs`: a start meant to open an
 * existing key (a wrong or moved --identity) learns that there is no key file at that path.
 */
function checkNewKeyPassphrase(abs: string, passphrase: string, role: 'node' | 'relay'): void {
  try {
    checkNewPassphrase(passphrase);
  } catch (e) {
    if (!(e instanceof SynodError)) throw e;
    const { length, minimum } = e.details;
    const message = `no identity file at ${abs}: a new ${role} key made there needs a passphrase of at least ${minimum} characters (this one has ${length})`;
    throw new SynodError('PASSPHRASE_TOO_SHORT', message, {
      details: { ...e.details, path: abs },
      hint: `${e.hint ?? ''}. To open an existing key instead, pass its file with --identity (a key sealed before with a shorter passphrase still opens)`,
      cause: e,
    });
  }
}

function readIfPresent(abs: string): string | undefined {
  try {
    return readFileSync(abs, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new LocalFileError('IDENTITY_FILE_UNREADABLE', {
      action: 'read',
      what: 'the identity file',
      path: abs,
      flag: '--identity',
      cause: e,
    });
  }
}

function unwritable(action: string, what: string, path: string, cause: unknown): LocalFileError {
  return new LocalFileError('IDENTITY_FILE_UNWRITABLE', { action, what, path, flag: '--identity', cause });
}

async function openSealed(
  abs: string,
  text: string,
  passphrase: string,
  role: 'node' | 'relay',
): Promise<NodeKey> {
  let sealed: unknown;
  try {
    sealed = JSON.parse(text) as unknown;
  } catch (cause) {
    throw malformed(abs, role, `it is not JSON (${(cause as Error).message})`, cause);
  }
  try {
    return await openNodeKey(sealed, passphrase);
  } catch (e) {
    if (e instanceof SynodError && e.code === 'KEYSTORE_MALFORMED') throw malformed(abs, role, e.message, e);
    if (e instanceof SynodError && e.code === 'KEY_WRONG_PASSPHRASE') {
      throw new SynodError('KEY_WRONG_PASSPHRASE', `the passphrase does not open the identity file ${abs}`, {
        details: { ...e.details, path: abs },
        hint:
          'give the passphrase this key was sealed with (a sealed key cannot be recovered without it); ' +
          'if it is that one, the file was altered: restore it from a backup. Or pass another --identity ' +
          `path to start as a new ${role}${role === 'relay' ? ' (a new coordinator id: tell those who pin this one with --coordinator)' : ''}`,
        cause: e,
      });
    }
    throw e;
  }
}

function malformed(abs: string, role: 'node' | 'relay', why: string, cause: unknown): SynodError {
  return new SynodError(
    'KEYSTORE_MALFORMED',
    `the identity file ${abs} is not a sealed ${role} key: ${why}`,
    {
      details: { path: abs },
      hint:
        role === 'node'
          ? `restore ${abs} from a backup, or move it away to start as a new node (a new node id, with no reputation)`
          : `restore ${abs} from a backup, or move it away to start as a new relay (a new coordinator id: tell those who pin this one with --coordinator)`,
      cause,
    },
  );
}

function exposedMode(abs: string): string | null {
  const mode = statSync(abs).mode & 0o777;
  return mode & 0o077 ? `0${mode.toString(8)}` : null;
}

/** Another process holds the identity: two nodes signing with one key would sign two commitments. */
export class IdentityInUseError extends Error {
  readonly code = 'IDENTITY_IN_USE';
  readonly hint: string;
  constructor(
    readonly path: string,
    role: 'node' | 'relay' = 'node',
    /** Set when it is the key (this node id) that is held, by a process started on a copy of the file. */
    nodeId?: string,
  ) {
    super(
      nodeId === undefined
        ? `another synod ${role} is running with the identity ${path}`
        : `another synod ${role} is running with the key of ${path} (node id ${nodeId}), from a copy of that file`,
    );
    this.name = 'IdentityInUseError';
    this.hint =
      role === 'node'
        ? `stop that node first; run more nodes each with an --identity (and --db) of its own`
        : `stop that relay first; run more relays each with an --identity of its own (one database may serve them all)`;
  }
}

/**
 * Hold `<identity>.lock` (an SQLite file, locked exclusively through SQLite's own file locking) until the
 * returned function is called or the process ends, however it ends: the kernel drops the lock of a
 * killed process, so no stale lock is ever left behind. Two nodes on one key would each sign their own
 * commitment for the same request, which the network takes as equivocation; two relays on one key would
 * each run the same coordinator machines and sign two seals for one request. IdentityInUseError when
 * another process holds it; IDENTITY_FILE_UNWRITABLE (LocalFileError) when the lock file cannot be made.
 */
export function lockIdentity(path: string, role: 'node' | 'relay' = 'node'): () => void {
  const abs = resolve(path);
  let lockPath = `${abs}.lock`;
  let db: Database;
  try {
    mkdirSync(dirname(abs), { recursive: true });
    // The key file's own path, symlinks followed (of it, or of its folder when it is not created yet):
    // one key reached by two paths is one lock.
    lockPath = `${canonicalPath(abs)}.lock`;
    db = new Database(lockPath, { create: true });
  } catch (e) {
    throw unwritable('create', 'the identity lock file', lockPath, whyCannotOpen(lockPath, e));
  }
  try {
    takeLock(db);
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code === 'SQLITE_BUSY') throw new IdentityInUseError(resolve(path), role);
    throw unwritable('write', 'the identity lock file', lockPath, e);
  }
  return holding(db);
}

/**
 * Hold a lock on the key itself, by its node id, for as long as `lockIdentity`'s: a copy of the key file
 * at another path (another folder, a backup started by mistake) is the same key, and two nodes on it
 * would equivocate as surely. The lock file is `<role>-<nodeId>.lock` in `lockDir`, by default
 * `keyLockDir()`, a folder of this user's own in the system's temporary folder, so it covers this user's
 * processes on this machine that share that folder (not a service with a private /tmp of its own).
 * IdentityInUseError when another process holds it. Best effort beside `lockIdentity`: a folder that is
 * not this user's own (made by another user, a symlink, readable by others) or where no lock file can be
 * made leaves the key held by its path alone, so no other user can keep a node from starting, nor have
 * it write a file of their choosing. Lock files stay (one small file per key run here): removing one on
 * release would let a start that opened it just before take a lock nobody else can see.
 */
export function lockNodeKey(
  nodeId: string,
  identityPath: string,
  role: 'node' | 'relay' = 'node',
  lockDir: string | null = keyLockDir(),
): () => void {
  if (lockDir === null) return () => undefined;
  let db: Database;
  try {
    db = new Database(join(lockDir, `${role}-${nodeId}.lock`), { create: true });
  } catch {
    return () => undefined;
  }
  try {
    takeLock(db);
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code !== 'SQLITE_BUSY') return () => undefined;
    throw new IdentityInUseError(resolve(identityPath), role, nodeId);
  }
  return holding(db);
}

/**
 * The folder of this user's key locks, `synod-keys-<uid>` in the system's temporary folder, made 0700 if
 * missing; null when it is not this user's own (another user made it first, it is a symlink, or others
 * may enter it), or cannot be made.
 */
export function keyLockDir(base: string = tmpdir()): string | null {
  const uid = process.getuid?.() ?? null;
  const dir = join(base, `synod-keys-${uid ?? 'user'}`);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return null;
  }
  try {
    const st = lstatSync(dir);
    if (!st.isDirectory() || (st.mode & 0o077) !== 0) return null;
    if (uid !== null && st.uid !== uid) return null;
    return dir;
  } catch {
    return null;
  }
}

/** Lock `db`'s file exclusively for this process (SQLITE_BUSY when another one holds it). */
function takeLock(db: Database): void {
  db.exec('PRAGMA locking_mode = EXCLUSIVE');
  // Nothing here needs to survive a crash: no journal file beside it.
  db.exec('PRAGMA journal_mode = MEMORY');
  db.exec('BEGIN EXCLUSIVE');
  db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL)');
  db.exec('DELETE FROM holder');
  db.run('INSERT INTO holder (pid) VALUES (?)', [process.pid]);
  db.exec('COMMIT');
}

/**
 * The release of a held lock. Referenced here until released: a Database the garbage collector takes is
 * closed, and its lock dropped, under a caller that kept no reference to the release function.
 */
function holding(db: Database): () => void {
  heldLocks.add(db);
  return () => {
    heldLocks.delete(db);
    db.close();
  };
}

/** The lock files this process holds. */
const heldLocks = new Set<Database>();

/**
 * SQLite says only SQLITE_CANTOPEN when it cannot open a file: the system's reason, when it is that this
 * user may not write the file (or, for a file not made yet, its folder), else SQLite's own error.
 */
function whyCannotOpen(file: string, error: unknown): unknown {
  if ((error as { code?: string }).code !== 'SQLITE_CANTOPEN') return error;
  try {
    accessSync(existsSync(file) ? file : dirname(file), constants.W_OK);
  } catch (denied) {
    return denied;
  }
  return error;
}

function canonicalPath(abs: string): string {
  try {
    return realpathSync(abs);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    return join(realpathSync(dirname(abs)), basename(abs));
  }
}
