/**
 * A request in the history as its coordinator's dispatcher leaves it (`moveFromIntake`), for tests that
 * begin after the dispatch: the `requests` row and its models, without an admission-log row before it.
 */
import { requestModels, requestRows, requests } from '@synod/shared/history';
import type { HistoryStore, Stored } from './history-store.ts';

export async function storeRequest(
  store: HistoryStore,
  request: Stored<'request'>,
  now: number,
  status: 'pending' | 'expired' = 'pending',
): Promise<void> {
  const rows = requestRows(request, now);
  await store.db.transaction(async (tx) => {
    await tx.insert(requests).values({ ...rows.request, status, error: null });
    if (rows.models.length > 0) await tx.insert(requestModels).values(rows.models);
  });
}
