import { expect, test } from 'bun:test';
import type { AnyPacket } from '@synod/shared';
import { HistoryWriter } from './history-writer.ts';

/** A stand-in packet of `type` (the writer looks at nothing else). */
const packet = (type: string, n: number) => ({ type, n }) as unknown as AnyPacket;

/** A store that fails while `down`, recording what it was given in order. */
function flakyStore() {
  const s = {
    down: false,
    /** Writes refused while down (first tries and retries). */
    refused: 0,
    written: [] as string[],
    record: async (id: string) => {
      if (s.down) {
        s.refused++;
        throw new Error('SQLITE_FULL: database or disk is full');
      }
      s.written.push(id);
      return true;
    },
  };
  return s;
}

test('writes that fail are written again, in order, once the store takes writes; heartbeats are not', async () => {
  const store = flakyStore();
  const logs: Record<string, unknown>[] = [];
  const stored: string[] = [];
  const w = new HistoryWriter({
    record: store.record,
    stored: (p) => stored.push(p.type),
    log: (e) => logs.push(e),
    now: Date.now,
    retryMs: [10, 20],
  });
  await w.write('c1', packet('commit', 1));
  store.down = true;
  await w.write('s1', packet('seal', 1));
  await w.write('h1', packet('heartbeat', 1));
  await w.write('r1', packet('reveal', 1));
  await w.write('v1', packet('verdict', 1));
  expect(w.pending).toBe(3);
  // Down until the waiting ones were tried again twice at least (the retries' timers, however late a
  // loaded machine runs them): still waiting, none lost.
  for (let i = 0; i < 200 && store.refused < 4; i++) await Bun.sleep(10);
  expect(store.refused).toBeGreaterThanOrEqual(4);
  expect(w.pending).toBe(3);
  store.down = false;
  // Behind the waiting ones: not written before them.
  await w.write('a1', packet('attestation', 1));
  for (let i = 0; i < 50 && w.pending > 0; i++) await Bun.sleep(10);
  expect(store.written).toEqual(['c1', 's1', 'r1', 'v1', 'a1']);
  expect(stored).toEqual(['commit', 'seal', 'reveal', 'verdict', 'attestation']);
  // One line for the spell, one when it ended: not one a failed write.
  expect(logs.map((l) => l['msg'])).toEqual(['history write failed', 'history writes work again']);
  expect(logs[1]).toMatchObject({ level: 'info', written: 4 });
  expect((logs[1]?.['failures'] as number) >= 4).toBe(true);
  w.close();
});

test('the waiting packets are bounded: past the bound the newest is dropped, said once', async () => {
  const store = flakyStore();
  store.down = true;
  const logs: Record<string, unknown>[] = [];
  const w = new HistoryWriter({
    record: store.record,
    log: (e) => logs.push(e),
    now: Date.now,
    maxPending: 3,
    retryMs: [1_000],
  });
  for (let i = 0; i < 10; i++) await w.write(`r${i}`, packet('reveal', i));
  expect(w.pending).toBe(3);
  expect(logs.filter((l) => l['code'] === 'HISTORY_RETRY_FULL')).toHaveLength(1);
  w.close();
});

test('a heartbeat skipped (not due, the database untouched) does not end a spell: nothing says writes work again while they fail', async () => {
  const logs: Record<string, unknown>[] = [];
  let down = true;
  const w = new HistoryWriter({
    // As recordPacket: a heartbeat not due is skipped (false) without touching the database.
    record: async (_id, p) => {
      if (p.type === 'heartbeat' && (p as unknown as { n: number }).n % 2 === 1) return false;
      if (down) throw new Error('SQLITE_CANTOPEN: unable to open database file');
      return true;
    },
    log: (e) => logs.push(e),
    now: Date.now,
    retryMs: [1_000],
  });
  await w.write('h0', packet('heartbeat', 0));
  await w.write('h1', packet('heartbeat', 1));
  await w.write('h2', packet('heartbeat', 2));
  expect(logs.map((l) => l['msg'])).toEqual(['history write failed']);
  // A heartbeat's failure says it is not kept.
  expect(logs[0]?.['hint']).toContain('not kept');
  down = false;
  await w.write('h4', packet('heartbeat', 4));
  expect(logs.map((l) => l['msg'])).toEqual(['history write failed', 'history writes work again']);
  w.close();
});
