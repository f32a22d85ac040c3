/**
 * A browser node and a headless node in one quorum, over Waku relay.
 *
 *   Bun test process                                   headless Chromium (playwright-core)
 *   ─────────────────                                  ───────────────────────────────────
 *   coordinator  SynodNode role relay ──TCP──┐         the contributor app (apps/web) from a Bun.serve
 *   headless     SynodNode role node  (hub) ◀┴──WS──── browser node: SynodNode role node, Waku relay
 *                node-llama-cpp + USE Lite               dialing WebSocket, wllama + USE Lite in a Web
 *                                                        Worker, IndexedDB machine store
 *
 * The coordinator submits a greedy request with quorum 2 (embedding model: USE Lite); both nodes commit
 * and reveal; the verdict is accepted with both in the accepted set, and both runtimes' packed
 * embeddings are byte-identical. Everything is served from 127.0.0.1; the page may not reach any other
 * origin (checked). Also: the IndexedDB machine store, round-tripped inside Chromium.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AnyPacket,
  deriveRequestId,
  NodeKey,
  type RequestBody,
  resolveFrame,
  type VerdictEffect,
} from '@synod/shared';
import type { Page } from 'playwright-core';
import { startWebServer, type WebServer } from '../apps/web/serve.ts';
import type { BrowserNodeStatus } from '../browser-node/src/browser/browser-node.ts';
import { buildBrowserBundle } from '../browser-node/src/browser/build.ts';
import type {} from '../browser-node/src/browser/main.ts';
import { SynodNode } from '../browser-node/src/node/synod-node.ts';
import { loadTestServing, type TestServing } from '../browser-node/src/node/test-helpers.ts';
import type { WakuRelayTransport } from '../browser-node/src/p2p/waku-relay.ts';
import { createHeadlessWakuRelay } from '../browser-node/src/p2p/waku-relay-headless.ts';
import { type Chrome, launchChromium, until } from './support/chromium.ts';

const LONG = 180_000;

/** Fail the test on any request that leaves 127.0.0.1 (blob: URLs are wllama's in-page worker). */
function guardOffline(page: Page, origin: string, offsite: string[]): void {
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(origin) && !url.startsWith('blob:') && !url.startsWith('data:')) offsite.push(url);
  });
}

