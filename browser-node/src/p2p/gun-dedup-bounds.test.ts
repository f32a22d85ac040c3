import { afterEach, describe, expect, test } from 'bun:test';
import Gun from 'gun';
import { GUN_SAFE_OPTIONS, GunTransport, soulOf } from './gun.ts';
import { GunDedupBounds, MAX_GUN_DEDUP_IDS } from './gun-dedup-bounds.ts';
import { startGunRelay } from './gun-relay.ts';
import { waitFor } from './test-fixtures.ts';
import { contentTopic } from './topics.ts';

const requests = contentTopic('requests');
const LONG = 60_000;
const closers: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** Gun's dedup map of an instance (`root.dup.s`). */
const dedupOf = (gun: unknown): Record<string, unknown> =>
  (gun as { _: { dup: { s: Record<string, unknown> } } })._.dup.s;

/** A bare Gun instance: no peers, nothing on disk. */
function bareGun(): { _: { dup: { track(id: unknown): Record<string, unknown> } } } {
  return (Gun as unknown as (o: object) => { _: { dup: { track(id: unknown): Record<string, unknown> } } })({
    ...GUN_SAFE_OPTIONS,
    super: false,
  });
}

describe('Gun dedup bounds', () => {
  test(
    'a flood of distinct message ids within 9 s keeps at most maxIds in the relay dedup, oldest evicted',
    async () => {
      const maxIds = 500;
      const relay = await startGunRelay({ topics: [requests], dedupBounds: { maxIds } });
      closers.push(() => relay.close());
      const socket = new WebSocket(relay.url.replace(/^http/, 'ws'));
      await new Promise((resolve) => socket.addEventListener('open', resolve, { once: true }));
      closers.push(() => socket.close());
      // GETs for keys nobody has, each under its own message id, sent in batches (Gun takes a JSON array
      // and works through it in slices, interleaving arrays that arrive together: one at a time keeps
      // the ids in order)
      const count = 5_000;
      const batch = 500;
      const id = (n: number) => `flood-${n}`;
      const soul = soulOf(requests);
      const ids = dedupOf(relay.gun);
      let heard = 0; // the most ids Gun held after any batch
      for (let start = 0; start < count; start += batch) {
        const gets = Array.from({ length: batch }, (_, i) => ({
          '#': id(start + i),
          get: { '#': soul, '.': `missing-${start + i}` },
        }));
        socket.send(JSON.stringify(gets));
        await waitFor(() => Object.hasOwn(ids, id(start + batch - 1)), LONG, 'the batch heard');
        heard = Math.max(heard, Object.keys(ids).length);
      }
      // unbounded, Gun kept every one of them (and its GET) for 9 s
      expect(heard).toBeLessThanOrEqual(maxIds);
      expect(Object.keys(ids).length).toBeLessThanOrEqual(maxIds);
      const stats = relay.dedupStats();
      expect(stats.ids).toBe(Object.keys(ids).length);
      expect(stats.evicted).toBeGreaterThanOrEqual(count - maxIds);
      // the newest stay, the oldest went first
      for (let n = count - 100; n < count; n++) expect(Object.hasOwn(ids, id(n))).toBe(true);
      for (let n = 0; n < 100; n++) expect(Object.hasOwn(ids, id(n))).toBe(false);
    },
    LONG,
  );

  test('a client transport is bounded too, by default at MAX_GUN_DEDUP_IDS', async () => {
    const client = new GunTransport({ peers: ['http://127.0.0.1:9/gun'], topics: [requests] });
    closers.push(() => client.close());
    const dup = (client.gun._ as unknown as { dup: { track(id: string): unknown } }).dup;
    for (let n = 0; n < MAX_GUN_DEDUP_IDS + 1_000; n++) dup.track(`id-${n}`);
    expect(Object.keys(dedupOf(client.gun)).length).toBeLessThanOrEqual(MAX_GUN_DEDUP_IDS);
    expect(client.dedupStats().evicted).toBeGreaterThanOrEqual(1_000);
    expect(Object.hasOwn(dedupOf(client.gun), `id-${MAX_GUN_DEDUP_IDS + 999}`)).toBe(true);
    expect(Object.hasOwn(dedupOf(client.gun), 'id-0')).toBe(false);
  });

  test('ids are evicted in the order Gun first added them, whatever their kind', () => {
    const gun = bareGun();
    const bounds = new GunDedupBounds(gun, { maxIds: 3 });
    const dup = gun._.dup;
    for (const id of ['a', 'b', 'c']) dup.track(id);
    dup.track('a'); // seen again: Gun refreshes its time in place, its place in line stays
    // Gun's per-key ids are objects named by their toString
    dup.track({ toString: () => 'd' });
    expect(Object.keys(dedupOf(gun))).toEqual(['b', 'c', 'd']);
    expect(bounds.stats()).toMatchObject({ ids: 3, evicted: 1 });
    // an id Gun dropped itself leaves nothing to evict for it, and one it adds again is new
    delete dedupOf(gun)['b'];
    dup.track('a');
    dup.track('e');
    expect(Object.keys(dedupOf(gun))).toEqual(['d', 'a', 'e']);
    expect(bounds.stats()).toMatchObject({ ids: 3, evicted: 2 });
  });

  test('ids named like Object.prototype members are ordinary ids', () => {
    const gun = bareGun();
    new GunDedupBounds(gun, { maxIds: 10 });
    const dup = gun._.dup as unknown as { check(id: string): unknown; track(id: string): unknown };
    // unbounded Gun takes them for repeats (and `__proto__` writes `was` onto Object.prototype)
    expect(dup.check('constructor')).toBe(false);
    expect(dup.check('__proto__')).toBe(false);
    dup.track('__proto__');
    expect(Object.hasOwn(dedupOf(gun), '__proto__')).toBe(true);
    expect(Object.hasOwn(Object.prototype, 'was')).toBe(false);
  });

  test("ids Gun's own drop forgot leave the bound's record when the next id comes", () => {
    const gun = bareGun();
    const bounds = new GunDedupBounds(gun);
    const dup = gun._.dup;
    for (const id of ['a', 'b', 'c', 'd']) dup.track(id);
    // What Gun's drop does 9 s later.
    for (const id of ['a', 'b', 'c', 'd']) delete dedupOf(gun)[id];
    expect(bounds.stats()).toMatchObject({ ids: 0, recorded: 4 });
    dup.track('e');
    expect(bounds.stats()).toEqual({ ids: 1, evicted: 0, recorded: 1, recordedChars: 1 });
  });

  test("ids are bounded by their characters too: a peer's ids are as long as it likes", () => {
    const gun = bareGun();
    const bounds = new GunDedupBounds(gun, { maxIdChars: 10 });
    const dup = gun._.dup;
    for (const id of ['aaaa', 'bbbb', 'cccc']) dup.track(id);
    expect(Object.keys(dedupOf(gun))).toEqual(['bbbb', 'cccc']);
    expect(bounds.stats()).toEqual({ ids: 2, evicted: 1, recorded: 2, recordedChars: 8 });
    // One id longer than the bound on its own is kept until the next, which then evicts it.
    dup.track('x'.repeat(20));
    expect(Object.keys(dedupOf(gun))).toEqual(['x'.repeat(20)]);
    dup.track('y');
    expect(Object.keys(dedupOf(gun))).toEqual(['y']);
    expect(bounds.stats()).toMatchObject({ recorded: 1, recordedChars: 1 });
  });

  test('maxIds and maxIdChars must be positive integers', () => {
    expect(() => new GunDedupBounds(bareGun(), { maxIdChars: 0 })).toThrow(RangeError);
    expect(() => new GunDedupBounds(bareGun(), { maxIds: 0 })).toThrow(RangeError);
    expect(() => new GunDedupBounds(bareGun(), { maxIds: 2.5 })).toThrow(RangeError);
    expect(() => new GunDedupBounds({ _: {} })).toThrow(TypeError);
  });
});
