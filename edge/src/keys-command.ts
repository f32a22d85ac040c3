/**
 * `synod-relay keys …`: the operator's API key commands, run against the relay's database (the file or
 * libSQL server the relays use), with no relay running:
 * - `create --label NAME [--quota N] [--new-db]` stores a new key (its sha256 only) and prints the key
 *   once, saying in which database (a database file that is not there yet is made only with `--new-db`:
 *   a mistyped `--db` would otherwise hold a key no relay knows);
 * - `list [--json]` shows every key with its quota, today's use and whether it is revoked;
 * - `revoke KEY_ID` revokes a key: relays answer it 403 FORBIDDEN within their `apiKeyCacheMs`;
 * - `set-quota KEY_ID --quota N` changes a key's daily quota (applied within the same time).
 * Exit codes: 0 done, 1 the database could not be used or the key is unknown, 2 bad arguments.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { forgottenValueMessage, joinNegativeNumbers } from '@synod/browser-node/cli-args';
import { createApiKey } from './auth/api-keys.ts';
import {
  API_KEY_ID_RE,
  type ApiKeySummary,
  listApiKeys,
  revokeApiKey,
  setApiKeyQuota,
} from './auth/key-admin.ts';
import { DEFAULT_EDGE_CONFIG, FlagError, redactDbUrl } from './config.ts';
import {
  commandReason,
  DB_OPTIONS,
  DB_USAGE,
  localDbFile,
  openForCommand,
  parseDbFlags,
} from './db-flags.ts';
import { utcDay } from './http/auth.ts';
import type { openHistory } from './store/open-history.ts';

/** `--quota -5` is the flag's value (refused by its check), not a forgotten one. */
const NUMERIC_FLAGS: ReadonlySet<string> = new Set(['quota']);

export const KEYS_USAGE = `usage: synod-relay keys create --label NAME [--quota N (a UTC day, default 1000)] [--new-db] [DB]
       synod-relay keys list [--json] [DB]
       synod-relay keys revoke KEY_ID [DB]
       synod-relay keys set-quota KEY_ID --quota N [DB]
${DB_USAGE}`;

const LABEL_MAX = 100;

/** The flags each command takes, besides the database's. */
const SUB_FLAGS: Record<string, readonly string[]> = {
  create: ['label', 'quota', 'new-db'],
  list: ['json'],
  revoke: [],
  'set-quota': ['quota'],
};

type Io = { out: (line: string) => void; err: (line: string) => void };
const STDIO: Io = { out: (l) => console.log(l), err: (l) => console.error(l) };

