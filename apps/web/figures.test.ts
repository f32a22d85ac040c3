/**
 * What the contributor app shows is true: a tab serving through a real relay (edge, libSQL, its Waku
 * relay listening on WebSocket, as `npm start` runs it) with a headless node beside it. After requests
 * submitted over the relay's HTTP API reach their verdicts, the page's "Requests served" and its
 * standing panel (reputation, commits, agreed / disagreed, withheld / invalid) say what the relay's
 * `GET /v1/nodes` says of this node; and in this normal use the page logs no warning or error and
 * sends nothing anywhere but its own origin (the relay is reached through the app's /relay proxy).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { NodeKey } from '@synod/shared';
import type { Page } from 'playwright-core';
import type {} from '../../browser-node/src/browser/main.ts';
import { SynodNode } from '../../browser-node/src/node/synod-node.ts';
import { loadTestServing, type TestServing } from '../../browser-node/src/node/test-helpers.ts';
import type { WakuRelayTransport } from '../../browser-node/src/p2p/waku-relay.ts';
import { createHeadlessWakuRelay } from '../../browser-node/src/p2p/waku-relay-headless.ts';
import { createApiKey } from '../../edge/src/auth/api-keys.ts';
import { type RunningRelay, startRelay } from '../../edge/src/runtime/bun.ts';
import type { NodeSummary } from '../../edge/src/store/node-pages.ts';
import { type Chrome, launchChromium, until } from '../../tests/support/chromium.ts';
import { startWebServer, type WebServer } from './serve.ts';

const LONG = 240_000;

describe('the figures the contributor app shows', () => {
  let serving: TestServing;
  let relayWaku: WakuRelayTransport;
  let nodeWaku: WakuRelayTransport;
  let headless: SynodNode;
  let relay: RunningRelay;
  let apiKey = '';
  let web: WebServer;
  let chrome: Chrome;
  let page: Page;
  const offsite: string[] = [];
  const problems: string[] = [];

  beforeAll(
    async () => {
      serving = await loadTestServing();
      relayWaku = await createHeadlessWakuRelay();
      const tcp = relayWaku.addresses().find((a) => !a.includes('/ws'));
      const ws = relayWaku.addresses().find((a) => a.includes('/ws'));
      if (tcp === undefined || ws === undefined) throw new Error(`relay addresses: ${relayWaku.addresses()}`);
      relay = await startRelay({
        dbUrl: ':memory:',
        key: await NodeKey.fromSeed(new Uint8Array(32).fill(71)),
        transports: [relayWaku],
        embedders: [serving.embedder],
        configuredModels: ['stories260K'],
        heartbeatIntervalMs: 1_000,
      });
      const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
      await relay.store.createApiKey(
        { id: k.id, hash: k.hash, label: 'tests', quotaPerDay: 100 },
        Date.now(),
      );
      apiKey = k.key;
      nodeWaku = await createHeadlessWakuRelay({ bootstrap: [tcp] });
      headless = new SynodNode({
        key: await NodeKey.fromSeed(new Uint8Array(32).fill(72)),
        role: 'node',
        transports: [nodeWaku],
        serving,
        heartbeat: {
          intervalMs: 1_000,
          software: 'synod-test',
          addresses: [],
          tokensPerSecond: 200,
          embeddingsPerSecond: 20,
          engine: 'node-llama-cpp',
        },
      });
      await headless.start();
      web = await startWebServer({
        bootstrap: [ws],
        relayUrl: relay.url,
        config: { heartbeatMs: 1_000, scryptN: 2 ** 10, dbName: `synod-figures-test-${Date.now()}` },
        standing: { everyMs: 1_000, onChangeMs: 500 },
      });
      chrome = await launchChromium();
      page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
      page.on('request', (r) => {
        const url = r.url();
        if (!url.startsWith(`${web.url}/`) && !url.startsWith('blob:') && !url.startsWith('data:'))
          offsite.push(url);
      });
      page.on('pageerror', (e) => problems.push(String(e)));
      page.on('console', (m) => {
        if (m.type() === 'warning' || m.type() === 'error') problems.push(m.text());
      });
    },
    { timeout: LONG },
  );

  afterAll(
    async () => {
      await page?.evaluate(() => window.synod?.stop()).catch(() => {});
      await chrome?.close();
      await web?.stop();
      await relay?.stop();
      await headless?.close();
      await nodeWaku?.close();
      await relayWaku?.close();
      await serving?.close();
    },
    { timeout: 60_000 },
  );

  async function ask(prompt: string): Promise<string> {
    const res = await fetch(`${relay.url}/v1/inference`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt, params: { maxTokens: 24 }, frame: { quorum: 2 } }),
    });
    const body = (await res.json()) as { requestId?: string };
    expect(res.status).toBe(202);
    return body.requestId as string;
  }

  test(
    'requests served, reputation and counters: the page and the relay agree',
    async () => {
      await page.goto(web.url);
      await page.fill('#passphrase', 'a passphrase only this test knows');
      await page.fill('#passphrase-again', 'a passphrase only this test knows');
      await page.click('#unlock');
      await page.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
      await page.check('#serve');
      await page.waitForSelector('#phase:text-is("running as node")', { timeout: 120_000 });
      const nodeId = (await page.textContent('#node-id')) ?? '';
      await until('the relay to hear both nodes', () => {
        const ids = relay.node.knownNodes().map((n) => n.nodeId);
        return ids.includes(nodeId) && ids.includes(headless.nodeId);
      });

      const ids: string[] = [];
      for (const prompt of ['Once upon a time', 'The cat sat.', 'Hello']) ids.push(await ask(prompt));
      await until(
        'the verdicts',
        async () => {
          const views = await Promise.all(
            ids.map((id) =>
              fetch(`${relay.url}/v1/inference/${id}`).then((r) => r.json() as Promise<{ status: string }>),
            ),
          );
          return views.every((v) => v.status === 'verdict');
        },
        120_000,
      );
      const row = await until('the relay to count them', async () => {
        const r = (await (await fetch(`${relay.url}/v1/nodes?node=${nodeId}`)).json()) as {
          nodes: NodeSummary[];
        };
        const n = r.nodes.find((x) => x.nodeId === nodeId);
        return n !== undefined && n.reputation.commits === ids.length ? n : null;
      });
      expect(row.reputation).toMatchObject({ agreements: 3, disagreements: 0, withheld: 0, invalid: 0 });

      await page.waitForSelector(`#standing-commits:text-is("${row.reputation.commits}")`, {
        timeout: 30_000,
      });
      expect(await page.textContent('#standing-score')).toBe(row.reputation.score.toFixed(3));
      expect(await page.textContent('#standing-agreement')).toBe('3 / 0');
      expect(await page.textContent('#standing-faults')).toBe('0 / 0');
      const proven = row.reputation.vouched >= 3 && row.reputation.score >= 0.5;
      expect(await page.textContent('#standing-vouched')).toBe(
        `${row.reputation.vouched}: ${proven ? 'proven' : 'not proven yet'} (proven takes 3 of these and a reputation of at least 0.500)`,
      );
      expect(row.reputation.standing).toBe(row.reputation.vouched);
      expect(await page.textContent('#standing-rank')).toBe(
        `${row.reputation.standing} (ranks this node for the seat left to nodes without a record; higher first)`,
      );
      expect(await page.textContent('#served')).toBe(String(ids.length));

      expect(offsite).toEqual([]);
      expect(problems).toEqual([]);
    },
    LONG,
  );
});
