/**
 * `synod-relay history prune`: the operator's way to keep the relay's database from growing without end
 * (about 29 KB a request at quorum 3). Requests that ended more than `--older-than` days ago are
 * deleted, each with everything the network said about it, after being appended, with `--archive FILE`,
 * to a file of JSON lines that `synod-verify` reads (see store/history-prune.ts for what stays and what
 * is never pruned). It may run while relays use the database. Exit codes: 0 done, 1 the database or the
 * archive could not be used, 2 bad arguments.
 */

import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { forgottenValueMessage } from '@synod/browser-node/cli-args';
import { FlagError, redactDbUrl } from './config.ts';
import { commandReason, DB_OPTIONS, DB_USAGE, openForCommand, parseDbFlags } from './db-flags.ts';
import { isHelpFlag } from './keys-command.ts';
import { ArchiveFile } from './store/archive-file.ts';
import {
  ArchiveWriteError,
  DEFAULT_PRUNE_BATCH,
  PRUNE_MIN_AGE_MS,
  PruneError,
  pruneHistory,
} from './store/history-prune.ts';

const DAY_MS = 86_400_000;

export const HISTORY_USAGE = `usage: synod-relay history prune --older-than DAYS [--archive FILE] [--dry-run] [--batch N] [DB]
       (requests made over DAYS days ago, at least ${PRUNE_MIN_AGE_MS / DAY_MS}, that have ended; appended to FILE as JSON lines first)
${DB_USAGE}`;

type Io = { out: (line: string) => void; err: (line: string) => void };
const STDIO: Io = { out: (l) => console.log(l), err: (l) => console.error(l) };

/** Run `synod-relay history <argv>`; resolves to the process exit code. */
export async function historyCommand(argv: string[], io: Io = STDIO, now = Date.now()): Promise<number> {
  const [sub, ...rest] = argv;
  const usageError = (why: string) => {
    io.err(`synod-relay: ${why}\n${HISTORY_USAGE}`);
    return 2;
  };
  // `history --help`, `history prune --help`: the usage on standard output, nothing opened.
  if (argv.some(isHelpFlag)) {
    io.out(HISTORY_USAGE);
    return 0;
  }
  if (sub !== 'prune')
    return usageError(sub === undefined ? 'history needs a command' : `unknown history command ${sub}`);
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(rest);
  } catch (e) {
    io.err(`synod-relay: ${forgottenValueMessage(e, rest) ?? (e as Error).message}\n${HISTORY_USAGE}`);
    return 2;
  }
  const { values, positionals, tokens } = parsed;
  const given = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    if (given.has(t.name)) return usageError(`--${t.name} is given twice`);
    given.add(t.name);
  }
  if (positionals.length > 0) return usageError(`unexpected ${positionals[0]}`);
  const days = values['older-than'];
  if (days === undefined) return usageError('history prune needs --older-than DAYS');
  const minDays = PRUNE_MIN_AGE_MS / DAY_MS;
  if (!/^\d{1,5}$/.test(days) || Number(days) < minDays) {
    return usageError(
      `--older-than must be a whole number of days, at least ${minDays} (Idempotency-Keys are remembered 24 h), got ${JSON.stringify(days)}`,
    );
  }
  const batch = values.batch === undefined ? DEFAULT_PRUNE_BATCH : Number(values.batch);
  if (values.batch !== undefined && (!/^\d{1,5}$/.test(values.batch) || batch < 1 || batch > 10_000)) {
    return usageError(`--batch must be a whole number in [1, 10000], got ${JSON.stringify(values.batch)}`);
  }
  const archivePath = values.archive === undefined ? null : resolve(values.archive);
  if (archivePath !== null && values['dry-run']) return usageError('--dry-run writes no --archive');
  if (archivePath !== null) {
    if (!statSync(dirname(archivePath), { throwIfNoEntry: false })?.isDirectory()) {
      return usageError(`--archive: no folder ${dirname(archivePath)}`);
    }
    if (statSync(archivePath, { throwIfNoEntry: false })?.isDirectory()) {
      return usageError(`--archive must be a file, not a folder: ${archivePath}`);
    }
  }
  let dbUrl: string;
  let authToken: string | undefined;
  try {
    ({ dbUrl, authToken } = parseDbFlags(values, given));
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    return usageError(e.message);
  }
  // A dry run only reads: it neither migrates the database nor needs to write to it.
  const h = await openForCommand(dbUrl, authToken, io.err, values['dry-run'] ? { readOnly: true } : {});
  if (h === null) return 1;
  const before = now - Number(days) * DAY_MS;
  const cutoff = new Date(before).toISOString();
  let archive: ArchiveFile | null = null;
  try {
    if (archivePath !== null) {
      try {
        archive = await ArchiveFile.open(archivePath);
      } catch (e) {
        io.err(`synod-relay: the archive ${archivePath} could not be opened: ${commandReason(e)}`);
        return 1;
      }
    }
    const out = archive;
    const r = await pruneHistory(h.store, {
      before,
      now,
      batch,
      ...(values['dry-run'] ? { dryRun: true } : {}),
      // Whole and on disk before the batch is deleted: a request is never gone without its line.
      ...(out === null ? {} : { archive: (lines: string[]) => out.append(lines) }),
    });
    const kept = r.kept === 0 ? '' : `; kept ${r.kept} older ones still open or settling on chain`;
    if (values['dry-run']) {
      io.out(`would prune ${r.pruned} request${r.pruned === 1 ? '' : 's'} created before ${cutoff}${kept}`);
    } else {
      const archived =
        archivePath === null ? '' : `; archived to ${archivePath} (${(r.archivedBytes / 1e6).toFixed(1)} MB)`;
      io.out(
        `pruned ${r.pruned} request${r.pruned === 1 ? '' : 's'} created before ${cutoff}${archived}${kept}`,
      );
    }
    return 0;
  } catch (e) {
    if (e instanceof PruneError) return usageError(e.message);
    if (e instanceof ArchiveWriteError) {
      io.err(
        `synod-relay: writing the archive ${archivePath} failed, so its batch was not deleted (${e.pruned} pruned before it): ${commandReason(e.cause)}`,
      );
      return 1;
    }
    io.err(`synod-relay: history prune failed on ${redactDbUrl(dbUrl)}: ${commandReason(e)}`);
    return 1;
  } finally {
    await archive?.close();
    h.client.close();
  }
}

function parse(args: string[]) {
  return parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    tokens: true,
    options: {
      ...DB_OPTIONS,
      'older-than': { type: 'string' },
      archive: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      batch: { type: 'string' },
    },
  });
}
