/**
 * Two Bun relays over one libSQL database serve the same history. Relay A has the serving nodes on its
 * network; relay B shares only the database (its node is alone on a network of its own), so everything
 * B serves about A's requests came through libSQL. Run over a real sqld, over one libSQL file, and with
 * B on an embedded replica of A's sqld (reads from its own local file, writes forwarded to sqld).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNetwork } from '@synod/browser-node';
import { NodeKey } from '@synod/shared';
import { type RunningRelay, startRelay } from '../edge/src/runtime/bun.ts';
import { startTestNetwork, type TestNetwork } from '../edge/src/test-helpers.ts';
import { type RunningSqld, startSqld, waitUntil } from '../edge/src/test-servers.ts';

type View = Record<string, unknown> & { status: string };

/** A view without the parts that may change after a verdict (attestations, and so updatedAt). */
function settled(v: unknown): unknown {
  const { attestations: _a, updatedAt: _u, ...rest } = v as Record<string, unknown>;
  return rest;
}

for (const backend of ['sqld', 'file', 'replica'] as const) {
  describe(`two relays over one database (${backend})`, () => {
    let sqld: RunningSqld | undefined;
    const replicaDir = mkdtempSync(join(tmpdir(), 'synod-replica-'));
    let a: TestNetwork | undefined;
    let b: RunningRelay | undefined;

    beforeAll(async () => {
      if (backend !== 'file') sqld = await startSqld();
      a = await startTestNetwork(sqld ? { dbUrl: sqld.url } : {});
      // Relay A created (and migrated) the database first; B opens the same one.
      const dbUrl = sqld?.url ?? `file:${join(a.dir, 'relay.db')}`;
      const keyB = await NodeKey.fromSeed(new Uint8Array(32).fill(91));
      b = await startRelay({
        dbUrl,
        ...(backend === 'replica' ? { replicaPath: join(replicaDir, 'replica.db') } : {}),
        key: keyB,
        transports: [new MemoryNetwork().join(keyB.nodeId)],
        embedders: [a.servings[0]?.embedder ?? { id: 'x', fileHash: '0'.repeat(64), bits: 512 }],
        configuredModels: ['stories260K'],
      });
    }, 120_000);

    afterAll(async () => {
      for (const stop of [
        () => b?.stop(),
        () => a?.close(),
        () => sqld?.stop(),
        () => rmSync(replicaDir, { recursive: true, force: true }),
      ]) {
        try {
          await stop();
        } catch (e) {
          console.error('cleanup failed', e);
        }
      }
    }, 60_000);

    const get = async (relay: { url: string } | undefined, path: string) => {
      const r = await fetch(`${relay?.url}${path}`);
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    const postA = (body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${a?.relay.url}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${a?.apiKey}`, ...headers },
        body: JSON.stringify(body),
      });

    test("a request accepted by A is served, with its verdict, by B's read routes", async () => {
      const r = await postA({ prompt: 'Once upon a time', params: { maxTokens: 24 } });
      expect(r.status).toBe(202);
      const { requestId } = (await r.json()) as { requestId: string };

      let viewB: View | undefined;
      await waitUntil(
        'B serves the verdict',
        async () => {
          const g = await get(b, `/v1/inference/${requestId}`);
          viewB = g.json as View;
          return g.status === 200 && ['verdict', 'no-consensus', 'expired'].includes(viewB.status);
        },
        90_000,
      );
      expect(viewB?.status).toBe('verdict');
      // The same view through either relay (attestations may still be arriving, so they are left out).
      const viewA = (await get(a?.relay, `/v1/inference/${requestId}`)).json;
      expect(settled(viewB)).toEqual(settled(viewA));
      // B's node never saw the request: it is not coordinating it, only serving it from libSQL.
      expect(b?.node.status(requestId)).toBeFalsy();

      const verify = await get(b, `/v1/verify/${requestId}`);
      expect(verify.status).toBe(200);
      expect(verify.json['verdictDigest']).toBe(
        (viewA['verdict'] as { verdictDigest: string }).verdictDigest,
      );

      const histB = (await get(b, '/v1/history?status=verdict')).json as { items: { requestId: string }[] };
      const histA = (await get(a?.relay, '/v1/history?status=verdict')).json as { items: unknown[] };
      expect(histB.items.map((i) => i.requestId)).toContain(requestId);
      expect(histB.items.map(settled)).toEqual(histA.items.map(settled));

      // Nodes heard only by A (heartbeats) are listed by B too.
      const nodesB = (await get(b, '/v1/nodes')).json as { nodes: { nodeId: string }[] };
      for (const n of a?.nodes ?? []) expect(nodesB.nodes.map((x) => x.nodeId)).toContain(n.nodeId);
    }, 120_000);

    test('a request accepted by B is stored for both: A serves it as well', async () => {
      const r = await fetch(`${b?.url}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${a?.apiKey}` },
        body: JSON.stringify({ prompt: 'A small boat', params: { maxTokens: 8 } }),
      });
      expect(r.status).toBe(202);
      const { requestId } = (await r.json()) as { requestId: string };
      // B reads its own write back at once (on a replica too), and A finds it in the shared database.
      expect((await get(b, `/v1/inference/${requestId}`)).status).toBe(200);
      const atA = await get(a?.relay, `/v1/inference/${requestId}`);
      expect(atA.status).toBe(200);
      expect(atA.json['requestId']).toBe(requestId);
    }, 60_000);

    test('an Idempotency-Key used at A is replayed, not duplicated, at B', async () => {
      const body = { prompt: 'The red ball', params: { maxTokens: 8 } };
      const first = await postA(body, { 'idempotency-key': `two-relays-${backend}` });
      expect(first.status).toBe(202);
      const { requestId } = (await first.json()) as { requestId: string };
      const atB = await fetch(`${b?.url}/v1/inference`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${a?.apiKey}`,
          'idempotency-key': `two-relays-${backend}`,
        },
        body: JSON.stringify(body),
      });
      expect(atB.status).toBe(200);
      expect(await atB.json()).toMatchObject({ requestId, replayed: true });
      // Let it finish before the network closes.
      await waitUntil(
        'verdict',
        async () => (await get(b, `/v1/inference/${requestId}`)).json['status'] === 'verdict',
        90_000,
      );
    }, 120_000);

    // Last: it stops B.
    test('requests queued at a relay that stops are taken over by the other, which serves them', async () => {
      // B has no peer, so what it accepts waits in its admission log.
      const r = await fetch(`${b?.url}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${a?.apiKey}` },
        body: JSON.stringify({ prompt: 'The old dog', params: { maxTokens: 8 } }),
      });
      expect(r.status).toBe(202);
      const { requestId } = (await r.json()) as { requestId: string };
      await Bun.sleep(500);
      expect((await get(a?.relay, `/v1/inference/${requestId}`)).json['status']).toBe('queued');
      // B stops: its lease is given up, and A (which has the nodes) takes its rows at its next round.
      await b?.stop();
      b = undefined;
      await waitUntil(
        'the request B queued has a verdict from A',
        async () => (await get(a?.relay, `/v1/inference/${requestId}`)).json['status'] === 'verdict',
        90_000,
      );
      expect((await get(a?.relay, `/v1/inference/${requestId}`)).json['coordinator']).toBe(
        a?.relay.network.coordinatorId,
      );
    }, 120_000);
  });
}
