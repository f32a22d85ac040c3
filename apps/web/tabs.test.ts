/**
 * The contributor app as a contributor really uses a browser: two tabs of the same origin (one node key
 * in localStorage, one IndexedDB), and a reload while a request is in flight. Headless Chromium, a real
 * headless serving node and a coordinator over Waku relay (WebSocket for the tabs), nothing stubbed.
 *
 * - Two tabs hold the same node key: if both served, each would infer and commit with its own random
 *   salt, and the network would hold two different commitments signed by one node id (equivocation,
 *   evidence against the contributor). Only one tab may run the key: the second is told so, and may
 *   run it once the first is closed.
 * - A reload after the tab committed: the commitment and its reveal material are in IndexedDB. Once
 *   unlocked, the tab joins as a node that finishes that request (reveals after the seal) without
 *   taking new ones, rather than as a follower that cannot step a node's machine (it failed on every
 *   packet, and the commitment was withheld unless the contributor ticked Serve again in time).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Page } from 'playwright-core';
import type { BrowserNodeStatus } from '../../browser-node/src/browser/browser-node.ts';
import type {} from '../../browser-node/src/browser/main.ts';
import { type Chrome, launchChromium, until } from '../../tests/support/chromium.ts';
import { startWebServer, type WebServer } from './serve.ts';
import { startTestQuorum, type TestQuorum } from './test-quorum.ts';

const LONG = 240_000;
const PASSPHRASE = 'a passphrase only this test knows';

describe('one node key in one browser: two tabs, a reload', () => {
  let q: TestQuorum;
  let web: WebServer;
  let chrome: Chrome;
  const pageErrors: string[] = [];
  /** Console warnings and errors of every tab (the driver logs a failed machine step as a warning). */
  const consoleProblems: string[] = [];

  const status = (page: Page) => page.evaluate(() => window.synod?.status()) as Promise<BrowserNodeStatus>;

  async function openTab(): Promise<Page> {
    const page = await chrome.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'warning' || m.type() === 'error') consoleProblems.push(m.text());
    });
    await page.goto(web.url);
    await page.waitForFunction(() => window.synod !== undefined, null, { timeout: 60_000 });
    return page;
  }

  beforeAll(
    async () => {
      q = await startTestQuorum(51);
      web = await startWebServer({
        bootstrap: [q.ws],
        config: { heartbeatMs: 1_000, scryptN: 2 ** 10, dbName: `synod-tabs-test-${Date.now()}` },
      });
      chrome = await launchChromium();
    },
    { timeout: LONG },
  );

  afterAll(
    async () => {
      await chrome?.close();
      await web?.stop();
      await q?.close();
    },
    { timeout: 60_000 },
  );

  test(
    'a second tab cannot run the key the first runs: one commitment per request from this node id',
    async () => {
      const first = await openTab();
      await first.evaluate((p) => window.synod?.unlock(p), PASSPHRASE);
      const nodeId = (await status(first)).nodeId as string;

      const second = await openTab();
      expect((await status(second)).nodeId).toBe(nodeId);
      // Said before any passphrase is typed; the first tab does not say it of itself.
      await second.waitForSelector('#key-in-use:visible', { timeout: 10_000 });
      expect(await first.isHidden('#key-in-use')).toBe(true);
      const refused = await second.evaluate(
        (p) =>
          window.synod?.unlock(p).then(
            () => 'unlocked',
            (e: { code?: string }) => String(e.code),
          ),
        PASSPHRASE,
      );
      // Were it to run, it would serve too: try, as a contributor would.
      if (refused === 'unlocked') await second.evaluate(() => window.synod?.setServing(true));
      await first.evaluate(() => window.synod?.setServing(true));
      await until('the coordinator to hear the tab', () =>
        q.coordinator.knownNodes().some((n) => n.nodeId === nodeId && n.body.role === 'node'),
      );

      const body = q.request('7a', { quorum: 2 });
      await q.coordinator.submit(body);
      await until('both nodes to commit', () => (q.commits.get(body.requestId)?.size ?? 0) >= 2, 120_000);
      // Give a second tab's commitment, if any, the time to arrive: the headless node's reveal comes after
      // the seal, which comes after both commits.
      await until(
        'the request to end',
        () => {
          const st = q.coordinator.status(body.requestId);
          return st !== null && (st.verdict !== null || st.finished);
        },
        120_000,
      );
      expect([...(q.commits.get(body.requestId)?.get(nodeId) ?? [])]).toHaveLength(1);
      expect(q.evidence.filter((e) => e.nodeId === nodeId)).toEqual([]);

      expect(refused).toBe('NODE_KEY_IN_USE');
      const s = await status(second);
      // Refused, the tab is locked as before (not in an "error" state), the error said beside it.
      expect(s.phase).toBe('locked');
      expect(s.error).toContain('another tab');
      await second.waitForSelector('#node-error:has-text("another tab")', { timeout: 10_000 });

      // The first tab is closed: the second may run the key now.
      // (The browser frees the closed tab's lock a moment later: the contributor clicks Unlock again.)
      await first.close();
      await until(
        'the second tab to unlock',
        () =>
          second.evaluate(
            (p) =>
              window.synod?.unlock(p).then(
                () => true,
                () => false,
              ),
            PASSPHRASE,
          ),
        10_000,
      );
      expect((await status(second)).phase).toBe('running');
      await second.close();
      expect(pageErrors).toEqual([]);
    },
    LONG,
  );

  test(
    'a reload after the tab committed: once unlocked it reveals (serving off, nothing new taken), and nothing fails',
    async () => {
      const page = await openTab();
      await page.fill('#passphrase', PASSPHRASE);
      await page.click('#unlock');
      // (A node, taking nothing new, if the first test's request was still in flight when its tab closed.)
      await page.waitForSelector('#phase:has-text("running as")', { timeout: 60_000 });
      await page.check('#serve');
      await page.waitForSelector('#phase:has-text("running as node")', { timeout: 120_000 });
      const nodeId = (await status(page)).nodeId as string;
      await until('the coordinator to hear the tab serve', () =>
        q.coordinator.knownNodes().some((n) => n.nodeId === nodeId && n.body.role === 'node'),
      );
      consoleProblems.length = 0;

      // Quorum 2 of up to 3: with two commits the coordinator seals at maxTimeMs, time for a reload.
      const body = q.request('7b', { quorum: 2, maxCommits: 3, maxTimeMs: 25_000 });
      await q.coordinator.submit(body);
      await until('the tab to commit', () => q.commits.get(body.requestId)?.has(nodeId), 20_000);
      await page.reload();
      // Locked, the page says what waits for it to be unlocked (this request, and the last test's if its
      // reveal window is still open).
      await page.waitForSelector(
        '#persistence:has-text("committed to by this key and not finished (before a reload or a lock): unlock")',
        {
          timeout: 10_000,
        },
      );
      await page.fill('#passphrase', PASSPHRASE);
      await page.click('#unlock');
      // Without the Serve box ticked again: the request it committed to is still its to reveal, so it
      // joins as a node (models loaded) that takes nothing new.
      await page.waitForSelector('#phase:has-text("running as node")', { timeout: 120_000 });
      expect(await page.isChecked('#serve')).toBe(false);
      expect(await page.textContent('#engine-phase')).toBe('ready');

      await until('the verdict', () => q.coordinator.status(body.requestId)?.verdict, 90_000);
      expect([...(q.reveals.get(body.requestId) ?? [])].sort()).toEqual([q.headless.nodeId, nodeId].sort());
      expect([...(q.commits.get(body.requestId)?.get(nodeId) ?? [])]).toHaveLength(1);
      expect(q.coordinator.status(body.requestId)?.verdict?.status).toBe('accepted');
      // The page lists its verdict, served here.
      await until(
        'the page to list the verdict',
        async () => (await status(page)).verdicts.some((v) => v.requestId === body.requestId && v.servedHere),
        30_000,
      );
      expect(consoleProblems).toEqual([]);
      expect(pageErrors).toEqual([]);
      await page.close();
    },
    LONG,
  );
});
