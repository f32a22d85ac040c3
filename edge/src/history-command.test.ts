import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeKey, packetId, signPacket } from '@synod/shared';
import { historyCommand } from './history-command.ts';
import { openHistory } from './store/open-history.ts';
import { testBody } from './store/test-admissions.ts';
import { storeRequest } from './store/test-requests.ts';
import { smallDisk } from './test-servers.ts';

/** `synod-relay history prune` against a database file, as an operator runs it. */
const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 24, 12);
const dir = mkdtempSync(join(tmpdir(), 'synod-history-cmd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A database with `old` ended requests 10 days old, one pending 10 days old and one ended yesterday. */
async function database(old: number): Promise<string> {
  const file = join(dir, `h-${n++}.db`);
  const h = await openHistory(`file:${file}`);
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(5));
  const add = async (ageDays: number, status: 'pending' | 'expired') => {
    const body = testBody({ createdAt: NOW - ageDays * DAY });
    const packet = await signPacket(key, 'request', body);
    await storeRequest(h.store, { id: packetId(packet), packet }, body.createdAt);
    if (status === 'expired')
      await h.store.setStatus(body.requestId, 'expired', body.createdAt, 'QUORUM_NOT_MET');
  };
  for (let i = 0; i < old; i++) await add(10, 'expired');
  await add(10, 'pending');
  await add(1, 'expired');
  h.client.close();
  return file;
}

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await historyCommand(args, { out: (l) => out.push(l), err: (l) => err.push(l) }, NOW);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function requestsIn(file: string): Promise<number> {
  const h = await openHistory(`file:${file}`);
  try {
    return Number((await h.client.execute('SELECT count(*) AS n FROM requests')).rows[0]?.['n']);
  } finally {
    h.client.close();
  }
}

describe('synod-relay history prune', () => {
  test('prunes what ended before the cutoff, appends it to the archive (0600), says what it kept', async () => {
    const db = await database(3);
    const archive = join(dir, 'archive.jsonl');
    const dry = await run(['prune', '--older-than', '7', '--dry-run', '--db', `file:${db}`]);
    expect(dry).toMatchObject({ code: 0, err: '' });
    expect(dry.out).toBe(
      `would prune 3 requests created before ${new Date(NOW - 7 * DAY).toISOString()}; kept 1 older ones still open or settling on chain`,
    );
    expect(await requestsIn(db)).toBe(5);
    const r = await run([
      'prune',
      '--older-than',
      '7',
      '--archive',
      archive,
      '--batch',
      '2',
      '--db',
      `file:${db}`,
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      new RegExp(
        `^pruned 3 requests created before \\S+; archived to ${archive} \\(0\\.\\d MB\\); kept 1 older ones still open or settling on chain$`,
      ),
    );
    expect(await requestsIn(db)).toBe(2);
    const lines = readFileSync(archive, 'utf8').trimEnd().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { status: string }).status)).toEqual([
      'expired',
      'expired',
      'expired',
    ]);
    expect(statSync(archive).mode & 0o777).toBe(0o600);
    // Run again: nothing more to prune, and the archive is appended to, never overwritten.
    const again = await run(['prune', '--older-than', '7', '--archive', archive, '--db', `file:${db}`]);
    expect(again.out).toStartWith('pruned 0 requests');
    expect(readFileSync(archive, 'utf8').trimEnd().split('\n')).toHaveLength(3);
  });

  test.each([
    [[], 'history needs a command'],
    [['purge'], 'unknown history command purge'],
    [['prune'], 'history prune needs --older-than DAYS'],
    [['prune', '--older-than', '1'], '--older-than must be a whole number of days, at least 2'],
    [['prune', '--older-than', '7d'], '--older-than must be a whole number of days'],
    [['prune', '--older-than', '7', '--batch', '0'], '--batch must be a whole number in [1, 10000]'],
    [['prune', '--older-than', '7', '--dry-run', '--archive', 'a.jsonl'], '--dry-run writes no --archive'],
    [
      ['prune', '--older-than', '7', '--archive', '/no/such/folder/a.jsonl'],
      '--archive: no folder /no/such/folder',
    ],
    [['prune', '--older-than', '7', '--older-than', '8'], '--older-than is given twice'],
    [['prune', '--older-than', '7', '--label', 'x'], "Unknown option '--label'"],
    [['prune', '--older-than', '7', 'extra'], 'unexpected extra'],
  ])('%j is a usage error (exit 2): %s', async (args, why) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(why);
    expect(r.err).toContain('usage: synod-relay history prune');
  });

  test('a database that is not there is exit 1, and none is made; an archive path that is a folder is refused', async () => {
    const missing = join(dir, 'missing.db');
    const r = await run(['prune', '--older-than', '7', '--db', `file:${missing}`]);
    expect(r).toMatchObject({
      code: 1,
      err: `synod-relay: no database at ${missing} (--db names the relay's database)`,
    });
    expect(statSync(missing, { throwIfNoEntry: false })).toBeUndefined();
    const folder = join(dir, 'a-folder');
    mkdirSync(folder);
    const db = await database(1);
    const f = await run(['prune', '--older-than', '7', '--archive', folder, '--db', `file:${db}`]);
    expect(f.code).toBe(2);
    expect(f.err).toContain('--archive must be a file, not a folder');
    expect(await requestsIn(db)).toBe(3);
  });

  test('the request ids in the archive are the pruned ones', async () => {
    const db = await database(2);
    const archive = join(dir, 'ids.jsonl');
    await run(['prune', '--older-than', '7', '--archive', archive, '--db', `file:${db}`]);
    const h = await openHistory(`file:${db}`);
    try {
      const left = new Set(
        (await h.client.execute('SELECT request_id FROM requests')).rows.map((x) => String(x['request_id'])),
      );
      const archived = readFileSync(archive, 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as { requestId: string; others: { type: string }[] });
      expect(archived).toHaveLength(2);
      for (const a of archived) {
        expect(left.has(a.requestId)).toBe(false);
        // Never sealed: its request packet is among the others, with no transcript.
        expect(a.others.map((p) => p.type)).toEqual(['request']);
      }
    } finally {
      h.client.close();
    }
  });
});

// A full disk for real: a 96 KiB tmpfs (Linux, as root; elsewhere the test is skipped).
const full = join(dir, 'full');
const disk = smallDisk(full, '96k');
test.skipIf(!disk.available)(
  'an archive that fills its disk stops the prune: the batch it could not write is not deleted, nor any after',
  async () => {
    const db = await database(300);
    expect(disk.mount()).toBe(true);
    try {
      const archive = join(full, 'a.jsonl');
      const r = await run([
        'prune',
        '--older-than',
        '7',
        '--archive',
        archive,
        '--batch',
        '50',
        '--db',
        `file:${db}`,
      ]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        new RegExp(
          `^synod-relay: writing the archive ${archive} failed, so its batch was not deleted \\((\\d+) pruned before it\\): `,
        ),
      );
      const pruned = Number(/\((\d+) pruned before it\)/.exec(r.err)?.[1]);
      expect(pruned % 50).toBe(0);
      expect(pruned).toBeLessThan(300);
      // Every request gone has its whole line, and every line is whole.
      const lines = readFileSync(archive, 'utf8').split('\n');
      expect(lines.pop()).toBe('');
      expect(lines).toHaveLength(pruned);
      for (const l of lines) expect((JSON.parse(l) as { status: string }).status).toBe('expired');
      expect(await requestsIn(db)).toBe(302 - pruned);
    } finally {
      disk.unmount();
    }
  },
  60_000,
);