describe('a browser node and a headless node in one quorum', () => {
  let serving: TestServing;
  let hubWaku: WakuRelayTransport;
  let coordWaku: WakuRelayTransport;
  let headless: SynodNode;
  let coordinator: SynodNode;
  let web: WebServer;
  let chrome: Chrome;
  let page: Page;
  const offsite: string[] = [];
  const pageErrors: string[] = [];
  const verdicts = new Map<string, VerdictEffect>();
  const reveals = new Map<string, Map<string, AnyPacket & { type: 'reveal' }>>();
  let browserNodeId = '';
  const timings: Record<string, number> = {};

  beforeAll(
    async () => {
      serving = await loadTestServing();
      hubWaku = await createHeadlessWakuRelay();
      const tcp = hubWaku.addresses().find((a) => !a.includes('/ws'));
      const ws = hubWaku.addresses().find((a) => a.includes('/ws'));
      if (tcp === undefined || ws === undefined) throw new Error(`hub addresses: ${hubWaku.addresses()}`);
      coordWaku = await createHeadlessWakuRelay({ bootstrap: [tcp] });

      const headlessKey = await NodeKey.fromSeed(new Uint8Array(32).fill(41));
      headless = new SynodNode({
        key: headlessKey,
        role: 'node',
        transports: [hubWaku],
        serving,
        heartbeat: {
          intervalMs: 1_000,
          software: 'synod-test-headless',
          addresses: hubWaku.addresses(),
          tokensPerSecond: 200,
          embeddingsPerSecond: 20,
          engine: 'node-llama-cpp',
        },
      });
      const coordKey = await NodeKey.fromSeed(new Uint8Array(32).fill(42));
      coordinator = new SynodNode({
        key: coordKey,
        role: 'relay',
        transports: [coordWaku],
        heartbeat: {
          intervalMs: 1_000,
          software: 'synod-test-coordinator',
          addresses: [],
          tokensPerSecond: 0,
          embeddingsPerSecond: 0,
          engine: 'none',
        },
        onVerdict: (id, v) => {
          if (v.check === 'computed') verdicts.set(id, v);
        },
        onPacket: ({ packet }) => {
          if (packet.type !== 'reveal') return;
          const byNode = reveals.get(packet.body.requestId) ?? new Map();
          byNode.set(packet.from, packet as AnyPacket & { type: 'reveal' });
          reveals.set(packet.body.requestId, byNode);
        },
      });
      await headless.start();
      await coordinator.start();

      web = await startWebServer({
        bootstrap: [ws],
        config: { heartbeatMs: 1_000, scryptN: 2 ** 10, dbName: `synod-test-${Date.now()}` },
      });
      chrome = await launchChromium();
      page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
      guardOffline(page, web.url, offsite);
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      await page.goto(web.url);
      await page.waitForFunction(() => window.synod !== undefined, null, { timeout: 60_000 });
      await page.evaluate(() => window.synod?.unlock('correct horse battery staple'));
      let t = Date.now();
      await page.evaluate(() => window.synod?.setServing(true));
      timings['browserModelsLoadedMs'] = Date.now() - t;
      const status = (await page.evaluate(() => window.synod?.status())) as BrowserNodeStatus;
      browserNodeId = status.nodeId ?? '';
      t = Date.now();
      // Both directions work: the coordinator hears the browser's heartbeats, the browser the coordinator's.
      await until('the coordinator to hear both nodes', () => {
        const ids = coordinator.knownNodes().map((n) => n.nodeId);
        return ids.includes(browserNodeId) && ids.includes(headless.nodeId);
      });
      await until('the browser to hear the coordinator', async () => {
        const s = (await page.evaluate(() => window.synod?.status())) as BrowserNodeStatus;
        return s.knownNodes.some((n) => n.nodeId === coordinator.nodeId);
      });
      timings['meshMs'] = Date.now() - t;
    },
    { timeout: LONG },
  );

  afterAll(
    async () => {
      await page?.evaluate(() => window.synod?.stop()).catch(() => {});
      await chrome?.close();
      await web?.stop();
      await coordinator?.close();
      await headless?.close();
      await coordWaku?.close();
      await hubWaku?.close();
      await serving?.close();
      console.log('[browser-node test] timings', JSON.stringify(timings));
    },
    { timeout: 60_000 },
  );

  test(
    'both nodes commit and reveal; the verdict accepts both; embeddings are byte-identical',
    async () => {
      const status = (await page.evaluate(() => window.synod?.status())) as BrowserNodeStatus;
      expect(status.phase).toBe('running');
      expect(status.role).toBe('node');
      expect(status.engineId).toBe('wllama@3.8.1');
      expect(status.engine.ref?.id).toBe('stories260K');
      expect(status.embedder.ref).toEqual(serving.embedder);
      expect(status.peers.length).toBeGreaterThan(0);
      console.log(
        '[browser-node test] browser load',
        JSON.stringify({
          engineMs: Math.round(status.engine.ms ?? 0),
          embedderMs: Math.round(status.embedder.ms ?? 0),
          capability: status.capability,
        }),
      );

      const now = Date.now();
      const fields = {
        nonce: '5b'.repeat(16),
        prompt: 'Once upon a time',
        acceptedModels: ['stories260K'],
        params: { temperature: 0, maxTokens: 48 },
        frame: resolveFrame({
          embeddingModel: serving.embedder,
          quorum: 2,
          maxTimeMs: 60_000,
          revealWindowMs: 30_000,
        }),
        origin: { kind: 'http' as const },
        createdAt: now,
      };
      const body = { ...fields, requestId: deriveRequestId(fields) } as RequestBody;
      const started = Date.now();
      await coordinator.submit(body);
      const v = await until('the verdict', () => verdicts.get(body.requestId), 120_000);
      timings['requestToVerdictMs'] = Date.now() - started;

      expect(v.verdict.status).toBe('accepted');
      expect(v.verdict.sealSize).toBe(2);
      expect(v.verdict.accepted.map((m) => m.nodeId).sort()).toEqual([browserNodeId, headless.nodeId].sort());
      expect(v.verdict.rejected).toEqual([]);

      const got = reveals.get(body.requestId);
      const fromBrowser = got?.get(browserNodeId);
      const fromHeadless = got?.get(headless.nodeId);
      expect(fromBrowser).toBeDefined();
      expect(fromHeadless).toBeDefined();
      // Greedy outputs agree across wllama (WASM) and node-llama-cpp (native) for stories260K…
      expect(fromBrowser?.body.output).toBe(fromHeadless?.body.output as string);
      expect(fromBrowser?.body.output.length).toBeGreaterThan(0);
      // …and USE Lite's packed sign bits agree across the tfjs WASM backend in Chromium and in Bun.
      expect(fromBrowser?.body.bEmbedding).toBe(fromHeadless?.body.bEmbedding as string);
      expect(fromBrowser?.body.model).toEqual(fromHeadless?.body.model as { id: string; fileHash: string });

      // The browser recomputed the same verdict and records what it served.
      const after = await until('the browser to record the verdict', async () => {
        const s = (await page.evaluate(() => window.synod?.status())) as BrowserNodeStatus;
        return s.verdicts.some((r) => r.requestId === body.requestId) ? s : null;
      });
      const record = after.verdicts.find((r) => r.requestId === body.requestId);
      expect(record?.status).toBe('accepted');
      expect(record?.agreedHere).toBe(true);
      expect(after.served).toBeGreaterThanOrEqual(1);
      expect(after.reveals.find((r) => r.requestId === body.requestId)?.bEmbedding).toBe(
        fromHeadless?.body.bEmbedding as string,
      );

      expect(offsite).toEqual([]);
      expect(pageErrors).toEqual([]);
    },
    LONG,
  );

  test(
    'the page stays responsive while the worker generates',
    async () => {
      // A long generation runs in the worker; the page's event loop keeps ticking meanwhile.
      const ticks = await page.evaluate(async () => {
        let n = 0;
        const timer = setInterval(() => n++, 10);
        const gen = window.synod?.generate('Once upon a time', 400);
        await gen;
        clearInterval(timer);
        return n;
      });
      expect(ticks).toBeGreaterThan(0);
    },
    LONG,
  );
});

