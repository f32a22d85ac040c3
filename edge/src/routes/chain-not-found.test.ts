/**
 * The 404 of a chain request id the history does not hold says what the relay knows of it from its
 * chain record: refused or settled elsewhere without being run here, or run here and pruned since
 * (`history prune`, which marks the record): never the one for the other.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningRelay } from '../runtime/bun.ts';
import { loneRelay } from '../test-relay.ts';

const CONTRACT = `0x${'c'.repeat(40)}`;
const dir = mkdtempSync(join(tmpdir(), 'synod-chain-404-'));
let relay: RunningRelay;

/** A settled chain record of request number `n`, with no request in the history. */
async function record(n: number, status: 'fulfilled' | 'refunded', prunedAt: number | null) {
  await relay.client.execute({
    sql: `INSERT INTO chain_requests (chain_id, contract, request_no, request_id, tx_hash, log_index,
            block_number, block_hash, status, fulfilled_tx, created_at, updated_at, finalized_at,
            refund_reason, pruned_at)
          VALUES (31337, ?, ?, ?, ?, 0, 5, ?, ?, ?, 1, 1, 2, ?, ?)`,
    args: [
      CONTRACT,
      String(n),
      `31337:${CONTRACT}:${n}`,
      `0x${'d'.repeat(64)}`,
      `0x${'e'.repeat(64)}`,
      status,
      `0x${'f'.repeat(64)}`,
      status === 'refunded' ? 'UNKNOWN_MODEL' : null,
      prunedAt,
    ],
  });
  return `31337:${CONTRACT}:${n}`;
}

beforeAll(async () => {
  relay = await loneRelay(`file:${join(dir, 'relay.db')}`, 7);
});
afterAll(async () => {
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const get = async (path: string) => {
  const r = await relay.app.request(`http://127.0.0.1${path}`);
  return { status: r.status, body: (await r.json()) as { error: Record<string, unknown> } };
};

describe('the 404 of a chain request the history does not hold', () => {
  test('never run here (refused as it was read): said so, with the refund reason', async () => {
    const id = await record(1, 'refunded', null);
    for (const path of [`/v1/inference/${id}`, `/v1/verify/${id}`]) {
      const r = await get(path);
      expect(r.status).toBe(404);
      expect(r.body.error['message']).toContain('the relay read it from the chain and never ran it');
      expect(r.body.error['details']).toMatchObject({
        chain: { status: 'refunded', refundReason: 'UNKNOWN_MODEL' },
      });
    }
  });

  test('run here and pruned since: said so, with when, and where its transcript went', async () => {
    const prunedAt = Date.UTC(2026, 10, 20, 8);
    const id = await record(2, 'fulfilled', prunedAt);
    for (const path of [`/v1/inference/${id}`, `/v1/verify/${id}`]) {
      const r = await get(path);
      expect(r.status).toBe(404);
      expect(r.body.error['message']).toBe(
        `no request ${id} in the history: it ran here and was pruned on 2026-11-20T08:00:00.000Z`,
      );
      expect(r.body.error['message']).not.toContain('never ran');
      expect(r.body.error['details']).toMatchObject({ chain: { status: 'fulfilled', prunedAt } });
      expect(r.body.error['hint']).toContain('history prune');
    }
  });
});
