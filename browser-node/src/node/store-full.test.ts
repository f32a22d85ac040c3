import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { NodeKey, type Packet, type RequestBody } from '@synod/shared';
import { MemoryNetwork } from '../p2p/memory.ts';
import { LibsqlMachineStore } from './machine-store-libsql.ts';
import { STORE_PROBE_ID, SynodNode } from './synod-node.ts';
import { loadTestServing, TEST_HEARTBEAT, type TestServing } from './test-helpers.ts';
import { testRequest } from './test-request.ts';
import { until } from './test-until.ts';

const dir = mkdtempSync(join(tmpdir(), 'synod-store-full-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Request `n` for the stories260K stack of `serving`. */
function request(serving: TestServing, n: number): RequestBody {
  return testRequest({
    embedder: serving.embedder,
    nonce: n,
    prompt: 'Once upon a time',
    acceptedModels: ['stories260K'],
    params: { temperature: 0, maxTokens: 16 },
  });
}

describe('SynodNode: a machine store that cannot be written (a full disk)', () => {
  test('is reported until writes work again (no request needed to find it), stops the node picking up requests (it could not commit) meanwhile', async () => {
    const serving = await loadTestServing();
    // A libSQL file that may not grow: SQLite's own SQLITE_FULL, as on a full disk.
    const client = createClient({ url: `file:${join(dir, 'state.db')}` });
    const store = new LibsqlMachineStore(client);
    await store.load('warm-up'); // creates the table
    // Every page full (a row of another owner fills the table's page): the next row of a few hundred
    // bytes needs a page the file may not have.
    await store.save('another-node', 'ff'.repeat(32), 'x'.repeat(3_900), 0);
    const pages = Number((await client.execute('PRAGMA page_count')).rows[0]?.[0]);
    await client.execute(`PRAGMA max_page_count = ${pages}`);
    const net = new MemoryNetwork();
    const relayKey = await NodeKey.fromSeed(new Uint8Array(32).fill(160));
    const nodeKey = await NodeKey.fromSeed(new Uint8Array(32).fill(161));
    const relay = new SynodNode({ key: relayKey, role: 'relay', transports: [net.join(relayKey.nodeId)] });
    const commits: Packet<'commit'>[] = [];
    const lines: Record<string, unknown>[] = [];
    const node = new SynodNode({
      key: nodeKey,
      role: 'node',
      transports: [net.join(nodeKey.nodeId)],
      serving,
      store,
      storeRetryMs: 1_500,
      heartbeat: TEST_HEARTBEAT,
      log: (line) => lines.push(line),
      onPacket: ({ packet, own }) => {
        if (own && packet.type === 'commit') commits.push(packet as Packet<'commit'>);
      },
    });
    await relay.start();
    await node.start();
    try {
      expect(node.metrics().store).toEqual({ errors: 0, failing: false, lastError: null, refused: 0 });
      const a = request(serving, 1);
      await relay.submit(a);
      await until(() => node.metrics().store.failing);
      expect(node.metrics().store.lastError).toContain('SQLITE_FULL');
      // Meanwhile a request is refused at once: no machine, no write, no inference spent on it.
      const b = request(serving, 2);
      await relay.submit(b);
      await until(() => node.metrics().store.refused === 1);
      expect(node.status(b.requestId)).toBeNull();
      expect(node.metrics().store.errors).toBe(1);
      // Nothing was committed to: a commitment is stored before it is published.
      await node.settled();
      expect(commits).toHaveLength(0);
      expect(node.metrics().inferences.started).toBe(0);
      // Its heartbeat advertises no room meanwhile.
      const advertised = async () => {
        await node.publishHeartbeat();
        return node.knownNodes().find((n) => n.nodeId === nodeKey.nodeId)?.body.capacity.maxQueue;
      };
      expect(await advertised()).toBe(0);
      // Past the retry delay with no request coming, it still says failing: its probe writes fail too
      // (it used to read as healthy 5 s after each failure, and failing again at the next request).
      await Bun.sleep(3_400);
      expect(node.metrics().store.failing).toBe(true);
      // And it still takes no request and advertises no room (it did 5 s after each failure, and the
      // relay counted it among the nodes that could serve a quorum).
      expect(await advertised()).toBe(0);
      const d = request(serving, 4);
      await relay.submit(d);
      await until(() => node.metrics().store.refused === 2);
      expect(node.status(d.requestId)).toBeNull();
      // Space is freed: its next probe finds writes work, with no request needed; the next request is
      // served and committed to.
      await client.execute('PRAGMA max_page_count = 1000000');
      await until(() => !node.metrics().store.failing);
      expect(lines.filter((l) => l['msg'] === 'state writes work again')).toHaveLength(1);
      expect((await store.load(nodeKey.nodeId)).map((r) => r.requestId)).not.toContain(STORE_PROBE_ID);
      const c = request(serving, 3);
      await relay.submit(c);
      await until(() => commits.some((p) => p.body.requestId === c.requestId));
      expect(node.metrics().store.failing).toBe(false);
      expect(node.metrics().inferences.started).toBe(1);
      expect(await advertised()).toBe(4);
    } finally {
      await node.close();
      await relay.close();
      await serving.close();
      client.close();
    }
  }, 60_000);
});
