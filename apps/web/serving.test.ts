/**
 * The contributor app serving in a real quorum while what is around it changes, in headless Chromium
 * and driven through its UI: the Serve box turned off during an inference and on again, the site's
 * IndexedDB cleared under the running tab, the tab locked and unlocked again, the relay the tab joined
 * through restarted (the page saying why it is not connected meanwhile: refused, then another peer at
 * the relay's address). Each time the tab's requests must end with exactly one commitment from its node id
 * and a reveal, or not be taken at all; never a reload.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Page } from 'playwright-core';
import type { BrowserNodeStatus } from '../../browser-node/src/browser/browser-node.ts';
import type {} from '../../browser-node/src/browser/main.ts';
import { BOOTSTRAP_PEER_MISMATCH_HINT } from '../../browser-node/src/p2p/waku-relay.ts';
import { createHeadlessWakuRelay } from '../../browser-node/src/p2p/waku-relay-headless.ts';
import { type Chrome, launchChromium, until } from '../../tests/support/chromium.ts';
import { startWebServer, type WebServer } from './serve.ts';
import { startTestQuorum, type TestQuorum } from './test-quorum.ts';

const LONG = 240_000;

describe('a serving tab while things change around it', () => {
  let q: TestQuorum;
  let web: WebServer;
  let chrome: Chrome;
  let page: Page;
  let nodeId = '';
  const pageErrors: string[] = [];
  const consoleProblems: string[] = [];

  const status = () => page.evaluate(() => window.synod?.status()) as Promise<BrowserNodeStatus>;

  /** Submit a request and wait for its verdict; what the tab did for it. */
  async function serveOne(nonce: string, frame: { quorum: number; maxCommits?: number; maxTimeMs?: number }) {
    const body = q.request(nonce, frame);
    await q.coordinator.submit(body);
    await until(
      `request ${nonce} to end`,
      () => {
        const s = q.coordinator.status(body.requestId);
        return s !== null && (s.verdict !== null || s.finished);
      },
      120_000,
    );
    return {
      body,
      commitments: [...(q.commits.get(body.requestId)?.get(nodeId) ?? [])],
      revealed: q.reveals.get(body.requestId)?.has(nodeId) ?? false,
      verdict: q.coordinator.status(body.requestId)?.verdict ?? null,
    };
  }

  beforeAll(
    async () => {
      q = await startTestQuorum(61);
      web = await startWebServer({
        bootstrap: [q.ws],
        config: { heartbeatMs: 1_000, scryptN: 2 ** 10, dbName: `synod-serving-test-${Date.now()}` },
      });
      chrome = await launchChromium();
      page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() === 'warning' || m.type() === 'error') consoleProblems.push(m.text());
      });
      await page.goto(web.url);
      await page.fill('#passphrase', 'a passphrase only this test knows');
      await page.fill('#passphrase-again', 'a passphrase only this test knows');
      await page.click('#unlock');
      await page.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
      await page.check('#serve');
      await page.waitForSelector('#phase:text-is("running as node")', { timeout: 120_000 });
      nodeId = (await status()).nodeId as string;
      await until('the coordinator to hear the tab serve', () =>
        q.coordinator.knownNodes().some((n) => n.nodeId === nodeId && n.body.role === 'node'),
      );
    },
    { timeout: LONG },
  );

  afterAll(
    async () => {
      await page?.evaluate(() => window.synod?.stop()).catch(() => {});
      await chrome?.close();
      await web?.stop();
      await q?.close();
    },
    { timeout: 60_000 },
  );

  test(
    'Serve turned off during an inference: that request is committed once and revealed; none is taken while off; on again, it serves',
    async () => {
      const body = q.request('8a', { quorum: 2 });
      await q.coordinator.submit(body);
      await until(
        'the tab to start inferring',
        async () => ((await status()).metrics?.inferences.started ?? 0) >= 1,
      );
      await page.uncheck('#serve');
      // Said as paused, not just running.
      await page.waitForSelector('#phase:has-text("running as node, paused")', { timeout: 10_000 });
      await until('the verdict', () => q.coordinator.status(body.requestId)?.verdict, 120_000);
      expect([...(q.commits.get(body.requestId)?.get(nodeId) ?? [])]).toHaveLength(1);
      expect(q.reveals.get(body.requestId)?.has(nodeId)).toBe(true);
      expect(q.coordinator.status(body.requestId)?.verdict?.status).toBe('accepted');

      // Off: a request the tab could serve is left to others (quorum 1, so it still ends).
      const off = await serveOne('8b', { quorum: 1, maxCommits: 2, maxTimeMs: 6_000 });
      expect(off.commitments).toEqual([]);

      await page.check('#serve');
      await page.waitForSelector('#queue:not(:has-text("of 0"))', { timeout: 30_000 });
      const on = await serveOne('8c', { quorum: 2 });
      expect(on.commitments).toHaveLength(1);
      expect(on.revealed).toBe(true);
      expect(on.verdict?.status).toBe('accepted');
      expect(pageErrors).toEqual([]);
      expect(consoleProblems).toEqual([]);
    },
    LONG,
  );

  test(
    'while the tab holds a commitment it has not revealed, the page says so and leaving it asks first',
    async () => {
      /** Whether leaving now would ask first (the page's beforeunload handler cancels the event). */
      const asks = () =>
        page.evaluate(() => {
          const e = new Event('beforeunload', { cancelable: true });
          window.dispatchEvent(e);
          return e.defaultPrevented;
        });
      // The last test's request ended at its coordinator: the tab's own machine ends with the verdict.
      await until('the last request to end here', async () => (await status()).openCommitments === 0, 30_000);
      expect(await asks()).toBe(false);
      // A quorum of 3 with the tab and one headless node: both commit, no seal comes, it ends at 8 s.
      const body = q.request('8e', { quorum: 3, maxCommits: 3, maxTimeMs: 8_000 });
      await q.coordinator.submit(body);
      await until('the tab to commit', () => (q.commits.get(body.requestId)?.get(nodeId)?.size ?? 0) === 1);
      expect((await status()).openCommitments).toBe(1);
      await page.waitForSelector('#persistence:has-text("1 committed to and not finished")', {
        timeout: 10_000,
      });
      expect(await asks()).toBe(true);
      await until('the request to end', async () => (await status()).openCommitments === 0, 60_000);
      expect(await asks()).toBe(false);
      expect(pageErrors).toEqual([]);
    },
    LONG,
  );

  test(
    "the site's IndexedDB cleared under the running tab: it keeps serving",
    async () => {
      const cdp = await chrome.context.newCDPSession(page);
      await cdp.send('Storage.clearDataForOrigin', { origin: web.url, storageTypes: 'indexeddb' });
      await cdp.detach();
      const after = await serveOne('8d', { quorum: 2 });
      expect(after.commitments).toHaveLength(1);
      expect(after.revealed).toBe(true);
      expect(after.verdict?.status).toBe('accepted');
      expect(pageErrors).toEqual([]);
    },
    LONG,
  );

  test(
    'Lock during an inference: the request is committed once and revealed, then the tab leaves the network and closes its key; unlocked again, it serves',
    async () => {
      const before = (await status()).metrics?.inferences.started ?? 0;
      // Due (its reveal included) within the minute Lock waits: it is finished, not given up.
      const body = q.request('c1', { quorum: 2, maxTimeMs: 20_000 });
      await q.coordinator.submit(body);
      await until(
        'the tab to start inferring',
        async () => ((await status()).metrics?.inferences.started ?? 0) > before,
      );
      await page.click('#lock-key');
      await page.waitForSelector('#phase:text-is("locked")', { timeout: 120_000 });
      // What the page counted since it opened stays: requests served (this one too), verdicts seen.
      const servedBefore = (await status()).served;
      expect(servedBefore).toBeGreaterThanOrEqual(4);
      expect(await page.textContent('#served')).toBe(String(servedBefore));
      expect(await page.textContent('#verdicts')).not.toContain('None yet.');
      // Finished before it left: one commitment, its reveal, and the verdict (quorum 2 needs the tab).
      await until('the verdict', () => q.coordinator.status(body.requestId)?.verdict, 60_000);
      expect([...(q.commits.get(body.requestId)?.get(nodeId) ?? [])]).toHaveLength(1);
      expect(q.reveals.get(body.requestId)?.has(nodeId)).toBe(true);
      expect(q.coordinator.status(body.requestId)?.verdict?.status).toBe('accepted');
      const locked = await status();
      expect(locked.nodeId).toBe(nodeId);
      expect(locked.peers).toEqual([]);
      expect(locked.role).toBeNull();
      expect(locked.engine.phase).toBe('idle');
      expect(await page.isVisible('#unlock-form')).toBe(true);
      expect(await page.isVisible('#lock-key')).toBe(false);
      expect(await page.isDisabled('#serve')).toBe(true);

      // Locked, the tab takes nothing: a request it could serve is left to others.
      const off = await serveOne('c2', { quorum: 1, maxCommits: 2, maxTimeMs: 6_000 });
      expect(off.commitments).toEqual([]);

      await page.fill('#passphrase', 'a passphrase only this test knows');
      await page.click('#unlock');
      await page.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
      await page.check('#serve');
      await page.waitForSelector('#phase:text-is("running as node")', { timeout: 120_000 });
      expect((await status()).nodeId).toBe(nodeId);
      expect((await status()).served).toBe(servedBefore);
      await until('the coordinator to hear the tab serve again', () =>
        q.coordinator.knownNodes(3_000).some((n) => n.nodeId === nodeId && n.body.role === 'node'),
      );
      const again = await serveOne('c3', { quorum: 2 });
      expect(again.commitments).toHaveLength(1);
      expect(again.revealed).toBe(true);
      expect(again.verdict?.status).toBe('accepted');
      expect(pageErrors).toEqual([]);
    },
    LONG,
  );

  test(
    'the relay the tab joined through restarts: the tab reconnects and serves, without a reload',
    async () => {
      const restart = await q.stopRelay();
      await until('the tab to lose its peer', async () => (await status()).peers.length === 0, 60_000);
      // Why it is not connected is said under the peers line, with a code: nothing listens there…
      await page.waitForSelector('#peer-warning:has-text("BOOTSTRAP_DIAL_FAILED")', { timeout: 30_000 });
      expect(await page.textContent('#peer-warning')).toStartWith(
        `BOOTSTRAP_DIAL_FAILED: the bootstrap address ${q.ws} could not be dialled (`,
      );
      // …then another peer answers at the relay's address: said so, with the peer id expected.
      const relayPeer = q.ws.split('/p2p/')[1] as string;
      const impostor = await createHeadlessWakuRelay({ wsPort: Number(/\/tcp\/(\d+)\/ws/.exec(q.ws)?.[1]) });
      try {
        await page.waitForSelector('#peer-warning:has-text("BOOTSTRAP_PEER_MISMATCH")', { timeout: 30_000 });
        expect(await page.textContent('#peer-warning')).toBe(
          `BOOTSTRAP_PEER_MISMATCH: the bootstrap address ${q.ws} is answered by peer ${impostor.peerId}, expected ${relayPeer}: not connected; ${BOOTSTRAP_PEER_MISMATCH_HINT}`,
        );
        expect(await page.isVisible('#peer-warning-label')).toBe(true);
      } finally {
        await impostor.close();
      }
      await restart.start();
      await until('the tab to reconnect', async () => (await status()).peers.length > 0, 60_000);
      // Connected: the warning is gone.
      await page.waitForSelector('#peer-warning', { state: 'hidden', timeout: 10_000 });
      expect((await status()).transportWarning).toBeNull();
      await until(
        'the coordinator to hear the tab again',
        () => q.coordinator.knownNodes(3_000).some((n) => n.nodeId === nodeId),
        60_000,
      );
      const after = await serveOne('8e', { quorum: 2 });
      expect(after.commitments).toHaveLength(1);
      expect(after.revealed).toBe(true);
      expect(after.verdict?.status).toBe('accepted');
      expect(pageErrors).toEqual([]);
    },
    LONG,
  );
});