describe('IndexedDB machine store in Chromium', () => {
  test(
    'save, load (by owner, oldest write first), overwrite, delete, and reopen round-trip',
    async () => {
      const outdir = mkdtempSync(join(tmpdir(), 'synod-idb-'));
      const bundle = await buildBrowserBundle(outdir, {
        entries: [join(import.meta.dir, '../browser-node/src/node/machine-store-idb.ts')],
        sourcemap: false,
      });
      const script = bundle.files.get('machine-store-idb.js') as string;
      const server = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch: (req) =>
          new URL(req.url).pathname === '/idb.js'
            ? new Response(Bun.file(script), { headers: { 'content-type': 'text/javascript' } })
            : new Response('<!doctype html><title>idb</title>', { headers: { 'content-type': 'text/html' } }),
      });
      const chrome = await launchChromium();
      try {
        const page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
        await page.goto(`http://127.0.0.1:${server.port}/`);
        const result = await page.evaluate(async () => {
          const { IdbMachineStore } = (await import(
            '/idb.js' as string
          )) as typeof import('../browser-node/src/node/machine-store-idb.ts');
          const store = new IdbMachineStore({ name: 'round-trip' });
          await store.save('alice', 'r2', '{"s":2}', 2000);
          await store.save('alice', 'r1', '{"s":1}', 1000);
          await store.save('bob', 'r1', '{"bob":1}', 1500);
          const first = await store.load('alice');
          await store.save('alice', 'r1', '{"s":"1b"}', 3000);
          const overwritten = await store.load('alice');
          await store.delete('alice', 'r2');
          await store.delete('alice', 'missing');
          const afterDelete = await store.load('alice');
          await store.close();
          const reopened = new IdbMachineStore({ name: 'round-trip' });
          const persisted = { alice: await reopened.load('alice'), bob: await reopened.load('bob') };
          const nobody = await reopened.load('carol');
          await reopened.close();
          let closedError = '';
          await reopened.load('alice').catch((e: Error) => {
            closedError = e.message;
          });
          await IdbMachineStore.destroy('round-trip');
          return { first, overwritten, afterDelete, persisted, nobody, closedError };
        });
        expect(result.first).toEqual([
          { requestId: 'r1', state: '{"s":1}' },
          { requestId: 'r2', state: '{"s":2}' },
        ]);
        expect(result.overwritten).toEqual([
          { requestId: 'r2', state: '{"s":2}' },
          { requestId: 'r1', state: '{"s":"1b"}' },
        ]);
        expect(result.afterDelete).toEqual([{ requestId: 'r1', state: '{"s":"1b"}' }]);
        expect(result.persisted).toEqual({
          alice: [{ requestId: 'r1', state: '{"s":"1b"}' }],
          bob: [{ requestId: 'r1', state: '{"bob":1}' }],
        });
        expect(result.nobody).toEqual([]);
        expect(result.closedError).toContain('closed');
      } finally {
        await chrome.close();
        server.stop(true);
        rmSync(outdir, { recursive: true, force: true });
      }
    },
    LONG,
  );
});
