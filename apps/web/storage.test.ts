/**
 * The contributor app in a browser that gives the page no IndexedDB: none at all (`indexedDB`
 * undefined), or one that refuses to open a database (as a private window may, with InvalidStateError).
 * The tab still unlocks and serves in a real quorum, keeping its machines in memory, and the page says
 * that a reload would lose the requests in flight. Headless Chromium, driven through the UI.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type {} from '../../browser-node/src/browser/main.ts';
import { type Chrome, launchChromium, until } from '../../tests/support/chromium.ts';
import { startWebServer, type WebServer } from './serve.ts';
import { startTestQuorum, type TestQuorum } from './test-quorum.ts';

const LONG = 240_000;

/** Page scripts run before the app's: the browser's IndexedDB as each kind of browser leaves it. */
const NO_INDEXEDDB = {
  'no indexedDB at all': () => {
    Object.defineProperty(window, 'indexedDB', { value: undefined, configurable: true });
  },
  'indexedDB.open refused (InvalidStateError)': () => {
    IDBFactory.prototype.open = function open() {
      const request = {
        error: new DOMException(
          'A mutation operation was attempted on a database that did not allow mutations.',
          'InvalidStateError',
        ),
        result: undefined,
        onerror: null as ((e: Event) => void) | null,
        onsuccess: null,
        onupgradeneeded: null,
        onblocked: null,
      };
      setTimeout(() => request.onerror?.(new Event('error')), 0);
      return request as unknown as IDBOpenDBRequest;
    };
  },
};

describe('a browser that gives the page no IndexedDB', () => {
  let q: TestQuorum;
  let web: WebServer;

  beforeAll(
    async () => {
      q = await startTestQuorum(81);
      web = await startWebServer({
        bootstrap: [q.ws],
        config: { heartbeatMs: 1_000, scryptN: 2 ** 10, dbName: `synod-storage-test-${Date.now()}` },
      });
    },
    { timeout: LONG },
  );

  afterAll(
    async () => {
      await web?.stop();
      await q?.close();
    },
    { timeout: 60_000 },
  );

  for (const [kind, script] of Object.entries(NO_INDEXEDDB)) {
    test(
      `${kind}: the tab unlocks and serves, and says a reload would lose its requests in flight`,
      async () => {
        const chrome: Chrome = await launchChromium();
        try {
          const page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
          const pageErrors: string[] = [];
          page.on('pageerror', (e) => pageErrors.push(String(e)));
          await page.addInitScript(script);
          await page.goto(web.url);
          await page.fill('#passphrase', 'a passphrase only this test knows');
          await page.fill('#passphrase-again', 'a passphrase only this test knows');
          await page.click('#unlock');
          await page.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
          expect(await page.textContent('#persistence')).toStartWith(
            '0 committed to and not finished; kept in memory only',
          );
          expect(await page.isHidden('#node-error')).toBe(true);
          await page.check('#serve');
          await page.waitForSelector('#phase:text-is("running as node")', { timeout: 120_000 });
          const nodeId = (await page.textContent('#node-id')) ?? '';
          await until('the coordinator to hear the tab serve', () =>
            q.coordinator.knownNodes().some((n) => n.nodeId === nodeId && n.body.role === 'node'),
          );

          const body = q.request(kind === 'no indexedDB at all' ? 'a1' : 'a2', { quorum: 2 });
          await q.coordinator.submit(body);
          await until('the verdict', () => q.coordinator.status(body.requestId)?.verdict, 120_000);
          expect([...(q.commits.get(body.requestId)?.get(nodeId) ?? [])]).toHaveLength(1);
          expect(q.reveals.get(body.requestId)?.has(nodeId)).toBe(true);
          expect(q.coordinator.status(body.requestId)?.verdict?.status).toBe('accepted');
          expect(pageErrors).toEqual([]);
          await page.evaluate(() => window.synod?.stop());
        } finally {
          await chrome.close();
        }
      },
      LONG,
    );
  }
});
