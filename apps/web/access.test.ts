/**
 * The contributor app as a contributor with a keyboard, a screen reader or a phone uses it, in headless
 * Chromium on a 320 px wide screen, driven through the UI only:
 *
 * - keyboard only: a new key's passphrase typed twice (two that differ are refused) and Enter pressed,
 *   focus lands on the Serve box (not on the page body, as when the form it was in disappears), and
 *   Space there starts serving; a wrong passphrase puts focus back in the (cleared) passphrase field;
 * - what a load says: where each model comes from, then its phase in words with the MB done (not
 *   "fetch", "hash", "load"), on a throttled network so that the download is seen going;
 * - screen readers: the follower form's errors and the request's status are announced (live regions);
 *   the tables are not rebuilt every second when nothing in them changed (a screen reader's place and a
 *   text selection in them were lost each second);
 * - the follower form: Submit pressed again while the relay answers posts nothing more (it asked, and
 *   paid, twice); a status stream that breaks off while the relay restarts (the app's proxy answers
 *   502, on which an EventSource gives up) is opened again; markup in an output stays text;
 * - 320 px: nothing is wider than the screen, and no figure is squeezed into a column a few letters
 *   wide (the label column took all the width the longest label asked for);
 * - the node key: the sealed key can be saved to a file (a backup), and forgotten (a passphrase lost is
 *   otherwise the end of the node), but not while another tab of this browser runs it; the backup is
 *   loaded again by keyboard (Enter on "Load a sealed key from a file…" opens the file chooser), and
 *   focus lands in the passphrase field that unlocks it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import type { FileChooser, Page, Route } from 'playwright-core';
import type {} from '../../browser-node/src/browser/main.ts';
import { type Chrome, launchChromium } from '../../tests/support/chromium.ts';
import { startWebServer, type WebServer } from './serve.ts';

const PASSPHRASE = 'a passphrase only this test knows';

/** How wide the page is against the screen, and the figures narrower than `minPx`. */
function layout(page: Page, minPx: number) {
  return page.evaluate((min) => {
    const squeezed = [...document.querySelectorAll('dl.grid dd')]
      .filter((dd) => (dd as HTMLElement).offsetParent !== null && (dd.textContent ?? '').length > 6)
      .filter((dd) => dd.getBoundingClientRect().width < min)
      .map(
        (dd) => `${dd.id || dd.firstElementChild?.id}: ${Math.round(dd.getBoundingClientRect().width)} px`,
      );
    // A table cell may wrap, not be a column a letter or two wide ("0.", "4", "7", "s" on four lines).
    const cells = [...document.querySelectorAll('th, td')]
      .filter((c) => (c as HTMLElement).offsetParent !== null && (c.textContent ?? '').trim().length > 2)
      .filter((c) => c.getBoundingClientRect().width < 40)
      .map((c) => `${c.textContent}: ${Math.round(c.getBoundingClientRect().width)} px`);
    // Nor a short word broken inside ("nod" and "e" on two lines): a word of 16 letters or fewer is
    // on one line of its cell.
    const broken = [...document.querySelectorAll('th, td')]
      .filter((c) => (c as HTMLElement).offsetParent !== null)
      .flatMap((c) => {
        const out: string[] = [];
        const walker = document.createTreeWalker(c, NodeFilter.SHOW_TEXT);
        for (let t = walker.nextNode(); t !== null; t = walker.nextNode()) {
          const text = t.textContent ?? '';
          for (const m of text.matchAll(/(?<!\S)\S{2,16}(?!\S)/g)) {
            const range = document.createRange();
            range.setStart(t, m.index);
            range.setEnd(t, m.index + m[0].length);
            const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
            if (lines.size > 1) out.push(`${m[0]}: broken over ${lines.size} lines`);
          }
        }
        return out;
      });
    return {
      page: document.documentElement.scrollWidth,
      screen: window.innerWidth,
      squeezed: [...squeezed, ...cells, ...broken],
    };
  }, minPx);
}

