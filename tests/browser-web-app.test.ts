/**
 * The contributor web app in headless Chromium, driven through its UI only (clicks and form fields):
 * create the node key, toggle serving on (models load in the worker, with progress) and off, and ask
 * the network in follower mode: POST /v1/inference to a real relay (edge, libSQL, three headless nodes
 * on an in-memory network) through the app's same-origin relay proxy, then watch the request's SSE
 * stream until the verdict shows on the page.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { BrowserContext, Page } from 'playwright-core';
import { startWebServer, type WebServer } from '../apps/web/serve.ts';
import type {} from '../browser-node/src/browser/main.ts';
import { startTestNetwork, type TestNetwork } from '../edge/src/test-helpers.ts';
import { type Chrome, launchChromium } from './support/chromium.ts';

const LONG = 180_000;

describe('the contributor web app', () => {
  let net: TestNetwork;
  let web: WebServer;
  let context: BrowserContext;
  let chrome: Chrome | undefined;
  let page: Page;
  const offsite: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(
    async () => {
      net = await startTestNetwork({ nodes: 3 });
      web = await startWebServer({
        relayUrl: net.relay.url,
        config: { heartbeatMs: 2_000, scryptN: 2 ** 10, dbName: `synod-web-test-${Date.now()}` },
      });
      chrome = await launchChromium();
      context = chrome.context;
      page = context.pages()[0] ?? (await context.newPage());
      page.on('request', (r) => {
        const url = r.url();
        if (!url.startsWith(web.url) && !url.startsWith('blob:') && !url.startsWith('data:'))
          offsite.push(url);
      });
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      await page.goto(web.url);
    },
    { timeout: LONG },
  );

  afterAll(
    async () => {
      await page?.evaluate(() => window.synod?.stop()).catch(() => {});
      await chrome?.close();
      await web?.stop();
      await net?.close();
    },
    { timeout: 60_000 },
  );

  test(
    'create the node key, serve models with progress, stop serving',
    async () => {
      await page.waitForSelector('#unlock:has-text("Create node key")', { timeout: 30_000 });
      await page.fill('#passphrase', 'a passphrase only this test knows');
      // A new key's passphrase is typed twice.
      await page.fill('#passphrase-again', 'a passphrase only this test knows');
      await page.click('#unlock');
      await page.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
      const nodeId = (await page.textContent('#node-id')) ?? '';
      expect(nodeId).toMatch(/^[0-9a-f]{64}$/);
      expect(await page.isHidden('#unlock-form')).toBe(true);

      await page.check('#serve');
      await page.waitForSelector('#phase:has-text("running as node")', { timeout: 120_000 });
      // This page was given no bootstrap peer: it says that no request can reach it, rather than only
      // "running".
      expect(await page.textContent('#phase')).toBe(
        'running as node, but connected to no peer: no request can reach this tab',
      );
      expect(await page.textContent('#engine-phase')).toBe('ready');
      // Announced to screen readers: the state, errors, the download progress bars by name.
      expect(await page.getAttribute('#phase', 'role')).toBe('status');
      expect(await page.getAttribute('#node-error', 'role')).toBe('alert');
      expect(await page.getAttribute('#engine-progress', 'aria-label')).toBe('Engine model download');
      expect(await page.getAttribute('#embedder-progress', 'aria-label')).toBe('Embedder model download');
      expect(await page.textContent('#embedder-phase')).toBe('ready');
      expect(await page.textContent('#engine-ref')).toContain('stories260K');
      expect(await page.textContent('#embedder-ref')).toContain('use-lite-512');
      expect(await page.textContent('#engine-id')).toBe('wllama@3.8.1');
      expect(await page.textContent('#capability')).toMatch(/\d+ tokens\/s, [\d.]+ embeddings\/s/);
      // The node hears itself (its own heartbeat) and lists its model.
      await page.waitForSelector('#known-nodes:has-text("(this tab)")', { timeout: 30_000 });

      // Its standing at the relay: unknown until the relay hears of it; then what the relay's history
      // holds (seeded here: this relay's network is not the tab's) shows within seconds.
      expect(await page.isVisible('#standing')).toBe(true);
      await page.waitForSelector('#standing-score:has-text("not seen by the relay yet")', {
        timeout: 30_000,
      });
      const at = Date.now();
      await net.relay.client.execute({
        sql: `INSERT INTO nodes (node_id, role, software, last_heartbeat, last_heartbeat_id, models, embedders,
                tokens_per_second, embeddings_per_second, first_seen, last_seen)
              VALUES (?, 'node', 'synod-web/test', '{}', ?, '[]', '[]', 0, 0, ?, ?)`,
        args: [nodeId, 'f'.repeat(64), at, at],
      });
      await net.relay.client.execute({
        sql: `INSERT INTO reputation (node_id, agreements, disagreements, withheld, invalid, commits,
                latency_samples, score, updated_at) VALUES (?, 4, 1, 0, 0, 5, 0, 0.725, ?)`,
        args: [nodeId, at],
      });
      await page.waitForSelector('#standing-score:text-is("0.725")', { timeout: 30_000 });
      expect(await page.textContent('#standing-commits')).toBe('5');
      expect(await page.textContent('#standing-agreement')).toBe('4 / 1');
      expect(await page.textContent('#standing-faults')).toBe('0 / 0');

      await page.uncheck('#serve');
      // Paused: the queue advertises no room (heartbeat capacity 0) and the page says so.
      await page.waitForSelector('#queue:has-text("of 0")', { timeout: 30_000 });
      expect(await page.evaluate(() => window.synod?.status().serving)).toBe(false);
      expect(await page.textContent('#node-id')).toBe(nodeId);
    },
    LONG,
  );

  test(
    'follower mode: a prompt submitted with an API key reaches a verdict, streamed over SSE',
    async () => {
      expect(await page.inputValue('#relay-url')).toBe(`${web.url}/relay`);
      await page.fill('#api-key', net.apiKey);
      await page.fill('#prompt', 'Once upon a time');
      await page.fill('#max-tokens', '24');
      await page.click('#ask');
      await page.waitForSelector('#ask-status:text-is("verdict")', { timeout: 120_000 });
      expect(await page.textContent('#ask-id')).toMatch(/^[0-9a-f]{64}$/);
      expect(await page.textContent('#ask-counts')).toBe('3 / 3');
      const answer = (await page.textContent('#ask-answer')) ?? '';
      expect(answer).toStartWith('accepted: ');
      expect(answer).toContain('3 nodes agree');
      expect(await page.isHidden('#ask-error')).toBe(true);

      // A wrong key is refused with the relay's error, shown on the page.
      await page.fill('#api-key', 'synod_sk_not-a-real-key');
      await page.click('#ask');
      await page.waitForSelector('#ask-error:has-text("HTTP 401")', { timeout: 30_000 });

      expect(offsite).toEqual([]);
      expect(pageErrors).toEqual([]);
    },
    LONG,
  );

  test(
    'after a reload the sealed key is still there: a wrong passphrase is refused, the right one opens it',
    async () => {
      const before = (await page.textContent('#node-id')) ?? '';
      await page.reload();
      await page.waitForSelector('#unlock:has-text("Unlock node key")', { timeout: 30_000 });
      expect(await page.textContent('#node-id')).toBe(before);
      expect(await page.textContent('#phase')).toBe('locked');

      await page.fill('#passphrase', 'not the passphrase');
      await page.click('#unlock');
      await page.waitForSelector('#node-error:has-text("KEY_WRONG_PASSPHRASE")', { timeout: 30_000 });
      expect(await page.isVisible('#unlock-form')).toBe(true);

      await page.fill('#passphrase', 'a passphrase only this test knows');
      await page.click('#unlock');
      await page.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
      expect(await page.textContent('#node-id')).toBe(before);
      expect(await page.isHidden('#node-error')).toBe(true);
      expect(pageErrors).toEqual([]);
    },
    LONG,
  );
});
