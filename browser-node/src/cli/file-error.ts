import { accessSync, constants, existsSync } from 'node:fs';

/** Stable codes of a local file a node or relay needs that could not be read, written or used. */
export type LocalFileErrorCode =
  | 'IDENTITY_FILE_UNREADABLE'
  | 'IDENTITY_FILE_UNWRITABLE'
  | 'STATE_FILE_UNWRITABLE'
  | 'STATE_FILE_MALFORMED';

/**
 * A file of this machine (the sealed key, its lock, the state file) could not be read or written, or is
 * not what it should be (a state file that is no SQLite database): which file, what failed in the
 * system's words (a full disk, a permission, a path through a file), and what to do about it, naming the
 * flag that chose the path. `details.errno` keeps the system's code (`ENOSPC`,
 * `EACCES`, `SQLITE_FULL`, …).
 */
export class LocalFileError extends Error {
  readonly code: LocalFileErrorCode;
  readonly hint: string;
  readonly details: { path: string; errno: string | null };

  constructor(
    code: LocalFileErrorCode,
    o: { action: string; what: string; path: string; flag: string; cause: unknown },
  ) {
    const errno = (o.cause as { code?: unknown } | null)?.code;
    const kind = typeof errno === 'string' ? fileErrorKind(errno, o.path) : 'other';
    const reason = kind === 'other' ? String((o.cause as Error)?.message ?? o.cause) : REASONS[kind];
    super(`cannot ${o.action} ${o.what} ${o.path}: ${reason}`, { cause: o.cause });
    this.name = 'LocalFileError';
    this.code = code;
    this.details = { path: o.path, errno: typeof errno === 'string' ? errno : null };
    this.hint = hintFor(kind, o.flag);
  }
}

export type Kind = 'full' | 'denied' | 'read-only' | 'not-a-folder' | 'a-folder' | 'not-a-database' | 'other';

const REASONS: Record<Exclude<Kind, 'other'>, string> = {
  full: 'no space left on the device',
  denied: 'permission denied',
  'read-only': 'the file system is read-only',
  'not-a-folder': 'a part of its path is a file, not a folder',
  'a-folder': 'it is a folder, not a file',
  'not-a-database': 'it is not a SQLite database, or it is corrupt',
};

/**
 * What an error code says of a file, for its message and hint. SQLite says `SQLITE_READONLY` of a file on
 * a read-only file system and of a file this user may not write alike (it then opened it read-only, as
 * a lock file another user made): the second is told apart by asking whether this user may write the
 * file that is there (`mayWrite`), and said as a permission.
 */
export function fileErrorKind(
  errno: string,
  path: string,
  mayWrite: (path: string) => boolean = userMayWrite,
): Kind {
  const kind = errnoKind(errno);
  if (errno === 'SQLITE_READONLY' && existsSync(path) && !mayWrite(path)) return 'denied';
  return kind;
}

/**
 * Whether this user may write `path`, as the system answers; on a read-only file system, yes (that is said
 * as read-only, not as a permission).
 */
function userMayWrite(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch (e) {
    // A read-only file system is said as such (EROFS), not as a permission.
    return (e as NodeJS.ErrnoException).code === 'EROFS';
  }
}

function errnoKind(errno: string): Kind {
  switch (errno) {
    case 'ENOSPC':
    case 'EDQUOT':
    case 'SQLITE_FULL':
      return 'full';
    case 'EACCES':
    case 'EPERM':
    case 'SQLITE_PERM':
      return 'denied';
    case 'EROFS':
    case 'SQLITE_READONLY':
      return 'read-only';
    case 'ENOTDIR':
    case 'EEXIST':
      return 'not-a-folder';
    case 'EISDIR':
      return 'a-folder';
    case 'SQLITE_NOTADB':
    case 'SQLITE_CORRUPT':
      return 'not-a-database';
    default:
      // SQLITE_CANTOPEN and the rest: SQLite does not say why; the path is checked by the hint.
      return 'other';
  }
}

function hintFor(kind: Kind, flag: string): string {
  switch (kind) {
    case 'full':
      return `free disk space there, or pass ${flag} a path on another file system`;
    case 'denied':
      return `let this user (uid ${process.getuid?.() ?? '?'}) read and write it and its folder, or pass ${flag} a path it may write`;
    case 'read-only':
      return `pass ${flag} a path on a writable file system`;
    case 'not-a-folder':
    case 'a-folder':
      return `pass ${flag} the path of a file, in a folder (made when missing)`;
    case 'not-a-database':
      return `restore it from a backup, or move it away to start with an empty one (or pass ${flag} another path)`;
    default:
      return `check that its folder exists or can be made, that this user may write there, and that the disk is not full; or pass ${flag} another path`;
  }
}
