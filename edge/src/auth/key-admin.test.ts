import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { usage } from '@synod/shared/history';
import { openHistory } from '../store/open-history.ts';
import { createApiKey } from './api-keys.ts';
import { API_KEY_ID_RE, listApiKeys, revokeApiKey, setApiKeyQuota } from './key-admin.ts';

let h: Awaited<ReturnType<typeof openHistory>>;
beforeEach(async () => {
  h = await openHistory(':memory:');
});
afterEach(() => h.client.close());

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

async function addKey(label: string, quotaPerDay: number, createdAt: number) {
  const k = createApiKey(random);
  await h.store.createApiKey({ id: k.id, hash: k.hash, label, quotaPerDay }, createdAt);
  return k;
}

describe('listApiKeys', () => {
  test('no keys: an empty list', async () => {
    expect(await listApiKeys(h.store.db, '2026-11-22')).toEqual([]);
  });

  test('oldest first, with the use of the day asked about only, never the key or its hash', async () => {
    const b = await addKey('second', 10, 2_000);
    const a = await addKey('first', 1000, 1_000);
    await h.store.db.insert(usage).values([
      { keyId: b.id, day: '2026-11-22', count: 7 },
      { keyId: b.id, day: '2026-11-21', count: 3 },
      { keyId: a.id, day: '2026-11-21', count: 9 },
    ]);
    const keys = await listApiKeys(h.store.db, '2026-11-22');
    expect(keys).toEqual([
      { id: a.id, label: 'first', quotaPerDay: 1000, usedToday: 0, createdAt: 1_000, revokedAt: null },
      { id: b.id, label: 'second', quotaPerDay: 10, usedToday: 7, createdAt: 2_000, revokedAt: null },
    ]);
    expect(JSON.stringify(keys)).not.toContain(a.hash);
    expect(keys.every((k) => API_KEY_ID_RE.test(k.id))).toBe(true);
  });
});

describe('revokeApiKey', () => {
  test('revokes once; again says so and keeps the first time; an unknown id is not found', async () => {
    const k = await addKey('agent', 5, 1_000);
    const other = await addKey('other', 5, 1_001);
    const first = await revokeApiKey(h.store.db, k.id, 5_000, '2026-11-22');
    expect(first).toMatchObject({ kind: 'revoked', key: { id: k.id, label: 'agent', revokedAt: 5_000 } });
    const again = await revokeApiKey(h.store.db, k.id, 9_000, '2026-11-22');
    expect(again).toMatchObject({ kind: 'already-revoked', key: { revokedAt: 5_000 } });
    expect(await revokeApiKey(h.store.db, 'key_0000000000000000', 9_000, '2026-11-22')).toEqual({
      kind: 'not-found',
    });
    // What the relays read: this key revoked, the other one untouched.
    expect(await h.store.apiKeyByHash(k.hash)).toMatchObject({ revoked: true });
    expect(await h.store.apiKeyByHash(other.hash)).toMatchObject({ revoked: false });
  });
});

describe('setApiKeyQuota', () => {
  test("changes one key's quota and says what it was; an unknown id is not found; a bad quota throws", async () => {
    const k = await addKey('agent', 5, 1_000);
    const other = await addKey('other', 7, 1_001);
    await h.store.db.insert(usage).values({ keyId: k.id, day: '2026-11-22', count: 4 });
    const r = await setApiKeyQuota(h.store.db, k.id, 2, '2026-11-22');
    expect(r).toMatchObject({ kind: 'updated', previous: 5, key: { quotaPerDay: 2, usedToday: 4 } });
    expect(await h.store.apiKeyByHash(k.hash)).toMatchObject({ quotaPerDay: 2 });
    expect(await h.store.apiKeyByHash(other.hash)).toMatchObject({ quotaPerDay: 7 });
    expect(await setApiKeyQuota(h.store.db, 'key_0000000000000000', 2, '2026-11-22')).toEqual({
      kind: 'not-found',
    });
    for (const bad of [-1, 1.5, Number.NaN]) {
      await expect(setApiKeyQuota(h.store.db, k.id, bad, '2026-11-22')).rejects.toThrow(RangeError);
    }
    expect(await h.store.apiKeyByHash(k.hash)).toMatchObject({ quotaPerDay: 2 });
  });
});
