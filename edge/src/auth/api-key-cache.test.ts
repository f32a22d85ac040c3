import { describe, expect, test } from 'bun:test';
import { ApiKeyCache, type KnownKey } from './api-key-cache.ts';

function counting(keys: Record<string, KnownKey>) {
  const calls: string[] = [];
  const load = async (hash: string) => {
    calls.push(hash);
    return keys[hash] ?? null;
  };
  return { calls, load };
}

describe('ApiKeyCache', () => {
  test('a found key is reused for ttlMs, then looked up again', async () => {
    let now = 0;
    const cache = new ApiKeyCache({ now: () => now, ttlMs: 100 });
    const db = counting({ h1: { id: 'key_1', quotaPerDay: 5, revoked: false } });
    expect(await cache.get('h1', db.load)).toEqual({ id: 'key_1', quotaPerDay: 5, revoked: false });
    now = 99;
    await cache.get('h1', db.load);
    expect(db.calls).toEqual(['h1']);
    now = 100;
    await cache.get('h1', db.load);
    expect(db.calls).toEqual(['h1', 'h1']);
  });

  test('unknown keys are never cached, so a key created a moment later works at once', async () => {
    const cache = new ApiKeyCache({ now: () => 0 });
    const keys: Record<string, KnownKey> = {};
    const db = counting(keys);
    expect(await cache.get('h2', db.load)).toBeNull();
    keys['h2'] = { id: 'key_2', quotaPerDay: 1, revoked: false };
    expect(await cache.get('h2', db.load)).toMatchObject({ id: 'key_2' });
  });

  test('at most maxEntries keys, least recently used dropped first; forget drops one at once', async () => {
    const cache = new ApiKeyCache({ now: () => 0, maxEntries: 2 });
    const k = (id: string): KnownKey => ({ id, quotaPerDay: 1, revoked: false });
    const db = counting({ a: k('a'), b: k('b'), c: k('c') });
    await cache.get('a', db.load);
    await cache.get('b', db.load);
    await cache.get('a', db.load); // a is now the most recent
    await cache.get('c', db.load); // evicts b
    db.calls.length = 0;
    await cache.get('a', db.load);
    await cache.get('c', db.load);
    expect(db.calls).toEqual([]);
    await cache.get('b', db.load);
    expect(db.calls).toEqual(['b']);
    cache.forget('b');
    await cache.get('b', db.load);
    expect(db.calls).toEqual(['b', 'b']);
  });

  test('a clock set back does not stretch a cached key past ttlMs (a revocation still bites in time)', async () => {
    let now = 10_000_000;
    const cache = new ApiKeyCache({ now: () => now, ttlMs: 100 });
    const keys: Record<string, KnownKey> = { h: { id: 'key_h', quotaPerDay: 5, revoked: false } };
    const db = counting(keys);
    await cache.get('h', db.load);
    keys['h'] = { id: 'key_h', quotaPerDay: 5, revoked: true };
    // The wall clock steps back an hour (an NTP correction, a restored VM): the entry's age is negative.
    now -= 3_600_000;
    expect(await cache.get('h', db.load)).toMatchObject({ revoked: true });
    expect(db.calls).toEqual(['h', 'h']);
  });
  test('concurrent lookups of a key the cache does not hold share one load (and its outcome)', async () => {
    const cache = new ApiKeyCache({ now: () => 0 });
    const db = counting({ h: { id: 'key_h', quotaPerDay: 5, revoked: false } });
    const got = await Promise.all(Array.from({ length: 50 }, () => cache.get('h', db.load)));
    expect(got.every((k) => k?.id === 'key_h')).toBe(true);
    expect(db.calls).toEqual(['h']);
    // A failed load is shared the same way, and not remembered: the next lookup loads again.
    let fail = true;
    const flaky = async (hash: string) => {
      db.calls.push(hash);
      if (fail) throw new Error('database down');
      return null;
    };
    const failed = await Promise.allSettled([cache.get('x', flaky), cache.get('x', flaky)]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await cache.get('x', flaky)).toBeNull();
    expect(db.calls).toEqual(['h', 'x', 'x']);
  });
});
