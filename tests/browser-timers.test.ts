/**
 * The browser node's timers run in a worker of their own, not on the page.
 *
 * Chrome throttles the timers of a page hidden for 5 minutes to about one wake-up a minute; headless
 * Chromium always reports a page visible, so that throttling cannot be reproduced here. What the test
 * does instead is harsher: once the node runs, the page's `setTimeout` and `setInterval` are replaced
 * with ones that never fire (a page whose timers are all throttled away), and the node's heartbeats must
 * keep reaching a headless peer at their interval, gossipsub's own heartbeat keep running every second,
 * and a peer that hangs up is dialled again. A node on the page's timers stops beating at once.
 *
 * Also: a page without `Worker`, and a page whose Content-Security-Policy refuses `blob:` workers, run
 * the timers on the page and say so in `status().timers`.
 *
 *   Bun test process                                   headless Chromium (playwright-core)
 *   observer  SynodNode role relay, Waku (TCP + WS) ◀──WS── the contributor app (apps/web): browser node,
 *             records the heartbeats it hears                 follower, heartbeat every second
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { NodeKey } from '@synod/shared';
import type { Page } from 'playwright-core';
import { startWebServer, type WebServer } from '../apps/web/serve.ts';
import type { BrowserNodeStatus } from '../browser-node/src/browser/browser-node.ts';
import type {} from '../browser-node/src/browser/main.ts';
import { SynodNode } from '../browser-node/src/node/synod-node.ts';
import type { WakuRelayTransport } from '../browser-node/src/p2p/waku-relay.ts';
import { createHeadlessWakuRelay } from '../browser-node/src/p2p/waku-relay-headless.ts';
import { type Chrome, launchChromium, until } from './support/chromium.ts';

const LONG = 180_000;
const HEARTBEAT_MS = 1_000;

const status = (page: Page) => page.evaluate(() => window.synod?.status()) as Promise<BrowserNodeStatus>;

describe("the browser node's timers", () => {
  let hub: WakuRelayTransport;
  let observer: SynodNode;
  let web: WebServer;
  let chrome: Chrome;
  /** Per node id: the `createdAt` of each heartbeat the observer heard. */
  const heard = new Map<string, number[]>();

  beforeAll(
    async () => {
      hub = await createHeadlessWakuRelay();
      const ws = hub.addresses().find((a) => a.includes('/ws'));
      if (ws === undefined) throw new Error(`hub addresses: ${hub.addresses()}`);
      observer = new SynodNode({
        key: await NodeKey.fromSeed(new Uint8Array(32).fill(61)),
        role: 'relay',
        transports: [hub],
        onPacket: ({ packet, own }) => {
          if (own || packet.type !== 'heartbeat') return;
          heard.set(packet.from, [...(heard.get(packet.from) ?? []), packet.body.createdAt]);
        },
      });
      await observer.start();
      web = await startWebServer({
        bootstrap: [ws],
        config: { heartbeatMs: HEARTBEAT_MS, scryptN: 2 ** 10, dbName: `synod-timers-test-${Date.now()}` },
      });
      chrome = await launchChromium();
    },
    { timeout: LONG },
  );

  afterAll(
    async () => {
      await chrome?.close();
      await web?.stop();
      await observer?.close();
      await hub?.close();
    },
    { timeout: 60_000 },
  );

  test(
    "heartbeats keep their pace while the page's setTimeout and setInterval never fire",
    async () => {
      const page = await chrome.context.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      try {
        await page.goto(web.url);
        await page.waitForFunction(() => window.synod !== undefined, null, { timeout: 60_000 });
        expect((await status(page)).timers).toEqual({ runsIn: 'worker', error: null });
        await page.evaluate(() => window.synod?.unlock('a passphrase only this test knows'));
        const nodeId = (await status(page)).nodeId ?? '';
        await until('the observer to hear the browser node', () => (heard.get(nodeId)?.length ?? 0) >= 2);

        // From now on the page's timers never fire: a tab whose timers are throttled away.
        const frozenAt = await page.evaluate(() => {
          let next = 2_000_000_000;
          const never = (() => next++) as unknown as typeof setTimeout & typeof setInterval;
          window.setTimeout = never;
          window.setInterval = never;
          globalThis.setTimeout = never;
          globalThis.setInterval = never;
          return Date.now();
        });
        const since = () => (heard.get(nodeId) ?? []).filter((t) => t > frozenAt);
        const wanted = 6;
        await until(
          `${wanted} heartbeats made after the page's timers stopped`,
          () => since().length >= wanted,
          20_000,
        );
        const beats = since().slice(0, wanted);
        // At their interval, not a minute apart (nor all at once).
        const gaps = beats.slice(1).map((t, i) => t - (beats[i] as number));
        expect(Math.max(...gaps)).toBeLessThan(HEARTBEAT_MS * 2);
        expect(Math.min(...gaps)).toBeGreaterThan(HEARTBEAT_MS / 2);
        // Gossipsub's own heartbeat (mesh upkeep, every second) runs in the timer worker too.
        const upkeepFrom = (await status(page)).gossipUpkeep?.heartbeats ?? 0;
        expect(upkeepFrom).toBeGreaterThan(0);
        const upkeepSince = Date.now();
        await until(
          "3 gossipsub heartbeats after the page's timers stopped",
          async () => ((await status(page)).gossipUpkeep?.heartbeats ?? 0) >= upkeepFrom + 3,
          10_000,
        );
        expect(Date.now() - upkeepSince).toBeLessThan(6_000);
        // The page's timers did stay dead all along: its status notifications (100 ms after a change)
        // never come, in half a second waited for with messages (the page has no timers left to wait with).
        const notified = await page.evaluate(
          () =>
            new Promise<boolean>((resolve) => {
              const off = window.synod?.onChange(() => resolve(true));
              void window.synod?.setServing(false).catch(() => {});
              const start = Date.now();
              const channel = new MessageChannel();
              channel.port1.onmessage = () => {
                if (Date.now() - start < 500) channel.port2.postMessage(null);
                else {
                  off?.();
                  resolve(false);
                }
              };
              channel.port2.postMessage(null);
            }),
        );
        expect(notified).toBe(false);
        // A dropped peer is redialled on time too (the bootstrap redial runs in the timer worker): the hub
        // hangs up on the tab, without a ban, and the tab's heartbeats reach it again.
        for (const peer of hub.peers()) await hub.disconnect(peer, 0);
        const droppedAt = Date.now();
        await until('the tab to dial the hub again', () => hub.peers().length > 0, 20_000);
        await until(
          'heartbeats heard again after the hub hung up',
          () => (heard.get(nodeId) ?? []).some((t) => t > droppedAt + HEARTBEAT_MS),
          20_000,
        );
        const s = await status(page);
        expect(s.phase).toBe('running');
        expect(s.timers).toEqual({ runsIn: 'worker', error: null });
        expect(pageErrors).toEqual([]);
      } finally {
        await page.close();
      }
    },
    { timeout: LONG },
  );

  const fallbacks: Array<{ kind: string; prepare(page: Page): Promise<unknown>; error: RegExp }> = [
    {
      kind: 'a page without Worker',
      prepare: (page) =>
        page.addInitScript(() => {
          Object.defineProperty(window, 'Worker', { value: undefined, configurable: true });
        }),
      error: /^TIMER_WORKER_UNAVAILABLE: this page has no Worker or no Blob URLs$/,
    },
    {
      kind: "a page whose Content-Security-Policy allows no blob: worker (worker-src 'self')",
      prepare: (page) =>
        page.route(`${web.url}/`, async (route) => {
          const response = await route.fetch();
          await route.fulfill({
            response,
            headers: { ...response.headers(), 'content-security-policy': "worker-src 'self'" },
          });
        }),
      // Chromium refuses the script after the Worker is made: an error event, not an exception.
      error: /^TIMER_WORKER_FAILED: the timer worker failed: it could not load or threw$/,
    },
  ];

  for (const { kind, prepare, error } of fallbacks) {
    test(
      `${kind}: the timers run on the page, and the status and the console say why`,
      async () => {
        const page = await chrome.context.newPage();
        const warnings: string[] = [];
        page.on('console', (m) => {
          if (m.type() === 'warning') warnings.push(m.text());
        });
        try {
          await prepare(page);
          await page.goto(`${web.url}/`);
          await page.waitForFunction(() => window.synod !== undefined, null, { timeout: 60_000 });
          await until(
            'the timers to fall back to the page',
            async () => (await status(page)).timers.runsIn === 'page',
            10_000,
          );
          const { timers } = await status(page);
          expect(timers.error).toMatch(error);
          expect(warnings.some((w) => w.includes("[synod] the node's timers run on the page"))).toBe(true);
        } finally {
          await page.close();
        }
      },
      { timeout: LONG },
    );
  }
});