/** Run `synod-relay keys <argv>`; resolves to the process exit code. */
export async function keysCommand(argv: string[], io: Io = STDIO): Promise<number> {
  const [sub, ...rest] = argv;
  // `keys --help`, `keys create --help`, ...: the usage on standard output, nothing opened.
  if (argv.some(isHelpFlag)) {
    io.out(KEYS_USAGE);
    return 0;
  }
  let parsed: ReturnType<typeof parse>;
  const args = joinNegativeNumbers(rest, NUMERIC_FLAGS);
  try {
    parsed = parse(args);
  } catch (e) {
    // A forgotten value is one line naming its flag; parseArgs' other errors are one line already.
    io.err(`synod-relay: ${forgottenValueMessage(e, args) ?? (e as Error).message}\n${KEYS_USAGE}`);
    return 2;
  }
  const { values, positionals, tokens } = parsed;
  const usageError = (why: string) => {
    io.err(`synod-relay: ${why}\n${KEYS_USAGE}`);
    return 2;
  };
  // The flags and the database are checked before the database is opened (or a file made for it).
  const given = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    if (given.has(t.name)) return usageError(`--${t.name} is given twice`);
    given.add(t.name);
    // A flag another command takes would be ignored here: refused, so the mistake is seen.
    const takes = SUB_FLAGS[sub ?? ''];
    if (takes !== undefined && !takes.includes(t.name) && !(t.name in DB_OPTIONS)) {
      return usageError(`keys ${sub} takes no --${t.name}`);
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
  let run: (store: Awaited<ReturnType<typeof openHistory>>['store']) => Promise<number>;
  /** Whether `create --new-db` made the database file (said with the key). */
  let made = false;
  const now = Date.now();
  if (sub === 'create') {
    const quota = parseQuota(values.quota);
    if (!values.label) return usageError('keys create needs --label');
    // One line, short: labels are shown in tables and logs.
    if (values.label.length > LABEL_MAX || /\p{Cc}/u.test(values.label)) {
      return usageError(`--label must be one line of at most ${LABEL_MAX} characters`);
    }
    if (quota === undefined) return usageError('--quota must be a whole number >= 0');
    if (positionals.length > 0) return usageError(`unexpected ${positionals[0]}`);
    const label = values.label;
    run = async (store) => {
      const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
      await store.createApiKey({ id: k.id, hash: k.hash, label, quotaPerDay: quota }, now);
      // The key alone on stdout (for scripts); what it is on stderr.
      io.out(k.key);
      io.err(
        `created ${k.id} "${label}", ${quota} requests a day${quota === 0 ? ' (none until keys set-quota raises it)' : ''}, in ${made ? 'a new database, ' : ''}${redactDbUrl(dbUrl)}; the key is shown only this once`,
      );
      return 0;
    };
  } else if (sub === 'list') {
    if (positionals.length > 0) return usageError(`unexpected ${positionals[0]}`);
    run = async (store) => {
      const keys = await listApiKeys(store.db, utcDay(now));
      if (values.json) io.out(JSON.stringify(keys, null, 2));
      else if (keys.length === 0) io.out('no API keys yet (synod-relay keys create --label NAME)');
      else io.out(keyTable(keys, utcDay(now)));
      return 0;
    };
  } else if (sub === 'revoke') {
    const arg = keyIdArgument(sub, positionals);
    if ('why' in arg) return usageError(arg.why);
    const { id } = arg;
    run = async (store) => {
      const r = await revokeApiKey(store.db, id, now, utcDay(now));
      if (r.kind === 'not-found') {
        io.err(`synod-relay: no API key ${id} in ${redactDbUrl(dbUrl)}`);
        return 1;
      }
      if (r.kind === 'already-revoked') {
        io.out(`${id} "${r.key.label}" was already revoked at ${iso(r.key.revokedAt)}`);
      } else {
        io.out(
          `revoked ${id} "${r.key.label}"; relays refuse it within their API key cache time (${DEFAULT_EDGE_CONFIG.apiKeyCacheMs / 1000} s by default)`,
        );
      }
      return 0;
    };
  } else if (sub === 'set-quota') {
    const arg = keyIdArgument(sub, positionals);
    if ('why' in arg) return usageError(arg.why);
    const { id } = arg;
    const quota = parseQuota(values.quota);
    if (!rest.some((a) => a === '--quota' || a.startsWith('--quota='))) {
      return usageError('keys set-quota needs --quota N');
    }
    if (quota === undefined) return usageError('--quota must be a whole number >= 0');
    run = async (store) => {
      const r = await setApiKeyQuota(store.db, id, quota, utcDay(now));
      if (r.kind === 'not-found') {
        io.err(`synod-relay: no API key ${id} in ${redactDbUrl(dbUrl)}`);
        return 1;
      }
      io.out(
        `${id} "${r.key.label}": ${r.previous} -> ${quota} requests a day (${r.key.usedToday} used today${r.key.revokedAt === null ? '' : '; the key is revoked'})`,
      );
      return 0;
    };
  } else {
    return usageError(sub === undefined ? 'keys needs a command' : `unknown keys command ${sub}`);
  }
  // A file that is not there is named as the mistake it most likely is (a --db that is not the relay's);
  // `create --new-db` starts a database there.
  const file = localDbFile(dbUrl);
  made = file !== null && !existsSync(file);
  const h = await openForCommand(dbUrl, authToken, io.err, {
    create: sub === 'create' && values['new-db'],
    // `keys list` only reads: it neither migrates the database nor needs to write to it.
    readOnly: sub === 'list',
    ...(sub === 'create'
      ? { missing: 'give the database the relay runs on, or --new-db to start one there' }
      : {}),
  });
  if (h === null) return 1;
  try {
    return await run(h.store);
  } catch (e) {
    io.err(`synod-relay: keys ${sub} failed on ${redactDbUrl(dbUrl)}: ${commandReason(e)}`);
    return 1;
  } finally {
    h.client.close();
  }
}

/** `--help` or `-h`: asks for the usage (before any other check). */
export function isHelpFlag(arg: string): boolean {
  return arg === '--help' || arg === '-h';
}

/** A `--quota` value: decimal digits only (not '', '1e3', '0x10' or ' 5'), within the safe integers. */
function parseQuota(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,15}$/.test(text)) return undefined;
  return Number(text);
}

/** The KEY_ID argument of `revoke` and `set-quota`, or why it is missing or wrong. */
function keyIdArgument(sub: string, positionals: string[]): { id: string } | { why: string } {
  const [id, extra] = positionals;
  if (id === undefined) return { why: `keys ${sub} needs a KEY_ID (keys list shows them)` };
  if (!API_KEY_ID_RE.test(id)) return { why: `${id} is not a key id (key_ and 16 hex digits)` };
  if (extra !== undefined) return { why: `unexpected ${extra}` };
  return { id };
}

function parse(args: string[]) {
  return parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    tokens: true,
    options: {
      ...DB_OPTIONS,
      label: { type: 'string' },
      quota: { type: 'string', default: '1000' },
      json: { type: 'boolean', default: false },
      'new-db': { type: 'boolean', default: false },
    },
  });
}

/** The keys as an aligned text table. */
function keyTable(keys: readonly ApiKeySummary[], day: string): string {
  const rows = [
    ['id', 'label', 'quota/day', `used ${day}`, 'created (UTC)', 'status'],
    ...keys.map((k) => [
      k.id,
      k.label,
      String(k.quotaPerDay),
      String(k.usedToday),
      iso(k.createdAt),
      k.revokedAt === null ? 'live' : `revoked ${iso(k.revokedAt)}`,
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => r[i]?.length ?? 0))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const iso = (ms: number | null) =>
  ms === null ? '' : new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
