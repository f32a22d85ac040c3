import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REQUEST_ID_MAX_CHARS } from '@synod/shared';
import {
  acceptedHistory,
  LLAMA,
  requestPacket,
  seedKey,
} from '../../../shared/src/history/fixtures.test-helpers.ts';
import type { RunningRelay } from '../runtime/bun.ts';
import { storeRequest } from '../store/test-requests.ts';
import { loneRelay } from '../test-relay.ts';

/**
 * `/v1/history` and `/v1/nodes` read by an auditor who trusts nothing the relay says that it cannot
 * re-derive: every cursor the relay hands out leads on, and every node with a record is listed.
 */
const dir = mkdtempSync(join(tmpdir(), 'synod-history-audit-'));
let relay: RunningRelay;
const RELAY_SEED = 13;

beforeAll(async () => {
  relay = await loneRelay(`file:${join(dir, 'relay.db')}`, RELAY_SEED);
});

afterAll(async () => {
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

type Page = { items: { requestId: string }[]; nextCursor: string | null };

describe('/v1/history cursors', () => {
  test('a page ending on the longest chain request id hands out a cursor the next page takes', async () => {
    const key = await seedKey(RELAY_SEED);
    const now = Date.now();
    const chain = await requestPacket(key, {
      createdAt: now - 1_000,
      models: [LLAMA.id],
      nonce: 1,
      origin: {
        kind: 'chain',
        chainId: Number.MAX_SAFE_INTEGER,
        contract: `0x${'ab'.repeat(20)}`,
        requestNo: '9'.repeat(78),
        txHash: `0x${'cd'.repeat(32)}`,
        blockNumber: 5,
      },
    });
    const older = await requestPacket(key, { createdAt: now - 2_000, models: [LLAMA.id], nonce: 2 });
    for (const r of [chain, older]) await storeRequest(relay.store, r, now);
    expect(chain.packet.body.requestId.length).toBeGreaterThan(128);
    expect(chain.packet.body.requestId.length).toBeLessThanOrEqual(REQUEST_ID_MAX_CHARS);

    const first = (await (await relay.app.request('/v1/history?limit=1&origin=chain')).json()) as Page;
    expect(first.items.map((i) => i.requestId)).toEqual([chain.packet.body.requestId]);
    // The whole history, a request a page: the chain request's cursor leads to the older one.
    const walked: string[] = [];
    let cursor: string | null = null;
    do {
      const r = await relay.app.request(
        `/v1/history?limit=1${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`,
      );
      expect(r.status).toBe(200);
      const page = (await r.json()) as Page;
      walked.push(...page.items.map((i) => i.requestId));
      cursor = page.nextCursor;
    } while (cursor !== null);
    expect(walked).toEqual([chain.packet.body.requestId, older.packet.body.requestId]);
  });

  test('a cursor that names no request id of either form is a 400 INVALID_INPUT', async () => {
    for (const cursor of [
      'abc',
      '1:',
      `1:${'a'.repeat(63)}`,
      `1:${'A'.repeat(64)}`,
      `1:${'a'.repeat(65)}`,
      '1:1:0xab:1',
      `1:1:0x${'ab'.repeat(20)}:${'1'.repeat(79)}`,
      `99999999999999999:${'a'.repeat(64)}`,
    ]) {
      const r = await relay.app.request(`/v1/history?cursor=${encodeURIComponent(cursor)}`);
      expect({ cursor, status: r.status }).toEqual({ cursor, status: 400 });
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('INVALID_INPUT');
    }
  });
});

type NodesPage = {
  nodes: {
    nodeId: string;
    role: string | null;
    lastSeen: number;
    reputation: { agreements: number; disagreements: number; withheld: number; commits: number };
  }[];
  nextCursor: string | null;
};

describe('/v1/nodes lists every node with a record', () => {
  test('sealed members never heard from by heartbeat are listed with their reputation, and by id', async () => {
    const h = await acceptedHistory(await seedKey(RELAY_SEED), Date.now() - 10_000, 77);
    const now = Date.now();
    await storeRequest(relay.store, h.request, now);
    for (const c of h.commits) await relay.store.recordCommit(c);
    await relay.store.recordSeal(h.seal, now);
    for (const r of h.reveals) await relay.store.recordReveal(r);
    expect(await relay.store.recordVerdict(h.verdict, now)).toBe(true);
    const { a, b, c, d } = h.keys;

    const walked: NodesPage['nodes'] = [];
    let cursor: string | null = null;
    do {
      const r = await relay.app.request(`/v1/nodes?limit=1${cursor === null ? '' : `&cursor=${cursor}`}`);
      expect(r.status).toBe(200);
      const page = (await r.json()) as NodesPage;
      walked.push(...page.nodes);
      cursor = page.nextCursor;
    } while (cursor !== null);
    const byId = new Map(walked.map((n) => [n.nodeId, n]));
    expect(walked).toHaveLength(byId.size);
    // The three members, as the verdict has them; D was not sealed and had no record: it earns none.
    expect(byId.get(a.nodeId)?.reputation).toMatchObject({ agreements: 1, disagreements: 0, commits: 1 });
    expect(byId.get(b.nodeId)?.reputation).toMatchObject({ agreements: 1, disagreements: 0, commits: 1 });
    expect(byId.get(c.nodeId)?.reputation).toMatchObject({ agreements: 0, disagreements: 1, commits: 1 });
    expect(byId.has(d.nodeId)).toBe(false);
    // No heartbeat of them: nothing is claimed of their capabilities.
    expect(byId.get(c.nodeId)?.role).toBeNull();

    const one = (await (await relay.app.request(`/v1/nodes?node=${c.nodeId}`)).json()) as NodesPage;
    expect(one.nodes.map((n) => [n.nodeId, n.reputation.disagreements])).toEqual([[c.nodeId, 1]]);
    expect(one.nextCursor).toBeNull();
  });
});