describe('the contributor app by keyboard, screen reader and on a narrow screen', () => {
  let web: WebServer;
  let chrome: Chrome;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    web = await startWebServer({
      askTimeoutMs: 2_000,
      config: { heartbeatMs: 1_000, scryptN: 2 ** 10, dbName: `synod-web-access-test-${Date.now()}` },
    });
    chrome = await launchChromium();
    page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.setViewportSize({ width: 320, height: 720 });
    await page.goto(web.url);
    await page.waitForSelector('#unlock:has-text("Create node key")', { timeout: 30_000 });
  }, 120_000);

  afterAll(async () => {
    await page?.evaluate(() => window.synod?.stop()).catch(() => {});
    await chrome?.close();
    await web?.stop();
  }, 60_000);

  test('keyboard only: a new passphrase typed twice, Enter, focus on the Serve box, Space serves', async () => {
    expect(await layout(page, 100)).toEqual({ page: 320, screen: 320, squeezed: [] });
    // A new key's passphrase is asked twice: typed wrong once, it would seal the key for good with a
    // passphrase nobody knows (found out at the next reload, with the standing earned meanwhile).
    await page.focus('#passphrase');
    await page.keyboard.type(PASSPHRASE);
    await page.keyboard.press('Tab');
    await page.keyboard.type(`${PASSPHRASE}.`);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#node-error:has-text("PASSPHRASES_DIFFER")', { timeout: 10_000 });
    expect(await page.textContent('#phase')).toBe('locked');
    expect(await page.textContent('#node-id')).toStartWith('no key yet');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('passphrase');
    expect(await page.inputValue('#passphrase-again')).toBe('');
    await page.keyboard.type(PASSPHRASE);
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSPHRASE);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
    await page.waitForFunction(() => document.activeElement?.id === 'serve', null, { timeout: 5_000 });
    // Where the models come from is said before they load.
    expect(await page.textContent('#engine-ref')).toBe(
      'stories260K, from /models/stories260K.gguf (this site)',
    );
    expect(await page.textContent('#embedder-ref')).toBe('USE Lite, from /use-lite/ (this site)');
    // Everything the load says, as it says it.
    await page.evaluate(() => {
      const said: string[] = [];
      (window as unknown as { said: string[] }).said = said;
      const phase = document.getElementById('engine-phase') as HTMLElement;
      const amount = document.getElementById('engine-amount') as HTMLElement;
      const say = () => said.push(`${phase.textContent} ${amount.textContent}`.trim());
      const observer = new MutationObserver(say);
      observer.observe(phase, { childList: true, characterData: true, subtree: true });
      observer.observe(amount, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
    // A network a phone might have (600 kB/s), so that the download is seen going.
    const cdp = await chrome.context.newCDPSession(page);
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 20,
      downloadThroughput: 600_000,
      uploadThroughput: 600_000,
    });
    await page.keyboard.press('Space');
    // Downloaded: the network is fast again for the rest (the embedder's 28 MB).
    await page.waitForFunction(
      () => /^(checking|loading|ready)/.test(document.getElementById('engine-phase')?.textContent ?? ''),
      null,
      { timeout: 60_000 },
    );
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    await cdp.detach();
    await page.waitForSelector('#phase:has-text("running as node")', { timeout: 120_000 });
    expect(await page.isChecked('#serve')).toBe(true);
    const said = await page.evaluate(() => (window as unknown as { said: string[] }).said);
    // In words, with how much of how much: not "fetch", "hash", "load". The figures are beside the
    // phase, not in its live region (a screen reader would read out each step).
    expect(said.some((t) => /^downloading \d+ % \(\d+\.\d of 1\.2 MB\)$/.test(t))).toBe(true);
    expect(await page.getAttribute('#engine-amount', 'aria-live')).toBeNull();
    expect(said.at(-1)).toBe('ready');
    expect(said.filter((t) => /^(fetch|hash|load)$/.test(t))).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 180_000);

  test('on a 320 px screen nothing is wider than the screen and no figure is squeezed', async () => {
    await page.waitForSelector('#known-nodes:has-text("(this tab)")', { timeout: 30_000 });
    await page.waitForSelector('#capability:has-text("tokens/s")', { timeout: 30_000 });
    expect(await layout(page, 100)).toEqual({ page: 320, screen: 320, squeezed: [] });
  }, 60_000);

  test('the tables are updated in place: a row, and a selection in it, outlive the next renders', async () => {
    const kept = await page.evaluate(async () => {
      const row = document.querySelector<HTMLTableRowElement>('#known-nodes tr');
      const range = document.createRange();
      range.selectNodeContents(row?.cells[0] as Node);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
      // Three renders at least (one a second), and heartbeats heard meanwhile (one a second).
      await new Promise((r) => setTimeout(r, 3_500));
      return {
        sameRow: row === document.querySelector('#known-nodes tr'),
        selected: getSelection()?.toString() ?? '',
        heard: row?.cells[3]?.textContent,
      };
    });
    expect(kept.sameRow).toBe(true);
    expect(kept.selected).toEndWith('(this tab)');
    // The "last heard" cell is kept current all the same (a heartbeat a second).
    expect(kept.heard).toMatch(/^[0-2] s ago$/);
    // The "none yet" line spans the table.
    expect(await page.getAttribute('#verdicts td', 'colspan')).toBe('6');
  }, 30_000);

  test("the follower form's errors and the request's status are announced", async () => {
    expect(await page.getAttribute('#ask-error', 'role')).toBe('alert');
    expect(await page.getAttribute('#ask-result', 'aria-live')).toBe('polite');
    await page.fill('#relay-url', 'http://127.0.0.1:9/');
    await page.fill('#api-key', 'synod_sk_anything');
    await page.click('#ask');
    await page.waitForSelector('#ask-error:has-text("could not reach")', { timeout: 30_000 });
    expect(await layout(page, 100)).toEqual({ page: 320, screen: 320, squeezed: [] });
  }, 60_000);

  test('a prompt is submitted once however often Submit is pressed while the relay answers', async () => {
    // A slow relay (half a second to answer), counted.
    let posts = 0;
    await page.route(`${web.url}/slow-relay/v1/inference`, async (route) => {
      posts++;
      await Bun.sleep(500);
      await route.fulfill({
        status: 429,
        json: { error: { code: 'QUOTA_EXCEEDED', message: 'this key has used its quota' } },
      });
    });
    await page.fill('#relay-url', `${web.url}/slow-relay`);
    await page.fill('#api-key', 'synod_sk_anything');
    await page.click('#ask');
    // Again, by Enter in a field (implicit submission), and by a click.
    await page.focus('#max-tokens');
    await page.keyboard.press('Enter');
    await page.click('#ask', { force: true, noWaitAfter: true });
    await page.waitForSelector('#ask-error:has-text("HTTP 429: QUOTA_EXCEEDED")', { timeout: 10_000 });
    expect(posts).toBe(1);
    expect(await page.isEnabled('#ask')).toBe(true);
    await page.unroute(`${web.url}/slow-relay/v1/inference`);
  }, 30_000);

  test('a status stream that breaks off while the relay restarts is opened again, and the verdict shows', async () => {
    const requestId = 'ab'.repeat(32);
    const OUTPUT = 'Once upon a time <img src=x onerror="window.xss=1"> there was a cat.';
    const events = `/v1/inference/${requestId}/events`;
    const view = (status: string, extra: object = {}) =>
      JSON.stringify({ requestId, status, commits: [{}, {}], reveals: [], ...extra });
    await page.route(`${web.url}/restarting-relay/v1/inference`, (route) =>
      route.fulfill({ status: 202, json: { requestId, status: 'queued', links: { events } } }),
    );
    // The stream breaks off after one status (the relay stopped); while it is down the app's proxy
    // answers 502, and an EventSource gives up on that; then the relay is back.
    const opened: number[] = [];
    await page.route(`${web.url}/restarting-relay${events}`, (route) => {
      opened.push(Date.now());
      if (opened.length === 1)
        return route.fulfill({
          status: 200,
          headers: { 'content-type': 'text/event-stream' },
          body: `retry: 100\nevent: status\nid: 1\ndata: ${view('committing')}\n\n`,
        });
      if (opened.length === 2)
        return route.fulfill({
          status: 502,
          json: { error: { code: 'RELAY_UNREACHABLE', message: 'down' } },
        });
      const verdict = {
        status: 'accepted',
        winner: { output: OUTPUT },
        accepted: [{}, {}],
      };
      return route.fulfill({
        status: 200,
        headers: { 'content-type': 'text/event-stream' },
        body: `event: status\nid: 2\ndata: ${view('verdict', { reveals: [{}, {}], verdict })}\n\nevent: end\ndata: {"status":"verdict"}\n\n`,
      });
    });
    await page.fill('#relay-url', `${web.url}/restarting-relay`);
    await page.fill('#api-key', 'synod_sk_anything');
    await page.click('#ask');
    await page.waitForSelector('#ask-error:has-text("opening it again")', { timeout: 10_000 });
    await page.waitForSelector('#ask-status:text-is("verdict")', { timeout: 10_000 });
    // A network's output is text, never markup the page runs.
    expect(await page.textContent('#ask-answer')).toBe(`accepted: ${OUTPUT} — 2 nodes agree`);
    expect(await page.$$('#ask-answer *')).toHaveLength(0);
    expect(await page.evaluate(() => (window as unknown as { xss?: number }).xss)).toBeUndefined();
    expect(await page.isHidden('#ask-error')).toBe(true);
    expect(opened).toHaveLength(3);
    await page.unrouteAll();
  }, 30_000);

  test('the sealed key is saved to a file; forgotten only in a tab that does not run it, after a confirmation', async () => {
    const nodeId = (await page.textContent('#node-id')) ?? '';
    expect(nodeId).toMatch(/^[0-9a-f]{64}$/);
    const download = page.waitForEvent('download');
    await page.click('#export-key');
    const file = await download;
    expect(file.suggestedFilename()).toBe(`synod-node-key-${nodeId.slice(0, 12)}.json`);
    const savedPath = (await file.path()) as string;
    const saved = JSON.parse(readFileSync(savedPath, 'utf8')) as { nodeId?: string };
    expect(saved.nodeId).toBe(nodeId);
    expect(JSON.stringify(saved)).not.toContain(PASSPHRASE);

    // This tab runs the key: a second tab says so and does not offer to forget it (it offered, asked
    // for a confirmation, then refused, NODE_KEY_IN_USE: key-actions.test.ts).
    const second = await chrome.context.newPage();
    second.on('pageerror', (e) => pageErrors.push(String(e)));
    await second.goto(web.url);
    await second.waitForSelector('#unlock:has-text("Unlock node key")', { timeout: 30_000 });
    await second.waitForSelector('#key-in-use', { state: 'visible', timeout: 10_000 });
    expect(await second.isHidden('#forget-key')).toBe(true);
    expect(await second.textContent('#node-id')).toBe(nodeId);
    await second.close();

    // A wrong passphrase after a reload puts focus back in the passphrase field.
    await page.reload();
    await page.waitForSelector('#unlock:has-text("Unlock node key")', { timeout: 30_000 });
    expect(await page.isVisible('#export-key')).toBe(true);
    // Unlocking asks it once.
    expect(await page.isHidden('#passphrase-again')).toBe(true);
    await page.focus('#passphrase');
    await page.keyboard.type('not the passphrase');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#node-error:has-text("KEY_WRONG_PASSPHRASE")', { timeout: 30_000 });
    await page.waitForFunction(() => document.activeElement?.id === 'passphrase', null, { timeout: 5_000 });

    // Forgetting asks first; dismissed, the key stays.
    page.once('dialog', (d) => void d.dismiss());
    await page.click('#forget-key');
    expect(await page.textContent('#node-id')).toBe(nodeId);
    const asked: string[] = [];
    page.once('dialog', (d) => {
      asked.push(d.message());
      void d.accept();
    });
    await page.click('#forget-key');
    await page.waitForSelector('#unlock:has-text("Create node key")', { timeout: 10_000 });
    expect(await page.isVisible('#passphrase-again')).toBe(true);
    expect(asked[0]).toContain(nodeId);
    expect(await page.textContent('#node-id')).toStartWith('no key yet');
    expect(await page.isHidden('#node-error')).toBe(true);
    expect(await page.isHidden('#export-key')).toBe(true);

    // The backup, loaded again by keyboard: the chooser opens on Enter, and focus waits in the
    // passphrase field (asked once: the key exists).
    // The second tab, opened and closed above, left this one in the background (headless Chromium
    // brings no tab forward when one closes), and a file chooser opens only in the tab in front.
    // Under load the first press can come before the tab is in front: pressed again (at most 3 times).
    let chooser: FileChooser | undefined;
    for (let i = 0; i < 3 && chooser === undefined; i++) {
      await page.bringToFront();
      await page.focus('#load-key');
      const opened = page.waitForEvent('filechooser', { timeout: 10_000 }).catch(() => undefined);
      await page.keyboard.press('Enter');
      chooser = await opened;
    }
    if (chooser === undefined) throw new Error('Enter on "Load a sealed key" opened no file chooser');
    // Loading asks first, saying the key must not run anywhere else meanwhile.
    const loadAsked: string[] = [];
    page.once('dialog', (d) => {
      loadAsked.push(d.message());
      void d.accept();
    });
    await chooser.setFiles(savedPath);
    await page.waitForSelector(`#node-id:text-is("${nodeId}")`, { timeout: 10_000 });
    await page.waitForFunction(() => document.activeElement?.id === 'passphrase', null, { timeout: 5_000 });
    expect(await page.isHidden('#passphrase-again')).toBe(true);
    expect(loadAsked[0]).toContain(`Load the node key ${nodeId}`);
    expect(loadAsked[0]).toContain('Run a key in one place at a time');
    await page.keyboard.type(PASSPHRASE);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
    expect(await page.textContent('#node-id')).toBe(nodeId);
    expect(pageErrors).toEqual([]);
  }, 120_000);

  test('a relay that never answers the POST gives Submit back, and says so', async () => {
    // Not answered: the relay took the connection and hangs (until the test is done with it).
    const hung: Route[] = [];
    await page.route(`${web.url}/hung-relay/v1/inference`, (route) => void hung.push(route));
    await page.fill('#relay-url', `${web.url}/hung-relay`);
    await page.fill('#api-key', 'synod_sk_anything');
    await page.click('#ask');
    expect(await page.isDisabled('#ask')).toBe(true);
    await page.waitForSelector('#ask-error:has-text("did not answer in 2 s")', { timeout: 10_000 });
    expect(await page.isEnabled('#ask')).toBe(true);
    expect(hung).toHaveLength(1);
    await Promise.all(hung.map((r) => r.abort().catch(() => {})));
    await page.unroute(`${web.url}/hung-relay/v1/inference`);
  }, 30_000);

  test('a status stream reopened and answering gets all its tries again when it breaks off anew', async () => {
    const requestId = 'cd'.repeat(32);
    const events = `/v1/inference/${requestId}/events`;
    const view = (status: string) => JSON.stringify({ requestId, status, commits: [], reveals: [] });
    await page.route(`${web.url}/flaky-relay/v1/inference`, (route) =>
      route.fulfill({ status: 202, json: { requestId, status: 'queued', links: { events } } }),
    );
    // Each stream gives one status, then breaks off; the EventSource's own reconnection gets a 502
    // (it gives up) and the page reopens the stream: a second later each time, as the reopened stream
    // answered, rather than one, two, four… seconds later.
    const opened: number[] = [];
    await page.route(`${web.url}/flaky-relay${events}`, (route) => {
      opened.push(Date.now());
      if (opened.length % 2 === 0)
        return route.fulfill({
          status: 502,
          json: { error: { code: 'RELAY_UNREACHABLE', message: 'down' } },
        });
      if (opened.length >= 7)
        return route.fulfill({
          status: 200,
          headers: { 'content-type': 'text/event-stream' },
          body: `event: status\ndata: ${view('verdict')}\n\nevent: end\ndata: {"status":"verdict"}\n\n`,
        });
      return route.fulfill({
        status: 200,
        headers: { 'content-type': 'text/event-stream' },
        body: `retry: 100\nevent: status\ndata: ${view('committing')}\n\n`,
      });
    });
    await page.fill('#relay-url', `${web.url}/flaky-relay`);
    await page.fill('#api-key', 'synod_sk_anything');
    await page.click('#ask');
    await page.waitForSelector('#ask-status:text-is("verdict")', { timeout: 20_000 });
    expect(opened).toHaveLength(7);
    // The waits after each 502 (opens 2→3, 4→5, 6→7): a second each, never two or four.
    const waits = [opened[2]! - opened[1]!, opened[4]! - opened[3]!, opened[6]! - opened[5]!];
    for (const wait of waits) expect(wait).toBeLessThan(1_800);
    await page.unrouteAll();
  }, 40_000);
});
