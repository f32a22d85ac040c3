import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@libsql/client';
import { historySchema } from '@synod/shared/history';
import { drizzle } from 'drizzle-orm/libsql';
import { HISTORY_WINDOW, type HistoryQuery } from './history-pages.ts';
import { type HistoryDb, HistoryStore } from './history-store.ts';
import { openHistory } from './open-history.ts';

/**
 * `/v1/history` with several filters, walked while requests are being stored: a short page's cursor
 * (the end of the window of index entries it looked at) must be the end of the entries it did look at,
 * however the index changes between the page's reads, or the next page reads an entry again (a request
 * listed twice) or passes one by (a request never listed).
 */
const dir = mkdtempSync(join(tmpdir(), 'synod-history-paging-race-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const COORDINATOR = 'c1'.repeat(32);
/** Requests accepting model `m`, more than a window of them: all from peers but one. */
const M = HISTORY_WINDOW + 100;
/** Requests accepting model `n`, all over HTTP: more of them than of `m`, so a page follows `m`'s index. */
const N = M + 100;
/** The one HTTP request of `m`: the window's last entry on the first page. */
const MATCH = M - HISTORY_WINDOW;

/** Insert `count` requests from `from` on, as the dispatcher stores them (rows only: the pages read no packet). */
async function fill(
  client: Client,
  from: number,
  count: number,
  model: string,
  origin: (i: number) => string,
) {
  const stmts = [];
  for (let i = from; i < from + count; i++) {
    const id = `${model === 'm' ? 'a' : 'b'}${i.toString(16).padStart(63, '0')}`;
    const createdAt = model === 'm' ? 100_000 + i : 1 + i;
    stmts.push({
      sql: `INSERT INTO requests (request_id, packet_id, coordinator, prompt, accepted_models, params, frame,
              origin_kind, status, created_at, updated_at, raw)
            VALUES (?, ?, ?, 'p', ?, '{}', '{}', ?, 'verdict', ?, 1, '{}')`,
      args: [
        id,
        `${model === 'm' ? 'c' : 'd'}${id.slice(1)}`,
        COORDINATOR,
        JSON.stringify([model]),
        origin(i),
        createdAt,
      ],
    });
    stmts.push({
      sql: 'INSERT INTO request_models (request_id, model_id, created_at) VALUES (?, ?, ?)',
      args: [id, model, createdAt],
    });
  }
  await client.batch(stmts, 'write');
}

/**
 * A test double of the store's database: each read of index entries (not the counts that pick a
 * filter's index) is followed, while `armed`, by a new request of `m` from a peer stored inside the
 * first page's window, as another relay or this one's dispatcher would store it meanwhile.
 */
function racingDb(client: Client, state: { armed: boolean; next: number }): HistoryDb {
  let last = '';
  const db = drizzle(client, { schema: historySchema, logger: { logQuery: (sql) => (last = sql) } });
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop !== 'all') return Reflect.get(target, prop, receiver);
      return async (query: Parameters<HistoryDb['all']>[0]) => {
        const rows = await target.all(query);
        if (state.armed && !/^SELECT count\(\*\)/.test(last)) {
          const i = state.next++;
          const id = `e${i.toString(16).padStart(63, '0')}`;
          const createdAt = 100_000 + M - 10;
          await client.batch(
            [
              {
                sql: `INSERT INTO requests (request_id, packet_id, coordinator, prompt, accepted_models, params,
                        frame, origin_kind, status, created_at, updated_at, raw)
                      VALUES (?, ?, ?, 'p', '["m"]', '{}', '{}', 'peer', 'verdict', ?, 1, '{}')`,
                args: [id, `f${id.slice(1)}`, COORDINATOR, createdAt],
              },
              {
                sql: `INSERT INTO request_models (request_id, model_id, created_at) VALUES (?, 'm', ?)`,
                args: [id, createdAt],
              },
            ],
            'write',
          );
        }
        return rows;
      };
    },
  }) as HistoryDb;
}

describe('listHistory with several filters while requests are stored', () => {
  test('a short page hands out the end of what it read: the next page neither repeats nor skips', async () => {
    const h = await openHistory(`file:${join(dir, 'race.db')}`);
    try {
      await fill(h.client, 0, M, 'm', (i) => (i === MATCH ? 'http' : 'peer'));
      await fill(h.client, 0, N, 'n', () => 'http');
      const matchId = `a${MATCH.toString(16).padStart(63, '0')}`;
      const state = { armed: false, next: 0 };
      const store = new HistoryStore(racingDb(h.client, state));
      const q: HistoryQuery = { model: 'm', origin: 'http', limit: 50 };

      // Still, the walk is one request, listed once.
      const still: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await store.listHistory({ ...q, ...(cursor === null ? {} : { cursor }) });
        still.push(...page.items.map((i) => i.requestId));
        cursor = page.nextCursor;
      } while (cursor !== null);
      expect(still).toEqual([matchId]);

      // Requests stored while the first page is read, inside its window.
      const walked: string[] = [];
      cursor = null;
      let pages = 0;
      do {
        state.armed = pages === 0;
        const page = await store.listHistory({ ...q, ...(cursor === null ? {} : { cursor }) });
        walked.push(...page.items.map((i) => i.requestId));
        cursor = page.nextCursor;
        pages++;
      } while (cursor !== null && pages < 10);
      expect(state.next).toBeGreaterThan(0);
      expect(walked).toEqual([matchId]);
    } finally {
      h.client.close();
    }
  }, 60_000);
});
