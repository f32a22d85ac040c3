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
});
