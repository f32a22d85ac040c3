/**
 * Requests an older relay signed under rules tightened since (a seed of 2^32 - 1, a fraction within the
 * old tolerance of six decimals) are read, pruned and verified as they were signed: the tighter rules
 * hold a relay's callers, not the history (reading them threw, which broke their views, pruning, the
 * restore, and dropped such a row from the admission log).
 */
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeKey, type Packet, packetId, signPacket, withRequestId } from '@synod/shared';
import { pruneHistory } from './history-prune.ts';
import { IntakeStore } from './intake-store.ts';
import { openHistory } from './open-history.ts';
import { testBody } from './test-admissions.ts';
import { storeRequest } from './test-requests.ts';

const DAY = 86_400_000;
const dir = mkdtempSync(join(tmpdir(), 'synod-older-requests-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cases = [
  ['a seed of 2^32 - 1', { params: { temperature: 1, maxTokens: 8, seed: 2 ** 32 - 1 } }],
  ['a secPercentage of 1 - 0.7', { frame: { secPercentage: 1 - 0.7 } }],
] as const;

for (const [what, change] of cases) {
  test(`a request signed by an older relay with ${what}: read, queued, pruned`, async () => {
    const h = await openHistory(`file:${join(dir, `${what.length}-${Date.now()}.db`)}`);
    try {
      const now = Date.now();
      const base = testBody({ createdAt: now - 10 * DAY });
      const key = await NodeKey.fromSeed(new Uint8Array(32).fill(31));
      const { body } = withRequestId({
        ...base,
        ...('params' in change ? { params: change.params } : {}),
        ...('frame' in change ? { frame: { ...base.frame, ...change.frame } } : {}),
      });
      const packet = (await signPacket(key, 'request', body)) as Packet<'request'>;
      await storeRequest(h.store, { id: packetId(packet), packet }, now - 10 * DAY, 'expired');
      expect((await h.store.getRequest(body.requestId))?.request.body).toEqual(body);
      // In the admission log too: taken up as it was acknowledged, never dropped as unreadable.
      const intake = new IntakeStore(h.client);
      const queued = { ...body, requestId: '' };
      const { body: again } = withRequestId({ ...queued, nonce: 'ab'.repeat(16), createdAt: now });
      await intake.admit(
        [{ body: again, callerId: 'key_a', quotaPerDay: 10, day: '2026-11-24' }],
        key.nodeId,
        now,
      );
      expect((await intake.next(key.nodeId, 10))[0]?.body).toEqual(again);
      expect(
        await pruneHistory(h.store, { before: now - 2 * DAY, now, archive: async () => undefined }),
      ).toMatchObject({ pruned: 1 });
    } finally {
      h.client.close();
    }
  });
}
