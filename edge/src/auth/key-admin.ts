import { apiKeys, usage } from '@synod/shared/history';
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import type { HistoryDb } from '../store/history-store.ts';

/** An API key as its operator sees it: never the key itself (only its hash is stored), and today's use. */
export interface ApiKeySummary {
  id: string;
  label: string;
  quotaPerDay: number;
  /** Requests charged to it on `day` (the UTC day asked about). */
  usedToday: number;
  createdAt: number;
  /** Null while the key is live. */
  revokedAt: number | null;
}

/** Key ids as `apiKeyId` makes them: `key_` and the first 16 hex digits of the key's sha256. */
export const API_KEY_ID_RE = /^key_[0-9a-f]{16}$/;

/** Every API key, oldest first, with what it was charged on `day` (`YYYY-MM-DD`, UTC). */
export function listApiKeys(db: HistoryDb, day: string): Promise<ApiKeySummary[]> {
  return summaries(db, day);
}

/** The keys (all, or the one with id `only`) with their use on `day`. */
async function summaries(db: HistoryDb, day: string, only?: string): Promise<ApiKeySummary[]> {
  const rows = await db
    .select({
      id: apiKeys.id,
      label: apiKeys.label,
      quotaPerDay: apiKeys.quotaPerDay,
      usedToday: sql<number>`coalesce(${usage.count}, 0)`,
      createdAt: apiKeys.createdAt,
      revokedAt: apiKeys.revokedAt,
    })
    .from(apiKeys)
    .leftJoin(usage, and(eq(usage.keyId, apiKeys.id), eq(usage.day, day)))
    .where(only === undefined ? undefined : eq(apiKeys.id, only))
    .orderBy(asc(apiKeys.createdAt), asc(apiKeys.id));
  return rows.map((r) => ({ ...r, usedToday: Number(r.usedToday) }));
}

export type RevokeOutcome =
  | { kind: 'revoked'; key: ApiKeySummary }
  | { kind: 'already-revoked'; key: ApiKeySummary }
  | { kind: 'not-found' };

/**
 * Revoke an API key by id: from then on relays answer it `403 FORBIDDEN` (each within its
 * `apiKeyCacheMs`). Revoking a revoked key changes nothing and says so; it keeps its first `revokedAt`.
 */
export async function revokeApiKey(
  db: HistoryDb,
  id: string,
  now: number,
  day: string,
): Promise<RevokeOutcome> {
  const changed = await db
    .update(apiKeys)
    .set({ revokedAt: now })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  const [key] = await summaries(db, day, id);
  if (!key) return { kind: 'not-found' };
  return { kind: changed.length > 0 ? 'revoked' : 'already-revoked', key };
}

export type SetQuotaOutcome =
  | { kind: 'updated'; key: ApiKeySummary; previous: number }
  | { kind: 'not-found' };

/**
 * Change an API key's daily quota: relays apply it within their `apiKeyCacheMs`, to the count of the
 * current day too (a key already past a lowered quota gets `429 QUOTA_EXCEEDED` until the next day).
 */
export async function setApiKeyQuota(
  db: HistoryDb,
  id: string,
  quotaPerDay: number,
  day: string,
): Promise<SetQuotaOutcome> {
  if (!Number.isSafeInteger(quotaPerDay) || quotaPerDay < 0) {
    throw new RangeError('a quota is a whole number of requests a day, 0 or more');
  }
  const [before] = await summaries(db, day, id);
  if (!before) return { kind: 'not-found' };
  await db.update(apiKeys).set({ quotaPerDay }).where(eq(apiKeys.id, id));
  const [key] = await summaries(db, day, id);
  return key ? { kind: 'updated', key, previous: before.quotaPerDay } : { kind: 'not-found' };
}
